"""The inference API (attn.KVCache, attention_decode, merge_attention_partials,
apply_rope, MultiHeadLatentAttention / MLADecoder) against PyTorch.

Expected values come from torch, never from attn: torch's
scaled_dot_product_attention (in float64) over each sequence's whole prefix
with a bottom-right causal mask built here; the cache's storage rounding
emulated with torch ops from the documented rule (bfloat16: torch's
round-to-nearest-even; int8: per (group of quant_group tokens, head,
channel) scale max|x|/127, q = round(x/scale)); RoPE as Llama's rotate_half
written below; MLA as a composition of torch ops following attn/mla.hpp's
formulas.

Tolerances (float32 outputs): decode against SDPA on the stored (rounded)
keys and values 2e-6 for every storage (measured <= 1.4e-7); against the
exact inputs, as the storage's documented error allows: float32 2e-6,
bfloat16 1e-2 (measured <= 2.9e-3), int8 with groups of 4 tokens 2e-2
(measured <= 4.3e-3).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attn

# ---------------------------------------------------------------------------
# references (torch)
# ---------------------------------------------------------------------------


def stored(x, storage, group):
    """What the cache holds for x [B, H, L, D] (float32) appended from position 0:
    the storage's rounding, emulated with torch ops."""
    if storage == "float32":
        return x.clone()
    if storage == "bfloat16":
        return x.to(torch.bfloat16).to(torch.float32)
    out = torch.empty_like(x)
    L = x.shape[2]
    for g0 in range(0, L, group):  # KIVI: one scale per channel per group of tokens
        blk = x[:, :, g0:g0 + group]
        scale = blk.abs().amax(dim=2, keepdim=True) / 127.0
        q = torch.where(scale > 0, torch.round(blk / scale), torch.zeros_like(blk)).clamp(-127, 127)
        out[:, :, g0:g0 + group] = q * scale
    return out


def reference_decode(q, k, v, window_left=None):
    """SDPA (torch, float64) of q [Hq, Lq, D] on one sequence's whole prefix
    k, v [Hkv, Lk, D], causal with the bottom-right diagonal (the new rows are
    the last ones), GQA by repeating KV heads; optional left window."""
    Hq, Lq = q.shape[0], q.shape[1]
    Hkv, Lk = k.shape[0], k.shape[1]
    k = k.double().repeat_interleave(Hq // Hkv, dim=0)
    v = v.double().repeat_interleave(Hq // Hkv, dim=0)
    i = torch.arange(Lq).unsqueeze(1) + (Lk - Lq)
    j = torch.arange(Lk).unsqueeze(0)
    visible = j <= i
    if window_left is not None:
        visible = visible & (j >= i - window_left)
    return F.scaled_dot_product_attention(q.double(), k, v, attn_mask=visible)


def rope_reference(x, positions, theta=10000.0, rotary_dim=None, interleaved=False):
    """RoPE in float64 as Llama (Hugging Face) writes it: x·cos + rotate_half(x)·sin
    on the first R dims; interleaved pairs (2i, 2i+1) as GPT-J. x [B, H, L, D],
    positions [L] or [B, L]."""
    D = x.shape[-1]
    R = D if rotary_dim is None else rotary_dim
    inv_freq = 1.0 / theta ** (torch.arange(0, R, 2, dtype=torch.float64) / R)
    ang = positions.double().unsqueeze(-1) * inv_freq  # [.., L, R/2]
    if ang.dim() == 3:  # [B, L, R/2] -> [B, 1, L, R/2]
        ang = ang.unsqueeze(1)
    xr, rest = x[..., :R].double(), x[..., R:].double()
    if interleaved:
        cos, sin = ang.cos(), ang.sin()
        a, b = xr[..., 0::2], xr[..., 1::2]
        y = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)
    else:
        emb = torch.cat([ang, ang], dim=-1)
        x1, x2 = xr[..., :R // 2], xr[..., R // 2:]
        rotate_half = torch.cat([-x2, x1], dim=-1)
        y = xr * emb.cos() + rotate_half * emb.sin()
    return torch.cat([y, rest], dim=-1)


def max_err(a, b):
    return (torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).double()
            - torch.as_tensor(b).double()).abs().max().item()


# ---------------------------------------------------------------------------
# KV cache + decode against SDPA on the whole prefix
# ---------------------------------------------------------------------------

EXACT_TOL = {"float32": 2e-6, "bfloat16": 1e-2, "int8": 2e-2}
STORED_TOL = 2e-6
LAYOUTS = {
    "contiguous": dict(),
    "paged": dict(page_size=8),
    "window": dict(page_size=8, window_tokens=16),
}


@pytest.mark.parametrize("storage", ["float32", "bfloat16", "int8"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("heads", [(4, 2), (2, 2), (4, 1)], ids=["gqa", "mha", "mqa"])
def test_decode_matches_sdpa_on_the_whole_prefix(storage, layout, heads):
    torch.manual_seed(0)
    Hq, Hkv = heads
    B, D, Dv, T, G = 2, 16, 8, 40, 4
    K = torch.randn(B, Hkv, T, D)
    V = torch.randn(B, Hkv, T, Dv)
    Q = torch.randn(B, Hq, T, D)
    window = LAYOUTS[layout].get("window_tokens")
    window_left = None if window is None else window - 3  # W >= window_left + Lq (Lq <= 3)
    cache = attn.KVCache(num_kv_heads=Hkv, capacity=T, head_dim=D, value_dim=Dv, batch=B, dtype=storage,
                         quant_group=G, **LAYOUTS[layout])
    # varlen prefill: each sequence its own length, appended alone
    prefill = [5, 11]
    for b, n in enumerate(prefill):
        cache.append(0, K[b, :, :n], V[b, :, :n], batch_index=b)
    assert cache.lengths() == prefill

    def check(Lq):
        lengths = cache.lengths()
        q = torch.stack([Q[b, :, lengths[b] - Lq:lengths[b]] for b in range(B)])
        out, lse = attn.attention_decode(q, cache, 0, enable_gqa=Hq != Hkv, return_lse=True,
                                         window=None if window_left is None else (window_left, 0))
        assert isinstance(out, torch.Tensor) and out.shape == (B, Hq, Lq, Dv) and lse.shape == (B, Hq, Lq)
        errs = []
        for b in range(B):
            n = lengths[b]
            kb, vb = stored(K[b:b + 1, :, :n], storage, G)[0], stored(V[b:b + 1, :, :n], storage, G)[0]
            want_stored = reference_decode(q[b], kb, vb, window_left)
            want_exact = reference_decode(q[b], K[b, :, :n], V[b, :, :n], window_left)
            errs.append((max_err(out[b], want_stored), max_err(out[b], want_exact)))
        worst_stored = max(e[0] for e in errs)
        worst_exact = max(e[1] for e in errs)
        assert worst_stored <= STORED_TOL, (storage, layout, Lq, worst_stored)
        assert worst_exact <= EXACT_TOL[storage], (storage, layout, Lq, worst_exact)
        return worst_stored, worst_exact

    check(3)  # the last 3 prefill tokens as queries: bottom-right with Lq > 1
    for _ in range(T - max(prefill)):  # then token by token, the whole batch at once
        lengths = cache.lengths()
        k_t = torch.stack([K[b, :, lengths[b]:lengths[b] + 1] for b in range(B)])
        v_t = torch.stack([V[b, :, lengths[b]:lengths[b] + 1] for b in range(B)])
        cache.append(0, k_t, v_t)
        check(1)
    if window is not None:  # pages the window no longer sees went back to the pool
        held = [page for page in cache.page_table(0, 1) if page >= 0]  # -1: given back
        assert len(held) <= math.ceil(window / 8) + 1
        assert cache.first_kept(0, 1) > 0
        assert torch.isnan(cache.keys(0, 1)[0, :, 0]).all()


def test_decode_on_numpy_matches_sdpa_and_value_dim_differs():
    rng = np.random.default_rng(1)
    B, H, D, Dv, T = 1, 3, 8, 5, 12
    k = rng.standard_normal((B, H, T, D), dtype=np.float32)
    v = rng.standard_normal((B, H, T, Dv), dtype=np.float32)
    q = rng.standard_normal((B, H, 1, D), dtype=np.float32)
    cache = attn.KVCache(num_kv_heads=H, capacity=16, head_dim=D, value_dim=Dv)
    cache.append(0, k, v)
    out = attn.attention_decode(q, cache)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (B, H, 1, Dv)
    want = reference_decode(torch.from_numpy(q[0]), torch.from_numpy(k[0]), torch.from_numpy(v[0]))
    assert max_err(out[0], want) <= 2e-5


def test_decode_with_fused_rope_equals_rotating_first():
    torch.manual_seed(2)
    B, Hq, Hkv, D, T = 1, 4, 2, 16, 9
    K, V, Q = torch.randn(B, Hkv, T, D), torch.randn(B, Hkv, T, D), torch.randn(B, Hq, T, D)
    rope = attn.RopeOptions(theta=500.0)
    cache = attn.KVCache(num_kv_heads=Hkv, capacity=T, head_dim=D)
    cache.append(0, K[:, :, :6], V[:, :, :6], rope=rope)
    for t in range(6, T):
        cache.append(0, K[:, :, t:t + 1], V[:, :, t:t + 1], rope=rope)
        out = attn.attention_decode(Q[:, :, t:t + 1], cache, enable_gqa=True, rope=rope)
        q_rot = rope_reference(Q[:, :, t:t + 1], torch.tensor([t]), theta=500.0)
        k_rot = rope_reference(K[:, :, :t + 1], torch.arange(t + 1), theta=500.0)
        want = reference_decode(q_rot[0], k_rot[0], V[0, :, :t + 1])
        assert max_err(out[0], want) <= 2e-5


# ---------------------------------------------------------------------------
# merge_attention_partials
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_numpy", [False, True], ids=["torch", "numpy"])
def test_merge_attention_partials_equals_one_sdpa_over_all_keys(use_numpy):
    torch.manual_seed(3)
    B, H, L, D, Dv = 2, 3, 4, 8, 6
    parts = [5, 9, 3]
    q = torch.randn(B, H, L, D)
    ks = [torch.randn(B, H, n, D) for n in parts]
    vs = [torch.randn(B, H, n, Dv) for n in parts]
    outs, lses = [], []
    for k, v in zip(ks, vs):  # each part: torch's SDPA and the log-sum-exp of its scores
        outs.append(F.scaled_dot_product_attention(q, k, v))
        lses.append(torch.logsumexp(q @ k.transpose(-2, -1) / math.sqrt(D), dim=-1))
    # a part that saw no key: output 0, lse -inf, changes nothing
    outs.append(torch.zeros(B, H, L, Dv))
    lses.append(torch.full((B, H, L), -math.inf))
    po, pl = torch.stack(outs), torch.stack(lses)
    if use_numpy:
        po, pl = po.numpy(), pl.numpy()
    out, lse = attn.merge_attention_partials(po, pl)
    assert type(out) is type(po) and out.shape == (B, H, L, Dv) and lse.shape == (B, H, L)
    k_all, v_all = torch.cat(ks, dim=2), torch.cat(vs, dim=2)
    want = F.scaled_dot_product_attention(q.double(), k_all.double(), v_all.double())
    want_lse = torch.logsumexp(q.double() @ k_all.double().transpose(-2, -1) / math.sqrt(D), dim=-1)
    assert max_err(out, want) <= 1e-5
    assert max_err(lse, want_lse) <= 1e-5


def test_merge_attention_partials_float64_and_all_empty_rows():
    po = torch.zeros(2, 1, 1, 3, 4, dtype=torch.float64)
    pl = torch.full((2, 1, 1, 3), -math.inf, dtype=torch.float64)
    out, lse = attn.merge_attention_partials(po, pl)
    assert out.dtype == torch.float64 and (out == 0).all() and torch.isneginf(lse).all()


# ---------------------------------------------------------------------------
# RoPE
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("interleaved", [False, True], ids=["half", "interleaved"])
@pytest.mark.parametrize("rotary_dim", [None, 8])
def test_apply_rope_matches_llama_rotate_half(interleaved, rotary_dim):
    torch.manual_seed(4)
    x = torch.randn(2, 3, 7, 12)
    layout = "interleaved" if interleaved else "half"
    y = attn.apply_rope(x, start_pos=100, theta=10000.0, layout=layout, rotary_dim=rotary_dim)
    want = rope_reference(x, torch.arange(100, 107), rotary_dim=rotary_dim, interleaved=interleaved)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert max_err(y, want) <= 1e-5
    # positions per sequence [B, L]
    pos = torch.randint(0, 4096, (2, 7))
    y = attn.apply_rope(x, pos, layout=layout, rotary_dim=rotary_dim)
    assert max_err(y, rope_reference(x, pos, rotary_dim=rotary_dim, interleaved=interleaved)) <= 1e-4


def test_apply_rope_reads_a_strided_view_and_numpy_and_float64():
    torch.manual_seed(5)
    x_bshd = torch.randn(2, 5, 3, 8)  # [B, L, H, D]
    x = x_bshd.transpose(1, 2)  # [B, H, L, D] view, not contiguous
    assert not x.is_contiguous()
    want = rope_reference(x, torch.arange(5))
    assert max_err(attn.apply_rope(x), want) <= 1e-5
    y_np = attn.apply_rope(x.numpy(), np.arange(5))
    assert isinstance(y_np, np.ndarray) and max_err(torch.from_numpy(y_np), want) <= 1e-5
    y64 = attn.apply_rope(x.double(), start_pos=0)
    assert y64.dtype == torch.float64 and max_err(y64, want) <= 1e-12


def test_apply_rope_gradient_matches_torch_autograd():
    torch.manual_seed(6)
    x = torch.randn(1, 2, 6, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 2, 6, 8, dtype=torch.float64)
    (attn.apply_rope(x, start_pos=3) * w).sum().backward()
    x_ref = x.detach().clone().requires_grad_(True)
    (rope_reference(x_ref, torch.arange(3, 9)) * w).sum().backward()
    assert max_err(x.grad, x_ref.grad) <= 1e-12
    # and the explicit backward
    g = attn.apply_rope_backward(w, start_pos=3)
    assert max_err(g, x_ref.grad) <= 1e-12


# ---------------------------------------------------------------------------
# Multi-head latent attention
# ---------------------------------------------------------------------------


def mla_reference(x, p, H, dh, dR, start_pos=0, theta=10000.0):
    """attn/mla.hpp's formulas as torch ops (differentiable in x and p)."""
    B, L, _ = x.shape
    cQ = x @ p["W_DQ.weight"].T
    qC = (cQ @ p["W_UQ.weight"].T).view(B, L, H, dh).transpose(1, 2)
    qR = (cQ @ p["W_QR.weight"].T).view(B, L, H, dR).transpose(1, 2)
    cKV = x @ p["W_DKV.weight"].T
    kC = (cKV @ p["W_UK.weight"].T).view(B, L, H, dh).transpose(1, 2)
    v = (cKV @ p["W_UV.weight"].T).view(B, L, H, dh).transpose(1, 2)
    kR = (x @ p["W_KR.weight"].T).unsqueeze(1)  # [B, 1, L, dR]: one RoPE key for all heads
    pos = torch.arange(start_pos, start_pos + L)
    qR = rope_reference(qR, pos, theta).to(x.dtype)
    kR = rope_reference(kR, pos, theta).to(x.dtype).expand(B, H, L, dR)
    q = torch.cat([qC, qR], dim=-1)
    k = torch.cat([kC, kR], dim=-1)
    o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return o.transpose(1, 2).reshape(B, L, H * dh) @ p["W_O.weight"].T


MLA_ARGS = dict(d_model=24, num_heads=3, head_dim=4, rope_dim=4, kv_latent_dim=6, q_latent_dim=10)


def test_mla_forward_and_gradients_match_a_torch_composition():
    attn.manual_seed(7)
    layer = attn.MultiHeadLatentAttention(**MLA_ARGS)
    p = {n: torch.from_numpy(np.array(w)).requires_grad_(True) for n, w in layer.state_dict().items()}
    torch.manual_seed(7)
    x = torch.randn(2, 9, 24)
    x_attn = x.clone().requires_grad_(True)
    x_ref = x.clone().requires_grad_(True)
    y = layer(x_attn)
    want = mla_reference(x_ref, p, 3, 4, 4)
    assert max_err(y, want) <= 1e-5
    w = torch.randn_like(want)
    layer.zero_grad()
    (y * w).sum().backward()
    (want * w).sum().backward()
    assert max_err(x_attn.grad, x_ref.grad) <= 1e-4
    grads = layer.named_gradients()
    for name, t in p.items():
        assert max_err(torch.from_numpy(np.array(grads[name])), t.grad) <= 1e-4, name
    # a later start position: positions start_pos + i
    y5 = layer(x, start_pos=5)
    assert max_err(y5, mla_reference(x, {n: t.detach() for n, t in p.items()}, 3, 4, 4, start_pos=5)) <= 1e-5


@pytest.mark.parametrize("form", ["absorbed", "naive"])
def test_mla_decoder_steps_equal_the_forward(form):
    attn.manual_seed(8)
    layer = attn.MultiHeadLatentAttention(**MLA_ARGS)
    x = np.asarray(attn.randn(2, 7, 24))
    full = layer(x)
    dec = attn.MLADecoder(layer, batch=2, max_len=7, form=form)
    outs = [dec.step(x[:, :3])]  # a chunk, then token by token
    for t in range(3, 7):
        outs.append(dec.step(x[:, t:t + 1]))
    assert dec.length == 7
    got = np.concatenate(outs, axis=1)
    assert isinstance(got, np.ndarray) and np.abs(got - full).max() <= 1e-5
    with pytest.raises(ValueError, match="max_len"):
        dec.step(x[:, :1])
    dec.reset()  # torch tensors in, torch tensors out
    y = dec.step(torch.from_numpy(x))
    assert isinstance(y, torch.Tensor) and max_err(y, torch.from_numpy(full)) <= 1e-5


def test_clear_frees_a_slot_for_a_new_sequence():
    torch.manual_seed(11)
    cache = attn.KVCache(num_kv_heads=1, capacity=8, head_dim=4, batch=2, page_size=4)
    cache.append(0, torch.randn(2, 1, 6, 4), torch.randn(2, 1, 6, 4))
    free = cache.free_pages(0)
    cache.clear(1)
    assert cache.lengths() == [6, 0] and cache.free_pages(0) == free + 2
    k, v = torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    cache.append(0, k, v, batch_index=1)  # a new sequence in slot 1
    q = torch.randn(2, 1, 1, 4)
    out = attn.attention_decode(q, cache)
    assert max_err(out[1], reference_decode(q[1], k, v)) <= 2e-6
    cache.clear()
    assert cache.lengths() == [0, 0]


# ---------------------------------------------------------------------------
# no copies
# ---------------------------------------------------------------------------


def test_storage_views_share_memory_and_writes_reach_the_decode_step():
    torch.manual_seed(9)
    B, H, D, T = 1, 2, 8, 6
    K, V = torch.randn(B, H, T, D), torch.randn(B, H, T, D)
    cache = attn.KVCache(num_kv_heads=H, capacity=10, head_dim=D)
    cache.append(0, K, V)
    ks = cache.key_storage(0)  # torch (the kind appended), a view of the cache
    assert isinstance(ks, torch.Tensor) and ks.shape == (B, H, 10, D)
    assert torch.equal(ks[:, :, :T], K)
    view = cache.keys(0, 0)  # the filled part: a view too
    assert view.data_ptr() == ks.data_ptr()
    ks_np = cache.key_storage(0, framework="numpy")
    assert np.shares_memory(ks_np, cache.keys(0, 0, framework="numpy"))
    # written in place through the view: the next decode step reads it
    K2 = K.clone()
    K2[:, 1, 2] = 5.0
    ks[:, 1, 2] = 5.0
    q = torch.randn(B, H, 1, D)
    out = attn.attention_decode(q, cache)
    assert max_err(out[0], reference_decode(q[0], K2[0], V[0])) <= 2e-5
    # the appended arrays were copied into the cache (later writes to them are not seen)
    K.zero_()
    assert torch.equal(cache.keys(0, 0), K2)


def test_views_outlive_the_cache():
    cache = attn.KVCache(num_kv_heads=1, capacity=4, head_dim=2)
    cache.append(0, torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2))
    keys, storage = cache.keys(0, 0), cache.key_storage(0)
    del cache
    import gc
    gc.collect()
    assert torch.equal(keys, torch.ones(1, 1, 2, 2)) and storage.shape == (1, 1, 4, 2)  # they hold the memory


def test_inputs_are_read_in_place_from_strided_views_and_outputs_are_not_copied():
    torch.manual_seed(10)
    B, H, D, T = 2, 2, 8, 5
    k_bshd, v_bshd = torch.randn(B, T, H, D), torch.randn(B, T, H, D)  # [B, L, H, D] as models hold them
    cache = attn.KVCache(num_kv_heads=H, capacity=8, head_dim=D, batch=B)
    cache.append(0, k_bshd.transpose(1, 2), v_bshd.transpose(1, 2))
    assert torch.equal(cache.keys(0, 1)[0], k_bshd[1].transpose(0, 1))
    q = torch.randn(B, 1, H, D).transpose(1, 2)
    out = attn.attention_decode(q, cache)
    want = reference_decode(q[1], k_bshd[1].transpose(0, 1), v_bshd[1].transpose(0, 1))
    assert max_err(out[1], want) <= 2e-5
    out_np = attn.attention_decode(q.numpy(), cache)
    assert not out_np.flags.owndata  # the library's buffer, wrapped, not a numpy copy
    assert out_np.flags.writeable


# ---------------------------------------------------------------------------
# errors: typed exceptions naming the argument
# ---------------------------------------------------------------------------


def test_errors_name_the_argument():
    cache = attn.KVCache(num_kv_heads=2, capacity=4, head_dim=8, batch=1)
    k = torch.randn(1, 2, 3, 8)
    with pytest.raises(attn.ShapeError, match="key"):
        cache.append(0, torch.randn(1, 3, 3, 8), k)
    with pytest.raises(attn.ShapeError, match="value"):
        cache.append(0, k, torch.randn(1, 2, 2, 8))
    with pytest.raises(TypeError, match="key"):
        cache.append(0, k.to(torch.int32), k)
    with pytest.raises(TypeError, match="value"):
        cache.append(0, k, np.ones((1, 2, 3, 8), dtype=np.int64))
    cache.append(0, k, k)
    with pytest.raises(ValueError, match="capacity"):
        cache.append(0, k, k)  # 3 + 3 > 4
    assert cache.lengths() == [3]  # nothing written
    with pytest.raises(ValueError, match="layer"):
        cache.append(1, k, k)
    with pytest.raises(ValueError, match="batch_index"):
        cache.append(0, k[0, :, :1], k[0, :, :1], batch_index=3)
    with pytest.raises(attn.ShapeError, match="query"):
        attn.attention_decode(torch.randn(1, 2, 1, 5), cache)
    with pytest.raises(TypeError, match="query"):
        attn.attention_decode(torch.ones(1, 2, 1, 8, dtype=torch.int64), cache)
    with pytest.raises(ValueError, match="query"):
        attn.attention_decode(torch.randn(1, 4, 1, 8), cache)  # 4 heads over 2 without enable_gqa
    with pytest.raises(ValueError, match="scale"):
        attn.attention_decode(torch.randn(1, 2, 1, 8), cache, scale=-1.0)
    with pytest.raises(TypeError, match="cache"):
        attn.attention_decode(torch.randn(1, 2, 1, 8), "not a cache")
    with pytest.raises(TypeError, match="dtype"):
        attn.KVCache(num_kv_heads=2, capacity=4, head_dim=8, dtype="float16")
    with pytest.raises(ValueError, match="page_size"):
        attn.KVCache(num_kv_heads=2, capacity=4, head_dim=8, window_tokens=2)  # a window needs pages


def test_errors_of_special_caches_and_functions():
    i8 = attn.KVCache(num_kv_heads=1, capacity=4, head_dim=4, dtype="int8")
    bad = torch.ones(1, 1, 1, 4)
    bad[0, 0, 0, 1] = math.nan
    with pytest.raises(ValueError, match="key"):
        i8.append(0, bad, torch.ones(1, 1, 1, 4))
    with pytest.raises(ValueError, match="float32"):
        i8.key_storage(0)  # only a float32 cache has a float storage to view
    paged = attn.KVCache(num_kv_heads=1, capacity=64, head_dim=4, page_size=4, num_pages=2)
    with pytest.raises(ValueError, match="page"):
        paged.append(0, torch.ones(1, 1, 9, 4), torch.ones(1, 1, 9, 4))  # 3 pages, 2 in the pool
    win = attn.KVCache(num_kv_heads=1, capacity=64, head_dim=4, page_size=4, window_tokens=4)
    win.append(0, torch.randn(1, 1, 12, 4), torch.randn(1, 1, 12, 4))
    with pytest.raises(ValueError, match="window"):
        attn.attention_decode(torch.randn(1, 1, 1, 4), win)  # no window: would need dropped tokens
    with pytest.raises(attn.ShapeError, match="x"):
        attn.apply_rope(torch.randn(3, 4, 8))
    with pytest.raises(ValueError, match="rotary_dim"):
        attn.apply_rope(torch.randn(1, 1, 2, 8), rotary_dim=3)
    with pytest.raises(TypeError, match="positions"):
        attn.apply_rope(torch.randn(1, 1, 2, 8), torch.tensor([0.0, 1.0]))
    with pytest.raises(attn.ShapeError, match="positions"):
        attn.apply_rope(torch.randn(1, 1, 2, 8), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="x"):
        attn.apply_rope(np.ones((1, 1, 2, 8), dtype=np.int32))
    with pytest.raises(attn.ShapeError):
        attn.merge_attention_partials(torch.zeros(2, 1, 1, 3, 4), torch.zeros(2, 1, 1, 2))
    with pytest.raises(TypeError, match="partial_lse"):
        attn.merge_attention_partials(torch.zeros(2, 1, 1, 3, 4), torch.zeros(2, 1, 1, 3, dtype=torch.float64))
    layer = attn.MultiHeadLatentAttention(**MLA_ARGS)
    with pytest.raises(attn.ShapeError):
        layer(np.ones((1, 3, 23), dtype=np.float32))
    with pytest.raises(ValueError, match="rope_dim"):
        attn.MultiHeadLatentAttention(24, 3, 4, 3, 6, 10)

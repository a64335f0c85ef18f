"""attn.varlen_attention against torch, sequence by sequence.

Expected values come from torch alone: torch.nn.functional.scaled_dot_product_attention
on each sequence in float64 (bottom-right causal and windows as explicit bool
masks), or conftest.reference_sdpa (torch ops, written from attn/sdpa.hpp's
definition) for the options torch's SDPA lacks (ALiBi, softcap, sinks), and
torch.autograd for the gradients. Each sequence is sliced from the same packed
leaf tensors, so torch's autograd gives the packed gradients to compare.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import attn  # noqa: E402

from conftest import reference_sdpa  # noqa: E402

F64_TOL = 1e-10   # float64: attn and torch differ by rounding only
F32_OUT_TOL = 1e-5
F32_GRAD_TOL = 1e-4


def random_batch(gen, lengths_q, lengths_k, Hq, Hkv, Dk, Dv, dtype=torch.float64):
    total_q, total_k = sum(lengths_q), sum(lengths_k)
    q = torch.randn((total_q, Hq, Dk), generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
    k = torch.randn((total_k, Hkv, Dk), generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
    v = torch.randn((total_k, Hkv, Dv), generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
    cu_q = torch.tensor([0] + list(np.cumsum(lengths_q)), dtype=torch.int32)
    cu_k = torch.tensor([0] + list(np.cumsum(lengths_k)), dtype=torch.int32)
    return q, k, v, cu_q, cu_k


def random_lengths(gen, batch, low, high):
    return [int(x) for x in torch.randint(low, high + 1, (batch,), generator=gen)]


def per_sequence(q, k, v, cu_q, cu_k, attend):
    """torch's answer: attend(q_b, k_b, v_b, b) on [1, H, L, D] views of each
    sequence, packed back into [total_q, Hq, Dv]."""
    outs = []
    for b in range(len(cu_q) - 1):
        q0, q1, k0, k1 = int(cu_q[b]), int(cu_q[b + 1]), int(cu_k[b]), int(cu_k[b + 1])
        qb = q[q0:q1].transpose(0, 1).unsqueeze(0)
        kb = k[k0:k1].transpose(0, 1).unsqueeze(0)
        vb = v[k0:k1].transpose(0, 1).unsqueeze(0)
        outs.append(attend(qb, kb, vb, b)[0].transpose(0, 1))
    return torch.cat(outs, dim=0)


def bottom_right_mask(Lq, Lk, window=(-1, -1), causal=True):
    """FlashAttention's visibility for one sequence: key j relative to query i's diagonal i + Lk - Lq."""
    i = torch.arange(Lq).unsqueeze(-1)
    j = torch.arange(Lk).unsqueeze(0)
    rel = j - (i + Lk - Lq)
    visible = torch.ones(Lq, Lk, dtype=torch.bool)
    if causal:
        visible &= rel <= 0
    if window[0] >= 0:
        visible &= rel >= -window[0]
    if window[1] >= 0:
        visible &= rel <= window[1]
    return visible


def grads(out, inputs, dout):
    return torch.autograd.grad(out, inputs, dout, allow_unused=True)


def check(got, want, tol, what):
    err = (got - want).abs().max().item() if got.numel() else 0.0
    assert err <= tol, f"{what}: max |attn - torch| = {err:.3g} > {tol}"
    return err


# ---- parity with torch SDPA, sequence by sequence, float64 ------------------------------

# Lengths with Lk >= Lq and no empty key sequence: every query row sees a key, so
# torch's SDPA gives numbers (it gives NaN for a row that sees none).
CASES = {
    "plain": dict(),
    "causal bottom-right (FlashAttention's default)": dict(causal=True),
    "causal top-left": dict(causal=True, causal_alignment="top_left"),
    "window (4, 2)": dict(window_size=(4, 2)),
    "causal + window 3": dict(causal=True, window_size=(3, 0)),
    "scale": dict(softmax_scale=0.3),
}


def torch_attend(opts, Hq, Hkv):
    gqa = Hq != Hkv

    def attend(qb, kb, vb, b):
        Lq, Lk = qb.shape[2], kb.shape[2]
        scale = opts.get("softmax_scale")
        causal = opts.get("causal", False)
        window = opts.get("window_size", (-1, -1))
        if causal and opts.get("causal_alignment") == "top_left" and window == (-1, -1):
            return F.scaled_dot_product_attention(qb, kb, vb, is_causal=True, scale=scale, enable_gqa=gqa)
        if causal or window != (-1, -1):
            mask = bottom_right_mask(Lq, Lk, window, causal)
            return F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, scale=scale, enable_gqa=gqa)
        return F.scaled_dot_product_attention(qb, kb, vb, scale=scale, enable_gqa=gqa)
    return attend


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (3, 1)])
def test_parity_with_torch_sdpa_per_sequence(name, heads):
    opts = CASES[name]
    Hq, Hkv = heads
    gen = torch.Generator().manual_seed(hash((name, heads)) % (2**31))
    lq = random_lengths(gen, 6, 1, 40)
    lk = [x + int(d) for x, d in zip(lq, torch.randint(0, 20, (6,), generator=gen))]  # Lk >= Lq
    lq[0], lk[0] = 1, 1  # a length-1 sequence
    q, k, v, cu_q, cu_k = random_batch(gen, lq, lk, Hq, Hkv, 16, 8)
    got = attn.varlen_attention(q, k, v, cu_q, cu_k, max(lq), max(lk), **opts)
    want = per_sequence(q, k, v, cu_q, cu_k, torch_attend(opts, Hq, Hkv))
    check(got, want, F64_TOL, f"{name} output")
    dout = torch.randn(got.shape, generator=gen, dtype=torch.float64)
    for g_attn, g_torch, arg in zip(grads(got, (q, k, v), dout), grads(want, (q, k, v), dout), "qkv"):
        check(g_attn, g_torch, F64_TOL, f"{name} d{arg}")


def test_float32_fast_path_matches_torch_float64():
    gen = torch.Generator().manual_seed(5)
    lq = random_lengths(gen, 8, 64, 300)
    lk = lq[:]
    q, k, v, cu_q, cu_k = random_batch(gen, lq, lk, 8, 2, 64, 64)
    q32, k32, v32 = (x.detach().float().requires_grad_() for x in (q, k, v))
    got = attn.varlen_attention(q32, k32, v32, cu_q, cu_k, max(lq), max(lk), causal=True)
    want = per_sequence(q, k, v, cu_q, cu_k, torch_attend(dict(causal=True), 8, 2))
    check(got.double(), want, F32_OUT_TOL, "float32 output")
    dout = torch.randn(got.shape, generator=gen, dtype=torch.float64)
    for g_attn, g_torch, arg in zip(grads(got, (q32, k32, v32), dout.float()), grads(want, (q, k, v), dout), "qkv"):
        check(g_attn.double(), g_torch, F32_GRAD_TOL, f"float32 d{arg}")


# ---- the options torch's SDPA lacks: conftest.reference_sdpa (torch ops) ---------------

EXTRA_CASES = {
    "alibi [H]": lambda gen, B, H: dict(alibi_slopes=torch.rand(H, generator=gen, dtype=torch.float64)),
    "alibi [batch, H] + causal": lambda gen, B, H: dict(
        alibi_slopes=torch.rand(B, H, generator=gen, dtype=torch.float64), causal=True),
    "softcap": lambda gen, B, H: dict(softcap=1.5),
    "sinks": lambda gen, B, H: dict(sinks=torch.randn(H, generator=gen, dtype=torch.float64).requires_grad_()),
    "everything": lambda gen, B, H: dict(
        alibi_slopes=torch.rand(B, H, generator=gen, dtype=torch.float64), causal=True, window_size=(5, -1),
        softcap=2.0, sinks=torch.randn(H, generator=gen, dtype=torch.float64).requires_grad_(),
        softmax_scale=0.5),
}


@pytest.mark.parametrize("name", list(EXTRA_CASES))
def test_alibi_softcap_sinks_against_torch_ops(name):
    gen = torch.Generator().manual_seed(11)
    B, Hq, Hkv = 5, 4, 2
    # Any lengths here, empty ones and Lq > Lk included: reference_sdpa gives 0
    # for a row that sees no key, as attn does.
    lq = [3, 0, 1, 7, 5]
    lk = [5, 4, 1, 2, 0]
    q, k, v, cu_q, cu_k = random_batch(gen, lq, lk, Hq, Hkv, 8, 6)
    opts = EXTRA_CASES[name](gen, B, Hq)
    got = attn.varlen_attention(q, k, v, cu_q, cu_k, max(lq), max(lk), **opts)

    def attend(qb, kb, vb, b):
        slopes = opts.get("alibi_slopes")
        if slopes is not None and slopes.dim() == 2:
            slopes = slopes[b]
        return reference_sdpa(qb, kb, vb, is_causal=opts.get("causal", False), scale=opts.get("softmax_scale"),
                              enable_gqa=True, bottom_right=True, window=opts.get("window_size", (-1, -1)),
                              alibi_slopes=slopes, softcap=opts.get("softcap", 0.0), sinks=opts.get("sinks"))

    want = per_sequence(q, k, v, cu_q, cu_k, attend)
    check(got, want, F64_TOL, f"{name} output")
    dout = torch.randn(got.shape, generator=gen, dtype=torch.float64)
    inputs = (q, k, v) + ((opts["sinks"],) if "sinks" in opts else ())
    for g_attn, g_torch, arg in zip(grads(got, inputs, dout), grads(want, inputs, dout), ["q", "k", "v", "sinks"]):
        check(g_attn, g_torch, F64_TOL, f"{name} d{arg}")


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(3)
    q, k, v, cu_q, cu_k = random_batch(gen, [2, 0, 3], [3, 2, 1], 2, 1, 3, 2)
    sinks = torch.randn(2, generator=gen, dtype=torch.float64).requires_grad_()

    def f(q, k, v, sinks):
        return attn.varlen_attention(q, k, v, cu_q, cu_k, 3, 3, causal=True, softcap=3.0, sinks=sinks)

    assert torch.autograd.gradcheck(f, (q, k, v, sinks), eps=1e-6, atol=1e-7)


# ---- lse, dropout, dtypes, numpy ---------------------------------------------------------

def test_lse_layout_is_flash_attentions_heads_by_tokens():
    gen = torch.Generator().manual_seed(4)
    lq, lk = [3, 2, 4], [3, 0, 5]
    q, k, v, cu_q, cu_k = random_batch(gen, lq, lk, 2, 2, 4, 4)
    out, lse, probs = attn.varlen_attention(q, k, v, cu_q, cu_k, 4, 5, return_attn_probs=True)
    assert probs is None
    assert lse.shape == (2, sum(lq))
    assert not lse.requires_grad
    for b in range(3):
        q0, q1, k0, k1 = cu_q[b], cu_q[b + 1], cu_k[b], cu_k[b + 1]
        s = torch.einsum("ihd,jhd->hij", q[q0:q1], k[k0:k1]).detach() / 2.0
        want = torch.logsumexp(s, dim=-1) if k1 > k0 else torch.full((2, q1 - q0), -math.inf, dtype=s.dtype)
        torch.testing.assert_close(lse[:, q0:q1], want, rtol=0, atol=1e-12)
    assert (out[3:5] == 0).all()  # the sequence without keys


def test_dropout_is_the_padded_batchs_mask():
    gen = torch.Generator().manual_seed(6)
    lq, lk = [4, 6, 2], [5, 6, 3]
    q, k, v, cu_q, cu_k = random_batch(gen, lq, lk, 2, 2, 4, 4)
    out = attn.varlen_attention(q, k, v, cu_q, cu_k, 6, 6, dropout_p=0.3, dropout_seed=77, causal=True,
                                causal_alignment="top_left")
    again = attn.varlen_attention(q, k, v, cu_q, cu_k, 6, 6, dropout_p=0.3, dropout_seed=77, causal=True,
                                  causal_alignment="top_left")
    assert torch.equal(out, again)
    # The padded batch through attn's SDPA with a key-padding + causal mask, same seed.
    B, L = 3, 6
    pq, pk, pv = (torch.zeros(B, 2, L, 4, dtype=torch.float64) for _ in range(3))
    mask = torch.zeros(B, 1, L, L, dtype=torch.bool)
    for b in range(B):
        pq[b, :, :lq[b]] = q[cu_q[b]:cu_q[b + 1]].detach().transpose(0, 1)
        pk[b, :, :lk[b]] = k[cu_k[b]:cu_k[b + 1]].detach().transpose(0, 1)
        pv[b, :, :lk[b]] = v[cu_k[b]:cu_k[b + 1]].detach().transpose(0, 1)
        mask[b, 0, :, :lk[b]] = torch.ones(L, lk[b], dtype=torch.bool).tril()
    padded = attn.scaled_dot_product_attention(pq, pk, pv, attn_mask=mask, dropout_p=0.3, dropout_seed=77)
    for b in range(B):
        torch.testing.assert_close(out[cu_q[b]:cu_q[b + 1]].detach(), padded[b, :, :lq[b]].transpose(0, 1),
                                   rtol=0, atol=1e-12)
    # Gradients flow with dropout too (the backward regenerates the mask).
    out.sum().backward()
    assert torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0


def test_int64_offsets_bfloat16_and_numpy():
    gen = torch.Generator().manual_seed(7)
    lq, lk = [3, 5], [4, 5]
    q, k, v, cu_q, cu_k = random_batch(gen, lq, lk, 2, 2, 4, 4, dtype=torch.float32)
    a = attn.varlen_attention(q, k, v, cu_q, cu_k, 5, 5, causal=True)
    b = attn.varlen_attention(q, k, v, cu_q.long(), cu_k.long(), 5, 5, causal=True)
    assert torch.equal(a, b)
    bf = attn.varlen_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), cu_q, cu_k, 5, 5, causal=True)
    assert bf.dtype == torch.bfloat16
    torch.testing.assert_close(bf.float(), a.detach(), atol=3e-2, rtol=0)
    n = attn.varlen_attention(q.detach().numpy(), k.detach().numpy(), v.detach().numpy(), cu_q.numpy(),
                              cu_k.numpy(), 5, 5, causal=True)
    assert isinstance(n, np.ndarray)
    np.testing.assert_array_equal(n, a.detach().numpy())


# ---- bad input: the library's typed errors -----------------------------------------------

def bad_call(**changes):
    q = torch.randn(5, 2, 4)
    k = torch.randn(6, 2, 4)
    v = torch.randn(6, 2, 4)
    args = dict(q=q, k=k, v=v, cu_seqlens_q=torch.tensor([0, 2, 5], dtype=torch.int32),
                cu_seqlens_k=torch.tensor([0, 3, 6], dtype=torch.int32), max_seqlen_q=3, max_seqlen_k=3)
    args.update(changes)
    return attn.varlen_attention(**args)


@pytest.mark.parametrize("changes, error, words", [
    (dict(cu_seqlens_q=torch.tensor([1, 2, 5], dtype=torch.int32)), ValueError, ["cu_seqlens_q[0] is 1"]),
    (dict(cu_seqlens_k=torch.tensor([0, 4, 3], dtype=torch.int32)), ValueError, ["cu_seqlens_k decreases"]),
    (dict(cu_seqlens_q=torch.tensor([0, 2, 4], dtype=torch.int32)), ValueError, ["cu_seqlens_q ends at 4",
                                                                                   "expected 5"]),
    (dict(cu_seqlens_k=torch.tensor([0, 6], dtype=torch.int32)), attn.ShapeError, ["cu_seqlens_k", "same length"]),
    (dict(max_seqlen_q=2), ValueError, ["max_seqlen_q is 2", "sequence 1 has 3 tokens"]),
    (dict(max_seqlen_k=-1), ValueError, ["max_seqlen_k is -1"]),
    (dict(cu_seqlens_q=torch.tensor([[0, 2, 5]], dtype=torch.int32)), attn.ShapeError, ["rank 1"]),
    (dict(q=torch.randn(1, 5, 2, 4)), attn.ShapeError, ["query has shape [1, 5, 2, 4]", "rank 3"]),
    (dict(v=torch.randn(5, 2, 4)), attn.ShapeError, ["value has shape [5, 2, 4]"]),
    (dict(k=torch.randn(6, 3, 4), v=torch.randn(6, 3, 4)), attn.ShapeError, ["query has 2 heads and key 3"]),
    (dict(alibi_slopes=torch.ones(3)), attn.ShapeError, ["alibi_slopes has shape [3]"]),
    (dict(dropout_p=1.0), ValueError, ["dropout_p"]),
    (dict(cu_seqlens_q=torch.tensor([0, 2, 5.0])), TypeError, ["cu_seqlens_q has dtype float32", "int32 or int64"]),
    (dict(cu_seqlens_k=torch.tensor([0, 3, 6])), TypeError, ["cu_seqlens_q has dtype int32",
                                                            "cu_seqlens_k int64"]),
    (dict(max_seqlen_q=3.0), TypeError, ["max_seqlen_q"]),
    (dict(cu_seqlens_q=[0, 2, 5]), TypeError, ["cu_seqlens_q is list"]),
])
def test_bad_input(changes, error, words):
    with pytest.raises(error) as info:
        bad_call(**changes)
    for w in words:
        assert w in str(info.value), str(info.value)


# ---- the operator: torch.library's own checks, torch.compile --------------------------------

def test_operator_passes_torch_library_opcheck_and_compiles():
    gen = torch.Generator().manual_seed(8)
    q, k, v, cu_q, cu_k = random_batch(gen, [2, 3], [3, 3], 2, 2, 4, 4)
    sinks = torch.randn(2, generator=gen, dtype=torch.float64).requires_grad_()
    args = (q, k, v, cu_q, cu_k, 3, 3, None, sinks, True, True, -1, -1, None, 0.0, 0, 0.0)
    # schema, autograd registration, fake (meta) kernel, AOT dispatch
    torch.library.opcheck(torch.ops.attn.varlen.default, args)
    compiled = torch.compile(lambda q, k, v: attn.varlen_attention(q, k, v, cu_q, cu_k, 3, 3, causal=True),
                             fullgraph=True)
    out = compiled(q, k, v)
    torch.testing.assert_close(out, attn.varlen_attention(q, k, v, cu_q, cu_k, 3, 3, causal=True), rtol=0, atol=0)
    out.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()

"""attn.scaled_dot_product_attention against torch's, on torch tensors:
randomised configurations (shapes, bool/float masks, causal, GQA, Lq != Lk,
Dk != Dv, scale), outputs to 1e-5 and gradients to 1e-4 in float32."""

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attn
from conftest import GRAD_TOL, OUT_TOL, rand_tensor, reference_sdpa


def random_config(rng):
    Hkv = rng.choice([1, 2, 3])
    gqa = rng.random() < 0.3
    Hq = Hkv * rng.choice([2, 4]) if gqa else Hkv
    Lq, Lk = rng.randint(1, 9), rng.randint(1, 9)
    c = dict(B=rng.randint(1, 2), Hq=Hq, Hkv=Hkv, Lq=Lq, Lk=Lk, Dk=rng.randint(1, 16),
             Dv=rng.randint(1, 16), gqa=gqa, mask=rng.choice(["none", "bool", "float", "causal"]),
             mask_rank=rng.choice([2, 3, 4]),
             scale=rng.choice([None, None, 0.3, 2.0]))
    return c


CONFIGS = [random_config(random.Random(seed)) for seed in range(60)]


def make_inputs(c, gen, dtype):
    q = rand_tensor(gen, (c["B"], c["Hq"], c["Lq"], c["Dk"]), dtype)
    k = rand_tensor(gen, (c["B"], c["Hkv"], c["Lk"], c["Dk"]), dtype)
    v = rand_tensor(gen, (c["B"], c["Hkv"], c["Lk"], c["Dv"]), dtype)
    mask_shape = (c["B"], c["Hq"], c["Lq"], c["Lk"])[4 - c["mask_rank"]:]
    mask = None
    if c["mask"] == "bool":
        mask = torch.rand(mask_shape, generator=gen) < 0.7
        mask[..., 0] = True  # every row sees a key: torch gives NaN otherwise
    elif c["mask"] == "float":
        mask = rand_tensor(gen, mask_shape, dtype)
    return q, k, v, mask


def run_both(c, q, k, v, mask):
    kw = dict(attn_mask=mask, is_causal=c["mask"] == "causal", scale=c["scale"], enable_gqa=c["gqa"])
    return attn.scaled_dot_product_attention(q, k, v, **kw), F.scaled_dot_product_attention(q, k, v, **kw)


def config_id(c):
    return "B{B}_H{Hq}-{Hkv}_L{Lq}-{Lk}_D{Dk}-{Dv}_{mask}{mask_rank}_s{scale}".format(**c)


@pytest.mark.parametrize("c", CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_float32_outputs_and_gradients_match_torch(c, gen):
    q, k, v, mask = make_inputs(c, gen, torch.float32)
    float_mask = mask is not None and mask.dtype != torch.bool
    leaves = [q, k, v] + ([mask] if float_mask else [])
    ours_in = [t.clone().requires_grad_() for t in leaves]
    theirs_in = [t.clone().requires_grad_() for t in leaves]

    def call(inputs, fn):
        m = inputs[3] if float_mask else mask
        return fn(inputs[0], inputs[1], inputs[2], attn_mask=m, is_causal=c["mask"] == "causal",
                  scale=c["scale"], enable_gqa=c["gqa"])

    ours = call(ours_in, attn.scaled_dot_product_attention)
    theirs = call(theirs_in, F.scaled_dot_product_attention)
    assert isinstance(ours, torch.Tensor) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, rtol=0, atol=OUT_TOL)

    grad_out = rand_tensor(gen, ours.shape)
    ours.backward(grad_out)
    theirs.backward(grad_out)
    for name, a, b in zip(["query", "key", "value", "attn_mask"], ours_in, theirs_in):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=GRAD_TOL, msg=lambda m: f"d{name}: {m}")


@pytest.mark.parametrize("c", CONFIGS[:20], ids=[config_id(c) for c in CONFIGS[:20]])
def test_float64_matches_torch_closely(c, gen):
    q, k, v, mask = make_inputs(c, gen, torch.float64)
    ours, theirs = run_both(c, q, k, v, mask)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_strided_views_need_no_copy_and_match(gen):
    # [B, L, H, D] as torch models hold it, viewed as [B, H, L, D].
    x = rand_tensor(gen, (2, 5, 3, 8))
    q = k = v = x.transpose(1, 2)
    assert not q.is_contiguous()
    torch.testing.assert_close(attn.scaled_dot_product_attention(q, k, v, is_causal=True),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True), rtol=0, atol=OUT_TOL)
    # a broadcast (stride 0) key and value
    kv = rand_tensor(gen, (1, 1, 4, 8)).expand(2, 3, 4, 8)
    torch.testing.assert_close(attn.scaled_dot_product_attention(q, kv, kv),
                               F.scaled_dot_product_attention(q, kv, kv), rtol=0, atol=OUT_TOL)


@pytest.mark.parametrize("shapes", [
    ((4, 8), (5, 8), (5, 6)),                          # [L, D]
    ((3, 4, 8), (3, 5, 8), (3, 5, 6)),                 # [H, L, D]
    ((2, 3, 2, 4, 8), (2, 3, 2, 5, 8), (2, 3, 2, 5, 6)),  # [B1, B2, H, L, D]
    ((2, 3, 4, 8), (1, 3, 5, 8), (1, 3, 5, 6)),        # key/value batch broadcast
])
def test_other_ranks_and_batch_broadcast_match_torch(shapes, gen):
    q, k, v = (rand_tensor(gen, s).requires_grad_() for s in shapes)
    mask = torch.rand(shapes[0][:-1] + (shapes[1][-2],), generator=gen) < 0.8
    mask[..., 0] = True
    for m in (None, mask, mask[..., :1, :, :] if mask.dim() >= 3 else mask[:1]):
        ours = attn.scaled_dot_product_attention(q, k, v, attn_mask=m)
        theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs, rtol=0, atol=OUT_TOL)
        g_ours = torch.autograd.grad(ours.sum(), (q, k, v))
        g_theirs = torch.autograd.grad(theirs.sum(), (q, k, v))
        for a, b in zip(g_ours, g_theirs):
            torch.testing.assert_close(a, b, rtol=0, atol=GRAD_TOL)


@pytest.mark.parametrize("extra", [
    dict(bottom_right=True, is_causal=True),
    dict(window=(2, 0)),
    dict(window=(1, 3), bottom_right=True),
    dict(alibi=True),
    dict(alibi=True, is_causal=True, bottom_right=True),
    dict(softcap=5.0),
    dict(sinks=True),
    dict(sinks=True, is_causal=True, softcap=3.0),
])
def test_extras_match_a_torch_reference(extra, gen):
    Hq, Lq, Lk = 4, 5, 7
    q, k, v = (rand_tensor(gen, (2, Hq, L, 8), torch.float64).requires_grad_() for L in (Lq, Lk, Lk))
    alibi = torch.tensor([0.5, 0.25, 0.125, 0.0625], dtype=torch.float64) if extra.get("alibi") else None
    sinks = rand_tensor(gen, (Hq,), torch.float64).requires_grad_() if extra.get("sinks") else None
    kw = dict(is_causal=extra.get("is_causal", False), window=extra.get("window", (-1, -1)),
              softcap=extra.get("softcap", 0.0))
    ours = attn.scaled_dot_product_attention(
        q, k, v, causal_alignment="bottom_right" if extra.get("bottom_right") else "top_left",
        alibi_slopes=alibi, sinks=sinks, **kw)
    theirs = reference_sdpa(q, k, v, bottom_right=extra.get("bottom_right", False), alibi_slopes=alibi,
                            sinks=sinks, **kw)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    leaves = [q, k, v] + ([sinks] if sinks is not None else [])
    for a, b in zip(torch.autograd.grad(ours.sum(), leaves), torch.autograd.grad(theirs.sum(), leaves)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_return_lse_and_weights(gen):
    q, k, v = (rand_tensor(gen, (1, 2, L, 4), torch.float64) for L in (3, 5, 5))
    out, lse, w = attn.scaled_dot_product_attention(q, k, v, is_causal=True, return_lse=True,
                                                    return_weights=True)
    s = (q @ k.transpose(-2, -1)) / 2.0
    s = s.masked_fill(torch.ones(3, 5, dtype=torch.bool).triu(1), -math.inf)
    torch.testing.assert_close(lse, torch.logsumexp(s, -1), rtol=0, atol=1e-12)
    torch.testing.assert_close(w, torch.softmax(s, -1), rtol=0, atol=1e-12)
    torch.testing.assert_close(out, w @ v, rtol=0, atol=1e-12)
    out2, lse2 = attn.scaled_dot_product_attention(q, k, v, return_lse=True)
    assert lse2.shape == (1, 2, 3)


def test_half_precision_inputs_are_computed_in_float32(gen):
    q, k, v = (rand_tensor(gen, (1, 2, 4, 8)).to(torch.bfloat16) for _ in range(3))
    ours = attn.scaled_dot_product_attention(q, k, v)
    assert ours.dtype == torch.bfloat16
    theirs = F.scaled_dot_product_attention(q.float(), k.float(), v.float()).to(torch.bfloat16)
    torch.testing.assert_close(ours, theirs)


def test_replaces_sdpa_inside_a_model(gen):
    """A torch module whose attention call is swapped for attn's trains to the same gradients."""

    class TinyAttention(torch.nn.Module):
        def __init__(self, sdpa):
            super().__init__()
            self.qkv = torch.nn.Linear(16, 48)
            self.proj = torch.nn.Linear(16, 16)
            self.sdpa = sdpa

        def forward(self, x):  # x [B, L, 16], 4 heads of 4
            B, L, _ = x.shape
            q, k, v = self.qkv(x).view(B, L, 3, 4, 4).permute(2, 0, 3, 1, 4)
            y = self.sdpa(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).reshape(B, L, 16))

    torch.manual_seed(0)
    ours = TinyAttention(attn.scaled_dot_product_attention)
    theirs = TinyAttention(F.scaled_dot_product_attention)
    theirs.load_state_dict(ours.state_dict())
    x = rand_tensor(gen, (2, 6, 16))
    y_ours, y_theirs = ours(x), theirs(x)
    torch.testing.assert_close(y_ours, y_theirs, rtol=0, atol=OUT_TOL)
    y_ours.square().mean().backward()
    y_theirs.square().mean().backward()
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=GRAD_TOL, msg=lambda m: f"{name}: {m}")

#!/usr/bin/env python3
"""A few SDPA outputs and log-sum-exps, one per option, computed with PyTorch in
float64, for tests/reference/sdpa_test.cpp (test SdpaSpotValues.*). Where
torch's scaled_dot_product_attention has the option we call it; for the options
it lacks (bottom-right causal, window, ALiBi, softcap, sinks) we build the same
thing from torch ops, following the score order documented in
include/attn/sdpa.hpp. Inputs are filled by a formula, not random numbers, so
the C++ test rebuilds them without data files:

    x.flat[n] = sin(seed + 0.7 * n)

Run:  python3 tests/golden/sdpa_spot_values.py  (prints C++ initializer lists)
"""
import math

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def pattern(shape, seed):
    n = math.prod(shape)
    return torch.sin(seed + 0.7 * torch.arange(n, dtype=torch.float64)).reshape(shape)


def manual(q, k, v, scale, *, softcap=0.0, alibi=None, diag=0, float_mask=None, visible=None, sinks=None):
    """The header's recipe with torch ops. visible: bool [Lq, Lk], True = attend."""
    if q.shape[1] != k.shape[1]:
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    s = scale * q @ k.transpose(-1, -2)
    if softcap > 0:
        s = softcap * torch.tanh(s / softcap)
    Lq, Lk = s.shape[-2:]
    i = torch.arange(Lq)[:, None]
    j = torch.arange(Lk)[None, :]
    if alibi is not None:
        s = s - alibi[None, :, None, None] * (i + diag - j).abs()
    if float_mask is not None:
        s = s + float_mask
    if visible is not None:
        s = s.masked_fill(~visible, -math.inf)
    if sinks is not None:
        sink_col = sinks[None, :, None, None].expand(*s.shape[:-1], 1)
        s = torch.cat([s, sink_col], dim=-1)
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - lse[..., None])
    if sinks is not None:
        p = p[..., :-1]
    return p @ v, lse


def show(name, out, lse):
    fmt = lambda t: ", ".join(f"{x:.12g}" for x in t.flatten().tolist())
    print(f"// {name}")
    print(f"{{{fmt(out)}}},")
    print(f"{{{fmt(lse)}}},")


B, Hq, Lq, Lk, Dk, Dv = 1, 2, 3, 4, 2, 3
q = pattern((B, Hq, Lq, Dk), 0.1)
k = pattern((B, Hq, Lk, Dk), 1.3)
v = pattern((B, Hq, Lk, Dv), 2.9)
scale = 1 / math.sqrt(Dk)
i = torch.arange(Lq)[:, None]
j = torch.arange(Lk)[None, :]

def lse_of(q, k, mask=None, s=scale):
    sc = s * q @ k.transpose(-1, -2)
    if mask is not None:
        sc = sc + mask if mask.dtype != torch.bool else sc.masked_fill(~mask, -math.inf)
    return torch.logsumexp(sc, -1)

# plain
show("plain", F.scaled_dot_product_attention(q, k, v), lse_of(q, k))
# causal, top-left (torch's is_causal)
tl = j <= i
show("causal top-left", F.scaled_dot_product_attention(q, k, v, is_causal=True), lse_of(q, k, tl))
# causal, bottom-right: key j visible when j <= i + (Lk - Lq)
br = j <= i + (Lk - Lq)
show("causal bottom-right", F.scaled_dot_product_attention(q, k, v, attn_mask=br), lse_of(q, k, br))
# bool mask [Lq, Lk]
bm = torch.tensor([[True, False, True, True], [False, True, True, False], [True, True, False, True]])
show("bool mask", F.scaled_dot_product_attention(q, k, v, attn_mask=bm), lse_of(q, k, bm))
# float mask [1, Hq, Lq, Lk], explicit scale 0.8
fm = pattern((1, Hq, Lq, Lk), 4.1)
show("float mask, scale 0.8", F.scaled_dot_product_attention(q, k, v, attn_mask=fm, scale=0.8),
     lse_of(q, k, fm, 0.8))
# window left 1, right 0, top-left, not causal: -1 <= j - i <= 0
wm = ((j - i) >= -1) & ((j - i) <= 0)
show("window (1, 0)", F.scaled_dot_product_attention(q, k, v, attn_mask=wm), lse_of(q, k, wm))
# ALiBi, slopes [Hq], bottom-right diag
slopes = torch.tensor([0.5, 0.25])
show("alibi bottom-right", *manual(q, k, v, scale, alibi=slopes, diag=Lk - Lq))
# softcap 0.5, scale 1.3
show("softcap 0.5, scale 1.3", *manual(q, k, v, 1.3, softcap=0.5))
# sinks
sinks = torch.tensor([0.3, -1.2])
show("sinks", *manual(q, k, v, scale, sinks=sinks))
# GQA: Hq = 4, Hkv = 2
q4 = pattern((B, 4, Lq, Dk), 0.1)
out = F.scaled_dot_product_attention(q4, k, v, enable_gqa=True)
show("gqa Hq=4 Hkv=2", out, lse_of(q4, k.repeat_interleave(2, 1)))

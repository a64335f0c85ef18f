#!/usr/bin/env python3
"""Golden outputs and gradients of multi-head latent attention (MLA), from PyTorch.

    python3 tests/golden/make_mla_golden.py     # writes tests/golden/mla_golden.json

Read by tests/layers/mla_test.cpp. A small reimplementation of DeepSeek-V2's
MLA (technical report, §2.1, equations 9-19), one line per equation, with
torch primitives and an explicit causal softmax (not the C++ library's code):

    c_Q = W_DQ h;  q_C = W_UQ c_Q;  q_R = RoPE(W_QR c_Q)
    c_KV = W_DKV h;  k_C = W_UK c_KV;  v = W_UV c_KV;  k_R = RoPE(W_KR h)
    q = [q_C; q_R],  k = [k_C; k_R (shared by all heads)]
    o = softmax(q k^T / sqrt(d_h + d_R) + causal) v;  u = W_O [o_1; ...; o_H]

RoPE in the Hugging Face rotate_half form ("half") or GPT-J's rotate_every_two
("interleaved"); positions start_pos + l. No RMSNorm on the latents, no bias
(the C++ layer leaves them out too). Each case stores the input x, the
parameters (state-dict names of the C++ layer), a random grad_output, the
output and the gradients of sum(u * grad_output) for x and every parameter,
in float64 via autograd. Inputs and weights are rounded to 8 significant
digits first, so the C++ test starts from exactly the same numbers.
"""

import json
import math
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "mla_golden.json")
rng = np.random.default_rng(2024)


def rounded(a):
    return np.array([float(f"{x:.8g}") for x in np.asarray(a, dtype=np.float64).ravel()]).reshape(np.shape(a))


def tensor_json(t):
    t = torch.as_tensor(t)
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().reshape(-1).tolist()]}


def rope(x, start, theta, layout):
    """x [B, H, L, R] at positions start + l."""
    L, R = x.shape[-2], x.shape[-1]
    if R == 0:
        return x
    inv_freq = 1.0 / (theta ** (torch.arange(0, R, 2, dtype=torch.float64) / R))
    freqs = (start + torch.arange(L, dtype=torch.float64))[:, None] * inv_freq  # [L, R/2]
    if layout == "half":
        emb = torch.cat((freqs, freqs), dim=-1)
        x1, x2 = x[..., : R // 2], x[..., R // 2 :]
        return x * emb.cos() + torch.cat((-x2, x1), dim=-1) * emb.sin()
    cos, sin = freqs.cos().repeat_interleave(2, -1), freqs.sin().repeat_interleave(2, -1)
    rot = torch.stack((-x[..., 1::2], x[..., ::2]), dim=-1).flatten(-2)
    return x * cos + rot * sin


def mla(x, P, cfg, start):
    B, L, _ = x.shape
    H, dh, dR = cfg["num_heads"], cfg["head_dim"], cfg["rope_dim"]
    heads = lambda t, d: t.reshape(B, L, -1, d).transpose(1, 2)  # [B, L, H*d] -> [B, H, L, d]
    c_Q = x @ P["W_DQ.weight"].T
    q_C = heads(c_Q @ P["W_UQ.weight"].T, dh)
    q_R = rope(heads(c_Q @ P["W_QR.weight"].T, dR), start, cfg["rope_theta"], cfg["layout"])
    c_KV = x @ P["W_DKV.weight"].T
    k_C = heads(c_KV @ P["W_UK.weight"].T, dh)
    v = heads(c_KV @ P["W_UV.weight"].T, dh)
    k_R = rope(heads(x @ P["W_KR.weight"].T, dR), start, cfg["rope_theta"], cfg["layout"])  # [B, 1, L, dR]
    q = torch.cat((q_C, q_R), dim=-1)
    k = torch.cat((k_C, k_R.expand(B, H, L, dR)), dim=-1)
    s = q @ k.transpose(-1, -2) / math.sqrt(dh + dR)
    s = s.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), float("-inf"))
    o = torch.softmax(s, dim=-1) @ v  # [B, H, L, dh]
    return o.transpose(1, 2).reshape(B, L, H * dh) @ P["W_O.weight"].T


cases = []
for (B, L, d_model, H, dh, dR, dc, dcq, layout, start) in [
    (2, 5, 12, 3, 4, 4, 6, 5, "half", 0),
    (1, 6, 10, 2, 6, 2, 4, 7, "interleaved", 3),
    (2, 4, 8, 4, 3, 6, 5, 6, "half", 11),
]:
    cfg = {"d_model": d_model, "num_heads": H, "head_dim": dh, "rope_dim": dR, "kv_latent_dim": dc,
           "q_latent_dim": dcq, "rope_theta": 10000.0, "layout": layout, "start_pos": start}
    shapes = {"W_DQ.weight": (dcq, d_model), "W_UQ.weight": (H * dh, dcq), "W_QR.weight": (H * dR, dcq),
              "W_DKV.weight": (dc, d_model), "W_UK.weight": (H * dh, dc), "W_UV.weight": (H * dh, dc),
              "W_KR.weight": (dR, d_model), "W_O.weight": (d_model, H * dh)}
    P = {n: torch.tensor(rounded(rng.uniform(-0.6, 0.6, s)), requires_grad=True) for n, s in shapes.items()}
    x = torch.tensor(rounded(rng.standard_normal((B, L, d_model))), requires_grad=True)
    g = torch.tensor(rounded(rng.standard_normal((B, L, d_model))))
    u = mla(x, P, cfg, start)
    (u * g).sum().backward()
    cases.append({
        "config": cfg, "x": tensor_json(x), "grad_output": tensor_json(g), "output": tensor_json(u),
        "params": {n: tensor_json(p) for n, p in P.items()},
        "grads": {"x": tensor_json(x.grad), **{n: tensor_json(p.grad) for n, p in P.items()}},
    })

with open(OUT, "w") as f:
    json.dump({"cases": cases}, f)
print(f"wrote {len(cases)} cases to {OUT}")

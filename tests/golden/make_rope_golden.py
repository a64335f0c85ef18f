#!/usr/bin/env python3
"""Golden outputs of rotary position embeddings (RoPE), from PyTorch.

    python3 tests/golden/make_rope_golden.py     # writes tests/golden/rope_golden.json

Read by tests/inference/rope_test.cpp. The two layouts are written the way
the reference implementations write them (an independent formulation from the
C++ pair loop):
  "half"        Hugging Face transformers' Llama/GPT-NeoX: rotate_half(x) =
                cat(-x2, x1), y = x*cos + rotate_half(x)*sin with
                cos = cat(freqs, freqs).cos()
  "interleaved" GPT-J's rotate_every_two: stack(-x[..., 1::2], x[..., ::2])
                flattened, with sin/cos repeat_interleave(2)
Partial rotary (GPT-NeoX's rotary_pct): only the first rotary_dim dims are
rotated, the rest concatenated unchanged. Everything in float64; inputs are
rounded to 8 significant digits before torch sees them.
"""

import json
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "rope_golden.json")
rng = np.random.default_rng(8)


def rounded(a):
    return np.array([float(f"{x:.8g}") for x in np.asarray(a, dtype=np.float64).ravel()]).reshape(np.shape(a))


def tensor_json(t):
    t = torch.as_tensor(t)
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().reshape(-1).tolist()]}


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def rotate_every_two(x):
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def rope(x, positions, theta, layout, rotary_dim):
    """x [B, H, L, D]; positions [B, L] (int64)."""
    R = rotary_dim
    inv_freq = 1.0 / (theta ** (torch.arange(0, R, 2, dtype=torch.float64) / R))  # [R/2]
    freqs = positions.to(torch.float64)[..., None] * inv_freq  # [B, L, R/2]
    xr, xp = x[..., :R], x[..., R:]
    if layout == "half":
        emb = torch.cat((freqs, freqs), dim=-1)  # [B, L, R]
        cos, sin = emb.cos()[:, None], emb.sin()[:, None]
        y = xr * cos + rotate_half(xr) * sin
    else:
        cos = freqs.cos().repeat_interleave(2, dim=-1)[:, None]
        sin = freqs.sin().repeat_interleave(2, dim=-1)[:, None]
        y = xr * cos + rotate_every_two(xr) * sin
    return torch.cat((y, xp), dim=-1)


cases = []
for layout in ("half", "interleaved"):
    for (B, H, L, D, R, theta, start, explicit) in [
        (2, 3, 5, 8, 8, 10000.0, 0, False),
        (1, 2, 4, 12, 8, 10000.0, 7, False),
        (2, 2, 3, 6, 6, 500000.0, 0, True),
        (1, 1, 6, 16, 16, 10000.0, 1000, False),
    ]:
        x = torch.tensor(rounded(rng.standard_normal((B, H, L, D))))
        if explicit:
            positions = torch.tensor(rng.integers(0, 50, size=(B, L)), dtype=torch.int64)
        else:
            positions = (start + torch.arange(L, dtype=torch.int64)).expand(B, L)
        y = rope(x, positions, theta, layout, R)
        cases.append({
            "layout": layout, "theta": theta, "rotary_dim": R, "start_pos": start, "explicit_positions": explicit,
            "positions": {"shape": [B, L], "data": positions.reshape(-1).tolist()},
            "x": tensor_json(x), "y": tensor_json(y),
        })

with open(OUT, "w") as f:
    json.dump({"cases": cases}, f)
print(f"wrote {len(cases)} cases to {OUT}")

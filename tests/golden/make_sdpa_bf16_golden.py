#!/usr/bin/env python3
"""Golden bfloat16 SDPA outputs and gradients, from PyTorch's CPU SDPA.

    .venv/bin/python tests/golden/make_sdpa_bf16_golden.py   # writes tests/golden/sdpa_bf16_golden.json

Read by tests/cpu/sdpa_bf16_test.cpp. Inputs are drawn in float32, rounded to
bfloat16 by torch, and stored as their 16-bit patterns (so the C++ test reads
exactly the numbers torch saw). torch.nn.functional.scaled_dot_product_attention
runs on the bfloat16 tensors (the CPU flash kernel: float32 accumulation, one
rounding at the end); output and the gradients of q, k, v for a random
grad_output are stored as bfloat16 bit patterns too. Sizes are small to keep
the file small (each config stores 8 tensors).
"""

import base64
import json
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "sdpa_bf16_golden.json")
torch.manual_seed(20261124)


def bits(t):
    """The bfloat16 tensor's 16-bit patterns, little-endian, base64 (compact and exact)."""
    raw = t.contiguous().view(torch.int16).numpy().astype("<i2").tobytes()
    return base64.b64encode(raw).decode("ascii")


def entry(name, B, Hq, Hkv, Lq, Lk, Dk, Dv, is_causal=False, mask=None, scale=None):
    q = torch.randn(B, Hq, Lq, Dk).to(torch.bfloat16).requires_grad_()
    k = torch.randn(B, Hkv, Lk, Dk).to(torch.bfloat16).requires_grad_()
    v = torch.randn(B, Hkv, Lk, Dv).to(torch.bfloat16).requires_grad_()
    attn_mask = None
    if mask == "bool":
        attn_mask = torch.rand(Lq, Lk) < 0.7
        attn_mask[:, 0] = True  # every row sees a key (torch gives NaN otherwise)
    elif mask == "float":
        attn_mask = torch.randn(B, 1, Lq, Lk).to(torch.bfloat16)
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale, enable_gqa=Hq != Hkv)
    dout = torch.randn(B, Hq, Lq, Dv).to(torch.bfloat16)
    out.backward(dout)
    c = {
        "name": name,
        "shape": {"B": B, "Hq": Hq, "Hkv": Hkv, "Lq": Lq, "Lk": Lk, "Dk": Dk, "Dv": Dv},
        "is_causal": is_causal,
        "scale": scale,
        "q": bits(q.detach()), "k": bits(k.detach()), "v": bits(v.detach()), "dout": bits(dout),
        "out": bits(out.detach()), "dq": bits(q.grad), "dk": bits(k.grad), "dv": bits(v.grad),
    }
    if mask == "bool":
        c["bool_mask"] = {"shape": [Lq, Lk], "data": [int(x) for x in attn_mask.reshape(-1).tolist()]}
    elif mask == "float":
        c["float_mask_bits"] = {"shape": [B, 1, Lq, Lk], "data": bits(attn_mask)}
    return c


configs = [
    entry("plain", 1, 2, 2, 16, 16, 32, 32),
    entry("causal", 1, 2, 2, 40, 40, 32, 32, is_causal=True),
    entry("long", 1, 1, 1, 70, 130, 32, 32),
    entry("gqa", 1, 4, 2, 9, 70, 32, 32, is_causal=True),
    entry("d128", 1, 1, 1, 20, 20, 128, 128),
    entry("dk_ne_dv", 1, 3, 3, 10, 30, 48, 24),
    entry("bool_mask", 2, 1, 1, 12, 30, 16, 16, mask="bool"),
    entry("float_mask", 2, 1, 1, 12, 30, 16, 16, mask="float"),
    entry("scale", 1, 2, 2, 20, 20, 16, 16, scale=0.5),
    entry("one_row", 1, 2, 2, 1, 130, 64, 64),
    entry("d_odd", 1, 2, 2, 17, 29, 3, 5),
    entry("causal_lq_lt_lk", 1, 1, 1, 20, 70, 32, 32, is_causal=True),
]
with open(OUT, "w") as f:
    json.dump({"torch_version": torch.__version__, "format": "bfloat16 bit patterns, row-major, little-endian uint16, base64", "configs": configs},
              f, separators=(",", ":"))
print(f"wrote {len(configs)} configs to {OUT}")

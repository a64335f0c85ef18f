"""Shared pieces of the Python tests: an independent torch reference for the
options torch's SDPA lacks, and random inputs.

Expected values come from PyTorch (torch.nn.functional.scaled_dot_product_attention,
torch.nn.MultiheadAttention, torch.autograd) or from the plain torch-ops
reference below, written from attn/sdpa.hpp's definition, never from attn.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

try:
    import attn  # noqa: E402,F401  (after the torch check)
except ImportError:
    # test_embed_cli.py runs the built `attn` command and needs no package; every
    # other test file imports attn itself and fails loudly without it.
    attn = None

# The tolerances for float32: outputs 1e-5, gradients 1e-4.
OUT_TOL = 1e-5
GRAD_TOL = 1e-4


def reference_sdpa(q, k, v, attn_mask=None, is_causal=False, scale=None, enable_gqa=False,
                   bottom_right=False, window=(-1, -1), alibi_slopes=None, softcap=0.0, sinks=None):
    """SDPA from torch ops, following attn/sdpa.hpp's order of a score:
    scale·q·k, softcap, ALiBi, float mask, hidden keys at -inf, softmax (with
    the sink in the denominator), rows that see no key give 0. Differentiable."""
    Hq, Lq, Dk = q.shape[-3], q.shape[-2], q.shape[-1]
    Hkv, Lk = k.shape[-3], k.shape[-2]
    if enable_gqa and Hq != Hkv:
        k = k.repeat_interleave(Hq // Hkv, dim=-3)
        v = v.repeat_interleave(Hq // Hkv, dim=-3)
    if scale is None:
        scale = 1.0 / math.sqrt(Dk) if Dk > 0 else 1.0
    s = scale * (q @ k.transpose(-2, -1))
    if softcap > 0:
        s = softcap * torch.tanh(s / softcap)
    diag = Lk - Lq if bottom_right else 0
    i = torch.arange(Lq).unsqueeze(-1)
    j = torch.arange(Lk).unsqueeze(0)
    rel = j - (i + diag)
    if alibi_slopes is not None:
        slopes = alibi_slopes.unsqueeze(-1).unsqueeze(-1)  # [Hq, 1, 1] or [B, Hq, 1, 1]
        s = s - slopes * rel.abs().to(s.dtype)
    visible = torch.ones(s.shape, dtype=torch.bool)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            visible = visible & attn_mask
        else:
            s = s + attn_mask
            visible = visible & (attn_mask != -math.inf)
    if is_causal:
        visible = visible & (rel <= 0)
    if window[0] >= 0:
        visible = visible & (rel >= -window[0])
    if window[1] >= 0:
        visible = visible & (rel <= window[1])
    s = s.masked_fill(~visible, -math.inf)
    if sinks is not None:
        sink = sinks.reshape(Hq, 1, 1).expand(s.shape[:-1] + (1,))
        p = torch.softmax(torch.cat([s, sink], dim=-1), dim=-1)[..., :-1]
    else:
        p = torch.softmax(s, dim=-1)
    p = torch.where(visible.any(-1, keepdim=True), p, torch.zeros((), dtype=p.dtype))
    return p @ v


def rand_tensor(gen, shape, dtype=torch.float32):
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)

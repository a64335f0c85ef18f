#!/usr/bin/env python3
"""Golden outputs and gradients of the trainable attention layers, from PyTorch.

    python3 tests/golden/make_layers_golden.py     # writes tests/golden/layers_golden.json

Read by tests/layers/layers_golden_test.cpp. Three groups of cases:

"mha"      torch.nn.MultiheadAttention itself, in ~20 option combinations
           (bias, add_bias_kv, add_zero_attn, kdim/vdim, batch_first,
           unbatched, bool/float key_padding_mask, bool/float 2-D and 3-D
           attn_mask, is_causal, need_weights, average_attn_weights), with
           weights drawn from a seeded numpy RNG and loaded into the module.
"layers"   Raschka's SelfAttention_v2, CausalAttention,
           MultiHeadAttentionWrapper and MultiHeadAttention (copied from the
           book, "Build a Large Language Model (From Scratch)", ch. 3), and a
           CrossAttention and a Bahdanau AdditiveAttention written here with
           torch primitives, one line per formula of the C++ headers.
"init"     torch.manual_seed(s) followed by a constructor, float32: the
           weights torch draws (nn.Linear and nn.MultiheadAttention's xavier
           init), which the C++ layers must reproduce from the same seed, and
           the book's printed outputs (asserted below to 4 decimals).

Every case stores its inputs (in the layer's own layout), its parameters
(state_dict names), a random upstream gradient `grad_output`, the output (and
the attention weights where the layer returns them) and the gradients of
sum(output * grad_output) with respect to every input and parameter, computed
in float64 with torch autograd. Inputs and weights are rounded to 8
significant digits *before* torch sees them, so the C++ test starts from
exactly the same numbers.

Mask polarity (checked here against torch, relied on by the C++ layer):
torch.nn.MultiheadAttention's bool masks use True = IGNORE / NOT allowed,
the opposite of F.scaled_dot_product_attention's True = attend;
`check_mha_mask_polarity` asserts both facts. Rows whose every key is masked
are avoided in the "mha" group (torch gives NaN there; the library gives 0),
except together with add_zero_attn, which always leaves one key visible.

Dropout is never on in these cases: torch's dropout RNG is not the library's
counter-based generator. Modules run in train() mode with dropout = 0, which
keeps nn.MultiheadAttention on its reference (non-fused) path.
"""

import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "layers_golden.json")

rng = np.random.default_rng(20240607)


def rounded(a):
    """Round to 8 significant digits so JSON text and torch see the same doubles."""
    return np.array([float(f"{x:.8g}") for x in np.asarray(a, dtype=np.float64).ravel()]).reshape(np.shape(a))


def rand(*shape, scale=1.0):
    return torch.tensor(rounded(rng.uniform(-scale, scale, size=shape)), dtype=torch.float64)


def enc(t, digits=10):
    """{"shape": [...], "data": [...]} in row-major order; bools as 0/1, ±inf as the strings "inf", "-inf"
    (JSON has no infinity)."""
    t = t.detach()
    if t.dtype == torch.bool:
        return {"shape": list(t.shape), "dtype": "bool", "data": [int(v) for v in t.reshape(-1).tolist()]}
    vals = t.to(torch.float64).reshape(-1).tolist()
    return {"shape": list(t.shape), "dtype": "float",
            "data": [("inf" if v > 0 else "-inf") if math.isinf(v) else float(f"{v:.{digits}g}") for v in vals]}


def enc_exact(t):
    """float32 weights, exact (the shortest repr of the double equal to the float)."""
    return {"shape": list(t.shape), "dtype": "float", "data": [float(v) for v in t.detach().reshape(-1).tolist()]}


def load_random_params(module, scale=0.6):
    """Overwrite every parameter with seeded uniform values; return them by name."""
    params = {}
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(rand(*p.shape, scale=scale))
            params[name] = enc(p)
    return params


def param_grads(module):
    return {name: enc(p.grad) for name, p in module.named_parameters()}


def leaf(t):
    return t.clone().requires_grad_(True)


# ---------------------------------------------------------------------------
# torch.nn.MultiheadAttention
# ---------------------------------------------------------------------------

def check_mha_mask_polarity():
    """torch MHA: bool True = masked out. torch SDPA: bool True = attend."""
    torch.manual_seed(0)
    E, L = 4, 3
    mha = nn.MultiheadAttention(E, 1, batch_first=True).double()
    x = torch.randn(1, L, E, dtype=torch.float64)
    hide_last = torch.tensor([[False, False, True]])
    _, w = mha(x, x, x, key_padding_mask=hide_last)
    assert torch.all(w[..., 2] == 0), "MHA key_padding_mask True must hide the key"
    am = torch.zeros(L, L, dtype=torch.bool)
    am[:, 0] = True
    _, w = mha(x, x, x, attn_mask=am)
    assert torch.all(w[..., 0] == 0), "MHA attn_mask True must hide the key"
    q = torch.randn(1, 1, L, 2, dtype=torch.float64)
    keep_first = torch.tensor([[True, False, False]])  # [Lq=1 broadcast, Lk]
    o = F.scaled_dot_product_attention(q, q, q, attn_mask=keep_first)
    assert torch.allclose(o, q[..., :1, :].expand_as(o)), "SDPA bool True must mean attend"


def mha_case(name, E=4, H=2, N=2, L=3, S=3, bias=True, add_bias_kv=False, add_zero_attn=False, kdim=None,
             vdim=None, batch_first=False, unbatched=False, need_weights=True, average_attn_weights=True,
             is_causal=False, kpm=None, attn_mask=None, self_attention=False):
    """kpm / attn_mask: a function (N, H, L, S) -> tensor, or None."""
    mha = nn.MultiheadAttention(E, H, dropout=0.0, bias=bias, add_bias_kv=add_bias_kv,
                                add_zero_attn=add_zero_attn, kdim=kdim, vdim=vdim,
                                batch_first=batch_first).double()
    mha.train()
    params = load_random_params(mha)
    kd, vd = kdim or E, vdim or E

    def layout(n, s, f):
        if unbatched:
            return (s, f)
        return (n, s, f) if batch_first else (s, n, f)

    query = rand(*layout(N, L, E))
    if self_attention:
        key, value = query.clone(), query.clone()
    else:
        key, value = rand(*layout(N, S, kd)), rand(*layout(N, S, vd))
    q, k, v = leaf(query), leaf(key), leaf(value)
    kpm_t = kpm(N, H, L, S) if kpm else None
    am_t = attn_mask(N, H, L, S) if attn_mask else None
    out, weights = mha(q, k, v, key_padding_mask=kpm_t, need_weights=need_weights, attn_mask=am_t,
                       average_attn_weights=average_attn_weights, is_causal=is_causal)
    assert torch.isfinite(out).all(), name
    grad_output = rand(*out.shape)
    (out * grad_output).sum().backward()
    return {
        "name": name, "embed_dim": E, "num_heads": H, "bias": bias, "add_bias_kv": add_bias_kv,
        "add_zero_attn": add_zero_attn, "kdim": kdim, "vdim": vdim, "batch_first": batch_first,
        "need_weights": need_weights, "average_attn_weights": average_attn_weights, "is_causal": is_causal,
        "key_padding_mask": enc(kpm_t) if kpm_t is not None else None,
        "attn_mask": enc(am_t) if am_t is not None else None,
        "query": enc(query), "key": enc(key), "value": enc(value), "params": params,
        "grad_output": enc(grad_output), "attn_output": enc(out),
        "attn_weights": enc(weights) if weights is not None else None,
        "grads": {"query": enc(q.grad), "key": enc(k.grad), "value": enc(v.grad), "params": param_grads(mha)},
    }


def kpm_bool(N, H, L, S):
    m = torch.zeros(N, S, dtype=torch.bool)
    m[0, S - 1] = True          # batch 0: last key is padding
    m[N - 1, 0] = True          # batch N-1: first key is padding
    return m


def kpm_late(N, H, L, S):
    """Pads late keys only, so that with a causal mask every query still sees key 0."""
    m = torch.zeros(N, S, dtype=torch.bool)
    m[0, S - 1] = True
    m[N - 1, S - 2] = True
    return m


def kpm_float(N, H, L, S):
    return rand(N, S, scale=2.0)


def am_bool2(N, H, L, S):
    m = torch.zeros(L, S, dtype=torch.bool)
    m[0, 1] = True
    m[L - 1, 0] = True
    return m


def am_float2(N, H, L, S):
    return rand(L, S, scale=2.0)


def am_bool3(N, H, L, S):
    m = torch.zeros(N * H, L, S, dtype=torch.bool)
    for r in range(N * H):          # row r = batch r // H, head r % H
        m[r, r % L, (r + 1) % S] = True
    return m


def am_float3(N, H, L, S):
    return rand(N * H, L, S, scale=2.0)


def causal_mask(N, H, L, S):
    return nn.Transformer.generate_square_subsequent_mask(L, dtype=torch.float64)  # 0 / -inf


def causal_bool(N, H, L, S):
    return torch.triu(torch.ones(L, S, dtype=torch.bool), diagonal=1)


def kpm_all_of_batch1(N, H, L, S):
    m = torch.zeros(N, S, dtype=torch.bool)
    m[1, :] = True
    return m


def kpm_unbatched(N, H, L, S):
    m = torch.zeros(S, dtype=torch.bool)
    m[1] = True
    return m


def am_bool3_unbatched(N, H, L, S):
    m = torch.zeros(H, L, S, dtype=torch.bool)
    m[0, 0, 0] = True
    m[H - 1, L - 1, S - 1] = True
    return m


def mha_cases():
    return [
        mha_case("self_basic", self_attention=True),
        mha_case("cross_basic", L=3, S=5),
        mha_case("batch_first", batch_first=True, S=4),
        mha_case("no_bias", bias=False, S=4),
        mha_case("add_bias_kv", add_bias_kv=True, S=4),
        mha_case("add_zero_attn", add_zero_attn=True, S=4),
        mha_case("bias_kv_zero_attn_batch_first", add_bias_kv=True, add_zero_attn=True, batch_first=True),
        mha_case("kdim_vdim", kdim=3, vdim=5, S=4),
        mha_case("kdim_vdim_bias_kv_batch_first", kdim=5, vdim=3, add_bias_kv=True, batch_first=True, S=2),
        mha_case("kdim_vdim_no_bias", kdim=2, vdim=6, bias=False, L=2, S=4),
        mha_case("kpm_bool", kpm=kpm_bool, S=4),
        mha_case("kpm_float", kpm=kpm_float, S=4, batch_first=True),
        mha_case("attn_mask_bool_2d", attn_mask=am_bool2, S=4),
        mha_case("attn_mask_float_2d", attn_mask=am_float2, S=4),
        mha_case("attn_mask_bool_3d", attn_mask=am_bool3, S=4, batch_first=True),
        mha_case("attn_mask_float_3d_no_avg", attn_mask=am_float3, average_attn_weights=False, S=4),
        mha_case("both_masks_bool_bias_kv_zero_attn", kpm=kpm_bool, attn_mask=am_bool2, add_bias_kv=True,
                 add_zero_attn=True, S=4),
        mha_case("is_causal_with_mask", attn_mask=causal_mask, is_causal=True, self_attention=True, L=4, S=4),
        mha_case("causal_bool_mask_kpm", attn_mask=causal_bool, kpm=kpm_late, L=4, S=4, batch_first=True),
        mha_case("need_weights_false", need_weights=False, kpm=kpm_bool, S=4),
        mha_case("fully_padded_row_zero_attn", kpm=kpm_all_of_batch1, add_zero_attn=True, S=3),
        mha_case("unbatched", unbatched=True, S=4, kpm=kpm_unbatched),
        mha_case("unbatched_3d_mask_no_avg", unbatched=True, attn_mask=am_bool3_unbatched,
                 average_attn_weights=False, add_bias_kv=True, S=4),
        mha_case("one_head", H=1, S=4),
        mha_case("four_heads", E=8, H=4, L=2, S=3, batch_first=True, add_zero_attn=True),
    ]


# ---------------------------------------------------------------------------
# Raschka's layers (ch. 3 of the book), CrossAttention, AdditiveAttention
# ---------------------------------------------------------------------------

class SelfAttention_v2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        attn_scores = queries @ keys.transpose(-2, -1)   # the book's keys.T, for a batch dim too
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        return attn_weights @ values


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, num_tokens, d_in = x.shape
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        attn_scores = queries @ keys.transpose(1, 2)
        attn_scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        return attn_weights @ values


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)])

    def forward(self, x):
        return torch.cat([head(x) for head in self.heads], dim=-1)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, num_tokens, d_in = x.shape
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        keys = keys.view(b, num_tokens, self.num_heads, self.head_dim)
        values = values.view(b, num_tokens, self.num_heads, self.head_dim)
        queries = queries.view(b, num_tokens, self.num_heads, self.head_dim)
        keys = keys.transpose(1, 2)
        queries = queries.transpose(1, 2)
        values = values.transpose(1, 2)
        attn_scores = queries @ keys.transpose(2, 3)
        mask_bool = self.mask.bool()[:num_tokens, :num_tokens]
        attn_scores.masked_fill_(mask_bool, -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        context_vec = (attn_weights @ values).transpose(1, 2)
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


class CrossAttention(nn.Module):
    """include/attn/cross_attention.hpp: Q from x, K and V from context; key_padding_mask True = ignore."""

    def __init__(self, d_q, d_kv, d_out_kq, d_out_v, qkv_bias=False):
        super().__init__()
        self.d_out_kq = d_out_kq
        self.W_query = nn.Linear(d_q, d_out_kq, bias=qkv_bias)
        self.W_key = nn.Linear(d_kv, d_out_kq, bias=qkv_bias)
        self.W_value = nn.Linear(d_kv, d_out_v, bias=qkv_bias)

    def forward(self, x, context, key_padding_mask=None):
        queries = self.W_query(x)
        keys = self.W_key(context)
        values = self.W_value(context)
        attn_scores = queries @ keys.transpose(-2, -1)
        if key_padding_mask is not None:
            attn_scores = attn_scores.masked_fill(key_padding_mask.unsqueeze(-2), -torch.inf)
        attn_weights = torch.softmax(attn_scores / self.d_out_kq ** 0.5, dim=-1)
        return attn_weights @ values


class AdditiveAttention(nn.Module):
    """include/attn/additive_attention.hpp: score = v^T tanh(W_s s + W_h h_j) (Bahdanau 2014)."""

    def __init__(self, query_dim, key_dim, hidden_dim):
        super().__init__()
        self.W_s = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_h = nn.Linear(key_dim, hidden_dim, bias=False)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, s, h, key_padding_mask=None):
        features = torch.tanh(self.W_s(s).unsqueeze(-2) + self.W_h(h).unsqueeze(-3))  # [.., Lq, Lk, A]
        scores = self.v(features).squeeze(-1)                                         # [.., Lq, Lk]
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask.unsqueeze(-2), -torch.inf)
        weights = torch.softmax(scores, dim=-1)
        return weights @ h, weights


def layer_case(name, layer, config, module, inputs, masks=None):
    """inputs: dict name -> float64 tensor (the module's positional args, in order)."""
    module = module.double()
    module.eval()           # dropout off
    params = load_random_params(module)
    leaves = {k: leaf(v) for k, v in inputs.items()}
    args = list(leaves.values()) + list((masks or {}).values())
    out = module(*args)
    weights = None
    if isinstance(out, tuple):
        out, weights = out
    grad_output = rand(*out.shape)
    (out * grad_output).sum().backward()
    case = {
        "name": name, "layer": layer, "config": config, "params": params,
        "inputs": {k: enc(v) for k, v in inputs.items()},
        "masks": {k: enc(v) for k, v in (masks or {}).items()},
        "grad_output": enc(grad_output), "output": enc(out),
        "grads": {**{k: enc(v.grad) for k, v in leaves.items()}, "params": param_grads(module)},
    }
    if weights is not None:
        case["attention_weights"] = enc(weights)
    return case


def layer_cases():
    cases = []
    sa = lambda d_in, d_out, qkv_bias: dict(d_in=d_in, d_out=d_out, qkv_bias=qkv_bias)
    cases.append(layer_case("self_attention_unbatched", "SelfAttention", sa(3, 2, False),
                            SelfAttention_v2(3, 2), {"x": rand(6, 3)}))
    cases.append(layer_case("self_attention_batched_bias", "SelfAttention", sa(4, 3, True),
                            SelfAttention_v2(4, 3, True), {"x": rand(2, 5, 4)}))

    ca = lambda d_in, d_out, ctx, qkv_bias: dict(d_in=d_in, d_out=d_out, context_length=ctx, qkv_bias=qkv_bias)
    cases.append(layer_case("causal_attention", "CausalAttention", ca(3, 2, 6, False),
                            CausalAttention(3, 2, 6, 0.0), {"x": rand(2, 6, 3)}))
    cases.append(layer_case("causal_attention_shorter_than_context_bias", "CausalAttention", ca(4, 3, 8, True),
                            CausalAttention(4, 3, 8, 0.0, True), {"x": rand(2, 5, 4)}))

    mh = lambda d_in, d_out, ctx, heads, qkv_bias: dict(d_in=d_in, d_out=d_out, context_length=ctx,
                                                        num_heads=heads, qkv_bias=qkv_bias)
    cases.append(layer_case("mha_wrapper", "MultiHeadAttentionWrapper", mh(3, 2, 6, 2, False),
                            MultiHeadAttentionWrapper(3, 2, 6, 0.0, 2), {"x": rand(2, 6, 3)}))
    cases.append(layer_case("mha_wrapper_bias_three_heads", "MultiHeadAttentionWrapper", mh(4, 2, 5, 3, True),
                            MultiHeadAttentionWrapper(4, 2, 5, 0.0, 3, True), {"x": rand(2, 4, 4)}))
    cases.append(layer_case("mha_efficient", "MultiHeadAttention", mh(3, 4, 6, 2, False),
                            MultiHeadAttention(3, 4, 6, 0.0, 2), {"x": rand(2, 6, 3)}))
    cases.append(layer_case("mha_efficient_bias_one_head", "MultiHeadAttention", mh(4, 3, 5, 1, True),
                            MultiHeadAttention(4, 3, 5, 0.0, 1, True), {"x": rand(2, 5, 4)}))
    cases.append(layer_case("mha_efficient_three_heads", "MultiHeadAttention", mh(5, 6, 4, 3, True),
                            MultiHeadAttention(5, 6, 4, 0.0, 3, True), {"x": rand(1, 4, 5)}))

    cr = lambda d_q, d_kv, kq, v, qkv_bias: dict(d_q=d_q, d_kv=d_kv, d_out_kq=kq, d_out_v=v, qkv_bias=qkv_bias)
    cases.append(layer_case("cross_attention", "CrossAttention", cr(3, 5, 2, 4, False),
                            CrossAttention(3, 5, 2, 4), {"x": rand(2, 3, 3), "context": rand(2, 4, 5)}))
    kpm = torch.tensor([[False, False, True, True, False], [True, False, False, False, False]])
    cases.append(layer_case("cross_attention_mask_bias", "CrossAttention", cr(4, 3, 3, 2, True),
                            CrossAttention(4, 3, 3, 2, True), {"x": rand(2, 2, 4), "context": rand(2, 5, 3)},
                            {"key_padding_mask": kpm}))
    cases.append(layer_case("cross_attention_unbatched", "CrossAttention", cr(2, 3, 4, 3, False),
                            CrossAttention(2, 3, 4, 3), {"x": rand(4, 2), "context": rand(3, 3)}))

    ad = lambda q, k, a: dict(query_dim=q, key_dim=k, hidden_dim=a)
    cases.append(layer_case("additive_attention", "AdditiveAttention", ad(3, 4, 5),
                            AdditiveAttention(3, 4, 5), {"query": rand(2, 2, 3), "keys": rand(2, 5, 4)}))
    kpm = torch.tensor([[False, False, False, True, True], [False, True, False, False, False]])
    cases.append(layer_case("additive_attention_mask", "AdditiveAttention", ad(4, 3, 6),
                            AdditiveAttention(4, 3, 6), {"query": rand(2, 3, 4), "keys": rand(2, 5, 3)},
                            {"key_padding_mask": kpm}))
    cases.append(layer_case("additive_attention_unbatched", "AdditiveAttention", ad(2, 3, 4),
                            AdditiveAttention(2, 3, 4), {"query": rand(1, 2), "keys": rand(4, 3)}))
    return cases


# ---------------------------------------------------------------------------
# Initialisation from torch.manual_seed (float32, exact)
# ---------------------------------------------------------------------------

# "Your journey starts with one step" (notes 004), the book's input.
JOURNEY = [[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64],
           [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]]


def init_cases():
    inputs = torch.tensor(JOURNEY)          # float32, as in the book
    batch = torch.stack((inputs, inputs), dim=0)
    cases = []

    def add(name, layer, config, seed, make, x, printed=None):
        torch.manual_seed(seed)
        m = make()
        m.eval()
        with torch.no_grad():
            y = m(x)
        if printed is not None:     # the book's printed numbers, to 4 decimals
            got = y[0] if y.dim() == 3 else y
            assert torch.allclose(got[:len(printed)], torch.tensor(printed), atol=6e-5), (name, got)
        cases.append({"name": name, "layer": layer, "config": config, "seed": seed,
                      "params": {k: enc_exact(v) for k, v in m.state_dict().items() if k != "mask"
                                 and not k.endswith(".mask")},
                      "input": enc_exact(x), "output": enc_exact(y)})

    add("self_attention_v2_seed789", "SelfAttention", dict(d_in=3, d_out=2, qkv_bias=False), 789,
        lambda: SelfAttention_v2(3, 2), inputs,
        [[-0.0739, 0.0713], [-0.0748, 0.0703], [-0.0749, 0.0702],
         [-0.0760, 0.0685], [-0.0763, 0.0679], [-0.0754, 0.0693]])
    add("causal_attention_seed123", "CausalAttention", dict(d_in=3, d_out=2, context_length=6, qkv_bias=False),
        123, lambda: CausalAttention(3, 2, 6, 0.0), batch,
        [[-0.4519, 0.2216], [-0.5874, 0.0058], [-0.6300, -0.0632],
         [-0.5675, -0.0843], [-0.5526, -0.0981], [-0.5299, -0.1081]])
    add("mha_wrapper_seed123", "MultiHeadAttentionWrapper",
        dict(d_in=3, d_out=2, context_length=6, num_heads=2, qkv_bias=False), 123,
        lambda: MultiHeadAttentionWrapper(3, 2, 6, 0.0, 2), batch,
        [[-0.4519, 0.2216, 0.4772, 0.1063], [-0.5874, 0.0058, 0.5891, 0.3257],
         [-0.6300, -0.0632, 0.6202, 0.3860], [-0.5675, -0.0843, 0.5478, 0.3589],
         [-0.5526, -0.0981, 0.5321, 0.3428], [-0.5299, -0.1081, 0.5077, 0.3493]])
    add("mha_seed123", "MultiHeadAttention",
        dict(d_in=3, d_out=2, context_length=6, num_heads=2, qkv_bias=False), 123,
        lambda: MultiHeadAttention(3, 2, 6, 0.0, 2), batch,
        [[0.3190, 0.4858], [0.2943, 0.3897], [0.2856, 0.3593],
         [0.2693, 0.3873], [0.2639, 0.3928], [0.2575, 0.4028]])

    def add_mha(name, seed, E, H, **kw):
        torch.manual_seed(seed)
        m = nn.MultiheadAttention(E, H, **kw)
        cfg = {"embed_dim": E, "num_heads": H, "bias": kw.get("bias", True),
               "add_bias_kv": kw.get("add_bias_kv", False), "add_zero_attn": False,
               "kdim": kw.get("kdim"), "vdim": kw.get("vdim"), "batch_first": False}
        cases.append({"name": name, "layer": "MultiheadAttention", "config": cfg, "seed": seed,
                      "params": {k: enc_exact(v) for k, v in m.state_dict().items()}})

    add_mha("nn_mha_packed_seed0", 0, 8, 2)
    add_mha("nn_mha_kdim_vdim_bias_kv_no_bias_seed1", 1, 6, 3, kdim=4, vdim=5, bias=False, add_bias_kv=True)
    add_mha("nn_mha_bias_kv_seed2", 2, 4, 2, add_bias_kv=True)       # bias_k: 4 normals (torch's scalar path)
    add_mha("nn_mha_bias_kv_wide_seed3", 3, 16, 4, add_bias_kv=True)  # bias_k: 16 normals (torch's vector path)
    return cases


def main():
    check_mha_mask_polarity()
    data = {
        "about": "made by tests/golden/make_layers_golden.py with torch " + torch.__version__,
        "mha": mha_cases(),
        "layers": layer_cases(),
        "init": init_cases(),
    }
    with open(OUT, "w") as f:
        json.dump(data, f, separators=(",", ":"), allow_nan=False)
    print(f"wrote {OUT}: {os.path.getsize(OUT)} bytes, {len(data['mha'])} mha, "
          f"{len(data['layers'])} layer, {len(data['init'])} init cases")


if __name__ == "__main__":
    main()

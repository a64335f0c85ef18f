#!/usr/bin/env python3
"""Golden outputs and gradients of scaled dot-product attention, from PyTorch.

    python3 tests/golden/make_sdpa_golden.py        # writes tests/golden/sdpa_golden.json

Every configuration exercises options of include/attn/sdpa.hpp on small random
inputs (B <= 2, H <= 4, L <= 9, D <= 8) and stores what a correct
implementation must return, computed in float64 with torch autograd:

    output [B, Hq, Lq, Dv], lse [B, Hq, Lq], d_query, d_key, d_value,
    d_float_mask (float-mask configs), d_sinks (sink configs),
    weights [B, Hq, Lq, Lk] (a few configs, to test return_weights).

How each expected value is obtained
-----------------------------------
Two independent computations, and the script asserts that they agree:

  (A) torch.nn.functional.scaled_dot_product_attention itself, called with the
      options torch has (bool/float mask, is_causal top-left, scale,
      enable_gqa). Options torch lacks are folded into an attn_mask that a
      reader can check by eye:
        * bottom-right causal and the sliding window -> a bool mask "visible";
        * ALiBi -> a float mask holding the bias -slope[h]*|i + diag - j|.
      (A) cannot express softcap (it changes the scores before the mask) or
      sinks (a logit with no key), so those configs have no (A).

  (B) `explicit_attention` below: the header's recipe written with plain
      float64 torch primitives, one line per step (scores, softcap, ALiBi,
      float mask, -inf where hidden, softmax over the keys plus a sink column
      that is dropped after the softmax, weights @ value).

The stored output and gradients are (A)'s where (A) exists, else (B)'s; the
lse (which torch's SDPA does not return) and d_sinks always come from (B).
Where both exist they must agree to 1e-12, so (B) is checked against torch on
every config that torch can express before it is trusted for softcap/sinks.

The library's conventions (they are not all torch's)
----------------------------------------------------
* A row that sees no key (all-False bool row, all -inf float row, a causal or
  window band that misses every key, Lk = 0) has output 0, lse -inf and zero
  gradient. Older torch gives NaN there; torch >= 2.5 (the "safe softmax" of
  its math backend) gives 0 and zero gradients, and the script asserts that
  (A) agrees with (B), which implements the convention explicitly.
* With sinks, lse = log(sum_j exp(s_j) + exp(sink[h])) includes the sink, so
  it is finite (= sink[h]) even for a row that sees no key; the output of such
  a row is still 0.
* `diag` (0 for top-left, Lk - Lq for bottom-right) places the causal
  diagonal, the window and the ALiBi distance, causal or not.
* Window: query i sees key j iff -window_left <= j - (i + diag) <= window_right,
  -1 meaning unbounded on that side.
* GQA: query head h uses key/value head h // (Hq // Hkv) (repeat_interleave).
* NaN/Inf in a key or value that no query sees must not reach the output: the
  "poisoned" configs compute the expected values on clean inputs, then
  overwrite the hidden keys/values with NaN/+inf/-inf in the stored inputs.
  The gradients are unchanged by the poison (d_key/d_value of a key nobody
  sees are 0), so they are stored and checked as well.

Dropout is not golden-tested: torch's dropout RNG is not the library's
counter-based generator, so the two masks can never match. It is tested by
its own properties elsewhere.

Format
------
sdpa_golden.json = {"format": 1, "generator": ..., "configs": [config, ...]}.
A tensor is {"shape": [...], "data": [...]} with data flattened row-major; a
bool tensor holds 0/1; a non-finite number is the string "nan", "inf" or
"-inf". Inputs are rounded to 9 significant digits BEFORE the expected values
are computed, so the C++ test reads exactly the inputs the expectations were
computed from; expected values are written with 12 significant digits
(<= 5e-12 relative error, well inside the C++ test's 1e-10).
Each config:
  name       readable, [A-Za-z0-9_] only (the gtest parameter name)
  shape      {"B", "Hq", "Hkv", "Lq", "Lk", "Dk", "Dv"}
  options    {"is_causal", "causal_alignment": "top_left"|"bottom_right",
              "window_left", "window_right", "scale": null|number,
              "enable_gqa", "softcap", "bool_mask", "float_mask",
              "alibi_slopes", "sinks"}   (absent tensors are null)
  layout     "bhsd": q/k/v/grad_output are contiguous [B, H, L, D];
             "bshd": the test stores them as [B, L, H, D] and passes the
             .transpose(1, 2) view (same values, other strides)
  inputs     query, key, value, grad_output
  expected   output, lse, d_query, d_key, d_value [, d_float_mask] [, d_sinks]
             [, weights]
  source     "torch_sdpa" or "explicit" (which computation was stored)
  poisoned   true if hidden keys/values hold NaN/Inf in the inputs

The script is deterministic: each config draws from its own torch.Generator
seeded with the CRC32 of its name, so adding a config does not change others.
"""
import json
import math
import os
import sys
import zlib

import torch
import torch.nn.functional as F

DTYPE = torch.float64
NEG_INF = float("-inf")
INPUT_DIGITS = 9
EXPECTED_DIGITS = 12


# ----------------------------------------------------------------------------
# Rounding and JSON encoding
# ----------------------------------------------------------------------------

def round_sig(t, digits=INPUT_DIGITS):
    """Round every finite element to `digits` significant digits (exactly as
    they will be printed), so the stored inputs are the computed-on inputs."""
    flat = [float("%.*g" % (digits, x)) if math.isfinite(x) else x for x in t.reshape(-1).tolist()]
    return torch.tensor(flat, dtype=t.dtype).reshape(t.shape)


def encode_number(x, digits):
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float("%.*g" % (digits, x))


def encode_tensor(t, digits=EXPECTED_DIGITS):
    if t is None:
        return None
    t = t.detach()
    if t.dtype == torch.bool:
        data = [int(x) for x in t.reshape(-1).tolist()]
    else:
        data = [encode_number(x, digits) for x in t.reshape(-1).tolist()]
    return {"shape": list(t.shape), "data": data}


# ----------------------------------------------------------------------------
# (B) The explicit computation: the header's recipe, one primitive per step
# ----------------------------------------------------------------------------

def causal_diag(opt, Lq, Lk):
    """0 for top-left alignment (torch's is_causal), Lk - Lq for bottom-right."""
    return 0 if opt["causal_alignment"] == "top_left" else Lk - Lq


def visible_keys(opt, Lq, Lk):
    """[Lq, Lk] bool: key j is inside query i's causal band and window.
    (The user's bool mask and -inf float-mask entries hide keys too; they are
    applied separately.)"""
    diag = causal_diag(opt, Lq, Lk)
    i = torch.arange(Lq).reshape(Lq, 1)
    j = torch.arange(Lk).reshape(1, Lk)
    offset = j - (i + diag)  # > 0: key j is in query i's future
    visible = torch.ones(Lq, Lk, dtype=torch.bool)
    if opt["is_causal"]:
        visible &= offset <= 0
    if opt["window_left"] >= 0:
        visible &= offset >= -opt["window_left"]
    if opt["window_right"] >= 0:
        visible &= offset <= opt["window_right"]
    return visible


def alibi_bias(slopes, B, Hq, Lq, Lk, diag):
    """[B or 1, Hq, Lq, Lk] bias -slope[h] * |i + diag - j| (slopes [Hq] or [B, Hq])."""
    i = torch.arange(Lq, dtype=DTYPE).reshape(Lq, 1)
    j = torch.arange(Lk, dtype=DTYPE).reshape(1, Lk)
    distance = (i + diag - j).abs()  # [Lq, Lk]
    if slopes.dim() == 1:
        slope = slopes.reshape(1, Hq, 1, 1)
    else:
        slope = slopes.reshape(B, Hq, 1, 1)
    return -slope * distance


def explicit_attention(q, k, v, opt, bool_mask, float_mask, slopes, sinks):
    """Returns (output, lse, weights) for q [B,Hq,Lq,Dk], k [B,Hkv,Lk,Dk], v [B,Hkv,Lk,Dv]."""
    B, Hq, Lq, Dk = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    # GQA: query head h reads key/value head h // (Hq // Hkv).
    k = k.repeat_interleave(Hq // Hkv, dim=1)
    v = v.repeat_interleave(Hq // Hkv, dim=1)
    scale = opt["scale"] if opt["scale"] is not None else 1.0 / math.sqrt(Dk)

    s = scale * (q @ k.transpose(-1, -2))                      # [B, Hq, Lq, Lk]
    if opt["softcap"] > 0:
        s = opt["softcap"] * torch.tanh(s / opt["softcap"])
    if slopes is not None:
        s = s + alibi_bias(slopes, B, Hq, Lq, Lk, causal_diag(opt, Lq, Lk))
    if float_mask is not None:
        s = s + float_mask                                      # broadcasts
    visible = visible_keys(opt, Lq, Lk).expand(B, Hq, Lq, Lk)
    if bool_mask is not None:
        visible = visible & bool_mask
    s = torch.where(visible, s, torch.full_like(s, NEG_INF))   # -inf float-mask entries stay -inf

    # The sink is one more logit per head, with no value behind it.
    if sinks is not None:
        sink_col = sinks.reshape(1, Hq, 1, 1).expand(B, Hq, Lq, 1)
        logits = torch.cat([s, sink_col], dim=-1)               # [B, Hq, Lq, Lk + 1]
    else:
        logits = s
    lse = torch.logsumexp(logits, dim=-1)                       # -inf if nothing to see

    # Library convention: a row that sees no key has weights 0 (output 0,
    # zero gradient). Such rows are given harmless logits (0) so the softmax
    # stays finite, then multiplied by 0 - autograd then gives exact zeros.
    sees_key = (s > NEG_INF).any(dim=-1, keepdim=True)           # [B, Hq, Lq, 1]
    safe_logits = torch.where(sees_key, logits, torch.zeros_like(logits))
    p = torch.softmax(safe_logits, dim=-1) * sees_key
    weights = p[..., :Lk]                                        # drop the sink column
    output = weights @ v
    return output, lse, weights


# ----------------------------------------------------------------------------
# (A) torch's SDPA, with the options it lacks folded into attn_mask
# ----------------------------------------------------------------------------

def torch_sdpa_possible(opt):
    return opt["softcap"] == 0 and opt["sinks"] is None


def torch_sdpa_attention(q, k, v, opt, bool_mask, float_mask, slopes):
    B, Hq, Lq, _ = q.shape
    Lk = k.shape[2]
    diag = causal_diag(opt, Lq, Lk)
    has_window = opt["window_left"] >= 0 or opt["window_right"] >= 0
    # torch's is_causal is top-left and cannot be combined with attn_mask;
    # otherwise causality joins the window in a bool "visible" band.
    use_is_causal = (opt["is_causal"] and diag == 0 and not has_window and bool_mask is None
                     and float_mask is None and slopes is None)
    needs_band = (opt["is_causal"] and not use_is_causal) or has_window
    visible = visible_keys(opt, Lq, Lk) if needs_band else None

    mask = None
    if float_mask is not None or slopes is not None:
        mask = torch.zeros(1, 1, 1, 1, dtype=DTYPE)
        if slopes is not None:
            mask = mask + alibi_bias(slopes, B, Hq, Lq, Lk, diag)
        if float_mask is not None:
            mask = mask + float_mask
        if bool_mask is not None:
            mask = torch.where(bool_mask, mask, NEG_INF)
        if visible is not None:
            mask = torch.where(visible, mask, NEG_INF)
    elif bool_mask is not None or visible is not None:
        mask = torch.ones(1, 1, 1, 1, dtype=torch.bool)
        if bool_mask is not None:
            mask = mask & bool_mask
        if visible is not None:
            mask = mask & visible
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=use_is_causal, scale=opt["scale"],
        enable_gqa=(Hq != k.shape[1]) or opt["enable_gqa"])


# ----------------------------------------------------------------------------
# One configuration
# ----------------------------------------------------------------------------

DEFAULT_OPTIONS = {
    "is_causal": False, "causal_alignment": "top_left", "window_left": -1, "window_right": -1,
    "scale": None, "enable_gqa": False, "softcap": 0.0,
}


class Spec:
    """What to generate: shapes, options and how to draw masks/slopes/sinks."""

    def __init__(self, name, B, Hq, Hkv, Lq, Lk, Dk, Dv, *, bool_mask=None, float_mask=None,
                 alibi=None, sinks=False, poison=None, layout="bhsd", weights=False, **options):
        self.name, self.shape = name, dict(B=B, Hq=Hq, Hkv=Hkv, Lq=Lq, Lk=Lk, Dk=Dk, Dv=Dv)
        unknown = set(options) - set(DEFAULT_OPTIONS)
        assert not unknown, f"{name}: unknown options {unknown}"
        self.options = {**DEFAULT_OPTIONS, **options}
        if Hq != Hkv:
            self.options["enable_gqa"] = True
        self.bool_mask, self.float_mask = bool_mask, float_mask
        self.alibi, self.sinks, self.poison = alibi, sinks, poison
        self.layout, self.weights = layout, weights


def draw_bool_mask(gen, spec):
    """spec: {"shape": [...], "keep": probability of True, "hide_rows": [i...]
    (rows of the Lq dim set all False), "hide_cols": [j...] (key columns set all False)}."""
    shape = spec["shape"]
    mask = torch.rand(shape, generator=gen, dtype=DTYPE) < spec.get("keep", 0.7)
    for i in spec.get("hide_rows", []):
        mask[..., i, :] = False
    for j in spec.get("hide_cols", []):
        mask[..., j] = False
    return mask


def draw_float_mask(gen, spec):
    """spec: {"shape", "std" (of the finite values), "neg_inf" (probability of
    -inf), "hide_rows" (rows set to -inf), "hide_cols" (key columns set to -inf)}."""
    shape = spec["shape"]
    mask = round_sig(spec.get("std", 1.0) * torch.randn(shape, generator=gen, dtype=DTYPE))
    hidden = torch.rand(shape, generator=gen, dtype=DTYPE) < spec.get("neg_inf", 0.0)
    mask = mask.masked_fill(hidden, NEG_INF)
    for i in spec.get("hide_rows", []):
        mask[..., i, :] = NEG_INF
    for j in spec.get("hide_cols", []):
        mask[..., j] = NEG_INF
    return mask


def draw_slopes(gen, spec, B, Hq):
    """"geometric": ALiBi's own slopes 2^(-8(h+1)/Hq), shape [Hq];
    "random_bh": random positive slopes of shape [B, Hq]; "random_h": [Hq]."""
    if spec == "geometric":
        return round_sig(torch.tensor([2.0 ** (-8.0 * (h + 1) / Hq) for h in range(Hq)], dtype=DTYPE))
    shape = [B, Hq] if spec == "random_bh" else [Hq]
    return round_sig(0.05 + torch.rand(shape, generator=gen, dtype=DTYPE))


def make_config(spec, index):
    gen = torch.Generator().manual_seed(zlib.crc32(spec.name.encode()))
    s, opt = spec.shape, spec.options
    B, Hq, Hkv, Lq, Lk, Dk, Dv = (s[x] for x in ("B", "Hq", "Hkv", "Lq", "Lk", "Dk", "Dv"))

    def randn(*shape):
        return round_sig(torch.randn(shape, generator=gen, dtype=DTYPE))

    q, k, v = randn(B, Hq, Lq, Dk), randn(B, Hkv, Lk, Dk), randn(B, Hkv, Lk, Dv)
    grad_out = randn(B, Hq, Lq, Dv)
    bool_mask = draw_bool_mask(gen, spec.bool_mask) if spec.bool_mask else None
    float_mask = draw_float_mask(gen, spec.float_mask) if spec.float_mask else None
    slopes = draw_slopes(gen, spec.alibi, B, Hq) if spec.alibi else None
    sinks = randn(Hq) if spec.sinks else None
    opt = {**opt, "sinks": sinks}

    def run(fn, with_sinks):
        """Forward + autograd backward of loss = sum(output * grad_out)."""
        leaves = [x.clone().requires_grad_() for x in (q, k, v)]
        fm = float_mask.clone().requires_grad_() if float_mask is not None else None
        sk = sinks.clone().requires_grad_() if with_sinks and sinks is not None else None
        out = fn(*leaves, fm, sk)
        o = out[0] if isinstance(out, tuple) else out
        (o * grad_out).sum().backward()
        grads = {"d_query": leaves[0].grad, "d_key": leaves[1].grad, "d_value": leaves[2].grad}
        if fm is not None:
            grads["d_float_mask"] = fm.grad
        if sk is not None:
            grads["d_sinks"] = sk.grad
        # An empty tensor gets no .grad from autograd; its gradient is empty too.
        for name, leaf in zip(("d_query", "d_key", "d_value"), leaves):
            if grads[name] is None:
                grads[name] = torch.zeros_like(leaf)
        if fm is not None and grads["d_float_mask"] is None:
            grads["d_float_mask"] = torch.zeros_like(fm)
        if sk is not None and grads["d_sinks"] is None:
            grads["d_sinks"] = torch.zeros_like(sk)
        return out, grads

    (out_b, lse, weights), grads_b = run(
        lambda q_, k_, v_, fm, sk: explicit_attention(q_, k_, v_, opt, bool_mask, fm, slopes, sk), True)
    expected = {"output": out_b, "lse": lse, **grads_b}
    source = "explicit"

    if torch_sdpa_possible(opt):
        out_a, grads_a = run(
            lambda q_, k_, v_, fm, sk: torch_sdpa_attention(q_, k_, v_, opt, bool_mask, fm, slopes), False)
        finite = bool(torch.isfinite(out_a).all()) and all(bool(torch.isfinite(g).all()) for g in grads_a.values())
        if not finite:
            sys.exit(f"{spec.name}: torch's SDPA gave NaN (a fully masked row?); this script needs "
                     f"torch >= 2.5, whose math backend gives 0 there (found {torch.__version__})")
        # (A) and (B) are independent; they must agree before either is stored.
        check_close(spec.name, "output", out_a, out_b)
        for name in grads_a:
            check_close(spec.name, name, grads_a[name], grads_b[name])
        expected.update({"output": out_a, **grads_a})
        source = "torch_sdpa"

    # The library's convention for rows that see no key, asserted (not assumed).
    no_key = torch.isneginf(lse) if sinks is None else None
    if no_key is not None and bool(no_key.any()):
        assert bool((expected["output"][no_key] == 0).all()), spec.name
        assert bool((expected["d_query"][no_key] == 0).all()), spec.name

    if spec.weights:
        expected["weights"] = weights

    inputs = {"query": q, "key": k, "value": v, "grad_output": grad_out}
    poisoned = False
    if spec.poison:
        poisoned = apply_poison(spec, inputs, expected)

    opt_json = {key: opt[key] for key in DEFAULT_OPTIONS}
    opt_json.update({
        "bool_mask": encode_tensor(bool_mask),
        "float_mask": encode_tensor(float_mask, INPUT_DIGITS),
        "alibi_slopes": encode_tensor(slopes, INPUT_DIGITS),
        "sinks": encode_tensor(sinks, INPUT_DIGITS),
    })
    return {
        "name": f"c{index:03d}_{spec.name}",
        "shape": spec.shape,
        "options": opt_json,
        "layout": spec.layout,
        "inputs": {n: encode_tensor(t, INPUT_DIGITS) for n, t in inputs.items()},
        "expected": {n: encode_tensor(t) for n, t in expected.items()},
        "source": source,
        "poisoned": poisoned,
    }


def apply_poison(spec, inputs, expected):
    """Overwrite keys/values that no query sees with NaN/Inf. Expected values
    were computed on the clean inputs; the math says they do not change: the
    hidden key's weight is 0 for every query, so its d_key and d_value are 0."""
    k, v = inputs["key"].clone(), inputs["value"].clone()
    for j, (kval, vval) in spec.poison.items():
        assert bool((expected["d_key"][:, :, j] == 0).all()) and bool((expected["d_value"][:, :, j] == 0).all()), \
            f"{spec.name}: key {j} is seen by some query, it cannot be poisoned"
        k[:, :, j, 0] = kval
        v[:, :, j, -1] = vval
    inputs["key"], inputs["value"] = k, v
    return True


def check_close(name, what, a, b, tol=1e-12):
    if a.shape != b.shape:
        sys.exit(f"{name}: {what} shapes differ: torch SDPA {list(a.shape)} vs explicit {list(b.shape)}")
    if a.numel() == 0:
        return
    err = ((a - b).abs() / b.abs().clamp(min=1.0)).max().item()
    if not err <= tol:
        sys.exit(f"{name}: {what}: torch SDPA and the explicit computation differ by {err:g}")


# ----------------------------------------------------------------------------
# The configurations
# ----------------------------------------------------------------------------

def shape_tag(B, Hq, Hkv, Lq, Lk, Dk, Dv):
    h = f"H{Hq}" if Hq == Hkv else f"H{Hq}kv{Hkv}"
    return f"B{B}{h}_L{Lq}x{Lk}_D{Dk}x{Dv}"


def specs():
    out = []

    def add(tag, B, Hq, Hkv, Lq, Lk, Dk, Dv, **kw):
        out.append(Spec(f"{tag}_{shape_tag(B, Hq, Hkv, Lq, Lk, Dk, Dv)}", B, Hq, Hkv, Lq, Lk, Dk, Dv, **kw))

    # 1. No options: shapes (Lq != Lk, Dk != Dv, single elements).
    for shp in [(1, 1, 1, 1, 1, 1, 1), (1, 1, 1, 3, 3, 3, 3), (2, 2, 2, 4, 4, 8, 8), (1, 3, 3, 5, 7, 4, 6),
                (2, 1, 1, 7, 3, 6, 2), (1, 2, 2, 9, 9, 8, 8), (2, 4, 4, 2, 9, 3, 5), (1, 1, 1, 1, 9, 8, 1),
                (1, 2, 2, 9, 1, 2, 7), (2, 3, 3, 6, 5, 1, 3), (1, 4, 4, 8, 6, 7, 4), (2, 2, 2, 3, 8, 5, 5)]:
        add("plain", *shp)

    # 2. Custom scale (torch's `scale`), also tiny and large.
    for sc, shp in [(0.3, (1, 2, 2, 4, 5, 3, 3)), (1.0, (2, 1, 1, 3, 6, 8, 3)), (2.5, (1, 2, 2, 5, 5, 3, 3)),
                    (0.05, (1, 1, 1, 6, 4, 8, 8)), (0.75, (2, 2, 2, 7, 7, 6, 2))]:
        add(f"scale{str(sc).replace('.', 'p')}", *shp, scale=sc)

    # 3. Causal, top-left (torch's is_causal): Lq <, =, > Lk.
    for shp in [(1, 1, 1, 4, 4, 3, 3), (2, 2, 2, 3, 7, 5, 3), (1, 2, 2, 8, 3, 4, 6), (1, 3, 3, 9, 9, 8, 8),
                (2, 1, 1, 1, 6, 3, 3), (1, 2, 2, 6, 1, 2, 2)]:
        add("causal_tl", *shp, is_causal=True)
    add("causal_tl_scale0p4", 1, 2, 2, 5, 6, 3, 3, is_causal=True, scale=0.4)

    # 4. Causal, bottom-right (FlashAttention/KV-cache decode): Lq < Lk is
    #    decoding; Lq > Lk leaves the first Lq - Lk rows with no key.
    for shp in [(1, 1, 1, 4, 4, 3, 3), (2, 2, 2, 3, 7, 5, 3), (1, 2, 2, 1, 8, 3, 3), (1, 3, 3, 2, 9, 8, 6),
                (1, 2, 2, 8, 3, 4, 6), (2, 1, 1, 9, 5, 3, 3), (1, 2, 2, 6, 1, 2, 2)]:
        add("causal_br", *shp, is_causal=True, causal_alignment="bottom_right")
    add("causal_br_scale1p5", 2, 2, 2, 4, 7, 3, 3, is_causal=True, causal_alignment="bottom_right", scale=1.5)

    # 5. Bool masks (True = attend): ranks 2, 3, 4, size-1 dims, fully masked rows.
    bool_cases = [
        ("rank2", (1, 2, 2, 4, 5, 3, 3), lambda B, H, Lq, Lk: [Lq, Lk]),
        ("rank2_keypad_row", (2, 2, 2, 5, 6, 3, 3), lambda B, H, Lq, Lk: [1, Lk]),
        ("rank2_query_col", (1, 2, 2, 6, 4, 3, 3), lambda B, H, Lq, Lk: [Lq, 1]),
        ("rank3_heads", (1, 3, 3, 4, 4, 3, 3), lambda B, H, Lq, Lk: [H, Lq, Lk]),
        ("rank3_h1", (2, 2, 2, 5, 7, 4, 2), lambda B, H, Lq, Lk: [1, Lq, Lk]),
        ("rank4_full", (2, 2, 2, 4, 6, 3, 3), lambda B, H, Lq, Lk: [B, H, Lq, Lk]),
        ("rank4_b1", (2, 3, 3, 3, 5, 2, 4), lambda B, H, Lq, Lk: [1, H, Lq, Lk]),
        ("rank4_h1", (2, 2, 2, 6, 6, 3, 3), lambda B, H, Lq, Lk: [B, 1, Lq, Lk]),
        ("rank4_keypad", (2, 4, 4, 3, 8, 3, 3), lambda B, H, Lq, Lk: [B, 1, 1, Lk]),
        ("rank4_all1", (1, 2, 2, 5, 5, 3, 3), lambda B, H, Lq, Lk: [1, 1, 1, 1]),
        ("rank4_b1h1", (2, 2, 2, 7, 4, 5, 5), lambda B, H, Lq, Lk: [1, 1, Lq, Lk]),
        ("rank4_query", (2, 2, 2, 5, 3, 3, 3), lambda B, H, Lq, Lk: [B, H, Lq, 1]),
    ]
    for tag, shp, shape_of in bool_cases:
        B, Hq, _, Lq, Lk, _, _ = shp
        add(f"bool_{tag}", *shp, bool_mask={"shape": shape_of(B, Hq, Lq, Lk), "keep": 0.7},
            weights=tag in ("rank2", "rank4_b1"))
    # ... with rows that see no key (output 0, lse -inf, zero gradient).
    add("bool_hidden_rows_rank2", 1, 2, 2, 5, 6, 3, 3, bool_mask={"shape": [5, 6], "keep": 0.8, "hide_rows": [0, 3]})
    add("bool_hidden_rows_rank4", 2, 2, 2, 4, 5, 3, 5,
        bool_mask={"shape": [2, 1, 4, 5], "keep": 0.8, "hide_rows": [2]}, weights=True)
    add("bool_all_hidden", 1, 2, 2, 3, 4, 3, 3, bool_mask={"shape": [1, 1, 1, 1], "keep": 0.0})
    add("bool_keep_all", 2, 2, 2, 4, 4, 3, 3, bool_mask={"shape": [4, 4], "keep": 1.1})
    add("bool_sparse", 2, 3, 3, 6, 9, 3, 3, bool_mask={"shape": [2, 3, 6, 9], "keep": 0.25})
    add("bool_scale0p6", 1, 2, 2, 5, 5, 3, 3, bool_mask={"shape": [5, 5], "keep": 0.6}, scale=0.6)

    # 6. Float masks (added to the scores; -inf hides): ranks, size-1 dims, -inf
    #    entries and rows, d_float_mask summed over the broadcast dims.
    float_cases = [
        ("rank2", (1, 2, 2, 4, 5, 3, 3), lambda B, H, Lq, Lk: [Lq, Lk], 0.0),
        ("rank2_ninf", (2, 2, 2, 5, 6, 3, 3), lambda B, H, Lq, Lk: [Lq, Lk], 0.2),
        ("rank2_keypad_row", (2, 2, 2, 5, 6, 3, 3), lambda B, H, Lq, Lk: [1, Lk], 0.2),
        ("rank2_query_col", (1, 3, 3, 6, 4, 3, 3), lambda B, H, Lq, Lk: [Lq, 1], 0.0),
        ("rank3_heads", (1, 3, 3, 4, 4, 3, 3), lambda B, H, Lq, Lk: [H, Lq, Lk], 0.1),
        ("rank3_h1", (2, 2, 2, 5, 7, 4, 2), lambda B, H, Lq, Lk: [1, Lq, Lk], 0.0),
        ("rank3_keypad", (2, 2, 2, 4, 7, 3, 3), lambda B, H, Lq, Lk: [H, 1, Lk], 0.2),
        ("rank4_full", (2, 2, 2, 4, 6, 3, 3), lambda B, H, Lq, Lk: [B, H, Lq, Lk], 0.15),
        ("rank4_b1", (2, 3, 3, 3, 5, 2, 4), lambda B, H, Lq, Lk: [1, H, Lq, Lk], 0.0),
        ("rank4_h1", (2, 2, 2, 6, 6, 3, 3), lambda B, H, Lq, Lk: [B, 1, Lq, Lk], 0.1),
        ("rank4_keypad", (2, 4, 4, 3, 8, 3, 3), lambda B, H, Lq, Lk: [B, 1, 1, Lk], 0.2),
        ("rank4_all1", (1, 2, 2, 5, 5, 3, 3), lambda B, H, Lq, Lk: [1, 1, 1, 1], 0.0),
        ("rank4_b1h1", (2, 2, 2, 7, 4, 5, 5), lambda B, H, Lq, Lk: [1, 1, Lq, Lk], 0.0),
        ("rank4_query", (2, 2, 2, 5, 3, 3, 3), lambda B, H, Lq, Lk: [B, H, Lq, 1], 0.0),
        ("rank4_bq", (2, 2, 2, 5, 6, 3, 3), lambda B, H, Lq, Lk: [B, 1, Lq, 1], 0.0),
    ]
    for tag, shp, shape_of, ninf in float_cases:
        B, Hq, _, Lq, Lk, _, _ = shp
        add(f"float_{tag}", *shp, float_mask={"shape": shape_of(B, Hq, Lq, Lk), "neg_inf": ninf},
            weights=tag in ("rank2_ninf",))
    add("float_big_values", 1, 2, 2, 5, 6, 3, 3, float_mask={"shape": [5, 6], "std": 6.0})
    add("float_hidden_rows_rank2", 1, 2, 2, 5, 6, 3, 3, float_mask={"shape": [5, 6], "hide_rows": [1, 4]})
    add("float_hidden_rows_rank4", 2, 2, 2, 4, 5, 3, 5,
        float_mask={"shape": [2, 2, 4, 5], "neg_inf": 0.3, "hide_rows": [0]}, weights=True)
    add("float_all_hidden", 1, 2, 2, 3, 4, 3, 3, float_mask={"shape": [1, 1, 1, 1], "neg_inf": 1.1})
    add("float_scale1p3", 2, 2, 2, 4, 6, 3, 3, float_mask={"shape": [4, 6], "neg_inf": 0.1}, scale=1.3)

    # 7. GQA / MQA (enable_gqa), alone and with masks/causal.
    for shp in [(1, 4, 2, 4, 4, 3, 3), (2, 4, 1, 3, 6, 4, 2), (1, 2, 1, 5, 5, 8, 8), (2, 4, 2, 7, 3, 3, 5),
                (1, 3, 1, 6, 6, 3, 3)]:
        add("gqa", *shp)
    add("gqa_flag_same_heads", 1, 2, 2, 4, 5, 3, 3, enable_gqa=True)
    add("gqa_causal_tl", 1, 4, 2, 5, 7, 3, 3, is_causal=True)
    add("gqa_causal_br", 2, 4, 1, 3, 8, 3, 3, is_causal=True, causal_alignment="bottom_right")
    add("gqa_bool_rank4", 2, 4, 2, 4, 5, 3, 3, bool_mask={"shape": [2, 4, 4, 5], "keep": 0.6})
    add("gqa_float_rank3", 1, 4, 2, 5, 5, 4, 3, float_mask={"shape": [4, 5, 5], "neg_inf": 0.1})
    add("gqa_float_keypad", 2, 4, 1, 4, 6, 3, 3, float_mask={"shape": [2, 1, 1, 6], "neg_inf": 0.2})
    add("gqa_scale", 1, 4, 2, 4, 6, 5, 3, scale=0.9)

    # 8. Sliding window (-window_left <= j - (i + diag) <= window_right), both alignments.
    def side(w):
        return "inf" if w < 0 else str(w)

    windows = [(2, -1), (-1, 1), (1, 1), (0, 0), (3, 0), (0, 2), (8, 8)]
    win_shapes = [(1, 2, 2, 6, 6, 3, 3), (1, 1, 1, 4, 8, 3, 3), (2, 2, 2, 8, 4, 3, 3)]
    for n, (wl, wr) in enumerate(windows):
        for m, (align, a) in enumerate((("top_left", "tl"), ("bottom_right", "br"))):
            shp = win_shapes[(n + m) % len(win_shapes)]
            add(f"window_{side(wl)}_{side(wr)}_{a}", *shp, window_left=wl, window_right=wr, causal_alignment=align)
    for align in ("top_left", "bottom_right"):
        a = "tl" if align == "top_left" else "br"
        add(f"window_causal_3_{a}", 1, 2, 2, 7, 9, 3, 3, is_causal=True, window_left=3, causal_alignment=align)
        add(f"window_causal_0_{a}", 2, 1, 1, 5, 5, 3, 3, is_causal=True, window_left=0, causal_alignment=align)
        add(f"window_right_far_{a}", 1, 2, 2, 3, 9, 3, 3, window_left=-1, window_right=2, causal_alignment=align)
        add(f"window_bool_{a}", 2, 2, 2, 6, 7, 3, 3, window_left=2, window_right=1, causal_alignment=align,
            bool_mask={"shape": [6, 7], "keep": 0.7})
        add(f"window_float_{a}", 2, 2, 2, 6, 7, 3, 3, window_left=1, window_right=3, causal_alignment=align,
            float_mask={"shape": [2, 1, 6, 7], "neg_inf": 0.1})
        add(f"window_gqa_{a}", 1, 4, 2, 6, 6, 3, 3, window_left=2, window_right=0, causal_alignment=align)
    # A window that misses every key for some rows (Lq > Lk, bottom-right).
    add("window_empty_rows_br", 1, 2, 2, 8, 3, 3, 3, window_left=1, window_right=0, causal_alignment="bottom_right")

    # 9. ALiBi: slopes [Hq] (geometric or random) or [B, Hq], both alignments.
    for align in ("top_left", "bottom_right"):
        a = "tl" if align == "top_left" else "br"
        add(f"alibi_geo_{a}", 1, 4, 4, 5, 5, 3, 3, alibi="geometric", causal_alignment=align)
        add(f"alibi_geo_lq_lt_lk_{a}", 1, 2, 2, 3, 8, 3, 3, alibi="geometric", causal_alignment=align)
        add(f"alibi_rand_h_{a}", 2, 2, 2, 6, 4, 4, 3, alibi="random_h", causal_alignment=align)
        add(f"alibi_rand_bh_{a}", 2, 3, 3, 4, 6, 3, 3, alibi="random_bh", causal_alignment=align, weights=a == "br")
        add(f"alibi_causal_{a}", 1, 2, 2, 5, 7, 3, 3, alibi="geometric", is_causal=True, causal_alignment=align)
        add(f"alibi_gqa_{a}", 2, 4, 2, 5, 6, 3, 3, alibi="random_bh", causal_alignment=align)
        add(f"alibi_float_{a}", 1, 2, 2, 4, 6, 3, 3, alibi="random_h", causal_alignment=align,
            float_mask={"shape": [4, 6], "neg_inf": 0.1})
        add(f"alibi_window_{a}", 1, 2, 2, 6, 6, 3, 3, alibi="random_h", causal_alignment=align,
            window_left=2, window_right=2)
    add("alibi_bool_br", 2, 2, 2, 5, 6, 3, 3, alibi="geometric", causal_alignment="bottom_right",
        bool_mask={"shape": [2, 1, 1, 6], "keep": 0.7})
    add("alibi_scale", 1, 2, 2, 4, 4, 6, 6, alibi="geometric", scale=0.8)

    # 10. Softcap: softcap * tanh(s / softcap), before bias and mask.
    for cap, shp in [(1.0, (1, 2, 2, 4, 5, 3, 3)), (0.5, (2, 2, 2, 5, 5, 8, 8)), (5.0, (1, 3, 3, 6, 4, 3, 3)),
                     (30.0, (1, 1, 1, 7, 7, 3, 3)), (2.0, (2, 1, 1, 3, 9, 4, 6))]:
        add(f"softcap{str(cap).replace('.', 'p')}", *shp, softcap=cap, weights=cap == 1.0)
    add("softcap_bigscale", 1, 2, 2, 5, 5, 3, 3, softcap=1.5, scale=3.0)
    add("softcap_causal_tl", 1, 2, 2, 5, 6, 3, 3, softcap=1.0, is_causal=True)
    add("softcap_causal_br", 2, 2, 2, 4, 7, 3, 3, softcap=2.0, is_causal=True, causal_alignment="bottom_right")
    add("softcap_bool", 2, 2, 2, 5, 5, 3, 3, softcap=1.0, bool_mask={"shape": [2, 1, 5, 5], "keep": 0.6})
    add("softcap_float", 1, 3, 3, 4, 6, 3, 3, softcap=1.0, float_mask={"shape": [3, 4, 6], "neg_inf": 0.1})
    add("softcap_alibi", 1, 2, 2, 5, 5, 3, 3, softcap=1.0, alibi="geometric")
    add("softcap_window", 1, 2, 2, 6, 6, 3, 3, softcap=1.0, window_left=1, window_right=1)
    add("softcap_gqa", 2, 4, 2, 4, 5, 3, 3, softcap=1.0)
    add("softcap_hidden_rows", 1, 2, 2, 5, 5, 3, 3, softcap=1.0,
        bool_mask={"shape": [5, 5], "keep": 0.8, "hide_rows": [2]})

    # 11. Sinks: an extra logit per query head in the denominator, no value.
    for shp in [(1, 1, 1, 3, 3, 3, 3), (1, 2, 2, 4, 5, 3, 3), (2, 4, 4, 5, 3, 4, 6), (1, 3, 3, 6, 6, 8, 8),
                (2, 2, 2, 1, 9, 3, 3)]:
        add("sinks", *shp, sinks=True, weights=shp[3] == 4)
    add("sinks_causal_tl", 1, 2, 2, 5, 5, 3, 3, sinks=True, is_causal=True)
    add("sinks_causal_br", 2, 2, 2, 3, 6, 3, 3, sinks=True, is_causal=True, causal_alignment="bottom_right")
    add("sinks_gqa", 1, 4, 2, 4, 6, 3, 3, sinks=True)
    add("sinks_mqa_causal", 2, 4, 1, 5, 5, 3, 3, sinks=True, is_causal=True)
    add("sinks_bool", 2, 2, 2, 4, 6, 3, 3, sinks=True, bool_mask={"shape": [2, 1, 4, 6], "keep": 0.6})
    add("sinks_float", 1, 2, 2, 5, 5, 3, 3, sinks=True, float_mask={"shape": [5, 5], "neg_inf": 0.2})
    add("sinks_window", 1, 2, 2, 6, 6, 3, 3, sinks=True, window_left=1, window_right=0)
    add("sinks_alibi", 1, 2, 2, 5, 5, 3, 3, sinks=True, alibi="geometric")
    add("sinks_softcap", 1, 2, 2, 5, 5, 3, 3, sinks=True, softcap=1.0)
    add("sinks_scale", 1, 2, 2, 4, 4, 3, 3, sinks=True, scale=0.5)
    # A row that sees no key with a sink: output 0, lse = sink[h].
    add("sinks_hidden_rows", 1, 2, 2, 5, 5, 3, 3, sinks=True,
        bool_mask={"shape": [5, 5], "keep": 0.8, "hide_rows": [1, 3]})
    add("sinks_causal_br_empty_rows", 1, 2, 2, 6, 3, 3, 3, sinks=True, is_causal=True,
        causal_alignment="bottom_right")
    add("sinks_float_hidden_rows", 2, 2, 2, 4, 4, 3, 3, sinks=True,
        float_mask={"shape": [2, 2, 4, 4], "neg_inf": 0.2, "hide_rows": [0]})

    # 12. Empty sequences: Lq = 0 (empty output) and Lk = 0 (output 0, lse -inf).
    add("empty_lq", 1, 2, 2, 0, 4, 3, 3)
    add("empty_lk", 1, 2, 2, 3, 0, 3, 3)
    add("empty_both", 2, 2, 2, 0, 0, 4, 3)
    add("empty_lq_causal", 1, 2, 2, 0, 5, 3, 3, is_causal=True)
    add("empty_lk_causal_br", 1, 2, 2, 3, 0, 3, 3, is_causal=True, causal_alignment="bottom_right")
    add("empty_lk_bool", 1, 2, 2, 3, 0, 3, 3, bool_mask={"shape": [3, 0], "keep": 0.5})
    add("empty_lk_float", 1, 2, 2, 3, 0, 3, 3, float_mask={"shape": [1, 2, 3, 0]})
    add("empty_lq_float", 1, 2, 2, 0, 4, 3, 3, float_mask={"shape": [0, 4]})
    add("empty_lk_gqa", 1, 4, 2, 3, 0, 3, 3)
    add("empty_lk_sinks", 1, 2, 2, 3, 0, 3, 3, sinks=True)
    add("empty_lk_alibi", 1, 2, 2, 3, 0, 3, 3, alibi="geometric")

    # 13. NaN/Inf in keys/values that no query sees never reach the output.
    add("poison_bool_keypad", 2, 2, 2, 4, 6, 3, 3, poison={1: (float("nan"), float("nan")), 4: (float("inf"), float("-inf"))},
        bool_mask={"shape": [1, 1, 1, 6], "keep": 1.1, "hide_cols": [1, 4]})
    add("poison_float_keypad", 1, 2, 2, 5, 5, 3, 3, poison={0: (float("-inf"), float("nan")), 3: (float("nan"), float("inf"))},
        float_mask={"shape": [5, 5], "hide_cols": [0, 3]})
    add("poison_window_br", 1, 2, 2, 2, 8, 3, 3, poison={0: (float("nan"), float("nan")), 2: (float("inf"), float("inf"))},
        window_left=2, window_right=0, causal_alignment="bottom_right")
    add("poison_causal_tl", 1, 2, 2, 3, 7, 3, 3, poison={5: (float("nan"), float("nan")), 6: (float("inf"), float("nan"))},
        is_causal=True)
    add("poison_gqa_sinks", 1, 4, 2, 4, 5, 3, 3, poison={2: (float("nan"), float("inf"))}, sinks=True,
        bool_mask={"shape": [1, 5], "keep": 1.1, "hide_cols": [2]})
    add("poison_softcap_alibi", 2, 2, 2, 4, 6, 3, 3, poison={5: (float("nan"), float("-inf"))}, softcap=1.0,
        alibi="random_bh", bool_mask={"shape": [2, 1, 1, 6], "keep": 1.1, "hide_cols": [5]})

    # 14. Everything at once.
    add("combo_gqa_causal_br_window_alibi_softcap_sinks", 2, 4, 2, 5, 8, 4, 6, is_causal=True,
        causal_alignment="bottom_right", window_left=3, alibi="random_bh", softcap=2.0, sinks=True, scale=0.6)
    add("combo_gqa_float_window_alibi_softcap_sinks", 2, 4, 2, 6, 6, 5, 3, window_left=2, window_right=1,
        alibi="geometric", softcap=1.5, sinks=True, float_mask={"shape": [2, 1, 6, 6], "neg_inf": 0.1})
    add("combo_mqa_bool_alibi_sinks_tl", 1, 4, 1, 7, 5, 3, 3, alibi="random_h", sinks=True,
        bool_mask={"shape": [4, 7, 5], "keep": 0.7})
    add("combo_alibi_causal_scale_tl", 2, 2, 2, 6, 6, 3, 3, alibi="geometric", is_causal=True, scale=0.7)
    add("combo_float_rank3_window_softcap_br", 1, 3, 3, 4, 9, 3, 3, window_left=4, window_right=0,
        causal_alignment="bottom_right", softcap=3.0, float_mask={"shape": [3, 4, 9], "neg_inf": 0.1})
    add("combo_decode_br", 2, 4, 2, 1, 9, 8, 8, is_causal=True, causal_alignment="bottom_right",
        alibi="geometric", sinks=True)
    add("combo_gqa_window_float_tl", 2, 4, 2, 7, 7, 3, 3, window_left=1, window_right=2,
        float_mask={"shape": [2, 4, 7, 7], "neg_inf": 0.1}, enable_gqa=True)
    add("combo_softcap_sinks_hidden_rows", 2, 2, 2, 5, 4, 3, 3, softcap=1.0, sinks=True,
        float_mask={"shape": [2, 1, 5, 4], "hide_rows": [4], "neg_inf": 0.2})

    # 15. Random mixtures: each draws its options from a seeded generator, for breadth.
    mix = torch.Generator().manual_seed(20240501)

    def pick(n):
        return int(torch.randint(n, (1,), generator=mix))

    for n in range(30):
        B, Hkv = 1 + pick(2), 1 + pick(2)
        Hq = Hkv * (1 + pick(2))
        Lq, Lk, Dk, Dv = 1 + pick(9), 1 + pick(9), 1 + pick(6), 1 + pick(6)
        kw = {"causal_alignment": "bottom_right" if pick(2) else "top_left"}
        tags = []
        mask_kind = pick(4)  # 0 none, 1 causal, 2 bool, 3 float
        if mask_kind == 1:
            kw["is_causal"] = True
            tags.append("causal")
        elif mask_kind in (2, 3):
            full = [B, Hq, Lq, Lk]
            rank = 2 + pick(3)
            mshape = full[4 - rank:]
            mshape = [1 if pick(3) == 0 else d for d in mshape]
            if mask_kind == 2:
                kw["bool_mask"] = {"shape": mshape, "keep": 0.75}
                tags.append(f"bool{rank}")
            else:
                kw["float_mask"] = {"shape": mshape, "neg_inf": 0.15}
                tags.append(f"float{rank}")
        if pick(3) == 0:
            kw["window_left"], kw["window_right"] = pick(4) - 1, pick(4) - 1
            tags.append("window")
        if pick(3) == 0:
            kw["alibi"] = ["geometric", "random_h", "random_bh"][pick(3)]
            tags.append("alibi")
        if pick(3) == 0:
            kw["softcap"] = [0.5, 1.0, 2.0, 10.0][pick(4)]
            tags.append("softcap")
        if pick(3) == 0:
            kw["sinks"] = True
            tags.append("sinks")
        if pick(3) == 0:
            kw["scale"] = [0.2, 0.5, 1.0, 1.7][pick(4)]
            tags.append("scale")
        if Hq != Hkv:
            tags.append("gqa")
        if any(k in kw for k in ("is_causal", "window_left", "alibi")):
            tags.append("br" if kw["causal_alignment"] == "bottom_right" else "tl")
        add(f"mix{n:02d}_" + ("_".join(tags) if tags else "plain"), B, Hq, Hkv, Lq, Lk, Dk, Dv, **kw)

    # Every fifth config also runs on the [B, L, H, D] layout (a strided view).
    for n, spec in enumerate(out):
        if n % 5 == 2:
            spec.layout = "bshd"
    return out


# ----------------------------------------------------------------------------
# Coverage summary (printed, and pasted into README.md)
# ----------------------------------------------------------------------------

def coverage(configs):
    def has(c, what):
        o, s, e = c["options"], c["shape"], c["expected"]
        lse = [x for x in e["lse"]["data"]]
        return {
            "causal top-left": o["is_causal"] and o["causal_alignment"] == "top_left",
            "causal bottom-right": o["is_causal"] and o["causal_alignment"] == "bottom_right",
            "window": o["window_left"] >= 0 or o["window_right"] >= 0,
            "bool mask": o["bool_mask"] is not None,
            "float mask": o["float_mask"] is not None,
            "ALiBi": o["alibi_slopes"] is not None,
            "softcap": o["softcap"] > 0,
            "sinks": o["sinks"] is not None,
            "custom scale": o["scale"] is not None,
            "GQA/MQA (Hq != Hkv)": s["Hq"] != s["Hkv"],
            "Lq != Lk": s["Lq"] != s["Lk"],
            "Dk != Dv": s["Dk"] != s["Dv"],
            "empty Lq or Lk": s["Lq"] == 0 or s["Lk"] == 0,
            "row that sees no key": (o["sinks"] is None and "-inf" in lse) or
                                    (o["sinks"] is not None and _sink_rows_hidden(c)),
            "NaN/Inf in hidden key/value": c["poisoned"],
            "[B, L, H, D] strided layout": c["layout"] == "bshd",
            "return_weights checked": "weights" in e,
            "d_float_mask checked": "d_float_mask" in e,
        }[what]

    features = ["causal top-left", "causal bottom-right", "window", "bool mask", "float mask", "ALiBi", "softcap",
                "sinks", "custom scale", "GQA/MQA (Hq != Hkv)", "Lq != Lk", "Dk != Dv", "empty Lq or Lk",
                "row that sees no key", "NaN/Inf in hidden key/value", "[B, L, H, D] strided layout",
                "return_weights checked", "d_float_mask checked"]
    lines = ["| option | configs | of which torch SDPA | shapes (B×Hq/Hkv×Lq×Lk×Dk/Dv) seen |", "|---|---|---|---|"]
    for f in features:
        cs = [c for c in configs if has(c, f)]
        shapes = sorted({(c["shape"]["B"], c["shape"]["Hq"], c["shape"]["Hkv"], c["shape"]["Lq"], c["shape"]["Lk"],
                          c["shape"]["Dk"], c["shape"]["Dv"]) for c in cs})
        torch_n = sum(c["source"] == "torch_sdpa" for c in cs)
        lo = [min(s[i] for s in shapes) for i in range(7)] if shapes else []
        hi = [max(s[i] for s in shapes) for i in range(7)] if shapes else []
        rng = " ".join(f"{k}:{a}-{b}" for k, a, b in zip(("B", "Hq", "Hkv", "Lq", "Lk", "Dk", "Dv"), lo, hi))
        lines.append(f"| {f} | {len(cs)} | {torch_n} | {len(shapes)} distinct; {rng} |")
    def mask_shape(shape):
        names = "BHQK"[4 - len(shape):]
        return "[" + ",".join("1" if d == 1 else x for d, x in zip(shape, names)) + "]"

    bm_shapes = sorted({mask_shape(c["options"]["bool_mask"]["shape"]) for c in configs if c["options"]["bool_mask"]})
    fm_shapes = sorted({mask_shape(c["options"]["float_mask"]["shape"]) for c in configs if c["options"]["float_mask"]})
    lines.append("")
    lines.append(f"Bool mask shapes (B=batch, H=heads, Q=Lq, K=Lk, 1=broadcast): {' '.join(bm_shapes)}")
    lines.append(f"Float mask shapes: {' '.join(fm_shapes)}")
    lines.append(f"Total: {len(configs)} configs, {sum(c['source'] == 'torch_sdpa' for c in configs)} stored from "
                 f"torch's SDPA (and matched by the explicit computation), "
                 f"{sum(c['source'] == 'explicit' for c in configs)} from the explicit computation (softcap/sinks).")
    return "\n".join(lines)


def _sink_rows_hidden(c):
    # With sinks, a row that sees no key has lse = sink[h] (finite), so look
    # for its other sign instead: an output row that is exactly 0.
    o = c["expected"]["output"]
    Dv = c["shape"]["Dv"]
    data = o["data"]
    return Dv > 0 and any(all(x == 0 for x in data[r * Dv:(r + 1) * Dv]) for r in range(len(data) // Dv))


def main():
    torch.use_deterministic_algorithms(True)
    here = os.path.dirname(os.path.abspath(__file__))
    configs = [make_config(spec, n) for n, spec in enumerate(specs())]
    names = [c["name"] for c in configs]
    assert len(set(names)) == len(names), "config names must be unique"
    doc = {
        "format": 1,
        "generator": "tests/golden/make_sdpa_golden.py",
        "torch_version": torch.__version__,
        "configs": configs,
    }
    path = os.path.join(here, "sdpa_golden.json")
    with open(path, "w") as f:
        f.write("{\n")
        for key in ("format", "generator", "torch_version"):
            f.write(f"  {json.dumps(key)}: {json.dumps(doc[key])},\n")
        f.write('  "configs": [\n')
        # One config per line: a regenerated file diffs line by line.
        f.write(",\n".join("    " + json.dumps(c, separators=(",", ":"), allow_nan=False) for c in configs))
        f.write("\n  ]\n}\n")
    print(f"wrote {len(configs)} configs to {path} ({os.path.getsize(path) / 1e6:.2f} MB)")
    print(coverage(configs))


if __name__ == "__main__":
    main()

"""attn.varlen_attention: FlashAttention's ``flash_attn_varlen_func`` arguments, attn's kernels.

A packed batch holds its sequences one after another, without padding::

    q [total_q, Hq, Dk]   k [total_k, Hkv, Dk]   v [total_k, Hkv, Dv]
    cu_seqlens_q = [0, Lq_0, Lq_0 + Lq_1, ...]   (int32 or int64, length batch + 1)

Sequence ``b`` attends only to its own keys, exactly as
``scaled_dot_product_attention`` on that sequence alone would; the C++ library
runs each sequence on zero-copy views of the packed tensors (attn/varlen.hpp),
so no work is spent on padding. On torch tensors the call is the operator
``torch.ops.attn.varlen`` (python/attn/_torch_ops.py) with its backward
``torch.ops.attn.varlen_backward``, differentiable with respect to q, k, v and sinks.
"""

import numbers
import sys

import numpy as np

from . import _core
from ._sdpa import _init_torch_ops, _window

_FN = "varlen_attention"


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                     softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                     deterministic=False, return_attn_probs=False, *, causal_alignment="bottom_right",
                     sinks=None, dropout_seed=None, return_lse=False):
    r"""Attention over a packed batch of variable-length sequences, with
    ``flash_attn.flash_attn_varlen_func``'s arguments and semantics.

    Shapes::

        q [total_q, Hq, Dk]   k [total_k, Hkv, Dk]   v [total_k, Hkv, Dv]   ->   out [total_q, Hq, Dv]
        cu_seqlens_q, cu_seqlens_k: [batch + 1] int32 or int64 offsets (start at 0,
            non-decreasing, end at total_q / total_k); both the same dtype.
        max_seqlen_q, max_seqlen_k: at least the longest query / key sequence.

    ``Hq`` must be a multiple of ``Hkv`` (GQA/MQA by the head ratio, as in FlashAttention).

    Args (FlashAttention's):
        dropout_p: dropout on the attention weights (pass 0.0 when evaluating).
        softmax_scale: default ``1/sqrt(Dk)``.
        causal: each sequence's query i sees its keys j <= i + Lk - Lq
            (bottom-right, FlashAttention's alignment; see ``causal_alignment``).
        window_size: ``(left, right)``: query i sees keys j with
            ``-left <= j - (i + Lk - Lq) <= right``; -1 = unbounded side.
        softcap: > 0 caps the scores as ``softcap * tanh(s / softcap)``.
        alibi_slopes: ``[Hq]`` or ``[batch, Hq]``; adds ``-slope * |i + Lk - Lq - j|``.
        deterministic: accepted for compatibility; attn is always deterministic
            (the same inputs give the same bits for any thread count).
        return_attn_probs: return ``(out, softmax_lse, None)`` as FlashAttention's
            ``(out, softmax_lse, S_dmask)``; the probabilities themselves are not
            returned (FlashAttention's are for testing only).

    Keyword-only extras:
        causal_alignment: ``"bottom_right"`` (default, FlashAttention's) or
            ``"top_left"`` (PyTorch's ``is_causal``, per sequence). Also places
            the window and the ALiBi diagonal.
        sinks: ``[Hq]`` attention-sink logits (in each row's softmax denominator).
        dropout_seed: the counter-based dropout mask's seed; sequence ``b`` draws
            what ``attn.scaled_dot_product_attention`` draws for batch index ``b``
            of the padded batch with the same seed. Default: from attn's generator.
        return_lse: return ``(out, softmax_lse)``.

    ``softmax_lse`` is ``[Hq, total_q]`` (FlashAttention's varlen layout), natural
    log, ``-inf`` for a query whose sequence has no key (its output is 0). It
    carries no gradient.

    Tensors: torch (CPU; float32 and float64 computed as given, float16 and
    bfloat16 in float32 and returned in their dtype) or numpy arrays (out as
    numpy; not differentiable).

    Raises:
        ValueError / attn.ShapeError naming the argument (bad offsets, a
        max_seqlen below a sequence's length, mismatched shapes or heads, bad
        option values); TypeError for a wrong type or dtype.
    """
    if causal_alignment == "bottom_right":
        bottom_right = True
    elif causal_alignment == "top_left":
        bottom_right = False
    else:
        raise ValueError(f"{_FN}: causal_alignment is {causal_alignment!r}, expected 'bottom_right' or 'top_left'")
    for name, x in (("max_seqlen_q", max_seqlen_q), ("max_seqlen_k", max_seqlen_k)):
        if not isinstance(x, numbers.Integral) or isinstance(x, bool):
            raise TypeError(f"{_FN}: {name} is {x!r}, expected an int")
    if type(causal) is not bool and not isinstance(causal, np.bool_):
        raise TypeError(f"{_FN}: causal is {causal!r}, expected True or False")
    window_left, window_right = _window(window_size, _FN)
    dropout_p = float(dropout_p)
    if dropout_seed is None:
        dropout_seed = _core.random64() if dropout_p > 0.0 else 0
    elif not isinstance(dropout_seed, numbers.Integral) or isinstance(dropout_seed, bool):
        raise TypeError(f"{_FN}: dropout_seed is {dropout_seed!r}, expected an int")
    dropout_seed = int(dropout_seed) & 0xFFFFFFFFFFFFFFFF
    options = (bool(causal), bottom_right, window_left, window_right,
               None if softmax_scale is None else float(softmax_scale), dropout_p)

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(q, torch.Tensor):
        out, lse = _torch_call(torch, q, k, v, cu_seqlens_q, cu_seqlens_k, int(max_seqlen_q), int(max_seqlen_k),
                               alibi_slopes, sinks, options, dropout_seed, float(softcap))
    else:
        q, k, v = (np.asarray(x) for x in (q, k, v))
        dtype = q.dtype
        out, lse = _core.varlen_forward(
            q, k, v, np.asarray(cu_seqlens_q), np.asarray(cu_seqlens_k), int(max_seqlen_q), int(max_seqlen_k),
            None if alibi_slopes is None else np.asarray(alibi_slopes, dtype=dtype),
            None if sinks is None else np.asarray(sinks, dtype=dtype), *options, dropout_seed, float(softcap), 0)

    if return_attn_probs:
        return out, lse, None
    if return_lse:
        return out, lse
    return out


def _torch_call(torch, q, k, v, cu_q, cu_k, max_q, max_k, alibi_slopes, sinks, options, seed, softcap):
    """torch.ops.attn.varlen on CPU torch tensors; float16/bfloat16 computed in float32."""
    _init_torch_ops()  # defines torch.ops.attn.* (python/attn/_torch_ops.py)
    named = (("k", k), ("v", v), ("cu_seqlens_q", cu_q), ("cu_seqlens_k", cu_k), ("alibi_slopes", alibi_slopes),
             ("sinks", sinks))
    for name, x in named:
        if x is not None and not isinstance(x, torch.Tensor):
            raise TypeError(f"{_FN}: q is a torch.Tensor but {name} is {type(x).__name__}; pass torch tensors")
    for name, x in (("q", q),) + named:
        if x is not None and not x.is_cpu:
            raise TypeError(f"{_FN}: {name} is on {x.device}; attn computes on the CPU (move it with .cpu())")
    cast_back = None
    if q.dtype in (torch.float16, torch.bfloat16):
        cast_back = q.dtype
        q, k, v = q.float(), k.float(), v.float()
    dtype = q.dtype
    if alibi_slopes is not None:
        if alibi_slopes.requires_grad and torch.is_grad_enabled():
            raise ValueError(f"{_FN}: gradients with respect to alibi_slopes are not supported; "
                             "pass alibi_slopes.detach()")
        alibi_slopes = alibi_slopes.to(dtype)
    if sinks is not None and sinks.dtype != dtype:
        sinks = sinks.to(dtype)
    signed_seed = seed - (1 << 64) if seed >= (1 << 63) else seed  # the op's int is int64
    out, lse = torch.ops.attn.varlen(q, k, v, cu_q, cu_k, max_q, max_k, alibi_slopes, sinks, *options,
                                     signed_seed, softcap)
    if cast_back is not None:
        out = out.to(cast_back)
    return out, lse

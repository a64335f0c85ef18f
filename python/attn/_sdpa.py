"""attn.scaled_dot_product_attention: torch's SDPA signature, attn's kernels.

What happens on a call:

1. The inputs' kind decides the outputs' kind: torch tensors in, torch tensors
   out; numpy arrays (or anything ``numpy.asarray`` accepts) in, numpy out.
2. Ranks other than 4 are viewed as rank 4 ([B, H, L, D], torch's layout):
   [L, D] and [H, L, D] get leading 1s, [..., H, L, D] folds its batch dims
   into one, and batch dims of size 1 broadcast as in torch (views, no copy).
3. The C++ library reads the arrays in place (DLPack / buffer protocol, any
   strides: a [B, L, H, D] tensor's ``.transpose(1, 2)`` is not copied) and
   hands its output back without a copy. The GIL is released meanwhile.
4. torch tensors go through the PyTorch operator ``torch.ops.attn.sdpa``
   (python/attn/_torch_ops.py), whose autograd formula calls
   ``torch.ops.attn.sdpa_backward``: one route for eager calls, for calls
   with and without gradients, and for torch.compile / torch.export, which
   trace through the ops. Gradients reach query, key, value, a float
   ``attn_mask`` and ``sinks``.
"""

import numbers
import sys

import numpy as np

from . import _core

_modules = sys.modules

_FN = "scaled_dot_product_attention"


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, enable_gqa=False, *, causal_alignment="top_left",
                                 window=None, alibi_slopes=None, softcap=0.0, sinks=None,
                                 dropout_seed=None, return_lse=False, return_weights=False):
    r"""Scaled dot-product attention, ``torch.nn.functional.scaled_dot_product_attention``'s
    arguments and semantics, computed by attn's C++ library.

    Shapes (torch's SDPA layout; any strides)::

        query [..., Hq, Lq, Dk]   key [..., Hkv, Lk, Dk]   value [..., Hkv, Lk, Dv]
        output [..., Hq, Lq, Dv]

    ``Hq`` must equal ``Hkv`` unless ``enable_gqa`` (then a multiple of it).

    Args (torch's):
        attn_mask: bool (True = attend) or float (added to the scores; ``-inf``
            hides a key), broadcastable to ``[..., Hq, Lq, Lk]``.
        dropout_p: dropout on the attention weights (apply it only when
            training, as with torch's function).
        is_causal: query i sees keys j <= i (top-left; see ``causal_alignment``).
            Not together with ``attn_mask``.
        scale: default ``1/sqrt(Dk)``; must be finite and > 0.
        enable_gqa: allow ``Hq`` a multiple of ``Hkv`` (grouped-query attention).

    Keyword-only extras:
        causal_alignment: ``"top_left"`` (torch) or ``"bottom_right"``
            (FlashAttention's; what KV-cache decoding needs when Lq < Lk). Also
            places the window and ALiBi diagonal.
        window: ``(left, right)`` sliding window: query i sees keys j with
            ``-left <= j - i <= right``; ``-1`` or ``None`` = unbounded side.
        alibi_slopes: ``[Hq]`` or ``[B, Hq]``; adds ``-slope * |i - j|``.
        softcap: > 0 caps the scores as ``softcap * tanh(s / softcap)``.
        sinks: ``[Hq]`` attention-sink logits (in the softmax's denominator, no value).
        dropout_seed: seed of the counter-based dropout mask; default: drawn
            from attn's generator (``attn.manual_seed`` makes it reproducible).
        return_lse: also return the log-sum-exp ``[..., Hq, Lq]``.
        return_weights: also return the attention weights ``[..., Hq, Lq, Lk]``
            (after dropout).

    Returns:
        ``output``, or ``(output, lse)``, ``(output, weights)`` or
        ``(output, lse, weights)``. ``lse`` and ``weights`` are not differentiable.

    Where it differs from torch (on purpose): a query row that sees no key
    gives 0 (torch: NaN) and zero gradient; NaN/Inf in a masked key or value
    never reaches the output; dropout draws its own (counter-based) mask.

    Raises:
        ValueError (``attn.ShapeError`` for shapes) naming the argument, the
        shape or value seen and what was expected; TypeError for a wrong type,
        dtype or a mix of torch tensors and numpy arrays.
    """
    # The common call, taken first and fast: no mask and none of the extras.
    # Each check below costs tens of ns; the general route further down costs
    # µs (see bench/results/python-overhead.md).
    if (attn_mask is None and dropout_p == 0.0 and type(is_causal) is bool
            and (scale is None or type(scale) is float) and enable_gqa is False and window is None
            and alibi_slopes is None and softcap == 0.0 and sinks is None and dropout_seed is None
            and return_lse is False and return_weights is False and causal_alignment == "top_left"):
        tq = type(query)
        if tq is _ndarray:
            if (type(key) is _ndarray and type(value) is _ndarray and query.ndim == 4 and key.ndim == 4
                    and value.ndim == 4 and query.shape[0] == key.shape[0] == value.shape[0]
                    and query.dtype in _NP_FLOATS):
                return _core.sdpa_forward(query, key, value, None, None, None, is_causal, False, -1, -1, scale,
                                          0.0, 0, False, 0.0, False, False, _NUMPY)[0]
        elif _torch_sdpa is not None or _init_torch_ops():
            if (tq is _Tensor and type(key) is _Tensor and type(value) is _Tensor and query.ndim == 4
                    and key.ndim == 4 and value.ndim == 4 and query.shape[0] == key.shape[0] == value.shape[0]
                    and query.dtype in _OP_DTYPES and query.is_cpu and key.is_cpu and value.is_cpu):
                return _torch_sdpa(query, key, value, None, None, None, is_causal, False, -1, -1, scale, 0.0, 0,
                                   False, 0.0, False)[0]

    # torch is optional and never imported here: a torch tensor means the caller imported it.
    torch = _modules.get("torch")
    is_torch = torch is not None and isinstance(query, torch.Tensor)
    cast_back = None
    if is_torch:
        query, key, value, attn_mask, alibi_slopes, sinks, cast_back = _torch_inputs(
            torch, query, key, value, attn_mask, alibi_slopes, sinks)
    else:
        query, key, value, attn_mask, alibi_slopes, sinks = _numpy_inputs(
            query, key, value, attn_mask, alibi_slopes, sinks)

    # The options, in the order the core's forward and backward take them.
    if causal_alignment == "top_left":
        bottom_right = False
    elif causal_alignment == "bottom_right":
        bottom_right = True
    else:
        raise ValueError(f"{_FN}: causal_alignment is {causal_alignment!r}, "
                         "expected 'top_left' or 'bottom_right'")
    window_left, window_right = (-1, -1) if window is None else _window(window)
    dropout_p = _real("dropout_p", dropout_p)
    if dropout_seed is None:
        dropout_seed = _core.random64() if dropout_p > 0.0 else 0
    elif not isinstance(dropout_seed, numbers.Integral) or isinstance(dropout_seed, bool):
        raise TypeError(f"{_FN}: dropout_seed is {dropout_seed!r}, expected an int")
    options = (_flag("is_causal", is_causal), bottom_right, window_left, window_right,
               None if scale is None else _real("scale", scale), dropout_p,
               int(dropout_seed) & 0xFFFFFFFFFFFFFFFF, _flag("enable_gqa", enable_gqa), _real("softcap", softcap))

    # Rank 4 with one batch size (the common case) needs no reshaping.
    if (query.ndim == 4 and key.ndim == 4 and value.ndim == 4
            and query.shape[0] == key.shape[0] == value.shape[0]):
        q, k, v, mask, out_shape = query, key, value, attn_mask, None
    else:
        q, k, v, mask, out_shape = _as_rank4(query, key, value, attn_mask, is_torch)

    if not is_torch:
        out, lse, weights = _core.sdpa_forward(q, k, v, mask, alibi_slopes, sinks, *options,
                                               return_lse, return_weights, _NUMPY)
    else:
        if alibi_slopes is not None and alibi_slopes.requires_grad and torch.is_grad_enabled():
            raise ValueError(f"{_FN}: gradients with respect to alibi_slopes are not supported; "
                             "pass alibi_slopes.detach()")
        if _torch_sdpa is None:
            _init_torch_ops()
        seed = options[6]  # the op's int is int64: the same 64 bits, signed
        op_options = options[:6] + (seed - (1 << 64) if seed >= (1 << 63) else seed,) + options[7:]
        out, lse, weights = _torch_sdpa(q, k, v, mask, alibi_slopes, sinks, *op_options, return_weights)
        weights = weights if return_weights else None

    if out_shape is not None:  # back to the caller's rank / batch dims
        batch = out_shape[:-2]
        out = out.reshape(out_shape)
        if lse is not None:
            lse = lse.reshape(batch + (lse.shape[-1],))
        if weights is not None:
            weights = weights.reshape(batch + tuple(weights.shape[-2:]))
    if cast_back is not None:  # float16 / bfloat16 inputs were computed in float32
        out = out.to(cast_back)
        weights = weights.to(cast_back) if weights is not None else None
    if not (return_lse or return_weights):
        return out
    result = (out,)
    if return_lse:
        result += (lse,)
    if return_weights:
        result += (weights,)
    return result


_NUMPY = 0  # the core's outputs as numpy arrays (2 would be DLPack capsules, as the op asks)
_ndarray = np.ndarray
_NP_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_Tensor = None       # torch.Tensor, once torch is imported
_torch_sdpa = None   # torch.ops.attn.sdpa as _torch_ops.sdpa_call calls it, once defined
_OP_DTYPES = ()      # the dtypes the op computes in (torch.float32, torch.float64)


def _init_torch_ops():
    """Defines attn's torch operators (python/attn/_torch_ops.py) when the
    program has imported torch, and keeps what the fast path looks up. torch
    is never imported here: attn works without it."""
    global _Tensor, _torch_sdpa, _OP_DTYPES
    torch = _modules.get("torch")
    if torch is None:
        return False
    from . import _torch_ops  # registers torch.ops.attn.*
    _Tensor, _OP_DTYPES = torch.Tensor, (torch.float32, torch.float64)
    _torch_sdpa = _torch_ops.sdpa_call
    return True


def _flag(name, x):
    """A bool argument: True/False (numpy's too), never a truthy string or number
    (``is_causal="no"`` must not mean causal). torch's SDPA refuses them too."""
    if type(x) is bool or isinstance(x, np.bool_):
        return bool(x)
    raise TypeError(f"{_FN}: {name} is {x!r} ({type(x).__name__}), expected True or False")


def _real(name, x):
    if type(x) is float:
        return x
    if isinstance(x, numbers.Real) or (hasattr(x, "__float__") and not isinstance(x, (str, bytes))):
        return float(x)
    raise TypeError(f"{_FN}: {name} is {x!r}, expected a number")


_INT64_MAX = 2**63 - 1


def _window(window, fn=_FN):
    """(left, right) of a sliding window argument; -1 = unbounded side."""
    if window is None:
        return -1, -1
    try:
        left, right = window
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: window is {window!r}, expected a pair (left, right)") from None
    sides = []
    for name, side in (("left", left), ("right", right)):
        if side is None:
            side = -1
        if not isinstance(side, numbers.Integral) or isinstance(side, bool):
            raise TypeError(f"{fn}: window {name} is {side!r}, expected an int (-1 or None = unbounded)")
        sides.append(min(int(side), _INT64_MAX))  # wider than any sequence = unbounded
    return sides[0], sides[1]


def _numpy_inputs(query, key, value, attn_mask, alibi_slopes, sinks):
    named = (("query", query), ("key", key), ("value", value), ("attn_mask", attn_mask),
             ("alibi_slopes", alibi_slopes), ("sinks", sinks))
    torch = _modules.get("torch")
    if torch is not None:
        for name, x in named:
            if isinstance(x, torch.Tensor):
                raise TypeError(f"{_FN}: {name} is a torch.Tensor but query is not; "
                                "pass all torch tensors or all numpy arrays")
    query = query if isinstance(query, np.ndarray) else np.asarray(query)
    key = key if isinstance(key, np.ndarray) else np.asarray(key)
    value = value if isinstance(value, np.ndarray) else np.asarray(value)
    for name, x in (("query", query), ("key", key), ("value", value)):
        if x.dtype.kind not in "fiub":  # numbers; the core names the dtype it wants
            raise TypeError(f"{_FN}: {name} is an array of {x.dtype} (from {type(x).__name__}), "
                            "expected float32 or float64 numbers")
    dtype = query.dtype
    if attn_mask is not None:
        attn_mask = np.asarray(attn_mask)
        if attn_mask.dtype != np.bool_ and attn_mask.dtype != dtype:
            if attn_mask.dtype.kind != "f":
                raise TypeError(f"{_FN}: attn_mask has dtype {attn_mask.dtype}, expected bool "
                                "(True = attend) or a float dtype (added to the scores)")
            attn_mask = attn_mask.astype(dtype)
    if alibi_slopes is not None:
        alibi_slopes = np.asarray(alibi_slopes, dtype=dtype)
    if sinks is not None:
        sinks = np.asarray(sinks, dtype=dtype)
    return query, key, value, attn_mask, alibi_slopes, sinks


def _torch_inputs(torch, query, key, value, attn_mask, alibi_slopes, sinks):
    Tensor = torch.Tensor
    if (attn_mask is None and alibi_slopes is None and sinks is None and isinstance(key, Tensor)
            and isinstance(value, Tensor) and query.is_cpu and key.is_cpu and value.is_cpu
            and query.dtype not in (torch.float16, torch.bfloat16)):
        return query, key, value, None, None, None, None  # the common case, checked quickly
    for name, x in (("key", key), ("value", value), ("attn_mask", attn_mask), ("alibi_slopes", alibi_slopes),
                    ("sinks", sinks)):
        if x is not None and not isinstance(x, Tensor):
            raise TypeError(f"{_FN}: query is a torch.Tensor but {name} is {type(x).__name__}; "
                            "pass all torch tensors or all numpy arrays")
    for name, x in (("query", query), ("key", key), ("value", value), ("attn_mask", attn_mask),
                    ("alibi_slopes", alibi_slopes), ("sinks", sinks)):
        if x is not None and not x.is_cpu:
            raise TypeError(f"{_FN}: {name} is on {x.device}; attn computes on the CPU "
                            "(move it with .cpu())")
    cast_back = None
    dtype = query.dtype
    if dtype in (torch.float16, torch.bfloat16):  # computed in float32, returned in dtype
        if key.dtype != dtype or value.dtype != dtype:
            raise TypeError(f"{_FN}: query, key and value have dtypes {query.dtype}, {key.dtype}, "
                            f"{value.dtype}; expected one dtype")
        cast_back, dtype = dtype, torch.float32
        query, key, value = query.float(), key.float(), value.float()
    if attn_mask is not None and attn_mask.dtype != torch.bool and attn_mask.dtype != dtype:
        if not attn_mask.is_floating_point():
            raise TypeError(f"{_FN}: attn_mask has dtype {attn_mask.dtype}, expected torch.bool "
                            "(True = attend) or a float dtype (added to the scores)")
        attn_mask = attn_mask.to(dtype)
    if alibi_slopes is not None and alibi_slopes.dtype != dtype:
        alibi_slopes = alibi_slopes.to(dtype)
    if sinks is not None and sinks.dtype != dtype:
        sinks = sinks.to(dtype)
    return query, key, value, attn_mask, alibi_slopes, sinks, cast_back


def _as_rank4(query, key, value, attn_mask, is_torch):
    """Views query/key/value (and the mask) as rank 4 [B, H, L, D].

    Returns (q, k, v, mask, out_shape); out_shape is None when the inputs
    were rank 4 with equal batch sizes (nothing to undo), else the shape the
    output must be given back.
    """
    nd = query.ndim
    if key.ndim != nd or value.ndim != nd:
        raise ValueError(f"{_FN}: query, key and value have shapes {_shape(query)}, {_shape(key)}, "
                         f"{_shape(value)}; expected the same rank (at least 2: [..., L, D])")
    if nd < 2:
        raise ValueError(f"{_FN}: query has shape {_shape(query)}, expected at least rank 2 "
                         "([L, D], [H, L, D] or [B, H, L, D])")
    if nd == 4 and query.shape[0] == key.shape[0] == value.shape[0]:
        return query, key, value, attn_mask, None
    if nd < 4:
        lead = (1,) * (4 - nd)
        out_shape = tuple(query.shape[:-1]) + (value.shape[-1],)
        q = query.reshape(lead + tuple(query.shape))
        k = key.reshape(lead + tuple(key.shape))
        v = value.reshape(lead + tuple(value.shape))
        if attn_mask is not None and attn_mask.ndim > nd:
            raise ValueError(f"{_FN}: attn_mask has shape {_shape(attn_mask)}, which cannot "
                             f"broadcast to {list(query.shape[:-1]) + [key.shape[-2]]}")
        return q, k, v, attn_mask, out_shape
    # Rank >= 4: broadcast the batch dims (all but heads, L, D), then fold them into one.
    try:
        batch = tuple(np.broadcast_shapes(tuple(query.shape[:-3]), tuple(key.shape[:-3]),
                                          tuple(value.shape[:-3])))
    except ValueError:
        raise ShapeError(f"{_FN}: the batch dims of query {_shape(query)}, key {_shape(key)} and "
                         f"value {_shape(value)} do not broadcast") from None
    B = int(np.prod(batch, dtype=np.int64))

    def fold(x):
        full = batch + tuple(x.shape[-3:])
        x = _expand(x, full, is_torch)
        return x.reshape((B,) + full[-3:])

    q, k, v = fold(query), fold(key), fold(value)
    mask = attn_mask
    if mask is not None:
        rank = len(batch) + 3
        if mask.ndim > rank:
            raise ShapeError(f"{_FN}: attn_mask has shape {_shape(mask)}, which cannot broadcast "
                             f"to {list(batch) + [query.shape[-3], query.shape[-2], key.shape[-2]]}")
        mask = mask.reshape((1,) * (rank - mask.ndim) + tuple(mask.shape))
        if all(s == 1 for s in mask.shape[:-3]):  # shared by every batch: the library broadcasts it
            mask = mask.reshape((1,) + tuple(mask.shape[-3:]))
        else:
            mask = _expand(mask, batch + tuple(mask.shape[-3:]), is_torch, what="attn_mask")
            mask = mask.reshape((B,) + tuple(mask.shape[-3:]))
    out_shape = batch + (query.shape[-3], query.shape[-2], value.shape[-1])
    return q, k, v, mask, out_shape


def _expand(x, shape, is_torch, what=None):
    if tuple(x.shape) == tuple(shape):
        return x
    try:
        return x.expand(shape) if is_torch else np.broadcast_to(x, shape)
    except (RuntimeError, ValueError):
        name = what or "an input"
        raise ShapeError(f"{_FN}: {name} has shape {_shape(x)}, which cannot broadcast to "
                         f"{list(shape)}") from None


def _shape(x):
    return list(x.shape)


ShapeError = _core.ShapeError

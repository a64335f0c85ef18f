"""attn.inference — the KV cache, the decode step, split-KV merging, RoPE and
multi-head latent attention (MLA), for numpy arrays and torch CPU tensors.

The C++ API (include/attn/kv_cache.hpp, rope.hpp, mla.hpp) with its names::

    cache = attn.KVCache(num_kv_heads=8, capacity=4096, head_dim=128, dtype="bfloat16")
    for t in range(steps):
        cache.append(0, k_t, v_t)                       # [B, Hkv, 1, D] each, written in place
        out = attn.attention_decode(q_t, cache, 0, enable_gqa=True)   # q_t [B, Hq, 1, D]

Inputs are read in place (any strides: a ``[B, L, H, D]`` tensor viewed with
``.transpose(1, 2)`` needs no copy); outputs are the library's own buffers
handed to numpy or torch without a copy (numpy in -> numpy out, torch in ->
torch out). Keys, values and queries are float32 (other float dtypes are
converted, which copies; anything else is a TypeError naming the argument).
Errors from the library arrive as ``attn.ShapeError`` (a ValueError) or
``ValueError`` with a message naming the argument, the shape seen and the
shape expected.
"""

import numbers

import numpy as np

from . import _core
from ._sdpa import _window
from ._util import NUMPY, TORCH, framework_of, is_torch, torch_module
from .nn import _NotesLayer

__all__ = ["KVCache", "attention_decode", "merge_attention_partials", "apply_rope", "apply_rope_backward",
           "RopeOptions", "MultiHeadLatentAttention", "MLADecoder"]



# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------


def _float32(x, what, fn):
    """x as float32 that the core reads in place: torch tensors stay torch
    (detached; they must be on the CPU), anything else goes through numpy.
    Other float dtypes are converted (a copy); non-float dtypes raise TypeError."""
    if is_torch(x):
        torch = torch_module()
        if x.device.type != "cpu":
            raise TypeError(f"{fn}: {what} is on {x.device}; attn computes on the CPU (move it with .cpu())")
        if x.dtype != torch.float32:
            if not x.is_floating_point():
                raise TypeError(f"{fn}: {what} has dtype {x.dtype}, expected float32")
            x = x.to(torch.float32)
        return x.detach()
    x = np.asarray(x)
    if x.dtype != np.float32:
        if x.dtype.kind != "f":
            raise TypeError(f"{fn}: {what} has dtype {x.dtype}, expected float32")
        x = x.astype(np.float32)
    return x


def _float(x, what, fn):
    """x as float32 or float64 (kept as given), read in place."""
    if is_torch(x):
        torch = torch_module()
        if x.device.type != "cpu":
            raise TypeError(f"{fn}: {what} is on {x.device}; attn computes on the CPU (move it with .cpu())")
        if x.dtype not in (torch.float32, torch.float64):
            if not x.is_floating_point():
                raise TypeError(f"{fn}: {what} has dtype {x.dtype}, expected float32 or float64")
            x = x.to(torch.float32)
        return x.detach()
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        if x.dtype.kind != "f":
            raise TypeError(f"{fn}: {what} has dtype {x.dtype}, expected float32 or float64")
        x = x.astype(np.float32)
    return x


def _positions(p, fn):
    if p is None:
        return None
    if is_torch(p):
        torch = torch_module()
        if p.is_floating_point() or p.dtype == torch.bool or p.is_complex():
            raise TypeError(f"{fn}: positions has dtype {p.dtype}, expected an integer dtype")
        return p.detach().to(torch.int64)
    p = np.asarray(p)
    if p.dtype.kind not in "iu":
        raise TypeError(f"{fn}: positions has dtype {p.dtype}, expected an integer dtype")
    return p.astype(np.int64, copy=False)


def _int(value, what, fn):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: {what} is {value!r}, expected an int")
    return int(value)


_FRAMEWORKS = {"numpy": NUMPY, "torch": TORCH}


# ---------------------------------------------------------------------------
# RoPE
# ---------------------------------------------------------------------------


class RopeOptions:
    """Rotary position embedding settings (attn::RopeOptions).

    theta: base of the frequencies ω_i = theta^(−2i/R) (10000 by default; > 0).
    layout: ``"half"`` (GPT-NeoX / Hugging Face Llama's ``rotate_half``: pair
        (i, i + R/2)) or ``"interleaved"`` (GPT-J / RoFormer: pair (2i, 2i + 1)).
    rotary_dim: R, rotate only the first R dims (even, <= D); None = all of D.
    """

    __slots__ = ("theta", "layout", "rotary_dim")

    def __init__(self, theta=10000.0, layout="half", rotary_dim=None):
        if layout not in ("half", "interleaved"):
            raise ValueError(f"RopeOptions: layout is {layout!r}, expected 'half' or 'interleaved'")
        self.theta = float(theta)
        self.layout = layout
        self.rotary_dim = None if rotary_dim is None else _int(rotary_dim, "rotary_dim", "RopeOptions")

    def _as_tuple(self):
        return (self.theta, self.layout == "interleaved", -1 if self.rotary_dim is None else self.rotary_dim)

    def __repr__(self):
        return f"RopeOptions(theta={self.theta}, layout={self.layout!r}, rotary_dim={self.rotary_dim})"


def _rope_tuple(rope, fn):
    if rope is None:
        return None
    if rope is True:
        return RopeOptions()._as_tuple()
    if not isinstance(rope, RopeOptions):
        raise TypeError(f"{fn}: rope is {rope!r}, expected attn.RopeOptions (or True for the defaults)")
    return rope._as_tuple()


_ROPE_FUNCTION = None


def _rope_function():
    """RoPE as a torch.autograd.Function: backward is the inverse rotation (apply_rope_backward)."""
    global _ROPE_FUNCTION
    if _ROPE_FUNCTION is None:
        import torch

        class _Rope(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, start_pos, positions, options):
                ctx.rope = (start_pos, positions, options)
                return _core.apply_rope(x.detach(), start_pos, positions, options, False, TORCH)

            @staticmethod
            def backward(ctx, grad_output):
                start_pos, positions, options = ctx.rope
                g = _core.apply_rope(grad_output.detach().contiguous(), start_pos, positions, options, True, TORCH)
                return g, None, None, None

        _ROPE_FUNCTION = _Rope
    return _ROPE_FUNCTION


def apply_rope(x, positions=None, start_pos=0, *, theta=10000.0, layout="half", rotary_dim=None):
    """Rotary position embeddings (Su et al. 2021), attn::apply_rope.

    Shapes: ``x [B, H, L, D]`` (any strides; a ``[B, L, H, D]`` tensor works
    through ``.transpose(1, 2)``), ``positions [L]`` or ``[B, L]`` (integers);
    without ``positions`` token l is at ``start_pos + l``. Returns a new
    ``[B, H, L, D]`` of x's dtype (float32 or float64; other float dtypes
    are computed and returned in float32) and kind (numpy or torch).

    Pairs rotated by angle p·ω_i, ω_i = theta^(−2i/R): ``layout="half"``
    pairs (i, i + R/2) — Llama's ``x·cos + rotate_half(x)·sin``;
    ``"interleaved"`` pairs (2i, 2i + 1). ``rotary_dim`` R rotates only the
    first R dims. Differentiable for torch tensors that require grad.

    Raises attn.ShapeError (x not rank 4, positions not [L] / [B, L]),
    ValueError (odd or too large rotary_dim, theta <= 0, negative positions),
    TypeError (x not float, positions not integer).
    """
    fn = "apply_rope"
    options = RopeOptions(theta, layout, rotary_dim)._as_tuple()
    start_pos = _int(start_pos, "start_pos", fn)
    pos = _positions(positions, fn)
    if is_torch(x):
        torch = torch_module()
        if pos is not None and not is_torch(pos):
            pos = torch.from_numpy(pos)
        if x.requires_grad and torch.is_grad_enabled():
            if x.dtype not in (torch.float32, torch.float64):
                raise TypeError(f"{fn}: x has dtype {x.dtype}, expected float32 or float64")
            return _rope_function().apply(x, start_pos, pos, options)
        return _core.apply_rope(_float(x, "x", fn), start_pos, pos, options, False, TORCH)
    if pos is not None and is_torch(pos):
        pos = pos.numpy()
    return _core.apply_rope(_float(x, "x", fn), start_pos, pos, options, False, NUMPY)


def apply_rope_backward(grad_output, positions=None, start_pos=0, *, theta=10000.0, layout="half",
                        rotary_dim=None):
    """dL/dx given dL/dy of :func:`apply_rope` (the rotation by the opposite
    angle); the same shapes and arguments."""
    fn = "apply_rope_backward"
    options = RopeOptions(theta, layout, rotary_dim)._as_tuple()
    pos = _positions(positions, fn)
    fw = framework_of(grad_output)
    if pos is not None:
        if fw == TORCH and not is_torch(pos):
            pos = torch_module().from_numpy(pos)
        elif fw == NUMPY and is_torch(pos):
            pos = pos.numpy()
    return _core.apply_rope(_float(grad_output, "grad_output", fn), _int(start_pos, "start_pos", fn), pos,
                            options, True, fw)


# ---------------------------------------------------------------------------
# KV cache
# ---------------------------------------------------------------------------


def _storage_name(dtype):
    """"float32" / "bfloat16" / "int8" from a string, numpy dtype or torch dtype."""
    torch = torch_module()
    if torch is not None and isinstance(dtype, torch.dtype):
        names = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.int8: "int8"}
        if dtype in names:
            return names[dtype]
    elif isinstance(dtype, str) and dtype in ("float32", "bfloat16", "int8"):
        return dtype
    else:
        try:
            d = np.dtype(dtype)
        except TypeError:
            d = None
        if d == np.float32:
            return "float32"
        if d == np.int8:
            return "int8"
    raise TypeError(f"KVCache: dtype is {dtype!r}, expected 'float32', 'bfloat16' or 'int8'")


class KVCache:
    """Keys and values of past tokens, per layer, appended in place (attn::KVCache).

    Storage per layer (each sequence b of the batch has its own length: varlen):
      contiguous (``page_size=0``): keys ``[B, Hkv, capacity, Dk]``, values
        ``[B, Hkv, capacity, Dv]``;
      paged (``page_size > 0``, vLLM / FlashAttention's block_table): a pool
        of ``num_pages`` pages ``[num_pages, Hkv, page_size, D]`` and a page
        table per sequence; ``window_tokens=W`` (paged only) keeps just the
        last W tokens, giving back the pages the window no longer sees.

    ``dtype`` (the C++ ``storage``): ``"float32"`` (exact), ``"bfloat16"``
    (|error| <= 2^-8·|x|) or ``"int8"`` (per-channel scales per group of
    ``quant_group`` tokens, |error| <= half the group's channel scale); torch
    and numpy dtypes are accepted too. The decode step reads bf16/int8 in place.

    Errors: attn.ShapeError for a key/value not of shape [B, Hkv, Lnew, D];
    ValueError when a sequence would grow past ``capacity``, a paged cache runs
    out of pages, an int8 cache is given NaN/Inf, or a layer / batch index is
    out of range (nothing is written then); TypeError for non-float inputs.
    """

    def __init__(self, *, num_kv_heads, capacity, head_dim, num_layers=1, batch=1, value_dim=None,
                 dtype="float32", page_size=0, num_pages=0, window_tokens=0, quant_group=32):
        fn = "KVCache"
        args = {name: _int(v, name, fn) for name, v in (
            ("num_layers", num_layers), ("batch", batch), ("num_kv_heads", num_kv_heads), ("capacity", capacity),
            ("head_dim", head_dim), ("value_dim", -1 if value_dim is None else value_dim),
            ("page_size", page_size), ("num_pages", num_pages), ("window_tokens", window_tokens),
            ("quant_group", quant_group))}
        self._impl = _core.KVCache(storage=_storage_name(dtype), **args)
        self._fw = NUMPY  # outputs of keys()/values()/..._storage(): the kind of the last append

    # configuration (read-only)
    num_layers = property(lambda self: self._impl.num_layers)
    batch = property(lambda self: self._impl.batch)
    num_kv_heads = property(lambda self: self._impl.num_kv_heads)
    capacity = property(lambda self: self._impl.capacity)
    head_dim = property(lambda self: self._impl.head_dim)
    value_dim = property(lambda self: self._impl.value_dim)
    page_size = property(lambda self: self._impl.page_size)
    num_pages = property(lambda self: self._impl.num_pages)
    window_tokens = property(lambda self: self._impl.window_tokens)
    dtype = property(lambda self: self._impl.storage, doc="'float32', 'bfloat16' or 'int8'")
    quant_group = property(lambda self: self._impl.quant_group)
    paged = property(lambda self: self._impl.paged)

    def bytes_per_token(self):
        """Bytes one token occupies in one layer (Hkv·(Dk + Dv)·4, ·2 for bf16, about ·1 for int8)."""
        return self._impl.bytes_per_token()

    def append(self, layer, key, value, *, batch_index=None, rope=None):
        """Appends Lnew tokens after each sequence's current length.

        key ``[B, Hkv, Lnew, Dk]``, value ``[B, Hkv, Lnew, Dv]`` (any strides),
        or with ``batch_index=b`` one sequence only (varlen): ``[Hkv, Lnew, D]``.
        ``rope``: an :class:`RopeOptions` (or True): each key is rotated at its
        cache position as it is written (bit-identical to appending
        ``apply_rope(key, start_pos=length)``); values are stored as given.
        """
        fn = "KVCache.append"
        k = _float32(key, "key", fn)
        v = _float32(value, "value", fn)
        self._impl.append(_int(layer, "layer", fn), None if batch_index is None else _int(batch_index, "batch_index", fn),
                          k, v, _rope_tuple(rope, fn))
        self._fw = framework_of(k)

    def length(self, layer=0, b=0):
        """Tokens held by sequence b in ``layer``."""
        return self._impl.length(layer, b)

    def lengths(self, layer=0):
        """The length of every sequence of ``layer`` (a list of B ints)."""
        return list(self._impl.lengths(layer))

    def clear(self, b=None):
        """Forgets every token (b None), or those of sequence b in every layer; memory is kept."""
        if b is None:
            self._impl.clear()
        else:
            self._impl.clear_sequence(_int(b, "b", "KVCache.clear"))

    def _framework(self, framework):
        if framework is None:
            return self._fw
        if framework not in _FRAMEWORKS:
            raise ValueError(f"KVCache: framework is {framework!r}, expected 'numpy' or 'torch'")
        return _FRAMEWORKS[framework]

    def key_storage(self, layer=0, *, framework=None):
        """The whole key storage of ``layer`` of a float32 cache, a view (no
        copy; writes reach the cache): ``[B, Hkv, capacity, Dk]``, paged the
        pool ``[num_pages, Hkv, page_size, Dk]``. ValueError for bf16/int8.
        ``framework``: "numpy" or "torch" (default: the kind last appended)."""
        return self._impl.key_storage(layer, self._framework(framework))

    def value_storage(self, layer=0, *, framework=None):
        """As :meth:`key_storage`, for values (``Dv``)."""
        return self._impl.value_storage(layer, self._framework(framework))

    def keys(self, layer=0, b=0, *, framework=None):
        """The filled keys of sequence b, ``[1, Hkv, length, Dk]`` float32: a
        view of a contiguous float32 cache, else a gathered / dequantised copy
        (positions a sliding window dropped are NaN)."""
        return self._impl.keys(layer, b, self._framework(framework))

    def values(self, layer=0, b=0, *, framework=None):
        """As :meth:`keys`, for values ``[1, Hkv, length, Dv]``."""
        return self._impl.values(layer, b, self._framework(framework))

    def page_table(self, layer=0, b=0):
        """Paged: the physical pages of sequence b, in token order."""
        return list(self._impl.page_table(layer, b))

    def free_pages(self, layer=0):
        """Paged: pages of ``layer`` not held by any sequence."""
        return self._impl.free_pages(layer)

    def first_kept(self, layer=0, b=0):
        """The first position of sequence b still stored (> 0 once a sliding window dropped pages)."""
        return self._impl.first_kept(layer, b)

    def __repr__(self):
        return (f"KVCache(num_layers={self.num_layers}, batch={self.batch}, num_kv_heads={self.num_kv_heads}, "
                f"capacity={self.capacity}, head_dim={self.head_dim}, value_dim={self.value_dim}, "
                f"dtype={self.dtype!r}, page_size={self.page_size}, window_tokens={self.window_tokens})")


def attention_decode(query, cache, layer=0, *, is_causal=True, causal_alignment="bottom_right", window=None,
                     scale=None, enable_gqa=False, alibi_slopes=None, softcap=0.0, sinks=None, rope=None,
                     split_keys=0, return_lse=False):
    """One decode step of attention against ``cache``'s ``layer`` (attn::attention_decode).

    Shapes: ``query [B, Hq, Lq, Dk]`` (any strides): the Lq newest tokens of
    each sequence, whose keys and values are already appended. Returns
    ``output [B, Hq, Lq, Dv]`` (and ``lse [B, Hq, Lq]`` with ``return_lse``),
    equal to ``scaled_dot_product_attention(query[b], keys(b), values(b))``
    over each sequence's whole prefix. The defaults are what decoding needs:
    causal with FlashAttention's bottom-right alignment (the new rows are the
    last ones); ``causal_alignment="top_left"`` is torch's.

    ``enable_gqa``: Hq a multiple of the cache's Hkv (GQA/MQA). ``window``
    (left, right), ``scale``, ``alibi_slopes`` ([Hq] or [B, Hq]), ``softcap``,
    ``sinks`` ([Hq]) as in :func:`attn.scaled_dot_product_attention`.
    ``rope``: RopeOptions (or True): query row i of sequence b is rotated at
    position length(b) − Lq + i on the fly (use with ``append(..., rope=)``).
    ``split_keys``: keys per split-KV chunk (0: chosen from the shape, never
    from the thread count, so results do not depend on it).

    Not differentiable (inference). Raises attn.ShapeError / ValueError
    naming the argument (e.g. query not [B, Hq, Lq, Dk] of the cache, heads
    not a multiple without enable_gqa, a window that would need dropped
    tokens), TypeError for a non-float query.
    """
    fn = "attention_decode"
    if not isinstance(cache, KVCache):
        raise TypeError(f"{fn}: cache is {type(cache).__name__}, expected attn.KVCache")
    if causal_alignment not in ("top_left", "bottom_right"):
        raise ValueError(f"{fn}: causal_alignment is {causal_alignment!r}, expected 'top_left' or 'bottom_right'")
    q = _float32(query, "query", fn)
    left, right = _window(window, fn)
    slopes = None if alibi_slopes is None else _float32(alibi_slopes, "alibi_slopes", fn)
    sk = None if sinks is None else _float32(sinks, "sinks", fn)
    out, lse = _core.attention_decode(
        q, cache._impl, _int(layer, "layer", fn), bool(is_causal), causal_alignment == "bottom_right", left, right,
        None if scale is None else float(scale), bool(enable_gqa), slopes, float(softcap), sk,
        _rope_tuple(rope, fn), _int(split_keys, "split_keys", fn), False, framework_of(q))
    return (out, lse) if return_lse else out


def merge_attention_partials(partial_outputs, partial_lse):
    """Merges attention over S disjoint parts of the key axis into attention
    over their union (FlashAttention's split-KV combine, by log-sum-exp).

    Shapes: ``partial_outputs [S, B, H, L, Dv]`` (each part normalised by its
    own softmax), ``partial_lse [S, B, H, L]`` (−inf for a part that saw no
    key). Returns ``(output [B, H, L, Dv], lse [B, H, L])``:
    ``lse = log Σ_s exp(lse_s)``, ``output = Σ_s exp(lse_s − lse)·output_s``;
    a row whose parts are all −inf gives 0 and −inf. float32 or float64.
    Deterministic (s = 0..S−1 in order). Not differentiable.
    """
    fn = "merge_attention_partials"
    o = _float(partial_outputs, "partial_outputs", fn)
    lse = _float(partial_lse, "partial_lse", fn)
    if framework_of(o) != framework_of(lse):
        raise TypeError(f"{fn}: partial_outputs and partial_lse mix torch tensors and numpy arrays")
    return _core.merge_attention_partials(o, lse, framework_of(o))


# ---------------------------------------------------------------------------
# Multi-head latent attention
# ---------------------------------------------------------------------------


class MultiHeadLatentAttention(_NotesLayer):
    """Multi-head latent attention (DeepSeek-V2 §2.1), attn::MultiHeadLatentAttention.

    x ``[batch, seq, d_model]`` or ``[seq, d_model]`` -> the same shape;
    causal, token i at position ``start_pos + i``. Keys and values come from
    one latent ``c_KV = W_DKV·x`` ``[kv_latent_dim]`` per token; queries from
    ``c_Q = W_DQ·x``; a decoupled RoPE part of ``rope_dim`` dims per head (one
    RoPE key ``W_KR·x`` shared by all heads)::

        q = [W_UQ·c_Q ; RoPE(W_QR·c_Q)]   k = [W_UK·c_KV ; RoPE(W_KR·x)]   v = W_UV·c_KV
        out = W_O·concat_h(softmax(q·kᵀ/√(head_dim + rope_dim) + causal)·v)

    Parameters (no biases): ``W_DQ.weight [q_latent_dim, d_model]``,
    ``W_UQ.weight [H·head_dim, q_latent_dim]``, ``W_QR.weight [H·rope_dim,
    q_latent_dim]``, ``W_DKV.weight [kv_latent_dim, d_model]``, ``W_UK.weight``
    and ``W_UV.weight [H·head_dim, kv_latent_dim]``, ``W_KR.weight [rope_dim,
    d_model]``, ``W_O.weight [d_model, H·head_dim]``. forward/backward as the
    notes' layers (attn.nn): differentiable through torch autograd, gradients
    in ``named_gradients()``. Use :class:`MLADecoder` to generate token by token.
    """

    _name = "MultiHeadLatentAttention"

    def __init__(self, d_model, num_heads, head_dim, rope_dim, kv_latent_dim, q_latent_dim, rope_theta=10000.0,
                 rope_layout="half", dtype=np.float32):
        from ._util import is_float64
        if rope_layout not in ("half", "interleaved"):
            raise ValueError(f"MultiHeadLatentAttention: rope_layout is {rope_layout!r}, "
                             "expected 'half' or 'interleaved'")
        fn = "MultiHeadLatentAttention"
        self._init((_core.MultiHeadLatentAttention32, _core.MultiHeadLatentAttention64), is_float64(dtype),
                   _int(d_model, "d_model", fn), _int(num_heads, "num_heads", fn), _int(head_dim, "head_dim", fn),
                   _int(rope_dim, "rope_dim", fn), _int(kv_latent_dim, "kv_latent_dim", fn),
                   _int(q_latent_dim, "q_latent_dim", fn), float(rope_theta), rope_layout == "interleaved")

    d_model = property(lambda self: self._impl.d_model)
    num_heads = property(lambda self: self._impl.num_heads)
    head_dim = property(lambda self: self._impl.head_dim)
    rope_dim = property(lambda self: self._impl.rope_dim)
    kv_latent_dim = property(lambda self: self._impl.kv_latent_dim)
    q_latent_dim = property(lambda self: self._impl.q_latent_dim)
    rope_theta = property(lambda self: self._impl.rope_theta)
    rope_layout = property(lambda self: "interleaved" if self._impl.interleaved else "half")

    def forward(self, x, start_pos=0):
        """x [.., seq, d_model] -> [.., seq, d_model], token i at position start_pos + i."""
        start_pos = _int(start_pos, "start_pos", self._name + ".forward")
        if start_pos == 0:
            return _NotesLayer.forward(self, x)
        if is_torch(x) and x.requires_grad and torch_module().is_grad_enabled():
            raise ValueError(f"{self._name}.forward: start_pos > 0 is for inference; "
                             "autograd through it is not supported")
        from ._util import as_input
        float64 = self.dtype == np.float64
        return self._impl.forward(as_input(x, float64, "x", self._name + ".forward"), framework_of(x), start_pos)

    def __call__(self, x, start_pos=0):
        return self.forward(x, start_pos)

    def __repr__(self):
        return (f"MultiHeadLatentAttention(d_model={self.d_model}, num_heads={self.num_heads}, "
                f"head_dim={self.head_dim}, rope_dim={self.rope_dim}, kv_latent_dim={self.kv_latent_dim}, "
                f"q_latent_dim={self.q_latent_dim})")


class MLADecoder:
    """Token-by-token MLA inference with a cache (attn::MLADecoder), from a
    :class:`MultiHeadLatentAttention` layer's weights (read at every step, so
    training in between is seen).

    ``form="absorbed"`` caches the latent c_KV and the RoPE key per token
    (kv_latent_dim + rope_dim numbers; W_UK and W_UV absorbed into the query
    and output sides), ``"naive"`` every head's keys and values, as MHA would.
    Both give the layer's forward output to float rounding.

    ``step(h)``: h ``[batch, n, d_model]``, n new tokens at positions
    length .. length + n − 1 (bottom-right causal) -> ``[batch, n, d_model]``.
    ShapeError on a wrong shape, ValueError past ``max_len``.
    """

    def __init__(self, layer, batch, max_len, form="absorbed"):
        if not isinstance(layer, MultiHeadLatentAttention):
            raise TypeError(f"MLADecoder: layer is {type(layer).__name__}, expected attn.MultiHeadLatentAttention")
        if form not in ("absorbed", "naive"):
            raise ValueError(f"MLADecoder: form is {form!r}, expected 'absorbed' or 'naive'")
        self.layer = layer  # keeps the layer (and its weights) alive
        cls = _core.MLADecoder64 if layer.dtype == np.float64 else _core.MLADecoder32
        self._impl = cls(layer._impl, _int(batch, "batch", "MLADecoder"), _int(max_len, "max_len", "MLADecoder"),
                         form == "absorbed")

    length = property(lambda self: self._impl.length)
    max_len = property(lambda self: self._impl.max_len)
    form = property(lambda self: "absorbed" if self._impl.absorbed else "naive")

    def step(self, h):
        from ._util import as_input
        fn = "MLADecoder.step"
        x = as_input(h, self.layer.dtype == np.float64, "h", fn)
        return self._impl.step(x, framework_of(x))

    def reset(self):
        self._impl.reset()

    def cache_bytes_per_token(self):
        return self._impl.cache_bytes_per_token()

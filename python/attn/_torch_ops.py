"""attn's SDPA as PyTorch operators: ``torch.ops.attn.sdpa`` and ``torch.ops.attn.sdpa_backward``.

Every call of ``attn.scaled_dot_product_attention`` on torch tensors goes through
these two ops, in eager mode as under ``torch.compile`` and ``torch.export``:

    torch.ops.attn.sdpa(query, key, value, attn_mask, alibi_slopes, sinks,
                        is_causal, bottom_right, window_left, window_right, scale,
                        dropout_p, dropout_seed, enable_gqa, softcap, return_weights)
        -> (output [B, Hq, Lq, Dv], lse [B, Hq, Lq], weights [B, Hq, Lq, Lk] or [0])

    torch.ops.attn.sdpa_backward(grad_output, query, key, value, output, lse,
                                 attn_mask, alibi_slopes, sinks, <the same options>,
                                 need_mask_grad)
        -> (d_query, d_key, d_value, d_attn_mask or [0], d_sinks or [0])

Inputs are rank 4 (``attn._sdpa`` reshapes other ranks first), float32 or
float64, on the CPU, any strides (read in place through DLPack, no copy).

What makes them ops rather than Python functions:
  * a fake (meta) kernel for each, which says the output shapes without
    computing, so torch.compile and torch.export can trace through attn;
  * an autograd formula for ``sdpa`` whose backward calls ``sdpa_backward``
    (also an op), so a compiled training step traces the backward too.

``dropout_seed`` is an int64 here (the schema's int); the core reads its bits
as uint64. ``weights`` and the optional gradients are 0-element tensors when
not asked for (an op's outputs are tensors, never None).
"""

from typing import Optional

import torch
from torch import Tensor

from . import _core

_CAPSULE = 2  # the core hands torch outputs over as bare DLPack capsules
_to_dlpack = torch.to_dlpack
_from_dlpack = torch._C._from_dlpack


_FN = "scaled_dot_product_attention"


def _dl(t, name):
    """A tensor's memory as a DLPack capsule (no copy); None stays None.

    A lazily negated view (``x.conj().imag`` has the negative bit: its memory
    holds -value) is resolved first, into a copy holding the values it stands
    for; DLPack would hand over the memory as is. Layouts DLPack cannot
    describe (sparse, mkldnn, ...) are a TypeError naming the argument."""
    if t is None:
        return None
    if t.requires_grad:
        t = t.detach()
    if t.is_neg():
        t = t.resolve_neg()
    try:
        return _to_dlpack(t)
    except (RuntimeError, BufferError, TypeError) as e:
        raise TypeError(f"{_FN}: {name} is a {t.layout} tensor of shape {list(t.shape)}, which attn "
                        f"cannot read in place ({e}); pass a dense tensor (.to_dense())") from None


def _tensor(capsule, like):
    """The core's output as a torch tensor (no copy), or a 0-element tensor for None."""
    return _from_dlpack(capsule) if capsule is not None else like.new_empty((0,))


# The schemas: the argument lists of attn._core.sdpa_forward / sdpa_backward.
_OPTIONS_SCHEMA = ("bool is_causal, bool bottom_right, int window_left, int window_right, float? scale, "
                   "float dropout_p, int dropout_seed, bool enable_gqa, float softcap")
_lib = torch.library.Library("attn", "DEF")
_lib.define("sdpa(Tensor query, Tensor key, Tensor value, Tensor? attn_mask, Tensor? alibi_slopes, "
            f"Tensor? sinks, {_OPTIONS_SCHEMA}, bool return_weights) -> (Tensor, Tensor, Tensor)")
_lib.define("sdpa_backward(Tensor grad_output, Tensor query, Tensor key, Tensor value, Tensor output, "
            f"Tensor lse, Tensor? attn_mask, Tensor? alibi_slopes, Tensor? sinks, {_OPTIONS_SCHEMA}, "
            "bool need_mask_grad) -> (Tensor, Tensor, Tensor, Tensor, Tensor)")


def sdpa(query, key, value, attn_mask, alibi_slopes, sinks, is_causal, bottom_right, window_left, window_right,
         scale, dropout_p, dropout_seed, enable_gqa, softcap, return_weights):
    """The CPU kernel of torch.ops.attn.sdpa: the library's forward, in place on the inputs' memory."""
    out, lse, weights = _core.sdpa_forward(
        _dl(query, "query"), _dl(key, "key"), _dl(value, "value"), _dl(attn_mask, "attn_mask"),
        _dl(alibi_slopes, "alibi_slopes"), _dl(sinks, "sinks"), is_causal,
        bottom_right, window_left, window_right, scale, dropout_p, dropout_seed & 0xFFFFFFFFFFFFFFFF,
        enable_gqa, softcap, True, return_weights, _CAPSULE)
    return _from_dlpack(out), _from_dlpack(lse), _tensor(weights, query)


def _sdpa_fake(query, key, value, attn_mask, alibi_slopes, sinks, is_causal, bottom_right, window_left,
               window_right, scale, dropout_p, dropout_seed, enable_gqa, softcap, return_weights):
    B, Hq, Lq, _ = query.shape
    Lk, Dv = key.shape[2], value.shape[3]
    weights = query.new_empty((B, Hq, Lq, Lk)) if return_weights else query.new_empty((0,))
    return query.new_empty((B, Hq, Lq, Dv)), query.new_empty((B, Hq, Lq)), weights


def sdpa_backward(grad_output, query, key, value, output, lse, attn_mask, alibi_slopes, sinks, is_causal,
                  bottom_right, window_left, window_right, scale, dropout_p, dropout_seed, enable_gqa, softcap,
                  need_mask_grad):
    """The CPU kernel of torch.ops.attn.sdpa_backward: the library's backward."""
    dq, dk, dv, dmask, dsinks = _core.sdpa_backward(
        _dl(grad_output, "grad_output"), _dl(query, "query"), _dl(key, "key"), _dl(value, "value"),
        _dl(output, "output"), _dl(lse, "lse"), _dl(attn_mask, "attn_mask"), _dl(alibi_slopes, "alibi_slopes"),
        _dl(sinks, "sinks"), is_causal, bottom_right, window_left, window_right, scale, dropout_p,
        dropout_seed & 0xFFFFFFFFFFFFFFFF, enable_gqa, softcap, need_mask_grad, _CAPSULE)
    return (_from_dlpack(dq), _from_dlpack(dk), _from_dlpack(dv), _tensor(dmask, query), _tensor(dsinks, query))


def _sdpa_backward_fake(grad_output, query, key, value, output, lse, attn_mask, alibi_slopes, sinks, is_causal,
                        bottom_right, window_left, window_right, scale, dropout_p, dropout_seed, enable_gqa,
                        softcap, need_mask_grad):
    dmask = attn_mask.new_empty(attn_mask.shape) if need_mask_grad else query.new_empty((0,))
    dsinks = sinks.new_empty(sinks.shape) if sinks is not None else query.new_empty((0,))
    return (query.new_empty(query.shape), key.new_empty(key.shape), value.new_empty(value.shape), dmask, dsinks)


# ---- autograd: forward saves what the backward needs; the backward is the op above ----
#
# Saved: the inputs (query, key, value, mask, ALiBi slopes, sinks), the output and
# the log-sum-exp (the backward recomputes the weights from it, FlashAttention-2's
# way), and the options, so that dropout regenerates the forward's mask.
#
# Registered as the op's Autograd kernel by hand rather than with
# torch.library.register_autograd: that generic wrapper re-reads the schema's
# defaults on every call (~60 µs here for 16 arguments, 10x the whole call).

_OPTIONS = slice(6, 15)  # is_causal .. softcap in sdpa's argument list
_below_autograd = torch._C._AutoDispatchBelowAutograd
_sdpa_op = None  # torch.ops.attn.sdpa.default, looked up once


_Tensor = torch.Tensor
_dispatch_modes = torch._C._len_torch_dispatch_stack


def _run(op, kernel, args):
    """op(*args) below autograd; for plain CPU tensors outside any dispatch mode
    (eager execution) its kernel directly, which is what the dispatcher would
    run. Traced calls (torch.compile, export: fake or functional tensors) and
    dispatch modes go through the op."""
    if type(args[0]) is _Tensor and not _dispatch_modes():
        return kernel(*args)
    with _below_autograd():
        return op(*args)


class _SdpaFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, *args):
        out, lse, weights = _run(_sdpa_op, sdpa, args)
        query, key, value, attn_mask, alibi_slopes, sinks = args[:6]
        ctx.save_for_backward(query, key, value, attn_mask, alibi_slopes, sinks, out, lse)
        ctx.options = args[_OPTIONS]
        ctx.mark_non_differentiable(lse, weights)
        return out, lse, weights

    @staticmethod
    def backward(ctx, grad_output, grad_lse, grad_weights):  # lse and weights carry no gradient
        query, key, value, attn_mask, alibi_slopes, sinks, out, lse = ctx.saved_tensors
        need_mask_grad = bool(ctx.needs_input_grad[3] and attn_mask is not None
                              and attn_mask.dtype != torch.bool)
        dq, dk, dv, dmask, dsinks = _run(torch.ops.attn.sdpa_backward.default, sdpa_backward, (
            grad_output, query, key, value, out, lse, attn_mask, alibi_slopes, sinks, *ctx.options,
            need_mask_grad))
        return (dq, dk, dv, dmask if need_mask_grad else None, None,
                dsinks if ctx.needs_input_grad[5] else None) + (None,) * 10


_any_requires_grad = torch._C._any_requires_grad
_is_grad_enabled = torch.is_grad_enabled


def _sdpa_autograd(*args):
    """The Autograd kernel: a graph node only when some input needs a gradient."""
    if _is_grad_enabled() and _any_requires_grad(*args[:6]):
        return _SdpaFunction.apply(*args)
    with _below_autograd():
        return _sdpa_op(*args)


_is_compiling = torch.compiler.is_compiling


def sdpa_call(*args):
    """torch.ops.attn.sdpa(*args) as attn.scaled_dot_product_attention calls it:
    in plain eager mode what the dispatcher would run (the Autograd kernel
    above, then the CPU kernel) without its cost (two crossings, ~9 µs of a
    small call); while tracing (torch.compile, torch.export) or under a
    dispatch mode (FlopCounterMode, FakeTensorMode, ...) the op itself."""
    if _is_compiling() or _dispatch_modes():
        return _sdpa_op(*args)
    if _is_grad_enabled() and _any_requires_grad(*args[:6]):
        return _SdpaFunction.apply(*args)
    return sdpa(*args)


_lib.impl("sdpa", sdpa, "CPU")
_lib.impl("sdpa", _sdpa_autograd, "Autograd")
_lib.impl("sdpa_backward", sdpa_backward, "CPU")
torch.library.register_fake("attn::sdpa", _sdpa_fake, lib=_lib)
torch.library.register_fake("attn::sdpa_backward", _sdpa_backward_fake, lib=_lib)
_sdpa_op = torch.ops.attn.sdpa.default


# ---- packed variable-length batches: torch.ops.attn.varlen / varlen_backward ----------------
#
#   torch.ops.attn.varlen(query [total_q, Hq, Dk], key [total_k, Hkv, Dk], value [total_k, Hkv, Dv],
#                         cu_seqlens_q [batch + 1], cu_seqlens_k [batch + 1] (int32 or int64),
#                         max_seqlen_q, max_seqlen_k, alibi_slopes, sinks, <options>)
#       -> (output [total_q, Hq, Dv], lse [Hq, total_q])
#   torch.ops.attn.varlen_backward(grad_output, query, key, value, output, lse, cu_seqlens_q,
#                                  cu_seqlens_k, max_seqlen_q, max_seqlen_k, alibi_slopes, sinks,
#                                  <options>)
#       -> (d_query, d_key, d_value, d_sinks or [0])
# The options are SDPA's less enable_gqa (always on: GQA by the head ratio) and the mask.
# Autograd through torch.library.register_autograd: a varlen call is big enough that
# its per-call cost (tens of µs) does not matter, unlike the small SDPA calls above.

_VARLEN_OPTIONS_SCHEMA = ("bool is_causal, bool bottom_right, int window_left, int window_right, float? scale, "
                          "float dropout_p, int dropout_seed, float softcap")
_lib.define("varlen(Tensor query, Tensor key, Tensor value, Tensor cu_seqlens_q, Tensor cu_seqlens_k, "
            "int max_seqlen_q, int max_seqlen_k, Tensor? alibi_slopes, Tensor? sinks, "
            f"{_VARLEN_OPTIONS_SCHEMA}) -> (Tensor, Tensor)")
_lib.define("varlen_backward(Tensor grad_output, Tensor query, Tensor key, Tensor value, Tensor output, "
            "Tensor lse, Tensor cu_seqlens_q, Tensor cu_seqlens_k, int max_seqlen_q, int max_seqlen_k, "
            f"Tensor? alibi_slopes, Tensor? sinks, {_VARLEN_OPTIONS_SCHEMA}) -> (Tensor, Tensor, Tensor, Tensor)")


def varlen(query, key, value, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, alibi_slopes, sinks,
           is_causal, bottom_right, window_left, window_right, scale, dropout_p, dropout_seed, softcap):
    """The CPU kernel of torch.ops.attn.varlen: the library's varlen_attention, in place on the inputs."""
    out, lse = _core.varlen_forward(
        _dl(query, "query"), _dl(key, "key"), _dl(value, "value"), _dl(cu_seqlens_q, "cu_seqlens_q"),
        _dl(cu_seqlens_k, "cu_seqlens_k"), max_seqlen_q, max_seqlen_k, _dl(alibi_slopes, "alibi_slopes"),
        _dl(sinks, "sinks"), is_causal, bottom_right, window_left, window_right, scale, dropout_p,
        dropout_seed & 0xFFFFFFFFFFFFFFFF, softcap, _CAPSULE)
    return _from_dlpack(out), _from_dlpack(lse)


def _varlen_fake(query, key, value, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, alibi_slopes, sinks,
                 is_causal, bottom_right, window_left, window_right, scale, dropout_p, dropout_seed, softcap):
    total_q, Hq, _ = query.shape
    return query.new_empty((total_q, Hq, value.shape[2])), query.new_empty((Hq, total_q))


def varlen_backward(grad_output, query, key, value, output, lse, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                    max_seqlen_k, alibi_slopes, sinks, is_causal, bottom_right, window_left, window_right, scale,
                    dropout_p, dropout_seed, softcap):
    """The CPU kernel of torch.ops.attn.varlen_backward."""
    dq, dk, dv, dsinks = _core.varlen_backward(
        _dl(grad_output, "grad_output"), _dl(query, "query"), _dl(key, "key"), _dl(value, "value"),
        _dl(output, "output"), _dl(lse, "lse"), _dl(cu_seqlens_q, "cu_seqlens_q"),
        _dl(cu_seqlens_k, "cu_seqlens_k"), max_seqlen_q, max_seqlen_k, _dl(alibi_slopes, "alibi_slopes"),
        _dl(sinks, "sinks"), is_causal, bottom_right, window_left, window_right, scale, dropout_p,
        dropout_seed & 0xFFFFFFFFFFFFFFFF, softcap, _CAPSULE)
    return _from_dlpack(dq), _from_dlpack(dk), _from_dlpack(dv), _tensor(dsinks, query)


def _varlen_backward_fake(grad_output, query, key, value, output, lse, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                          max_seqlen_k, alibi_slopes, sinks, is_causal, bottom_right, window_left, window_right,
                          scale, dropout_p, dropout_seed, softcap):
    dsinks = sinks.new_empty(sinks.shape) if sinks is not None else query.new_empty((0,))
    return query.new_empty(query.shape), key.new_empty(key.shape), value.new_empty(value.shape), dsinks


# Saved for the backward: every input (the options too, so dropout regenerates its
# mask), the output and the log-sum-exp (the weights are recomputed from it).
def _varlen_setup_context(ctx, inputs, output):
    query, key, value, cu_q, cu_k, max_q, max_k, alibi_slopes, sinks = inputs[:9]
    out, lse = output
    ctx.save_for_backward(query, key, value, cu_q, cu_k, alibi_slopes, sinks, out, lse)
    ctx.sizes = (max_q, max_k)
    ctx.options = inputs[9:]
    ctx.mark_non_differentiable(lse)


def _varlen_autograd_backward(ctx, grad_output, grad_lse):  # lse carries no gradient
    query, key, value, cu_q, cu_k, alibi_slopes, sinks, out, lse = ctx.saved_tensors
    dq, dk, dv, dsinks = torch.ops.attn.varlen_backward.default(
        grad_output.contiguous(), query, key, value, out, lse, cu_q, cu_k, *ctx.sizes, alibi_slopes, sinks,
        *ctx.options)
    return (dq, dk, dv, None, None, None, None, None,
            dsinks if ctx.needs_input_grad[8] else None) + (None,) * 8


_lib.impl("varlen", varlen, "CPU")
_lib.impl("varlen_backward", varlen_backward, "CPU")
torch.library.register_fake("attn::varlen", _varlen_fake, lib=_lib)
torch.library.register_fake("attn::varlen_backward", _varlen_backward_fake, lib=_lib)
torch.library.register_autograd("attn::varlen", _varlen_autograd_backward, setup_context=_varlen_setup_context,
                                lib=_lib)

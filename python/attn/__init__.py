"""attn — attention mechanisms from a C++ library, for numpy and PyTorch users.

    import attn
    out = attn.scaled_dot_product_attention(q, k, v, is_causal=True)   # torch's SDPA, same arguments

numpy arrays in -> numpy arrays out; torch tensors in -> torch tensors out,
differentiable when they require grad (so it can replace
torch.nn.functional.scaled_dot_product_attention inside a model).
attn.varlen_attention takes a packed batch of sequences of different lengths
with flash_attn_varlen_func's arguments (cu_seqlens_q/k, max_seqlen_q/k). On torch
tensors the call is the PyTorch operator torch.ops.attn.sdpa (with its
backward, torch.ops.attn.sdpa_backward), so torch.compile(fullgraph=True) and
torch.export trace through it. ``import attn.transformers`` registers attn as
the transformers attention backend "attn".

Also: attn.nn.Linear and attn.nn.TorchMultiheadAttention (torch.nn's twins,
same state_dict and initialisation; attn.nn.MultiheadAttention, torch's
spelling, is the same class), the lecture notes' layers attn.nn.SelfAttention_v1/_v2,
CausalAttention, MultiHeadAttentionWrapper and MultiHeadAttention,
attn.manual_seed / rand / randn (torch's CPU draws, bit for bit), safetensors
load/save, the lecture notes' simplified self-attention, and
``python -m attn demo``.

Inference (attn.inference): attn.KVCache (float32 / bfloat16 / int8, paged,
sliding window, varlen), attn.attention_decode, attn.merge_attention_partials,
attn.apply_rope and attn.MultiHeadLatentAttention / MLADecoder. The layers as
torch.nn.Modules (Parameters, torch autograd, torch.optim): attn.nn.torch.
"""

import numpy as _np

from . import _core
from ._core import ShapeError, get_num_threads, set_num_threads
from ._sdpa import scaled_dot_product_attention
from ._varlen import varlen_attention
from ._util import framework_of as _framework_of
from .io import load_safetensors, load_safetensors_metadata, save_safetensors
from . import nn
from . import inference
from .inference import (KVCache, MLADecoder, MultiHeadLatentAttention, RopeOptions, apply_rope,
                        apply_rope_backward, attention_decode, merge_attention_partials)

__version__ = _core.__version__

# torch.ops.attn.sdpa / sdpa_backward: defined now when the program has
# imported torch, else on the first call with torch tensors (attn never
# imports torch itself; numpy users do not pay for it).
from ._sdpa import _init_torch_ops

_init_torch_ops()

__all__ = [
    "scaled_dot_product_attention", "varlen_attention", "ShapeError", "manual_seed", "initial_seed", "rand", "randn",
    "set_num_threads", "get_num_threads", "simplified_self_attention", "normalize_rows",
    "load_safetensors", "load_safetensors_metadata", "save_safetensors", "nn",
    # inference (attn.inference): the KV cache, decoding, split-KV merging, RoPE, MLA
    "inference", "KVCache", "attention_decode", "merge_attention_partials", "apply_rope", "apply_rope_backward",
    "RopeOptions", "MultiHeadLatentAttention", "MLADecoder",
]


def manual_seed(seed):
    """Seeds attn's default generator, like ``torch.manual_seed``: afterwards
    ``attn.rand``/``randn`` and layer initialisation draw what torch's would."""
    _core.manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)


def initial_seed():
    return _core.initial_seed()


def _shape(size):
    if len(size) == 1 and not isinstance(size[0], (int, _np.integer)):
        size = tuple(size[0])
    return [int(s) for s in size]


def rand(*size, dtype=_np.float32):
    """``torch.rand(*size)`` as a numpy array: uniform [0, 1), the same numbers
    torch draws after the same ``manual_seed``."""
    return _core.rand(_shape(size), _np.dtype(dtype) == _np.float64)


def randn(*size, dtype=_np.float32):
    """``torch.randn(*size)`` as a numpy array (standard normal, torch's draws)."""
    return _core.randn(_shape(size), _np.dtype(dtype) == _np.float64)


def simplified_self_attention(inputs, normalization="softmax"):
    """The notes' self-attention without weights, for inputs X [seq, d]:
    returns (scores X·Xᵀ, weights = normalization(scores) row-wise, context
    weights·X). normalization: "softmax", "naive_softmax" or "divide_by_sum"."""
    return _core.simplified_self_attention(_float_array(inputs), normalization, _framework_of(inputs))


def normalize_rows(scores, normalization="softmax"):
    """Normalises each row of ``scores`` (along the last dim) as the notes compare."""
    return _core.normalize_rows(_float_array(scores), normalization, _framework_of(scores))


def _float_array(x):
    from ._util import is_torch
    if is_torch(x):
        return x.detach()
    return x if isinstance(x, _np.ndarray) else _np.asarray(x, dtype=_np.float32)

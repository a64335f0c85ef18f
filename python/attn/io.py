"""Safetensors files (Hugging Face's format) from Python, through attn's C++
reader and writer, which validate every byte before trusting it.

    tensors = attn.load_safetensors("model.safetensors")    # {name: numpy array}
    attn.save_safetensors("out.safetensors", layer.state_dict(), metadata={"format": "pt"})

A torch module's ``state_dict()`` can be saved directly; files written here
load with ``safetensors.torch.load_file``.
"""

import os

import numpy as np

from . import _core
from ._util import to_numpy

_INT_DTYPES = {"I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8"}



def load_safetensors(path):
    """{name: numpy array} of every tensor in the file at ``path``.

    F64 comes back as float64; F32, F16 and BF16 as float32 (exact); integer
    dtypes as int64 (exact up to 2**53); BOOL as bool. Raises OSError naming
    the file and the problem (missing, truncated, malformed header, ...).
    """
    tensors, dtypes, _ = _core.load_safetensors(os.fspath(path))
    out = {}
    for name, array in tensors.items():
        dtype = dtypes[name]
        if dtype in ("F32", "F16", "BF16") and array.dtype != np.float32:
            array = array.astype(np.float32)
        elif dtype in _INT_DTYPES:
            array = array.astype(np.int64)
        elif dtype == "BOOL":
            array = array.astype(np.bool_)
        out[name] = array
    return out


def load_safetensors_metadata(path):
    """The file's ``__metadata__`` as {str: str} (empty if it has none)."""
    return _core.load_safetensors_metadata(os.fspath(path))


def save_safetensors(path, tensors, metadata=None, dtype=None):
    """Writes ``tensors`` ({name: numpy array or torch tensor}, float32 or
    float64, any strides) and ``metadata`` ({str: str}) to ``path``.

    dtype: None writes F32 for float32 tensors and F64 for float64; "F32",
    "F64", "F16" or "BF16" converts (rounded to nearest even, as torch does).
    float16 inputs are widened to float32 first. A dict mixing float32 and
    float64 needs an explicit dtype. Raises TypeError for other dtypes,
    ValueError for bad names or dtype, OSError if the file cannot be written.
    """
    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"save_safetensors: tensor name {name!r} is not a str")
        a = to_numpy(value)
        if a.dtype == np.float16:
            a = a.astype(np.float32)
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"save_safetensors: '{name}' has dtype {a.dtype}, expected float32 or float64")
        arrays[name] = a
    kinds = {a.dtype for a in arrays.values()}
    float64 = kinds == {np.dtype(np.float64)}
    if len(kinds) > 1:
        if dtype is None:
            raise TypeError("save_safetensors: tensors mix float32 and float64; pass dtype='F32' or 'F64'")
        arrays = {n: a.astype(np.float64) for n, a in arrays.items()}  # exact; dtype decides what is written
        float64 = True
    meta = {}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"save_safetensors: metadata must map str to str, got {k!r}: {v!r}")
        meta[k] = v
    _core.save_safetensors(os.fspath(path), arrays, meta, dtype or "", float64)

"""Small helpers shared by the package: which framework an input belongs to,
and dtype conversions.

attn never imports torch itself (it is big and slow to import): an input can
only be a torch tensor if the caller has imported torch, so torch is looked
up in sys.modules when needed.
"""

import sys

import numpy as np

NUMPY, TORCH = 0, 1


def torch_module():
    """The torch module if the program has imported it, else None."""
    return sys.modules.get("torch")


def is_torch(x):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def framework_of(x):
    return TORCH if is_torch(x) else NUMPY


def is_float64(dtype):
    """True for float64 / double in any spelling, False for float32; TypeError otherwise."""
    torch = torch_module()
    if torch is not None and isinstance(dtype, torch.dtype):
        if dtype in (torch.float32, torch.float64):
            return dtype == torch.float64
    else:
        try:
            d = np.dtype(dtype)
        except TypeError:
            d = None
        if d in (np.float32, np.float64):
            return d == np.float64
    raise TypeError(f"dtype is {dtype!r}, expected float32 or float64")


def as_input(x, float64, what, fn):
    """x as an array of the layer's dtype that the C++ core can read in place
    (torch tensors stay torch tensors, detached; anything else goes through numpy)."""
    if is_torch(x):
        torch = torch_module()
        if x.device.type != "cpu":
            raise TypeError(f"{fn}: {what} is on {x.device}; attn computes on the CPU (move it with .cpu())")
        want = torch.float64 if float64 else torch.float32
        if x.dtype != want:
            if not x.is_floating_point():
                raise TypeError(f"{fn}: {what} has dtype {x.dtype}, expected a float dtype")
            x = x.to(want)
        return x.detach()
    x = np.asarray(x)
    want = np.float64 if float64 else np.float32
    if x.dtype != want:
        if x.dtype.kind != "f":
            raise TypeError(f"{fn}: {what} has dtype {x.dtype}, expected a float dtype")
        x = x.astype(want)
    return x


def as_mask(m, float64, what, fn):
    """A mask as bool, or as the layer's float dtype."""
    if m is None:
        return None
    if is_torch(m):
        torch = torch_module()
        if m.dtype == torch.bool:
            return m.detach()
        if not m.is_floating_point():
            raise TypeError(f"{fn}: {what} has dtype {m.dtype}, expected torch.bool or a float dtype")
        return as_input(m, float64, what, fn)
    m = np.asarray(m)
    if m.dtype == np.bool_:
        return m
    if m.dtype.kind != "f":
        raise TypeError(f"{fn}: {what} has dtype {m.dtype}, expected bool or a float dtype")
    return as_input(m, float64, what, fn)


def to_numpy(x):
    """A torch tensor (any device, grad or not) or array-like as a numpy array."""
    if is_torch(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)

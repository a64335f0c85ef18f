"""attn.nn — layers with torch.nn's names, arguments, state_dict keys and
initialisation (``attn.manual_seed(s)`` then ``Linear(...)`` draws the same
weights as ``torch.manual_seed(s)`` then ``torch.nn.Linear(...)``).

These are attn's own layers (C++), not torch.nn.Modules: they take numpy
arrays or torch tensors (outputs are of the input's kind) and keep their own
gradients, llm.c-style::

    y = layer(x)                 # forward; saves what backward needs
    dx = layer.backward(dy)      # accumulates into layer.named_gradients()

The lecture notes' layers (Raschka's "Build a Large Language Model (From
Scratch)", ch. 3) have the notes' names, arguments and state_dict keys:
``SelfAttention_v1`` (weights as plain [d_in, d_out] matrices),
``SelfAttention_v2`` (= ``SelfAttention``, nn.Linear projections),
``CausalAttention``, ``MultiHeadAttentionWrapper`` and ``MultiHeadAttention``.
Given a torch tensor that requires grad, their forward is differentiable:
torch's autograd calls the layer's backward, which returns dL/dx to torch and
accumulates the parameters' gradients in ``layer.named_gradients()`` (one
forward in flight per layer: each forward overwrites what the previous one
saved).

To train attention inside a torch model with torch's own parameters, use
``attn.nn.torch``: the same layers as torch.nn.Modules (nn.Parameters,
torch autograd, torch.optim), or call ``attn.scaled_dot_product_attention``
from your own torch module.

Parameters are numpy views of the layer's storage (no copy; writes change the
layer); ``torch.from_numpy(layer.weight)`` shares them with torch.
"""

import weakref

import numpy as np

from . import _core
from ._util import NUMPY, TORCH, as_input, as_mask, framework_of, is_float64, is_torch, to_numpy, torch_module


class _Module:
    """What every layer shares: parameters by torch's names, state_dict."""

    _impl = None

    def named_parameters(self):
        """{name: numpy view} in torch's order and with torch's names."""
        return self._impl.named_parameters()

    def parameters(self):
        return list(self.named_parameters().values())

    def named_gradients(self):
        """{name: numpy view of the accumulated gradient}."""
        return self._impl.named_gradients()

    def zero_grad(self):
        self._impl.zero_grad()

    def num_parameters(self):
        return self._impl.num_parameters()

    def state_dict(self):
        """{name: numpy copy}, the names torch's module uses."""
        return self._impl.state_dict()

    def load_state_dict(self, state_dict, strict=True):
        """Loads weights by name from numpy arrays or torch tensors, e.g. a torch
        module's ``state_dict()``. ``strict``: no missing or unexpected names.
        Shapes must match (attn.ShapeError); values are converted to this
        layer's dtype."""
        float64 = self.dtype == np.float64
        converted = {}
        for name, value in state_dict.items():
            a = to_numpy(value)
            converted[str(name)] = a.astype(np.float64 if float64 else np.float32, copy=False)
        self._impl.load_state_dict(converted, strict)

    def __getattr__(self, name):
        # Parameters as attributes, like a torch module: layer.in_proj_weight,
        # layer.W_query.weight, layer.heads[0].W_key.weight (numpy views).
        if self.__dict__.get("_impl") is not None and not name.startswith("_"):
            found = _lookup(self, name)
            if found is not _MISSING:
                return found
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name, value):
        # layer.W_query = array (v1) or layer.W_query.weight = array: copied
        # into the layer's storage (the shape must match).
        if not name.startswith("_") and self.__dict__.get("_impl") is not None \
                and name in self.named_parameters():
            _set_parameter(self, name, value)
        else:
            object.__setattr__(self, name, value)


_MISSING = object()


def _lookup(module, name):
    """The parameter called `name`, or a _Submodule for a prefix of names."""
    named = module.named_parameters()
    if name in named:
        return named[name]
    if any(key.startswith(name + ".") for key in named):
        return _Submodule(module, name)
    return _MISSING


def _set_parameter(module, name, value):
    view = module.named_parameters()[name]
    a = to_numpy(value)
    if a.shape != view.shape:
        from ._core import ShapeError
        raise ShapeError(f"{type(module).__name__}: parameter {name} has shape {list(view.shape)}, "
                         f"got an array of shape {list(a.shape)}")
    view[...] = a


class _Submodule:
    """A named part of a layer, as torch shows it: ``layer.W_query`` (then
    ``.weight``, ``.bias``), ``layer.heads[1]``. Reads and writes go to the
    layer's own parameters."""

    def __init__(self, owner, prefix):
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        found = _lookup(self._owner, self._prefix + "." + name)
        if found is _MISSING:
            raise AttributeError(f"{self._prefix} has no attribute {name!r}")
        return found

    def __getitem__(self, index):  # heads[0]
        found = _lookup(self._owner, f"{self._prefix}.{int(index)}")
        if found is _MISSING:
            raise IndexError(f"{self._prefix}[{index}] does not exist")
        return found

    def __setattr__(self, name, value):
        full = self._prefix + "." + name
        if full not in self._owner.named_parameters():
            raise AttributeError(f"{self._prefix} has no parameter {name!r}")
        _set_parameter(self._owner, full, value)

    def __repr__(self):
        return f"<{type(self._owner).__name__}.{self._prefix}>"


class Linear(_Module):
    """y = x·Wᵀ + b, torch.nn.Linear.

    x [..., in_features] -> y [..., out_features]; ``weight`` [out_features,
    in_features], ``bias`` [out_features] (None without bias); both drawn
    U(-1/√in, 1/√in) from attn's generator in torch's order.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        float64 = is_float64(dtype)
        self.dtype = np.float64 if float64 else np.float32
        self._impl = (_core.Linear64 if float64 else _core.Linear32)(int(in_features), int(out_features),
                                                                      bool(bias))
        self._fw = None

    in_features = property(lambda self: self._impl.in_features)
    out_features = property(lambda self: self._impl.out_features)

    @property
    def weight(self):
        return self._impl.named_parameters()["weight"]

    @property
    def bias(self):
        return self._impl.named_parameters().get("bias")

    def forward(self, input):
        float64 = self.dtype == np.float64
        self._fw = framework_of(input)
        return self._impl.forward(as_input(input, float64, "input", "Linear.forward"), self._fw)

    __call__ = forward

    def backward(self, grad_output):
        """dL/dx for dL/dy = grad_output; accumulates dL/dW, dL/db."""
        float64 = self.dtype == np.float64
        return self._impl.backward(as_input(grad_output, float64, "grad_output", "Linear.backward"),
                                   framework_of(grad_output))

    def __repr__(self):
        return (f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, dtype={np.dtype(self.dtype).name})")


class _OutProj:
    """layer.out_proj.weight / .bias, as on torch's module."""

    def __init__(self, owner):
        self._owner = owner

    @property
    def weight(self):
        return self._owner.named_parameters()["out_proj.weight"]

    @property
    def bias(self):
        return self._owner.named_parameters().get("out_proj.bias")


class TorchMultiheadAttention(_Module):
    """torch.nn.MultiheadAttention's twin: same arguments, semantics, state_dict
    names and initialisation. (Not the notes' :class:`MultiHeadAttention`;
    ``attn.nn.MultiheadAttention``, torch's spelling, is this class too.)

    Shapes (E = embed_dim): query [L, N, E], key [S, N, kdim], value [S, N, vdim]
    (batch_first: [N, L, E], ...; unbatched: [L, E], ...). Returns
    ``(attn_output, attn_weights)``; weights averaged over heads unless
    ``average_attn_weights=False``, None unless ``need_weights``.

    MASK POLARITY, as in torch's module (the opposite of SDPA's bool mask):
    ``key_padding_mask`` True = this key is padding, ignore it; ``attn_mask``
    True = NOT allowed to attend. Float masks are added to the scores.

    Differences from torch: a query that sees no key gives 0, not NaN;
    ``is_causal`` without ``attn_mask`` applies the causal mask (torch raises);
    dropout draws attn's own mask.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, dtype=np.float32):
        float64 = is_float64(dtype)
        self.dtype = np.float64 if float64 else np.float32
        cls = _core.TorchMultiheadAttention64 if float64 else _core.TorchMultiheadAttention32
        self._impl = cls(int(embed_dim), int(num_heads), float(dropout), bool(bias), bool(add_bias_kv),
                         bool(add_zero_attn), None if kdim is None else int(kdim),
                         None if vdim is None else int(vdim), bool(batch_first))
        self.out_proj = _OutProj(self)

    embed_dim = property(lambda self: self._impl.embed_dim)
    num_heads = property(lambda self: self._impl.num_heads)
    head_dim = property(lambda self: self._impl.head_dim)
    kdim = property(lambda self: self._impl.kdim)
    vdim = property(lambda self: self._impl.vdim)
    batch_first = property(lambda self: self._impl.batch_first)
    dropout = property(lambda self: self._impl.dropout)
    training = property(lambda self: self._impl.training)

    @property
    def dropout_seed(self):
        return self._impl.dropout_seed

    @dropout_seed.setter
    def dropout_seed(self, seed):
        self._impl.dropout_seed = int(seed)

    def train(self, mode=True):
        self._impl.train(bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        fn = "TorchMultiheadAttention.forward"
        float64 = self.dtype == np.float64
        fw = framework_of(query)
        out, weights = self._impl.forward(
            as_input(query, float64, "query", fn), as_input(key, float64, "key", fn),
            as_input(value, float64, "value", fn), as_mask(key_padding_mask, float64, "key_padding_mask", fn),
            bool(need_weights), as_mask(attn_mask, float64, "attn_mask", fn), bool(average_attn_weights),
            bool(is_causal), fw)
        return out, weights

    __call__ = forward

    def backward(self, grad_output):
        """(dL/dquery, dL/dkey, dL/dvalue) for dL/d(attn_output) = grad_output;
        accumulates into every parameter's gradient."""
        float64 = self.dtype == np.float64
        g = as_input(grad_output, float64, "grad_output", "TorchMultiheadAttention.backward")
        return self._impl.backward(g, framework_of(grad_output))

    def __repr__(self):
        return (f"TorchMultiheadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"batch_first={self.batch_first}, dtype={np.dtype(self.dtype).name})")


# ---------------------------------------------------------------------------
# The lecture notes' layers (Raschka, "Build a Large Language Model (From
# Scratch)", ch. 3): same class names, arguments, state_dict keys and, after
# attn.manual_seed(s), the same initial weights as the notes' PyTorch code
# after torch.manual_seed(s).
# ---------------------------------------------------------------------------

_LAYER_FUNCTION = None


def _layer_function():
    """A torch.autograd.Function around a layer's forward/backward, defined on
    first use (torch is imported by then)."""
    global _LAYER_FUNCTION
    if _LAYER_FUNCTION is None:
        import torch

        class _LayerFunction(torch.autograd.Function):
            @staticmethod
            def forward(ctx, layer, x):
                # A weak reference: the output's graph must not keep the layer
                # (and its C++ object) alive; the layer does that itself.
                ctx.layer = weakref.ref(layer)
                return layer._impl.forward(x.detach(), TORCH)

            @staticmethod
            @torch.autograd.function.once_differentiable
            def backward(ctx, grad_output):
                # dL/dx back to torch; dL/dW accumulates inside the layer
                layer = ctx.layer()
                if layer is None:
                    raise RuntimeError("attn.nn: backward through a layer that no longer exists; keep the "
                                       "layer (it holds what forward saved and the parameter gradients)")
                return None, layer._impl.backward(grad_output, TORCH)

        _LAYER_FUNCTION = _LayerFunction
    return _LAYER_FUNCTION


# torch's spelling, for code ported from torch.nn; one letter from the notes'
# MultiHeadAttention, so attn's own docs and reprs say TorchMultiheadAttention.
MultiheadAttention = TorchMultiheadAttention


class _NotesLayer(_Module):
    """forward / backward / train / eval shared by the notes' layers."""

    _name = "Layer"

    def _init(self, impls, float64, *args):
        self.dtype = np.float64 if float64 else np.float32
        self._impl = impls[1 if float64 else 0](*args)

    def forward(self, x):
        """x [batch, seq, d_in] or [seq, d_in] -> [batch, seq, d_out] or
        [seq, d_out] (numpy in, numpy out; torch in, torch out)."""
        float64 = self.dtype == np.float64
        if is_torch(x):
            torch = torch_module()
            want = torch.float64 if float64 else torch.float32
            if x.is_floating_point() and x.dtype != want:
                x = x.to(want)  # differentiable cast
            if x.requires_grad and torch.is_grad_enabled():
                if x.device.type != "cpu":
                    raise TypeError(f"{self._name}.forward: x is on {x.device}; attn computes on the CPU "
                                    "(move it with .cpu())")
                return _layer_function().apply(self, x)
            return self._impl.forward(as_input(x, float64, "x", self._name + ".forward"), TORCH)
        return self._impl.forward(as_input(x, float64, "x", self._name + ".forward"), NUMPY)

    def __call__(self, x):
        return self.forward(x)

    def load_state_dict(self, state_dict, strict=True):
        """Loads weights by name, e.g. from the notes' torch module's
        ``state_dict()``; its ``mask`` buffers (``mask``, ``heads.0.mask``)
        are not parameters here and are skipped."""
        params = {k: v for k, v in state_dict.items() if k != "mask" and not str(k).endswith(".mask")}
        _Module.load_state_dict(self, params, strict)

    def backward(self, grad_output):
        """dL/dx for dL/dy = grad_output (the last forward's output shape);
        accumulates into every parameter's gradient."""
        float64 = self.dtype == np.float64
        return self._impl.backward(as_input(grad_output, float64, "grad_output", self._name + ".backward"),
                                   framework_of(grad_output))

    # train/eval as on a torch module (dropout only while training)
    @property
    def training(self):
        return getattr(self._impl, "training", False)

    def train(self, mode=True):
        if hasattr(self._impl, "train"):
            self._impl.train(bool(mode))
        return self

    def eval(self):
        return self.train(False)


class SelfAttention_v2(_NotesLayer):
    """The notes' SelfAttention_v2: queries, keys and values by nn.Linear
    projections (optional bias), softmax(Q·Kᵀ/√d_out)·V, no mask, no dropout.

    x [batch, seq, d_in] or [seq, d_in] -> [.., seq, d_out]. Parameters
    ``W_query.weight``, ``W_key.weight``, ``W_value.weight`` [d_out, d_in]
    (+ ``.bias`` [d_out] with qkv_bias), drawn as nn.Linear draws them.
    """

    _name = "SelfAttention"

    def __init__(self, d_in, d_out, qkv_bias=False, dtype=np.float32):
        self._init((_core.SelfAttention32, _core.SelfAttention64), is_float64(dtype), int(d_in), int(d_out),
                   bool(qkv_bias))

    d_in = property(lambda self: self._impl.d_in)
    d_out = property(lambda self: self._impl.d_out)

    def __repr__(self):
        return f"{type(self).__name__}(d_in={self.d_in}, d_out={self.d_out})"


SelfAttention = SelfAttention_v2


class SelfAttention_v1(SelfAttention_v2):
    """The notes' SelfAttention_v1: weights as plain matrices
    (``nn.Parameter(torch.rand(d_in, d_out))``), Q = x·W_query, K = x·W_key,
    V = x·W_value, softmax(Q·Kᵀ/√d_out)·V.

    Parameters ``W_query``, ``W_key``, ``W_value`` [d_in, d_out], drawn
    U[0, 1) in that order like torch.rand. Stored as the transposed weights
    of SelfAttention_v2's Linears (the same product); the arrays shown here
    are transposed views of that storage, so writes still reach the layer.
    """

    _NAMES = ("W_query", "W_key", "W_value")

    def __init__(self, d_in, d_out, dtype=np.float32):
        float64 = is_float64(dtype)
        # the Linears' own init comes from a private generator, so that the
        # default generator draws exactly the notes' three torch.rand calls
        self._init((_core.SelfAttention32, _core.SelfAttention64), float64, int(d_in), int(d_out), False, True)
        params = self._impl.named_parameters()
        for name in self._NAMES:
            w = _core.rand([int(d_in), int(d_out)], False)  # torch.rand's float32 draws
            params[name + ".weight"][...] = w.T

    def named_parameters(self):
        p = self._impl.named_parameters()
        return {name: p[name + ".weight"].T for name in self._NAMES}

    def named_gradients(self):
        g = self._impl.named_gradients()
        return {name: g[name + ".weight"].T for name in self._NAMES}

    def state_dict(self):
        return {name: np.ascontiguousarray(w) for name, w in self.named_parameters().items()}

    def load_state_dict(self, state_dict, strict=True):
        renamed = {}
        for name, value in state_dict.items():
            if name in self._NAMES:  # v1's [d_in, d_out] -> the Linear's [d_out, d_in]
                renamed[name + ".weight"] = to_numpy(value).T
            else:
                renamed[name] = value  # unknown: the core reports it (strict)
        _NotesLayer.load_state_dict(self, renamed, strict)


class CausalAttention(_NotesLayer):
    """The notes' CausalAttention: SelfAttention_v2 where token i sees tokens
    0..i only, with dropout on the attention weights while training.

    x [batch, seq, d_in] or [seq, d_in], seq <= context_length ->
    [.., seq, d_out]. Parameters as SelfAttention_v2's (the notes' ``mask``
    buffer is not stored: the causal rule is SDPA's). Dropout uses attn's
    counter-based mask (``dropout_seed``), not torch's RNG.
    """

    _name = "CausalAttention"

    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False, dtype=np.float32):
        self._init((_core.CausalAttention32, _core.CausalAttention64), is_float64(dtype), int(d_in), int(d_out),
                   int(context_length), float(dropout), bool(qkv_bias))

    d_in = property(lambda self: self._impl.d_in)
    d_out = property(lambda self: self._impl.d_out)
    context_length = property(lambda self: self._impl.context_length)
    dropout = property(lambda self: self._impl.dropout)

    @property
    def dropout_seed(self):
        return self._impl.dropout_seed

    @dropout_seed.setter
    def dropout_seed(self, seed):
        self._impl.dropout_seed = int(seed) & 0xFFFFFFFFFFFFFFFF

    def __repr__(self):
        return (f"CausalAttention(d_in={self.d_in}, d_out={self.d_out}, context_length={self.context_length}, "
                f"dropout={self.dropout})")


class MultiHeadAttentionWrapper(_NotesLayer):
    """The notes' MultiHeadAttentionWrapper: num_heads CausalAttention heads
    side by side, outputs concatenated: x [.., seq, d_in] ->
    [.., seq, num_heads·d_out]. Parameters ``heads.{h}.W_query.weight``, ...
    (``layer.heads[h].W_query.weight``)."""

    _name = "MultiHeadAttentionWrapper"

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False, dtype=np.float32):
        self._init((_core.MultiHeadAttentionWrapper32, _core.MultiHeadAttentionWrapper64), is_float64(dtype),
                   int(d_in), int(d_out), int(context_length), float(dropout), int(num_heads), bool(qkv_bias))

    num_heads = property(lambda self: self._impl.num_heads)

    def set_dropout_seed(self, seed):
        """Every head gets its own seed derived from `seed`."""
        self._impl.set_dropout_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)

    def __repr__(self):
        return f"MultiHeadAttentionWrapper(num_heads={self.num_heads})"


class MultiHeadAttention(_NotesLayer):
    """The notes' MultiHeadAttention (efficient form): one projection of width
    d_out split into num_heads heads of d_out/num_heads, causal attention on
    all heads at once, heads merged and mixed by ``out_proj``.

    x [batch, seq, d_in] or [seq, d_in], seq <= context_length ->
    [.., seq, d_out]. Parameters ``W_query.weight``, ``W_key.weight``,
    ``W_value.weight`` [d_out, d_in] (+ ``.bias``), ``out_proj.weight``
    [d_out, d_out], ``out_proj.bias``. Not torch.nn.MultiheadAttention (that
    is ``attn.nn.TorchMultiheadAttention``).
    """

    _name = "MultiHeadAttention"

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False, dtype=np.float32):
        self._init((_core.MultiHeadAttention32, _core.MultiHeadAttention64), is_float64(dtype), int(d_in),
                   int(d_out), int(context_length), float(dropout), int(num_heads), bool(qkv_bias))

    d_in = property(lambda self: self._impl.d_in)
    d_out = property(lambda self: self._impl.d_out)
    num_heads = property(lambda self: self._impl.num_heads)
    head_dim = property(lambda self: self._impl.head_dim)
    context_length = property(lambda self: self._impl.context_length)

    @property
    def dropout_seed(self):
        return self._impl.dropout_seed

    @dropout_seed.setter
    def dropout_seed(self, seed):
        self._impl.dropout_seed = int(seed) & 0xFFFFFFFFFFFFFFFF

    def __repr__(self):
        return (f"MultiHeadAttention(d_in={self.d_in}, d_out={self.d_out}, num_heads={self.num_heads}, "
                f"context_length={self.context_length})")


def __getattr__(name):
    # attn.nn.torch: these layers as torch.nn.Modules (python/attn/nn_torch.py),
    # imported on first use, since importing attn must not import torch.
    if name == "torch":
        from . import nn_torch
        return nn_torch
    raise AttributeError(f"module 'attn.nn' has no attribute {name!r}")

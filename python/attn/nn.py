"""attn.nn — layers with torch.nn's names, arguments, state_dict keys and
initialisation (``attn.manual_seed(s)`` then ``Linear(...)`` draws the same
weights as ``torch.manual_seed(s)`` then ``torch.nn.Linear(...)``).

These are attn's own layers (C++), not torch.nn.Modules: they take numpy
arrays or torch tensors (outputs are of the input's kind) and keep their own
gradients, llm.c-style::

    y = layer(x)                 # forward; saves what backward needs
    dx = layer.backward(dy)      # accumulates into layer.named_gradients()

To train attention inside a torch model with autograd, call
``attn.scaled_dot_product_attention`` from your torch module instead.

Parameters are numpy views of the layer's storage (no copy; writes change the
layer); ``torch.from_numpy(layer.weight)`` shares them with torch.
"""

import numpy as np

from . import _core
from ._util import as_input, as_mask, framework_of, is_float64, to_numpy


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
        # Parameters as attributes, like a torch module: layer.in_proj_weight
        params = self.__dict__.get("_impl")
        if params is not None and not name.startswith("_"):
            named = params.named_parameters()
            if name in named:
                return named[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


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


class MultiheadAttention(_Module):
    """torch.nn.MultiheadAttention: same arguments, semantics, state_dict names
    and initialisation.

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
        cls = _core.MultiheadAttention64 if float64 else _core.MultiheadAttention32
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
        fn = "MultiheadAttention.forward"
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
        g = as_input(grad_output, float64, "grad_output", "MultiheadAttention.backward")
        return self._impl.backward(g, framework_of(grad_output))

    def __repr__(self):
        return (f"MultiheadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"batch_first={self.batch_first}, dtype={np.dtype(self.dtype).name})")

"""The lecture notes' trainable layers (attn.nn.SelfAttention_v1/_v2,
CausalAttention, MultiHeadAttentionWrapper, MultiHeadAttention) against the
notes' PyTorch code, rewritten below from the notes (Raschka, "Build a Large
Language Model (From Scratch)", ch. 3): the same initial weights after the
same manual_seed (bit for bit), the book's printed outputs, outputs to 1e-5
and gradients to 1e-4 (float32) after loading the torch module's state_dict,
gradients through torch autograd, a float64 finite-difference check, and bad
shapes raising ValueError."""

import numpy as np
import pytest
import torch
from torch import nn

import attn
from conftest import GRAD_TOL, OUT_TOL

# ---------------------------------------------------------------------------
# The notes' classes in PyTorch (the independent reference)
# ---------------------------------------------------------------------------


class RefSelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x):
        keys = x @ self.W_key
        queries = x @ self.W_query
        values = x @ self.W_value
        attn_scores = queries @ keys.transpose(-2, -1)  # the notes' keys.T, batch dims allowed
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        return attn_weights @ values


class RefSelfAttention_v2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        attn_scores = queries @ keys.transpose(-2, -1)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        return attn_weights @ values


class RefCausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        num_tokens = x.shape[-2]
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        attn_scores = queries @ keys.transpose(-2, -1)
        attn_scores = attn_scores.masked_fill(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        return attn_weights @ values


class RefMultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList(
            [RefCausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)])

    def forward(self, x):
        return torch.cat([head(x) for head in self.heads], dim=-1)


class RefMultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, num_tokens, d_in = x.shape
        keys = self.W_key(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        attn_scores = queries @ keys.transpose(2, 3)
        attn_scores = attn_scores.masked_fill(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        context_vec = (attn_weights @ values).transpose(1, 2)
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


# "Your journey starts with one step" (notes 004)
JOURNEY = [[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64],
           [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]]

# (name, attn class, torch class, constructor args, batched input?)
LAYERS = {
    "v1": (attn.nn.SelfAttention_v1, RefSelfAttention_v1),
    "v2": (attn.nn.SelfAttention_v2, RefSelfAttention_v2),
    "causal": (attn.nn.CausalAttention, RefCausalAttention),
    "wrapper": (attn.nn.MultiHeadAttentionWrapper, RefMultiHeadAttentionWrapper),
    "mha": (attn.nn.MultiHeadAttention, RefMultiHeadAttention),
}


def params_of(module):
    """A torch module's state_dict without the notes' `mask` buffers."""
    return {k: v for k, v in module.state_dict().items() if k != "mask" and not k.endswith(".mask")}


# ---------------------------------------------------------------------------
# Initialisation and the book's printed numbers
# ---------------------------------------------------------------------------

BOOK = [
    # (layer, args, seed, batched, printed output rows: the book's, 4 decimals)
    ("v1", (3, 2), 123, False,
     [[0.2996, 0.8053], [0.3061, 0.8210], [0.3058, 0.8203],
      [0.2948, 0.7939], [0.2927, 0.7891], [0.2990, 0.8040]]),
    ("v2", (3, 2), 789, False,
     [[-0.0739, 0.0713], [-0.0748, 0.0703], [-0.0749, 0.0702],
      [-0.0760, 0.0685], [-0.0763, 0.0679], [-0.0754, 0.0693]]),
    ("causal", (3, 2, 6, 0.0), 123, True,
     [[-0.4519, 0.2216], [-0.5874, 0.0058], [-0.6300, -0.0632],
      [-0.5675, -0.0843], [-0.5526, -0.0981], [-0.5299, -0.1081]]),
    ("wrapper", (3, 2, 6, 0.0, 2), 123, True,
     [[-0.4519, 0.2216, 0.4772, 0.1063], [-0.5874, 0.0058, 0.5891, 0.3257],
      [-0.6300, -0.0632, 0.6202, 0.3860], [-0.5675, -0.0843, 0.5478, 0.3589],
      [-0.5526, -0.0981, 0.5321, 0.3428], [-0.5299, -0.1081, 0.5077, 0.3493]]),
    ("mha", (3, 2, 6, 0.0, 2), 123, True,
     [[0.3190, 0.4858], [0.2943, 0.3897], [0.2856, 0.3593],
      [0.2693, 0.3873], [0.2639, 0.3928], [0.2575, 0.4028]]),
]


@pytest.mark.parametrize("name,args,seed,batched,printed", BOOK, ids=[b[0] for b in BOOK])
def test_manual_seed_gives_torchs_weights_and_the_books_numbers(name, args, seed, batched, printed):
    cls, ref_cls = LAYERS[name]
    torch.manual_seed(seed)
    ref = ref_cls(*args)
    attn.manual_seed(seed)
    layer = cls(*args)
    ref_params = params_of(ref)
    assert list(layer.state_dict()) == list(ref_params)  # the notes' names, in torch's order
    for key, value in ref_params.items():
        np.testing.assert_array_equal(layer.state_dict()[key], value.numpy(), err_msg=key)  # bit for bit

    inputs = torch.tensor(JOURNEY)
    x = torch.stack((inputs, inputs)) if batched else inputs
    ref.eval()
    layer.eval()
    with torch.no_grad():
        expected = ref(x)
    got = layer(x)
    assert isinstance(got, torch.Tensor) and got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=OUT_TOL)
    first = got[0] if batched else got
    np.testing.assert_allclose(first.numpy(), printed, rtol=0, atol=6e-5)  # the book prints 4 decimals
    assert isinstance(layer(x.numpy()), np.ndarray)  # numpy in, numpy out


# ---------------------------------------------------------------------------
# Parity with the torch classes: outputs, dL/dx, parameter gradients
# ---------------------------------------------------------------------------

CONFIGS = [
    ("v1", dict(d_in=4, d_out=3), (2, 5, 4)),
    ("v1", dict(d_in=3, d_out=5), (6, 3)),
    ("v2", dict(d_in=5, d_out=4, qkv_bias=True), (3, 4, 5)),
    ("v2", dict(d_in=3, d_out=2), (7, 3)),
    ("causal", dict(d_in=4, d_out=3, context_length=6, dropout=0.0), (2, 6, 4)),
    ("causal", dict(d_in=3, d_out=4, context_length=8, dropout=0.3, qkv_bias=True), (3, 5, 3)),
    ("wrapper", dict(d_in=4, d_out=2, context_length=5, dropout=0.0, num_heads=3), (2, 5, 4)),
    ("wrapper", dict(d_in=3, d_out=3, context_length=6, dropout=0.0, num_heads=2, qkv_bias=True), (1, 4, 3)),
    ("mha", dict(d_in=5, d_out=6, context_length=4, dropout=0.0, num_heads=3), (2, 4, 5)),
    ("mha", dict(d_in=4, d_out=8, context_length=9, dropout=0.2, num_heads=2, qkv_bias=True), (3, 7, 4)),
    ("mha", dict(d_in=3, d_out=4, context_length=6, dropout=0.0, num_heads=1), (1, 6, 3)),
]


def make_pair(name, kwargs, dtype=torch.float32, seed=0):
    """A torch reference with its own random init, and the attn layer loaded
    from its state_dict (dropout off: eval mode on both)."""
    cls, ref_cls = LAYERS[name]
    torch.manual_seed(seed)
    ref = ref_cls(**kwargs).to(dtype).eval()
    with torch.no_grad():  # weights away from torch's small init, so errors would show
        for p in ref.parameters():
            p.uniform_(-0.8, 0.8)
    layer = cls(**kwargs, dtype=dtype).eval()
    layer.load_state_dict(ref.state_dict())  # the notes' mask buffers are skipped
    return ref, layer


@pytest.mark.parametrize("name,kwargs,shape", CONFIGS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CONFIGS)])
def test_forward_backward_match_the_notes_torch_code(name, kwargs, shape):
    ref, layer = make_pair(name, kwargs)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(shape, generator=gen, requires_grad=True)
    if name == "mha" and x.dim() == 2:
        pytest.skip("the notes' MultiHeadAttention takes batched input only")
    y_ref = ref(x)
    g = torch.randn(y_ref.shape, generator=gen)
    y_ref.backward(g)

    # llm.c-style: forward, then backward by hand
    y = layer(x.detach())
    torch.testing.assert_close(y, y_ref.detach(), rtol=0, atol=OUT_TOL)
    dx = layer.backward(g)
    torch.testing.assert_close(dx, x.grad, rtol=0, atol=GRAD_TOL)
    grads = layer.named_gradients()
    ref_grads = {k: p.grad for k, p in ref.named_parameters()}
    assert list(grads) == list(ref_grads)
    for key, grad in ref_grads.items():
        np.testing.assert_allclose(grads[key], grad.numpy(), rtol=0, atol=GRAD_TOL, err_msg=key)

    # through torch autograd: dL/dx to torch, parameter grads accumulate in the layer
    layer.zero_grad()
    x2 = x.detach().clone().requires_grad_(True)
    y2 = layer(x2)
    assert y2.requires_grad
    (y2 * g).sum().backward()
    torch.testing.assert_close(x2.grad, x.grad, rtol=0, atol=GRAD_TOL)
    for key, grad in ref_grads.items():
        np.testing.assert_allclose(layer.named_gradients()[key], grad.numpy(), rtol=0, atol=GRAD_TOL, err_msg=key)


def test_unbatched_input_matches_batch_of_one():
    ref, layer = make_pair("causal", dict(d_in=3, d_out=2, context_length=6, dropout=0.0))
    x = torch.randn(5, 3)
    torch.testing.assert_close(layer(x), ref(x).detach(), rtol=0, atol=OUT_TOL)
    torch.testing.assert_close(layer(x), layer(x[None])[0], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["v1", "causal", "wrapper", "mha"])
def test_float64_gradients_match_finite_differences(name):
    kwargs = {"v1": dict(d_in=3, d_out=2), "causal": dict(d_in=3, d_out=2, context_length=4, dropout=0.0),
              "wrapper": dict(d_in=3, d_out=2, context_length=4, dropout=0.0, num_heads=2),
              "mha": dict(d_in=3, d_out=4, context_length=4, dropout=0.0, num_heads=2, qkv_bias=True)}[name]
    _, layer = make_pair(name, kwargs, dtype=torch.float64)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 3))
    g = rng.standard_normal(layer(x).shape)
    layer.zero_grad()
    layer(x)
    dx = layer.backward(g)
    loss = lambda: float(np.sum(layer(x) * g))  # noqa: E731
    eps = 1e-6
    for idx in [(0, 0, 0), (1, 3, 2), (0, 2, 1)]:  # dL/dx
        x[idx] += eps
        up = loss()
        x[idx] -= 2 * eps
        down = loss()
        x[idx] += eps
        assert abs((up - down) / (2 * eps) - dx[idx]) < 1e-6
    name0 = next(iter(layer.named_parameters()))  # dL/dW of the first parameter, every entry
    grad = layer.named_gradients()[name0].copy()
    w = layer.named_parameters()[name0]
    for idx in np.ndindex(w.shape):
        w[idx] += eps
        up = loss()
        w[idx] -= 2 * eps
        down = loss()
        w[idx] += eps
        assert abs((up - down) / (2 * eps) - grad[idx]) < 1e-6, (name0, idx)


# ---------------------------------------------------------------------------
# Parameters: readable and settable, nested names, load_state_dict
# ---------------------------------------------------------------------------

def test_parameters_are_readable_and_settable_views():
    layer = attn.nn.MultiHeadAttention(3, 4, 5, 0.0, 2, qkv_bias=True).eval()
    assert layer.W_query.weight.shape == (4, 3) and layer.W_query.bias.shape == (4,)
    assert layer.out_proj.weight.shape == (4, 4)
    x = np.random.default_rng(0).standard_normal((1, 5, 3)).astype(np.float32)
    before = layer(x)
    layer.out_proj.weight = np.zeros((4, 4), np.float32)  # assignment copies into the layer
    layer.out_proj.bias[:] = 0.25  # and so does writing through the view
    np.testing.assert_array_equal(layer(x), np.full_like(before, 0.25))
    with pytest.raises(ValueError, match=r"out_proj.weight.*\[4, 4\].*\[4, 3\]"):
        layer.out_proj.weight = np.zeros((4, 3))

    wrapper = attn.nn.MultiHeadAttentionWrapper(3, 2, 4, 0.0, num_heads=2)
    assert wrapper.heads[1].W_key.weight.shape == (2, 3)
    wrapper.heads[1].W_key.weight = torch.ones(2, 3)  # torch tensors too
    np.testing.assert_array_equal(wrapper.state_dict()["heads.1.W_key.weight"], np.ones((2, 3)))
    with pytest.raises(IndexError):
        wrapper.heads[2]

    v1 = attn.nn.SelfAttention_v1(3, 2)
    assert v1.W_query.shape == (3, 2)  # the notes' [d_in, d_out]
    v1.W_value = np.eye(3, 2, dtype=np.float32)
    v1.W_query[:] = 0.0  # equal scores: every weight 1/6, the output is the mean of x·W_value
    inputs = np.array(JOURNEY, dtype=np.float32)
    np.testing.assert_allclose(v1(inputs), np.tile(inputs[:, :2].mean(0), (6, 1)), atol=1e-6)
    with pytest.raises(ValueError):
        v1.W_key = np.zeros((2, 3))


def test_load_state_dict_checks_names_and_shapes():
    layer = attn.nn.CausalAttention(3, 2, 6, 0.0)
    with pytest.raises(ValueError, match="W_key.weight"):
        layer.load_state_dict({"W_query.weight": np.zeros((2, 3)), "W_key.weight": np.zeros((3, 3)),
                               "W_value.weight": np.zeros((2, 3))})
    with pytest.raises(ValueError):
        layer.load_state_dict({"W_query.weight": np.zeros((2, 3))})  # strict: missing names
    v1 = attn.nn.SelfAttention_v1(3, 2)
    with pytest.raises(ValueError):
        v1.load_state_dict({"W_query": np.zeros((2, 3)), "W_key": np.zeros((3, 2)), "W_value": np.zeros((3, 2))})


# ---------------------------------------------------------------------------
# Dropout, train/eval
# ---------------------------------------------------------------------------

def test_dropout_only_while_training_and_reproducible_by_seed():
    layer = attn.nn.MultiHeadAttention(4, 4, 8, 0.5, 2)
    x = np.random.default_rng(1).standard_normal((2, 8, 4)).astype(np.float32)
    assert layer.training
    layer.eval()
    a, b = layer(x), layer(x)
    np.testing.assert_array_equal(a, b)
    layer.train()
    layer.dropout_seed = 42
    c = layer(x)
    d = layer(x)  # the seed advanced: another mask
    assert not np.array_equal(c, a) and not np.array_equal(c, d)
    layer.dropout_seed = 42
    np.testing.assert_array_equal(layer(x), c)


# ---------------------------------------------------------------------------
# Bad input raises ValueError (attn.ShapeError) naming what is wrong
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("make,x", [
    (lambda: attn.nn.SelfAttention_v1(3, 2), np.zeros((6, 4))),                    # last dim != d_in
    (lambda: attn.nn.SelfAttention_v2(3, 2), np.zeros(3)),                         # rank 1
    (lambda: attn.nn.SelfAttention_v2(3, 2), np.zeros((1, 2, 6, 3))),              # rank 4
    (lambda: attn.nn.CausalAttention(3, 2, 4, 0.0), np.zeros((1, 5, 3))),          # seq > context_length
    (lambda: attn.nn.MultiHeadAttentionWrapper(3, 2, 4, 0.0, 2), np.zeros((1, 4, 2))),
    (lambda: attn.nn.MultiHeadAttention(3, 4, 4, 0.0, 2), np.zeros((1, 6, 3))),
])
def test_bad_input_shapes_raise(make, x):
    with pytest.raises(ValueError):
        make()(x)


def test_bad_constructor_arguments_and_grad_shape_raise():
    with pytest.raises(ValueError):
        attn.nn.MultiHeadAttention(3, 5, 4, 0.0, 2)  # d_out not divisible by num_heads
    with pytest.raises(ValueError):
        attn.nn.CausalAttention(3, 2, 4, 1.0)  # dropout outside [0, 1)
    with pytest.raises(ValueError):
        attn.nn.SelfAttention_v2(0, 2)
    with pytest.raises(TypeError):
        attn.nn.SelfAttention_v2(3, 2, dtype=np.int32)
    layer = attn.nn.SelfAttention_v2(3, 2)
    layer(np.zeros((1, 4, 3), np.float32))
    with pytest.raises(ValueError):
        layer.backward(np.zeros((1, 4, 3), np.float32))  # not the output's shape
    with pytest.raises(TypeError):
        layer(np.zeros((1, 4, 3), np.int64))


def test_autograd_graph_does_not_keep_the_layer_alive():
    x = torch.randn(1, 3, 3, requires_grad=True)
    y = attn.nn.SelfAttention_v2(3, 2)(x)  # the layer is gone after this line
    with pytest.raises(RuntimeError, match="no longer exists"):
        y.sum().backward()

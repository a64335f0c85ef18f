"""attn.nn.torch: the lecture notes' layers and torch.nn.MultiheadAttention as
torch.nn.Modules whose attention core is attn's, against torch.

References are independent of attn: the notes' PyTorch classes (Raschka,
"Build a Large Language Model (From Scratch)", ch. 3, as rewritten from the
notes in test_notes_layers.py) and torch.nn.MultiheadAttention itself. Each
test loads the reference's state_dict into attn's module (same keys), then
compares outputs (1e-5), gradients of the parameters and the input after
backward (1e-4), and a few torch.optim.Adam steps (1e-4).
"""

import pytest
import torch
from torch import nn

import attn
import attn.nn
from conftest import GRAD_TOL, OUT_TOL
from test_notes_layers import (RefCausalAttention, RefMultiHeadAttention, RefMultiHeadAttentionWrapper,
                               RefSelfAttention_v1, RefSelfAttention_v2)

T = attn.nn.torch

NOTES = {  # name: (attn class, the notes' class, constructor kwargs)
    "v1": (T.SelfAttention_v1, RefSelfAttention_v1, dict(d_in=3, d_out=2)),
    "v2": (T.SelfAttention_v2, RefSelfAttention_v2, dict(d_in=3, d_out=4)),
    "v2_bias": (T.SelfAttention_v2, RefSelfAttention_v2, dict(d_in=5, d_out=4, qkv_bias=True)),
    "causal": (T.CausalAttention, RefCausalAttention, dict(d_in=3, d_out=2, context_length=8, dropout=0.0)),
    "wrapper": (T.MultiHeadAttentionWrapper, RefMultiHeadAttentionWrapper,
                dict(d_in=3, d_out=2, context_length=8, dropout=0.0, num_heads=2)),
    "mha": (T.MultiHeadAttention, RefMultiHeadAttention,
            dict(d_in=6, d_out=8, context_length=8, dropout=0.0, num_heads=2, qkv_bias=True)),
}


def max_diff(a, b):
    return (a.detach().double() - b.detach().double()).abs().max().item()


def pair(name, seed=0):
    cls, ref_cls, kwargs = NOTES[name]
    torch.manual_seed(seed)
    ref = ref_cls(**kwargs)
    torch.manual_seed(seed + 1)  # other weights, so loading the state_dict is what makes them equal
    mine = cls(**kwargs)
    mine.load_state_dict(ref.state_dict())  # strict: the same keys, the notes' mask buffers included
    return mine, ref, kwargs


@pytest.mark.parametrize("name", list(NOTES))
def test_notes_modules_are_torch_modules_with_the_notes_keys(name):
    cls, ref_cls, kwargs = NOTES[name]
    torch.manual_seed(0)
    ref = ref_cls(**kwargs)
    torch.manual_seed(0)
    mine = cls(**kwargs)
    assert isinstance(mine, nn.Module)
    assert list(mine.state_dict()) == list(ref.state_dict())
    assert [n for n, _ in mine.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert all(type(p) is nn.Parameter for p in mine.parameters())
    # torch's initialisation, in the notes' order: the same seed gives the same weights
    for (n, a), b in zip(mine.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), n


@pytest.mark.parametrize("name", list(NOTES))
@pytest.mark.parametrize("seq", [1, 6])
def test_notes_modules_match_the_notes_outputs_and_gradients(name, seq):
    mine, ref, kwargs = pair(name)
    torch.manual_seed(5)
    x = torch.rand(2, seq, kwargs["d_in"])
    x_mine, x_ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y_mine, y_ref = mine(x_mine), ref(x_ref)
    assert y_mine.shape == y_ref.shape
    assert max_diff(y_mine, y_ref) <= OUT_TOL
    w = torch.randn_like(y_ref)
    (y_mine * w).sum().backward()
    (y_ref * w).sum().backward()
    assert max_diff(x_mine.grad, x_ref.grad) <= GRAD_TOL
    ref_params = dict(ref.named_parameters())
    for n, p in mine.named_parameters():
        assert p.grad is not None, n
        assert max_diff(p.grad, ref_params[n].grad) <= GRAD_TOL, n


def test_notes_multihead_attention_takes_unbatched_input():
    mine, ref, kwargs = pair("mha")
    x = torch.rand(5, kwargs["d_in"])
    assert max_diff(mine(x), ref(x.unsqueeze(0))[0]) <= OUT_TOL


@pytest.mark.parametrize("name", ["mha", "wrapper", "v1"])
def test_adam_follows_the_same_trajectory_as_on_the_notes_module(name):
    # The notes' default qkv_bias=False: a key bias has a gradient that is 0
    # in exact arithmetic (q·(k + b) shifts every score of a row by q·b, which
    # softmax ignores), and Adam turns any rounding noise g there into a full
    # step lr·g/|g|; see the MultiheadAttention test below.
    mine, ref, kwargs = pair(name)
    if name == "mha":
        cls, ref_cls, kwargs = NOTES[name]
        kwargs = dict(kwargs, qkv_bias=False)
        torch.manual_seed(0)
        ref = ref_cls(**kwargs)
        mine = cls(**kwargs)
        mine.load_state_dict(ref.state_dict())
    initial = [p.detach().clone() for p in mine.parameters()]
    opt_mine = torch.optim.Adam(mine.parameters(), lr=1e-2)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2)
    torch.manual_seed(9)
    x = torch.rand(3, 6, kwargs["d_in"])
    with torch.no_grad():
        target = torch.randn_like(ref(x))
    for step in range(5):
        for module, opt in ((mine, opt_mine), (ref, opt_ref)):
            opt.zero_grad()
            loss = ((module(x) - target) ** 2).mean()
            loss.backward()
            opt.step()
        ref_params = dict(ref.named_parameters())
        for n, p in mine.named_parameters():
            assert max_diff(p, ref_params[n]) <= GRAD_TOL, (step, n)
    # the weights moved: the comparison above saw training, not frozen weights
    assert max(max_diff(p, q) for p, q in zip(mine.parameters(), initial)) > 1e-3


def test_dropout_only_while_training_and_gradients_still_flow():
    torch.manual_seed(0)
    m = T.MultiHeadAttention(d_in=4, d_out=8, context_length=10, dropout=0.5, num_heads=2)
    ref = RefMultiHeadAttention(d_in=4, d_out=8, context_length=10, dropout=0.5, num_heads=2)
    ref.load_state_dict(m.state_dict())
    x = torch.rand(2, 10, 4)
    m.eval()
    ref.eval()
    assert max_diff(m(x), ref(x)) <= OUT_TOL  # eval: no dropout
    m.train()
    attn.manual_seed(1)
    y1 = m(x)
    attn.manual_seed(1)
    y2 = m(x)
    assert torch.equal(y1, y2)  # attn's counter-based mask, reproducible from attn.manual_seed
    assert max_diff(y1, ref.eval()(x)) > 1e-3  # dropout did something
    y1.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_gradcheck_in_float64():
    torch.manual_seed(0)
    m = T.MultiHeadAttention(d_in=3, d_out=4, context_length=5, dropout=0.0, num_heads=2).double()
    x = torch.rand(1, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *p: m(x), (x, *m.parameters()), eps=1e-6, atol=1e-6)


def test_context_length_is_checked():
    m = T.CausalAttention(d_in=3, d_out=2, context_length=4, dropout=0.0)
    with pytest.raises(ValueError, match="context_length"):
        m(torch.rand(1, 5, 3))


def test_linear_is_torch_linear():
    torch.manual_seed(0)
    lin = T.Linear(4, 3)
    assert isinstance(lin, nn.Linear) and list(lin.state_dict()) == ["weight", "bias"]
    torch.manual_seed(0)
    assert torch.equal(lin.weight, nn.Linear(4, 3).weight)


# ---------------------------------------------------------------------------
# torch.nn.MultiheadAttention
# ---------------------------------------------------------------------------

MHA_CASES = {
    "plain": dict(embed_dim=8, num_heads=2),
    "batch_first": dict(embed_dim=8, num_heads=4, batch_first=True),
    "kdim_vdim": dict(embed_dim=8, num_heads=2, kdim=5, vdim=3),
    "bias_kv_zero_attn": dict(embed_dim=8, num_heads=2, add_bias_kv=True, add_zero_attn=True),
    "no_bias": dict(embed_dim=6, num_heads=3, bias=False),
}


def mha_pair(kwargs, seed=0):
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(**kwargs)
    if ref.bias_k is not None:  # torch zero-initialises nothing here, but be sure every Parameter is used
        nn.init.normal_(ref.bias_k)
        nn.init.normal_(ref.bias_v)
    if ref.in_proj_bias is not None:  # torch initialises the biases to 0; make them count
        nn.init.normal_(ref.in_proj_bias)
        nn.init.normal_(ref.out_proj.bias)
    torch.manual_seed(seed + 1)
    mine = T.TorchMultiheadAttention(**kwargs)
    mine.load_state_dict(ref.state_dict())
    return mine, ref


def mha_inputs(kwargs, N=2, L=5, S=7, unbatched=False):
    E = kwargs["embed_dim"]
    kd, vd = kwargs.get("kdim") or E, kwargs.get("vdim") or E
    torch.manual_seed(3)
    q, k, v = torch.randn(L, N, E), torch.randn(S, N, kd), torch.randn(S, N, vd)
    if unbatched:
        return q[:, 0], k[:, 0], v[:, 0]
    if kwargs.get("batch_first"):
        return q.transpose(0, 1).contiguous(), k.transpose(0, 1).contiguous(), v.transpose(0, 1).contiguous()
    return q, k, v


def masks(kind, N=2, L=5, S=7, H=2):
    if kind == "none":
        return {}
    g = torch.Generator().manual_seed(4)
    if kind == "key_padding":
        kpm = torch.zeros(N, S, dtype=torch.bool)
        kpm[0, -2:] = True  # the last two keys of sequence 0 are padding
        return dict(key_padding_mask=kpm)
    if kind == "bool_attn_mask":
        m = torch.rand(L, S, generator=g) < 0.3
        m[:, 0] = False  # every query sees key 0
        return dict(attn_mask=m)
    if kind == "float_attn_mask_3d":
        return dict(attn_mask=torch.randn(N * H, L, S, generator=g))
    if kind == "causal":
        return dict(attn_mask=nn.Transformer.generate_square_subsequent_mask(L), is_causal=True)
    raise AssertionError(kind)


def run_mha_pair(mine, ref, inputs, need_weights=True, average=True, **mask_kwargs):
    outs = []
    grads = []
    for module in (mine, ref):
        xs = [t.clone().requires_grad_(True) for t in inputs]
        module.zero_grad()
        out, weights = module(*xs, need_weights=need_weights, average_attn_weights=average, **mask_kwargs)
        torch.manual_seed(11)
        (out * torch.randn_like(out)).sum().backward()
        outs.append((out, weights))
        grads.append(([x.grad for x in xs], {n: p.grad for n, p in module.named_parameters()}))
    return outs, grads


@pytest.mark.parametrize("case", list(MHA_CASES))
@pytest.mark.parametrize("mask", ["none", "key_padding", "bool_attn_mask", "float_attn_mask_3d", "causal"])
def test_multihead_attention_matches_torch(case, mask):
    kwargs = MHA_CASES[case]
    mine, ref = mha_pair(kwargs)
    H = kwargs["num_heads"]
    S = 5 if mask == "causal" else 7
    mk = masks(mask, S=S, H=H)
    inputs = mha_inputs(kwargs, S=S)
    (o_mine, o_ref), (g_mine, g_ref) = run_mha_pair(mine, ref, inputs, **mk)
    assert o_mine[0].shape == o_ref[0].shape
    assert max_diff(o_mine[0], o_ref[0]) <= OUT_TOL
    assert max_diff(o_mine[1], o_ref[1]) <= OUT_TOL  # head-averaged weights
    for a, b in zip(g_mine[0], g_ref[0]):
        assert max_diff(a, b) <= GRAD_TOL
    for n, g in g_mine[1].items():
        assert max_diff(g, g_ref[1][n]) <= GRAD_TOL, n


def test_multihead_attention_per_head_weights_unbatched_and_no_weights():
    kwargs = MHA_CASES["plain"]
    mine, ref = mha_pair(kwargs)
    inputs = mha_inputs(kwargs)
    (o_mine, o_ref), _ = run_mha_pair(mine, ref, inputs, average=False)
    assert o_mine[1].shape == o_ref[1].shape == (2, 2, 5, 7)
    assert max_diff(o_mine[1], o_ref[1]) <= OUT_TOL
    inputs = mha_inputs(kwargs, unbatched=True)
    (o_mine, o_ref), (g_mine, g_ref) = run_mha_pair(mine, ref, inputs)
    assert o_mine[0].shape == o_ref[0].shape == (5, 8) and o_mine[1].shape == (5, 7)
    assert max_diff(o_mine[0], o_ref[0]) <= OUT_TOL
    assert max_diff(g_mine[1]["in_proj_weight"], g_ref[1]["in_proj_weight"]) <= GRAD_TOL
    out, weights = mine(*mha_inputs(kwargs), need_weights=False)
    assert weights is None
    assert max_diff(out, ref(*mha_inputs(kwargs), need_weights=False)[0]) <= OUT_TOL


def test_multihead_attention_adam_trajectory_matches_torch():
    kwargs = dict(embed_dim=8, num_heads=2, batch_first=True)
    mine, ref = mha_pair(kwargs)
    assert isinstance(mine, nn.Module) and isinstance(mine, nn.MultiheadAttention)
    assert list(mine.state_dict()) == list(ref.state_dict())
    assert all(type(p) is nn.Parameter for p in mine.parameters())
    opt_mine = torch.optim.Adam(mine.parameters(), lr=1e-2)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2)
    torch.manual_seed(2)
    x = torch.randn(3, 6, 8)
    target = torch.randn(3, 6, 8)
    mask = nn.Transformer.generate_square_subsequent_mask(6)
    for step in range(5):
        for module, opt in ((mine, opt_mine), (ref, opt_ref)):
            opt.zero_grad()
            out, _ = module(x, x, x, attn_mask=mask, need_weights=False)
            ((out - target) ** 2).mean().backward()
            opt.step()
        # in_proj_bias[E:2E] is the key bias: its gradient is 0 in exact
        # arithmetic (softmax ignores a shift q·b of a whole row of scores), so
        # both modules see only rounding noise there, and Adam's g/√v turns
        # noise of either sign into a full ±lr step: it is checked to be noise
        # and left out of the trajectory comparison.
        assert mine.in_proj_bias.grad[8:16].abs().max() <= 1e-6
        assert ref.in_proj_bias.grad[8:16].abs().max() <= 1e-6
        ref_params = dict(ref.named_parameters())
        for n, p in mine.named_parameters():
            if n == "in_proj_bias":
                keep = torch.cat([torch.arange(0, 8), torch.arange(16, 24)])
                assert max_diff(p[keep], ref_params[n][keep]) <= GRAD_TOL, (step, n)
            else:
                assert max_diff(p, ref_params[n]) <= GRAD_TOL, (step, n)


def test_multihead_attention_runs_attns_core():
    # attn's documented difference: a query that sees no key gives 0, torch gives NaN
    kwargs = MHA_CASES["plain"]
    mine, ref = mha_pair(kwargs)
    q, k, v = mha_inputs(kwargs)
    kpm = torch.zeros(2, 7, dtype=torch.bool)
    kpm[1] = True  # sequence 1: every key is padding
    out, _ = mine(q, k, v, key_padding_mask=kpm)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[:, 1], mine.out_proj.bias.expand(5, 8))  # 0 through out_proj is its bias
    ref_out, _ = ref(q, k, v, key_padding_mask=kpm)
    assert max_diff(out[:, 0], ref_out[:, 0]) <= OUT_TOL


def test_attn_nn_torch_is_importable_lazily():
    import attn.nn_torch
    assert attn.nn.torch is attn.nn_torch
    with pytest.raises(AttributeError):
        attn.nn.no_such_thing  # noqa: B018

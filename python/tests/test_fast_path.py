"""One route for every call: torch tensors go through the PyTorch operator
torch.ops.attn.sdpa's kernel (its autograd formula calls
torch.ops.attn.sdpa_backward), numpy arrays straight to the core's sdpa_forward. The common call (rank 4, one
batch size, no mask, no extras) takes a short cut to the same entry, skipping
the argument processing. These tests check that every call reaches exactly
one entry, once, and that the short cut and the full processing give the same
numbers (bit for bit: the same library call) and gradients, against torch too."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attn
import attn._sdpa as sdpa_module
from conftest import GRAD_TOL, OUT_TOL, rand_tensor


@pytest.fixture
def routes(monkeypatch):
    """Counts the core's forward calls by who made them: the kernel of the torch
    operator (it asks for DLPack capsules, framework 2) or the numpy route
    (numpy arrays, framework 0). In eager mode the op's kernel may run without
    the dispatcher (what it would run anyway); it is still the only way in."""
    calls = {"op": 0, "numpy": 0}
    core = attn._core.sdpa_forward

    def count(*a):
        calls["op" if a[-1] == 2 else "numpy"] += 1
        return core(*a)

    monkeypatch.setattr(attn._core, "sdpa_forward", count)
    return calls


def general_route(q, k, v, **kw):
    # dropout_seed with dropout_p = 0 changes nothing but keeps the call off the short cut
    return attn.scaled_dot_product_attention(q, k, v, dropout_seed=0, **kw)


@pytest.mark.parametrize("kw", [dict(), dict(is_causal=True), dict(scale=0.3), dict(is_causal=True, scale=2.0)])
@pytest.mark.parametrize("kind", ["numpy", "torch", "torch-grad"])
def test_short_cut_matches_general_route_and_torch(kw, kind, routes, gen):
    q, k, v = (rand_tensor(gen, (2, 3, L, 8)) for L in (5, 7, 7))
    if kind == "numpy":
        out = attn.scaled_dot_product_attention(q.numpy(), k.numpy(), v.numpy(), **kw)
        assert isinstance(out, np.ndarray) and routes == {"op": 0, "numpy": 1}
        np.testing.assert_array_equal(out, general_route(q.numpy(), k.numpy(), v.numpy(), **kw))
        np.testing.assert_allclose(out, F.scaled_dot_product_attention(q, k, v, **kw).numpy(), rtol=0,
                                   atol=OUT_TOL)
        return
    if kind == "torch":
        out = attn.scaled_dot_product_attention(q, k, v, **kw)
        assert isinstance(out, torch.Tensor) and not out.requires_grad
        assert routes == {"op": 1, "numpy": 0}
        torch.testing.assert_close(out, general_route(q, k, v, **kw), rtol=0, atol=0)
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, **kw), rtol=0, atol=OUT_TOL)
        return
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = attn.scaled_dot_product_attention(*leaves, **kw)
    assert out.requires_grad and type(out.grad_fn).__name__ == "_SdpaFunctionBackward"  # the op's autograd node
    assert routes == {"op": 1, "numpy": 0}
    g = rand_tensor(gen, out.shape)
    out.backward(g)
    lean_grads = [t.grad for t in leaves]
    general = [t.clone().requires_grad_() for t in (q, k, v)]
    out2 = general_route(*general, **kw)
    out2.backward(g)
    torch.testing.assert_close(out, out2.detach(), rtol=0, atol=0)
    for a, b in zip(lean_grads, [t.grad for t in general]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    ref = [t.clone().requires_grad_() for t in (q, k, v)]
    F.scaled_dot_product_attention(*ref, **kw).backward(g)
    for a, b in zip(lean_grads, [t.grad for t in ref]):
        torch.testing.assert_close(a, b, rtol=0, atol=GRAD_TOL)


@pytest.mark.parametrize("case", ["rank3", "batch-broadcast", "float16", "parameter", "int-scale", "mask"])
def test_every_torch_call_goes_through_the_op_once(case, routes, gen):
    q, k, v = (rand_tensor(gen, (2, 2, L, 4)) for L in (3, 5, 5))
    kw = {}
    if case == "rank3":
        q, k, v = q[0], k[0], v[0]
    elif case == "batch-broadcast":
        k, v = k[:1], v[:1]
    elif case == "float16":
        q, k, v = q.half(), k.half(), v.half()
    elif case == "parameter":
        q = torch.nn.Parameter(q)
    elif case == "int-scale":
        kw = dict(scale=1)
    elif case == "mask":
        kw = dict(attn_mask=torch.ones(3, 5, dtype=torch.bool))
    out = attn.scaled_dot_product_attention(q, k, v, **kw)
    assert routes == {"op": 1, "numpy": 0}
    expected = F.scaled_dot_product_attention(q.float().detach(), k.float(), v.float(), **kw)
    tol = 1e-3 if case == "float16" else OUT_TOL
    torch.testing.assert_close(out.float().detach(), expected.expand(out.shape), rtol=0, atol=tol)


def test_requires_grad_under_no_grad_and_bad_inputs_on_the_short_cut(gen):
    q, k, v = (rand_tensor(gen, (1, 2, 4, 4)).requires_grad_() for _ in range(3))
    with torch.no_grad():
        out = attn.scaled_dot_product_attention(q, k, v)
    assert not out.requires_grad
    with pytest.raises(ValueError, match="key"):  # Dk mismatch: the library's ShapeError
        attn.scaled_dot_product_attention(q.detach(), k.detach()[..., :3], v.detach())
    with pytest.raises(TypeError, match="key has dtype float64"):
        attn.scaled_dot_product_attention(q.detach(), k.detach().double(), v.detach())
    with pytest.raises(ValueError, match="scale"):
        attn.scaled_dot_product_attention(q.detach(), k.detach(), v.detach(), scale=-1.0)
    with pytest.raises(ValueError):
        attn.scaled_dot_product_attention(q.detach().numpy(), k.detach().numpy()[..., :3], v.detach().numpy())

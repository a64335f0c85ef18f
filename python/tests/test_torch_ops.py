"""attn's SDPA as PyTorch operators (python/attn/_torch_ops.py): torch.library's
own checks (opcheck) on both ops, torch.compile(fullgraph=True) of forward and
backward (no graph break; the captured graphs hold attn's ops; the same
numbers as eager), and torch.export. Expected values come from eager attn
(itself checked against torch's SDPA in test_sdpa_parity.py) and torch's SDPA."""

import pytest
import torch
import torch.nn.functional as F
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd
from torch.library import opcheck
from torch.utils._python_dispatch import TorchDispatchMode

import attn
from conftest import GRAD_TOL, OUT_TOL, rand_tensor

SDPA = torch.ops.attn.sdpa.default
SDPA_BACKWARD = torch.ops.attn.sdpa_backward.default

# (is_causal, bottom_right, window_left, window_right, scale, dropout_p, dropout_seed, enable_gqa, softcap)
OPTION_SETS = {
    "plain": (False, False, -1, -1, None, 0.0, 0, False, 0.0),
    "causal-gqa": (True, True, -1, -1, None, 0.0, 0, True, 0.0),
    "window-scale-softcap": (False, False, 2, 1, 0.5, 0.0, 0, True, 3.0),
    "dropout": (True, False, -1, -1, None, 0.25, -12345, True, 0.0),  # a negative int64 seed: its 64 bits
}


def _inputs(gen, dtype=torch.float32, grad=False, Lq=6, Lk=7):
    q = rand_tensor(gen, (2, 4, Lq, 8), dtype)
    k = rand_tensor(gen, (2, 2, Lk, 8), dtype)
    v = rand_tensor(gen, (2, 2, Lk, 5), dtype)
    return [t.requires_grad_(grad) for t in (q, k, v)]


@pytest.mark.parametrize("name", list(OPTION_SETS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck_sdpa(name, dtype, gen):
    options = OPTION_SETS[name]
    enable_gqa = options[7]
    q, k, v = _inputs(gen, dtype, grad=True)
    if not enable_gqa:
        k, v = (t.detach().repeat_interleave(2, dim=1).requires_grad_() for t in (k, v))
    opcheck(SDPA, (q, k, v, None, None, None, *options, False))


def test_opcheck_sdpa_with_mask_sinks_alibi_and_weights(gen):
    q, k, v = _inputs(gen, grad=True)
    mask = rand_tensor(gen, (6, 7)).requires_grad_()  # a float mask, broadcast: its gradient is summed
    sinks = rand_tensor(gen, (4,)).requires_grad_()
    slopes = torch.tensor([0.5, 0.25, 0.125, 0.0625])
    gqa = (*OPTION_SETS["plain"][:7], True, 0.0)  # no is_causal: not with a mask, as in torch
    opcheck(SDPA, (q, k, v, mask.expand(2, 4, 6, 7), slopes, sinks, *gqa, True))
    bool_mask = rand_tensor(gen, (2, 1, 6, 7)) > -0.5
    opcheck(SDPA, (q, k, v, bool_mask, None, None, *gqa, False))


def test_opcheck_sdpa_backward(gen):
    q, k, v = _inputs(gen)
    options = OPTION_SETS["causal-gqa"]
    out, lse, _ = SDPA(q, k, v, None, None, None, *options, False)
    grad = rand_tensor(gen, out.shape)
    opcheck(SDPA_BACKWARD, (grad, q, k, v, out, lse, None, None, None, *options, False))
    mask, sinks = rand_tensor(gen, (2, 4, 6, 7)), rand_tensor(gen, (4,))
    out, lse, _ = SDPA(q, k, v, mask, None, sinks, *OPTION_SETS["plain"][:7], True, 0.0, False)
    opcheck(SDPA_BACKWARD, (grad, q, k, v, out, lse, mask, None, sinks, *OPTION_SETS["plain"][:7], True, 0.0,
                            True))


def test_the_ops_compute_what_torch_sdpa_does(gen):
    q, k, v = _inputs(gen, Lq=7)
    out, lse, weights = SDPA(q, k, v, None, None, None, *OPTION_SETS["causal-gqa"], True)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(out, expected, rtol=0, atol=OUT_TOL)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 7), rtol=0, atol=1e-6)
    assert lse.shape == (2, 4, 7) and weights.shape == (2, 4, 7, 7)
    empty = SDPA(q, k, v, None, None, None, *OPTION_SETS["plain"][:7], True, 0.0, False)[2]
    assert empty.shape == (0,)  # weights not asked for: an empty tensor, never None


class _GraphRecorder:
    """A torch.compile backend (AOTAutograd, eager execution) that keeps the
    forward and backward graphs it was given."""

    def __init__(self):
        self.graphs = []

        def keep(gm, example_inputs):
            self.graphs.append(gm)
            return make_boxed_func(gm)

        self.backend = aot_autograd(fw_compiler=keep, bw_compiler=keep)

    def ops(self):
        return [str(n.target) for g in self.graphs for n in g.graph.nodes if n.op == "call_function"]


def _loss(q, k, v, mask, sinks):
    out = attn.scaled_dot_product_attention(q, k, v, attn_mask=mask, sinks=sinks, enable_gqa=True, scale=0.4,
                                            softcap=5.0, dropout_p=0.2, dropout_seed=7)
    return (out * out).sum()


def test_compile_fullgraph_forward_and_backward(gen):
    q, k, v = _inputs(gen, grad=True)
    mask = rand_tensor(gen, (6, 7)).requires_grad_()
    sinks = rand_tensor(gen, (4,)).requires_grad_()
    leaves = (q, k, v, mask, sinks)
    _loss(*leaves).backward()
    eager = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None

    recorder = _GraphRecorder()
    compiled = torch.compile(_loss, fullgraph=True, backend=recorder.backend)  # fullgraph: a break would raise
    loss = compiled(*leaves)
    loss.backward()
    torch.testing.assert_close(loss, _loss(*leaves), rtol=0, atol=0)
    for got, want in zip((t.grad for t in leaves), eager):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    ops = recorder.ops()
    assert "attn.sdpa.default" in ops and "attn.sdpa_backward.default" in ops, ops
    assert len(recorder.graphs) == 2  # one forward graph, one backward graph


def test_compile_with_inductor_matches_eager_and_torch(gen):
    """The default backend (Inductor) too: attn's ops stay calls into the library."""
    q, k, v = _inputs(gen, grad=True)

    def f(q, k, v):
        return attn.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

    out = torch.compile(f, fullgraph=True)(q, k, v)
    g = rand_tensor(gen, out.shape)
    out.backward(g)
    got = [t.grad.clone() for t in (q, k, v)]
    ref = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    expected = F.scaled_dot_product_attention(*ref, is_causal=True, enable_gqa=True)
    expected.backward(g)
    torch.testing.assert_close(out, expected, rtol=0, atol=OUT_TOL)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b.grad, rtol=0, atol=GRAD_TOL)


def test_compile_dynamic_shapes_no_recompile_per_length(gen):
    recorder = _GraphRecorder()

    def f(q, k, v):
        return attn.scaled_dot_product_attention(q, k, v, is_causal=True)

    compiled = torch.compile(f, fullgraph=True, dynamic=True, backend=recorder.backend)
    for L in (5, 9, 13):
        q, k, v = (rand_tensor(gen, (1, 2, L, 8)) for _ in range(3))
        torch.testing.assert_close(compiled(q, k, v), F.scaled_dot_product_attention(q, k, v, is_causal=True),
                                   rtol=0, atol=OUT_TOL)
    assert len(recorder.graphs) == 1  # one graph with a symbolic length


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x, mask):  # x [B, H, L, 8], mask bool [L, L]
        q = self.proj(x)
        return attn.scaled_dot_product_attention(q, x, x, attn_mask=mask, window=(3, 0))


def test_export(gen):
    torch.manual_seed(0)
    block = _Block()
    x = rand_tensor(gen, (2, 2, 6, 8))
    mask = rand_tensor(gen, (6, 6)) > -1.0
    exported = torch.export.export(block, (x, mask))
    targets = [str(n.target) for n in exported.graph.nodes if n.op == "call_function"]
    assert "attn.sdpa.default" in targets
    torch.testing.assert_close(exported.module()(x, mask), block(x, mask), rtol=0, atol=0)
    y = rand_tensor(gen, (2, 2, 6, 8))  # other data, same shapes: the graph is not specialised to x's values
    torch.testing.assert_close(exported.module()(y, mask), block(y, mask), rtol=0, atol=0)


class _OpRecorder(TorchDispatchMode):
    """A dispatch mode that lists every op it sees (as profilers and FLOP counters do)."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_eager_short_cut_and_the_dispatcher_agree(gen):
    """In plain eager mode the call runs the op's kernel without the dispatcher;
    under a dispatch mode, which must see every op, it goes through
    torch.ops.attn.sdpa. Both give the same bits, forward and backward."""
    q, k, v = _inputs(gen, grad=True)
    direct = attn.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    with _OpRecorder() as recorder:
        dispatched = attn.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    assert "attn.sdpa.default" in recorder.ops
    torch.testing.assert_close(direct, dispatched, rtol=0, atol=0)
    g = rand_tensor(gen, direct.shape)
    grads = torch.autograd.grad(direct, (q, k, v), g)
    grads_dispatched = torch.autograd.grad(dispatched, (q, k, v), g)
    for a, b in zip(grads, grads_dispatched):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

"""attn.nn.Linear and attn.nn.TorchMultiheadAttention against torch.nn's: the same
initial weights after the same manual_seed, the same outputs and gradients
after loading a torch module's state_dict."""

import numpy as np
import pytest
import torch

import attn
from conftest import GRAD_TOL, OUT_TOL


def test_linear_init_forward_backward_match_torch():
    torch.manual_seed(11)
    ref = torch.nn.Linear(5, 3)
    attn.manual_seed(11)
    lin = attn.nn.Linear(5, 3)
    np.testing.assert_array_equal(lin.weight, ref.weight.detach().numpy())  # bit for bit
    np.testing.assert_array_equal(lin.bias, ref.bias.detach().numpy())
    assert list(lin.state_dict()) == list(ref.state_dict())

    x = torch.randn(4, 2, 5, requires_grad=True)
    y = lin(x)
    assert isinstance(y, torch.Tensor)
    y_ref = ref(x)
    torch.testing.assert_close(y, y_ref.detach(), rtol=0, atol=OUT_TOL)
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    dx = lin.backward(g)
    torch.testing.assert_close(dx, x.grad, rtol=0, atol=GRAD_TOL)
    grads = lin.named_gradients()
    np.testing.assert_allclose(grads["weight"], ref.weight.grad.numpy(), rtol=0, atol=GRAD_TOL)
    np.testing.assert_allclose(grads["bias"], ref.bias.grad.numpy(), rtol=0, atol=GRAD_TOL)


def test_linear_weights_are_views_and_load_from_torch():
    lin = attn.nn.Linear(3, 2, bias=False, dtype=np.float64)
    assert lin.bias is None and lin.weight.dtype == np.float64
    lin.weight[:] = 0.5  # a view of the layer's storage
    np.testing.assert_array_equal(lin(np.ones((1, 3))), [[1.5, 1.5]])
    shared = torch.from_numpy(lin.weight)  # zero-copy into torch too
    shared.fill_(2.0)
    np.testing.assert_array_equal(lin(np.ones(3)), [6.0, 6.0])
    ref = torch.nn.Linear(3, 2, bias=False)
    lin.load_state_dict(ref.state_dict())
    np.testing.assert_allclose(lin.weight, ref.weight.detach().numpy())


MHA_CONFIGS = [
    dict(),
    dict(batch_first=True),
    dict(kdim=5, vdim=3),
    dict(add_bias_kv=True),
    dict(add_zero_attn=True, bias=False),
    dict(add_bias_kv=True, add_zero_attn=True, kdim=6, vdim=7, batch_first=True),
]
CALLS = [
    dict(),
    dict(key_padding_mask="bool"),
    dict(attn_mask="bool"),
    dict(attn_mask="float", key_padding_mask="float", average_attn_weights=False),
    dict(attn_mask="bool3d"),
    dict(need_weights=False),
]


@pytest.mark.parametrize("cfg", MHA_CONFIGS, ids=[str(c) for c in MHA_CONFIGS])
@pytest.mark.parametrize("call", CALLS, ids=[str(c) for c in CALLS])
def test_multihead_attention_matches_torch_after_loading_its_state_dict(cfg, call):
    g = torch.Generator().manual_seed(3)
    E, H, N, L, S = 8, 2, 2, 3, 4
    ref = torch.nn.MultiheadAttention(E, H, **cfg)
    with torch.no_grad():  # non-zero biases, so that they are tested too
        for p in ref.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    mha = attn.nn.TorchMultiheadAttention(E, H, **cfg)
    mha.load_state_dict(ref.state_dict())
    assert list(mha.state_dict()) == list(ref.state_dict())

    bf = cfg.get("batch_first", False)
    shape = lambda seq, feat: (N, seq, feat) if bf else (seq, N, feat)  # noqa: E731
    q = torch.randn(shape(L, E), generator=g, requires_grad=True)
    k = torch.randn(shape(S, cfg.get("kdim", E)), generator=g, requires_grad=True)
    v = torch.randn(shape(S, cfg.get("vdim", E)), generator=g, requires_grad=True)
    kw = dict(need_weights=call.get("need_weights", True),
              average_attn_weights=call.get("average_attn_weights", True))
    if call.get("key_padding_mask") == "bool":
        kpm = torch.zeros(N, S, dtype=torch.bool)
        kpm[0, -1] = True  # True = padding, ignored
        kw["key_padding_mask"] = kpm
    elif call.get("key_padding_mask") == "float":
        kw["key_padding_mask"] = torch.randn(N, S, generator=g)
    if call.get("attn_mask") == "bool":
        am = torch.zeros(L, S, dtype=torch.bool)
        am[0, 1] = True  # True = NOT allowed
        kw["attn_mask"] = am
    elif call.get("attn_mask") == "bool3d":
        am = torch.rand(N * H, L, S, generator=g) < 0.3
        am[..., 0] = False
        kw["attn_mask"] = am
    elif call.get("attn_mask") == "float":
        kw["attn_mask"] = torch.randn(L, S, generator=g)

    out_ref, w_ref = ref(q, k, v, **kw)
    out, w = mha(q, k, v, **kw)
    assert isinstance(out, torch.Tensor) and out.shape == out_ref.shape
    torch.testing.assert_close(out, out_ref.detach(), rtol=0, atol=OUT_TOL)
    if w_ref is None:
        assert w is None
    else:
        torch.testing.assert_close(w, w_ref.detach(), rtol=0, atol=OUT_TOL)

    grad = torch.randn(out_ref.shape, generator=g)
    out_ref.backward(grad)
    dq, dk, dv = mha.backward(grad)
    for a, b in ((dq, q.grad), (dk, k.grad), (dv, v.grad)):
        torch.testing.assert_close(a, b, rtol=0, atol=GRAD_TOL)
    ours = mha.named_gradients()
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(ours[name], p.grad.numpy(), rtol=0, atol=GRAD_TOL, err_msg=name)


def test_multihead_attention_init_matches_torch_and_numpy_path():
    torch.manual_seed(5)
    ref = torch.nn.MultiheadAttention(6, 3, add_bias_kv=True, batch_first=True)
    attn.manual_seed(5)
    mha = attn.nn.TorchMultiheadAttention(6, 3, add_bias_kv=True, batch_first=True)
    for name, p in ref.state_dict().items():
        np.testing.assert_array_equal(mha.state_dict()[name], p.numpy(), err_msg=name)
    assert mha.in_proj_weight.shape == (18, 6) and mha.out_proj.weight.shape == (6, 6)
    x = np.random.default_rng(0).standard_normal((2, 4, 6)).astype(np.float32)
    out, w = mha(x, x, x)
    assert isinstance(out, np.ndarray) and out.shape == (2, 4, 6) and w.shape == (2, 4, 5)
    out_ref, w_ref = ref(*(torch.from_numpy(x),) * 3)
    np.testing.assert_allclose(out, out_ref.detach().numpy(), rtol=0, atol=OUT_TOL)
    assert mha.eval() is mha and not mha.training


def test_random_numbers_are_torchs():
    attn.manual_seed(123)
    torch.manual_seed(123)
    np.testing.assert_array_equal(attn.rand(2, 3), torch.rand(2, 3).numpy())
    np.testing.assert_array_equal(attn.randn((4, 5)), torch.randn(4, 5).numpy())
    np.testing.assert_array_equal(attn.randn(17, dtype=np.float64),
                                  torch.randn(17, dtype=torch.float64).numpy())
    assert attn.initial_seed() == 123


def test_torch_multihead_attention_keeps_torchs_spelling():
    # Renamed so it is not confused with the notes' MultiHeadAttention; torch's
    # spelling stays for code ported from torch.nn.
    assert attn.nn.MultiheadAttention is attn.nn.TorchMultiheadAttention
    assert attn.nn.MultiheadAttention is not attn.nn.MultiHeadAttention
    assert repr(attn.nn.TorchMultiheadAttention(4, 2)).startswith("TorchMultiheadAttention(")

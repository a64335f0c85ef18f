"""Bad input raises a Python exception carrying the library's message
(ValueError, attn.ShapeError for shapes, TypeError for types), never a crash."""

import numpy as np
import pytest
import torch

import attn

sdpa = attn.scaled_dot_product_attention


def qkv(dtype=np.float32, shape=(1, 2, 3, 4)):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(3)]


def test_shape_errors_are_value_errors_naming_the_argument():
    q, k, v = qkv()
    with pytest.raises(attn.ShapeError, match=r"key has shape \[1, 2, 3, 5\]"):
        sdpa(q, np.zeros((1, 2, 3, 5), np.float32), v)
    assert issubclass(attn.ShapeError, ValueError)
    with pytest.raises(ValueError, match="attn_mask"):
        sdpa(q, k, v, attn_mask=np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="same rank"):
        sdpa(q, k[0], v)
    with pytest.raises(ValueError, match="rank 2"):
        sdpa(q[0, 0, 0], k[0, 0, 0], v[0, 0, 0])
    with pytest.raises(ValueError, match="batch dims"):
        sdpa(np.zeros((2, 3, 1, 2, 4), np.float32), np.zeros((3, 3, 1, 2, 4), np.float32),
             np.zeros((3, 3, 1, 2, 4), np.float32))


@pytest.mark.parametrize("kw,match", [
    (dict(is_causal=True, attn_mask=np.ones((3, 3), bool)), "is_causal"),
    (dict(dropout_p=1.5), "dropout_p"),
    (dict(dropout_p=-0.1), "dropout_p"),
    (dict(scale=0.0), "scale"),
    (dict(scale=float("nan")), "scale"),
    (dict(softcap=-1.0), "softcap"),
    (dict(window=(-2, 0)), "window"),
    (dict(causal_alignment="middle"), "causal_alignment"),
    (dict(sinks=np.zeros(3)), "sinks"),
    (dict(alibi_slopes=np.zeros(5)), "alibi_slopes"),
])
def test_bad_values_raise_value_error(kw, match):
    with pytest.raises(ValueError, match=match):
        sdpa(*qkv(), **kw)


def test_heads_without_gqa_and_gqa_not_dividing():
    q = np.zeros((1, 4, 3, 4), np.float32)
    kv = np.zeros((1, 2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="enable_gqa"):
        sdpa(q, kv, kv)
    kv3 = np.zeros((1, 3, 3, 4), np.float32)
    with pytest.raises(ValueError):
        sdpa(q, kv3, kv3, enable_gqa=True)


def test_type_errors():
    q, k, v = qkv()
    with pytest.raises(TypeError, match="float32 or float64"):
        sdpa(q.astype(np.int32), k.astype(np.int32), v.astype(np.int32))
    with pytest.raises(TypeError, match="key has dtype float64"):
        sdpa(q, k.astype(np.float64), v)
    with pytest.raises(TypeError, match="attn_mask has dtype int"):
        sdpa(q, k, v, attn_mask=np.ones((3, 3), np.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        sdpa(torch.from_numpy(q), k, v)
    with pytest.raises(TypeError, match="torch.Tensor"):
        sdpa(q, torch.from_numpy(k), v)
    with pytest.raises(TypeError, match="attn_mask has dtype torch.int64"):
        sdpa(*(torch.from_numpy(x) for x in (q, k, v)), attn_mask=torch.ones(3, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="window"):
        sdpa(q, k, v, window=3)
    with pytest.raises(TypeError, match="dropout_seed"):
        sdpa(q, k, v, dropout_seed="x")
    with pytest.raises(TypeError):
        sdpa(q, k, v, None, 0.0, False, None, False, "extra positional")  # keyword-only extras


def test_no_gradient_for_alibi_slopes_is_said_not_silently_zero():
    q, k, v = (torch.from_numpy(x).requires_grad_() for x in qkv())
    with pytest.raises(ValueError, match="alibi_slopes"):
        sdpa(q, k, v, alibi_slopes=torch.ones(2, requires_grad=True))


def test_layer_and_io_errors(tmp_path):
    with pytest.raises(ValueError, match="divisible"):
        attn.nn.TorchMultiheadAttention(6, 4)
    mha = attn.nn.TorchMultiheadAttention(4, 2)
    with pytest.raises(ValueError, match="unexpected key 'bogus'"):
        mha.load_state_dict({**mha.state_dict(), "bogus": np.zeros(1)})
    with pytest.raises(attn.ShapeError, match="in_proj_weight"):
        mha.load_state_dict({**mha.state_dict(), "in_proj_weight": np.zeros((3, 3))})
    with pytest.raises(ValueError):
        mha(np.zeros((3, 1, 5), np.float32), np.zeros((3, 1, 4)), np.zeros((3, 1, 4)))
    with pytest.raises(TypeError, match="dtype"):
        attn.nn.Linear(2, 3, dtype=np.int32)
    with pytest.raises(OSError, match="missing.safetensors"):
        attn.load_safetensors(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(OSError, match="bad.safetensors"):
        attn.load_safetensors(bad)


def test_non_numbers_are_type_errors():
    q, k, v = qkv()
    with pytest.raises(TypeError, match="scale"):
        sdpa(q, k, v, scale="x")
    with pytest.raises(TypeError, match="dropout_p"):
        sdpa(q, k, v, dropout_p=None)
    with pytest.raises(TypeError, match="query is an array of object"):
        sdpa(object(), k, v)
    # a window wider than any sequence is unbounded, not an overflow
    np.testing.assert_array_equal(sdpa(q, k, v, window=(10**30, None)), sdpa(q, k, v))

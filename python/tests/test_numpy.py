"""The numpy path: numpy in, numpy out (dtype kept), same numbers as torch."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attn
from conftest import OUT_TOL


@pytest.mark.parametrize("dtype,tol", [(np.float32, OUT_TOL), (np.float64, 1e-12)])
def test_numpy_matches_torch(dtype, tol):
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 4, 5, 8)).astype(dtype)
    k = rng.standard_normal((2, 2, 7, 8)).astype(dtype)
    v = rng.standard_normal((2, 2, 7, 3)).astype(dtype)
    mask = rng.random((5, 7)) < 0.7
    mask[:, 0] = True
    out = attn.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    assert isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == (2, 4, 5, 3)
    ref = F.scaled_dot_product_attention(*(torch.from_numpy(x) for x in (q, k, v, mask)), enable_gqa=True)
    np.testing.assert_allclose(out, ref.numpy(), rtol=0, atol=tol)


def test_float_mask_of_another_float_dtype_is_converted():
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 1, 3, 4)).astype(np.float32) for _ in range(3))
    mask64 = rng.standard_normal((3, 3))
    out = attn.scaled_dot_product_attention(q, k, v, attn_mask=mask64)
    ref = F.scaled_dot_product_attention(*(torch.from_numpy(x) for x in (q, k, v)),
                                         attn_mask=torch.from_numpy(mask64.astype(np.float32)))
    np.testing.assert_allclose(out, ref.numpy(), rtol=0, atol=OUT_TOL)


def test_strided_and_reversed_and_readonly_arrays():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 6, 2, 4))  # [B, L, H, D]
    q = x.transpose(0, 2, 1, 3)             # a view, no copy
    k = x[:, ::-1].transpose(0, 2, 1, 3)    # negative strides
    v = np.broadcast_to(rng.standard_normal((1, 1, 6, 4)), (1, 2, 6, 4))  # read-only, stride 0
    out = attn.scaled_dot_product_attention(q, k, v, is_causal=True)
    ref = F.scaled_dot_product_attention(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (q, k, v)),
                                         is_causal=True)
    np.testing.assert_allclose(out, ref.numpy(), rtol=0, atol=1e-12)


def test_lists_are_accepted_and_outputs_are_owned_writable_arrays():
    q = [[[1.0, 0.0], [0.0, 1.0]]]  # [H=1, L=2, D=2], float64
    out = attn.scaled_dot_product_attention(q, q, q)
    assert out.dtype == np.float64 and out.shape == (1, 2, 2)
    out += 1.0  # writable; memory owned by the array (kept alive after the call)
    out, lse, w = attn.scaled_dot_product_attention(q, q, q, return_lse=True, return_weights=True)
    np.testing.assert_allclose(w.sum(-1), 1.0)
    np.testing.assert_allclose(out, w @ np.asarray(q))


def test_simplified_self_attention_reproduces_the_notes():
    # "Your journey starts with one step": the notes' printed numbers for x2 = "journey".
    x = np.array([[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64],
                  [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]], dtype=np.float32)
    scores, weights, context = attn.simplified_self_attention(x)
    np.testing.assert_allclose(scores[1], [0.9544, 1.4950, 1.4754, 0.8434, 0.7070, 1.0865], atol=5e-5)
    np.testing.assert_allclose(weights[1], [0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581], atol=5e-5)
    np.testing.assert_allclose(context[1], [0.4419, 0.6515, 0.5683], atol=5e-5)
    by_sum = attn.normalize_rows(scores[1], "divide_by_sum")
    np.testing.assert_allclose(by_sum, [0.1455, 0.2278, 0.2249, 0.1285, 0.1077, 0.1656], atol=5e-5)
    with pytest.raises(ValueError, match="normalization"):
        attn.normalize_rows(scores, "bogus")

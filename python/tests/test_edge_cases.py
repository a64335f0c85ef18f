"""The library's edge-case rules hold through Python: rows that see no key give
0 (and zero gradient), NaN behind a mask does not leak, empty inputs give
empty (or zero) outputs."""

import math

import numpy as np
import pytest
import torch

import attn

sdpa = attn.scaled_dot_product_attention


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fully_masked_rows_give_zero_output_and_gradient(dtype):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 3, 4, generator=g, dtype=dtype, requires_grad=True) for _ in range(3))
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[1] = False  # query row 1 sees nothing
    out = sdpa(q, k, v, attn_mask=mask)
    assert torch.isfinite(out).all()
    assert (out[:, :, 1] == 0).all()
    out.sum().backward()
    assert torch.isfinite(q.grad).all() and (q.grad[:, :, 1] == 0).all()
    fmask = torch.zeros(3, 3, dtype=dtype)
    fmask[2] = -math.inf
    assert (sdpa(q, k, v, attn_mask=fmask)[:, :, 2] == 0).all()


def test_masked_nan_and_inf_do_not_leak():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 1, 4, 3))
    k = rng.standard_normal((1, 1, 4, 3))
    v = rng.standard_normal((1, 1, 4, 3))
    k[..., 3, :] = np.nan
    v[..., 3, :] = np.inf  # key 3 is hidden from rows 0..2 by causality
    out = sdpa(q, k, v, is_causal=True)
    assert np.isfinite(out[..., :3, :]).all()
    mask = np.ones((4, 4), bool)
    mask[:, 3] = False  # hidden from every row by the mask
    assert np.isfinite(sdpa(q, k, v, attn_mask=mask)).all()
    fmask = np.zeros((4, 4))
    fmask[:, 3] = -np.inf
    assert np.isfinite(sdpa(q, k, v, attn_mask=fmask)).all()


@pytest.mark.parametrize("qs,ks,vs", [
    ((1, 2, 0, 4), (1, 2, 5, 4), (1, 2, 5, 3)),  # Lq = 0: empty output
    ((0, 2, 3, 4), (0, 2, 5, 4), (0, 2, 5, 3)),  # B = 0
    ((1, 2, 3, 4), (1, 2, 0, 4), (1, 2, 0, 3)),  # Lk = 0: every row sees nothing -> zeros
])
def test_empty_inputs(qs, ks, vs):
    q, k, v = (np.ones(s, np.float32) for s in (qs, ks, vs))
    out = sdpa(q, k, v)
    assert out.shape == qs[:-1] + (vs[-1],)
    assert (out == 0).all()
    tq, tk, tv = (torch.ones(s, requires_grad=True) for s in (qs, ks, vs))
    tout = sdpa(tq, tk, tv)
    assert tout.shape == out.shape
    tout.sum().backward()
    assert tq.grad.shape == qs and tk.grad.shape == ks and tv.grad.shape == vs


def test_dropout_is_reproducible_by_seed_and_scales_kept_weights():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 16, 8)) for _ in range(3))
    a = sdpa(q, k, v, dropout_p=0.5, dropout_seed=7)
    b = sdpa(q, k, v, dropout_p=0.5, dropout_seed=7)
    c = sdpa(q, k, v, dropout_p=0.5, dropout_seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    attn.manual_seed(3)
    d = sdpa(q, k, v, dropout_p=0.5)
    attn.manual_seed(3)
    np.testing.assert_array_equal(d, sdpa(q, k, v, dropout_p=0.5))
    _, w = sdpa(q, k, v, dropout_p=0.5, dropout_seed=7, return_weights=True)
    _, p = sdpa(q, k, v, return_weights=True)
    kept = w != 0
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(w[kept], 2.0 * p[kept], rtol=1e-12)

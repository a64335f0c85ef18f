"""torch.autograd.gradcheck (finite differences in float64) through attn's
backward, for every kind of input that gets a gradient."""

import pytest
import torch
from torch.autograd import gradcheck

import attn
from conftest import rand_tensor


def sdpa(**kw):
    return lambda *t: attn.scaled_dot_product_attention(*t, **kw)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(is_causal=True),
    dict(is_causal=True, causal_alignment="bottom_right"),
    dict(scale=0.7, softcap=2.0),
    dict(window=(1, 1)),
    dict(enable_gqa=True),
])
def test_gradcheck_query_key_value(kw, gen):
    Hkv = 1 if kw.get("enable_gqa") else 2
    q = rand_tensor(gen, (1, 2, 3, 4), torch.float64).requires_grad_()
    k = rand_tensor(gen, (1, Hkv, 5, 4), torch.float64).requires_grad_()
    v = rand_tensor(gen, (1, Hkv, 5, 3), torch.float64).requires_grad_()
    assert gradcheck(sdpa(**kw), (q, k, v))


def test_gradcheck_float_mask_broadcast_over_batch_and_heads(gen):
    q, k, v = (rand_tensor(gen, (2, 2, L, 4), torch.float64).requires_grad_() for L in (3, 4, 4))
    mask = rand_tensor(gen, (3, 4), torch.float64).requires_grad_()  # broadcast: its grad is summed
    assert gradcheck(lambda q, k, v, m: attn.scaled_dot_product_attention(q, k, v, attn_mask=m),
                     (q, k, v, mask))


def test_gradcheck_sinks_and_alibi(gen):
    q, k, v = (rand_tensor(gen, (1, 2, L, 4), torch.float64).requires_grad_() for L in (3, 4, 4))
    sinks = rand_tensor(gen, (2,), torch.float64).requires_grad_()
    slopes = torch.tensor([0.5, 0.25], dtype=torch.float64)
    assert gradcheck(lambda q, k, v, s: attn.scaled_dot_product_attention(
        q, k, v, sinks=s, alibi_slopes=slopes, is_causal=True), (q, k, v, sinks))


def test_gradcheck_with_dropout_fixed_seed(gen):
    # The seed fixes the mask, so forward is a deterministic function and
    # backward regenerates the same mask.
    q, k, v = (rand_tensor(gen, (1, 2, L, 4), torch.float64).requires_grad_() for L in (3, 5, 5))
    assert gradcheck(sdpa(dropout_p=0.3, dropout_seed=42), (q, k, v))


def test_gradcheck_strided_inputs(gen):
    x = rand_tensor(gen, (1, 4, 2, 3), torch.float64).requires_grad_()  # [B, L, H, D]
    assert gradcheck(lambda x: attn.scaled_dot_product_attention(
        x.transpose(1, 2), x.transpose(1, 2), x.transpose(1, 2), is_causal=True), (x,))

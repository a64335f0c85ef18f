"""attn.nn.torch — attn's layers as torch.nn.Modules (imports torch).

The same layers as :mod:`attn.nn` (the lecture notes' ``SelfAttention_v1``,
``SelfAttention_v2``, ``CausalAttention``, ``MultiHeadAttentionWrapper``,
``MultiHeadAttention``, and PyTorch's ``MultiheadAttention`` and ``Linear``),
written as ``torch.nn.Module`` subclasses for training inside torch models:

- weights are ``torch.nn.Parameter``\\s registered under the notes' and
  torch's names, so ``state_dict()`` / ``load_state_dict()`` use the same keys
  as the notes' modules (including their ``mask`` buffer) and as
  ``torch.nn.MultiheadAttention``; ``torch.optim`` optimisers train them;
- projections are torch ops on those Parameters (``F.linear`` / ``@``), and
  the attention core is :func:`attn.scaled_dot_product_attention`, attn's
  fused kernel with its own backward, which torch autograd calls; gradients
  reach the Parameters through torch autograd like any torch module's;
- initialisation is torch's own (``torch.manual_seed`` then a constructor
  gives the notes' / torch's initial weights).

Differences from the torch originals, on purpose (attn's SDPA semantics): a
query row that sees no key gives 0 instead of NaN; dropout on the attention
weights uses attn's counter-based mask (drawn from attn's generator, so
``attn.manual_seed`` makes it reproducible), not torch's RNG.

The numpy-facing layers with their own C++ backward stay in :mod:`attn.nn`.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

# the public function (attn is fully imported before this module, which attn.nn imports lazily)
from . import scaled_dot_product_attention

__all__ = ["Linear", "SelfAttention_v1", "SelfAttention_v2", "SelfAttention", "CausalAttention",
           "MultiHeadAttentionWrapper", "MultiHeadAttention", "TorchMultiheadAttention", "MultiheadAttention"]


class Linear(nn.Linear):
    """y = x·Wᵀ + b: ``torch.nn.Linear`` itself (same Parameters ``weight``
    [out_features, in_features] and ``bias`` [out_features], initialisation
    and state_dict), under attn's name so a model can take every layer from
    ``attn.nn.torch``."""


def _sdpa(q, k, v, causal, dropout_p):
    """attn's SDPA on [.., H, L, D] tensors (or [.., L, D]); dropout only when > 0."""
    return scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=causal)


class SelfAttention_v1(nn.Module):
    """The notes' SelfAttention_v1: weights as plain matrices.

    x ``[batch, seq, d_in]`` or ``[seq, d_in]`` -> ``[.., seq, d_out]``;
    Parameters ``W_query``, ``W_key``, ``W_value`` ``[d_in, d_out]``
    (``torch.rand``, in that order); Q = x·W_query, K = x·W_key, V = x·W_value,
    context = softmax(Q·Kᵀ/√d_out)·V (no mask).
    """

    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x):
        return _sdpa(x @ self.W_query, x @ self.W_key, x @ self.W_value, False, 0.0)


class SelfAttention_v2(nn.Module):
    """The notes' SelfAttention_v2: nn.Linear projections ``W_query``,
    ``W_key``, ``W_value`` (``.weight [d_out, d_in]``, ``.bias`` with
    qkv_bias), softmax(Q·Kᵀ/√d_out)·V, no mask.
    x ``[batch, seq, d_in]`` or ``[seq, d_in]`` -> ``[.., seq, d_out]``."""

    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        return _sdpa(self.W_query(x), self.W_key(x), self.W_value(x), False, 0.0)


SelfAttention = SelfAttention_v2


def _causal_mask_buffer(context_length):
    # the notes' buffer: 1 above the diagonal = a future token, hidden. Kept
    # (persistent) so that state_dict keys equal the notes'; the attention
    # itself applies the same rule through SDPA's is_causal.
    return torch.triu(torch.ones(context_length, context_length), diagonal=1)


def _check_length(module, num_tokens):
    if num_tokens > module.context_length:
        raise ValueError(f"{type(module).__name__}.forward: x has {num_tokens} tokens, more than "
                         f"context_length {module.context_length}")


class CausalAttention(nn.Module):
    """The notes' CausalAttention: SelfAttention_v2 where token i sees tokens
    0..i only, with dropout on the attention weights while training.

    x ``[batch, seq, d_in]`` or ``[seq, d_in]``, seq <= context_length ->
    ``[.., seq, d_out]``. Parameters as SelfAttention_v2's, buffer ``mask``
    ``[context_length, context_length]`` as the notes'.
    """

    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", _causal_mask_buffer(context_length))

    def forward(self, x):
        _check_length(self, x.shape[-2])
        p = self.dropout.p if self.training else 0.0
        return _sdpa(self.W_query(x), self.W_key(x), self.W_value(x), True, p)


class MultiHeadAttentionWrapper(nn.Module):
    """The notes' MultiHeadAttentionWrapper: ``heads`` (an nn.ModuleList of
    num_heads CausalAttention), outputs concatenated:
    x ``[.., seq, d_in]`` -> ``[.., seq, num_heads·d_out]``."""

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)])

    def forward(self, x):
        return torch.cat([head(x) for head in self.heads], dim=-1)


class MultiHeadAttention(nn.Module):
    """The notes' MultiHeadAttention (efficient form): one projection of
    width d_out split into num_heads heads of head_dim = d_out/num_heads,
    causal attention on all heads at once (one attn SDPA call, the heads as
    a strided view, no copy), heads merged and mixed by ``out_proj``.

    x ``[batch, seq, d_in]`` or ``[seq, d_in]``, seq <= context_length ->
    ``[.., seq, d_out]``. Parameters ``W_query``, ``W_key``, ``W_value``
    (``.weight [d_out, d_in]``, ``.bias`` with qkv_bias), ``out_proj``
    (``.weight [d_out, d_out]``, ``.bias``); buffer ``mask`` as the notes'.
    Not torch.nn.MultiheadAttention (that is :class:`TorchMultiheadAttention`).
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"MultiHeadAttention: d_out {d_out} is not divisible by num_heads {num_heads}")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", _causal_mask_buffer(context_length))

    def forward(self, x):
        num_tokens = x.shape[-2]
        _check_length(self, num_tokens)
        lead = x.shape[:-2]

        def heads(t):  # [.., L, d_out] -> [.., H, L, head_dim], a view
            return t.view(*lead, num_tokens, self.num_heads, self.head_dim).transpose(-3, -2)

        p = self.dropout.p if self.training else 0.0
        context = _sdpa(heads(self.W_query(x)), heads(self.W_key(x)), heads(self.W_value(x)), True, p)
        context = context.transpose(-3, -2).reshape(*lead, num_tokens, self.d_out)
        return self.out_proj(context)


class TorchMultiheadAttention(nn.MultiheadAttention):
    """``torch.nn.MultiheadAttention`` with attn's attention core. (Not the
    notes' :class:`MultiHeadAttention`; ``MultiheadAttention``, torch's
    spelling, is this class too.)

    A subclass of torch's module: the same constructor, Parameters
    (``in_proj_weight`` [3E, E] or ``q/k/v_proj_weight`` when kdim/vdim
    differ, ``in_proj_bias``, ``bias_k``/``bias_v``, ``out_proj``),
    initialisation and state_dict keys; ``forward`` keeps torch's signature
    and semantics and runs the attention through
    :func:`attn.scaled_dot_product_attention`.

    Shapes (E = embed_dim): query ``[L, N, E]``, key ``[S, N, kdim]``, value
    ``[S, N, vdim]`` (``batch_first``: ``[N, L, E]``, ...; unbatched:
    ``[L, E]``, ...). Returns ``(attn_output, attn_weights)``; weights
    ``[N, L, S]`` averaged over heads (``[N, H, L, S]`` with
    ``average_attn_weights=False``), None unless ``need_weights``.

    MASK POLARITY, as in torch's module (the opposite of SDPA's bool mask):
    ``key_padding_mask`` ``[N, S]`` True = padding, ignore this key;
    ``attn_mask`` ``[L, S]`` or ``[N·H, L, S]`` True = NOT allowed. Float
    masks are added to the scores. ``is_causal`` without ``attn_mask``
    applies the causal mask (torch requires the mask as well).
    """

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        batched = query.dim() == 3
        if not batched:  # [L, E] -> [L, 1, E]
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:  # [N, L, E] -> [L, N, E] (views)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        L, N, E = query.shape
        H, hd = self.num_heads, self.head_dim

        # input projections, torch ops on the Parameters
        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b_q = b_k = b_v = None
        if self.in_proj_bias is not None:
            b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q, k, v = F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)

        # one additive float mask [N or 1, H or 1, L, S] from torch's two masks
        mask = self._float_mask(attn_mask, q.dtype, L, N)
        kpm = None
        if key_padding_mask is not None:
            kpm = self._to_float(key_padding_mask, q.dtype)  # [N, S]
        if self.bias_k is not None:  # one learned key/value appended to every sequence
            k = torch.cat([k, self.bias_k.expand(1, N, E)])
            v = torch.cat([v, self.bias_v.expand(1, N, E)])
            mask = None if mask is None else F.pad(mask, (0, 1))
            kpm = None if kpm is None else F.pad(kpm, (0, 1))
        S = k.shape[0]

        # [L, N, E] -> [N, H, L, hd]
        q = q.view(L, N, H, hd).permute(1, 2, 0, 3)
        k = k.view(S, N, H, hd).permute(1, 2, 0, 3)
        v = v.view(S, N, H, hd).permute(1, 2, 0, 3)
        if self.add_zero_attn:  # a zero key/value appended
            k = torch.cat([k, k.new_zeros(N, H, 1, hd)], dim=2)
            v = torch.cat([v, v.new_zeros(N, H, 1, hd)], dim=2)
            mask = None if mask is None else F.pad(mask, (0, 1))
            kpm = None if kpm is None else F.pad(kpm, (0, 1))
            S += 1
        if kpm is not None:
            kpm = kpm.view(N, 1, 1, S)
            mask = kpm if mask is None else mask + kpm

        causal = bool(is_causal) and attn_mask is None
        p = self.dropout if self.training else 0.0
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal,
                                                        return_weights=True)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p,
                                                        is_causal=causal), None

        out = out.permute(2, 0, 1, 3).reshape(L, N, E)  # [N, H, L, hd] -> [L, N, E]
        out = F.linear(out, self.out_proj.weight, self.out_proj.bias)
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)
        if not batched:
            out = out.squeeze(1)
            if weights is not None:
                weights = weights.squeeze(0)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    @staticmethod
    def _to_float(m, dtype):
        """torch's polarity (bool True = hidden) as an additive float mask."""
        if m.dtype == torch.bool:
            return torch.zeros(m.shape, dtype=dtype).masked_fill(m, -math.inf)
        if not m.is_floating_point():
            raise TypeError(f"TorchMultiheadAttention.forward: a mask has dtype {m.dtype}, expected bool or float")
        return m.to(dtype)

    def _float_mask(self, attn_mask, dtype, L, N):
        if attn_mask is None:
            return None
        m = self._to_float(attn_mask, dtype)
        if m.dim() == 2:  # [L, S]
            return m.view(1, 1, *m.shape)
        if m.dim() == 3:  # [N·H, L, S]
            if m.shape[0] != N * self.num_heads:
                from ._core import ShapeError
                raise ShapeError(f"TorchMultiheadAttention.forward: attn_mask has shape {list(m.shape)}, expected "
                                 f"[{L}, S] or [{N * self.num_heads}, {L}, S]")
            return m.view(N, self.num_heads, *m.shape[1:])
        from ._core import ShapeError
        raise ShapeError(f"TorchMultiheadAttention.forward: attn_mask has shape {list(m.shape)}, expected rank 2 or 3")


# torch's spelling (the class is a torch.nn.MultiheadAttention); one letter
# from the notes' MultiHeadAttention, so attn's docs say TorchMultiheadAttention.
MultiheadAttention = TorchMultiheadAttention

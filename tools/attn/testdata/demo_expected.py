#!/usr/bin/env python3
"""The numbers `attn demo` prints after the simplified attention: trainable
weights, scaling by sqrt(d_k), causal masking, dropout and two heads, computed
with PyTorch exactly as Raschka's "Build a Large Language Model (From
Scratch)", ch. 3 does (the book the lecture notes 001/002/004 follow; the notes
themselves print no numbers for these stages). tools/attn/cmd_tests.cmake
hard-codes what this prints (4 decimals); rerun it to check them:

    .venv/bin/python tools/attn/testdata/demo_expected.py

Where the book prints a number, the script asserts torch still gives it.
Dropout is not here: torch's nn.Dropout draws a Bernoulli mask from the global
generator, attn's dropout is counter-based (a hash of seed and position), so the
masks differ by design; only the 1/(1-p) = 2x scaling of kept weights is shared.
"""
import torch
import torch.nn as nn

torch.set_printoptions(precision=4, sci_mode=False)
inputs = torch.tensor(
    [[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64],
     [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]])
x_2 = inputs[1]
d_in, d_out = 3, 2


def check(name, got, printed):
    assert torch.allclose(got, torch.tensor(printed), atol=6e-5), (name, got)
    print(f"{name}:\n{got}")


# 7. Trainable weights as plain matrices (the book's SelfAttention_v1), seed 123.
torch.manual_seed(123)
W_query = torch.rand(d_in, d_out)
W_key = torch.rand(d_in, d_out)
W_value = torch.rand(d_in, d_out)
print("W_query:\n", W_query, "\nW_key:\n", W_key, "\nW_value:\n", W_value)
query_2 = x_2 @ W_query
keys = inputs @ W_key
values = inputs @ W_value
check("query_2", query_2, [0.4306, 1.4551])
print("keys:\n", keys, "\nvalues:\n", values)
check("attn_score_22", query_2.dot(keys[1]).reshape(1), [1.8524])
attn_scores_2 = query_2 @ keys.T
check("attn_scores_2", attn_scores_2, [1.2705, 1.8524, 1.8111, 1.0795, 0.5577, 1.5440])
d_k = keys.shape[-1]
print("attn_scores_2 / sqrt(d_k):", attn_scores_2 / d_k ** 0.5)
print("softmax(attn_scores_2) unscaled:", torch.softmax(attn_scores_2, dim=-1))
attn_weights_2 = torch.softmax(attn_scores_2 / d_k ** 0.5, dim=-1)
check("attn_weights_2", attn_weights_2, [0.1500, 0.2264, 0.2199, 0.1311, 0.0906, 0.1820])
check("context_vec_2", attn_weights_2 @ values, [0.3061, 0.8210])
queries = inputs @ W_query
all_weights = torch.softmax(queries @ keys.T / d_k ** 0.5, dim=-1)
print("all weights (v1):\n", all_weights)
check("SelfAttention_v1", all_weights @ values,
      [[0.2996, 0.8053], [0.3061, 0.8210], [0.3058, 0.8203],
       [0.2948, 0.7939], [0.2927, 0.7891], [0.2990, 0.8040]])

# 8. nn.Linear weights (SelfAttention_v2), seed 789, and causal masking.
torch.manual_seed(789)
Wq, Wk, Wv = nn.Linear(d_in, d_out, bias=False), nn.Linear(d_in, d_out, bias=False), nn.Linear(d_in, d_out, bias=False)
with torch.no_grad():
    print("Linear W_query.weight:\n", Wq.weight)
    q, k, v = Wq(inputs), Wk(inputs), Wv(inputs)
    scores = q @ k.T
    weights = torch.softmax(scores / d_k ** 0.5, dim=-1)
    check("SelfAttention_v2", weights @ v,
          [[-0.0739, 0.0713], [-0.0748, 0.0703], [-0.0749, 0.0702],
           [-0.0760, 0.0685], [-0.0763, 0.0679], [-0.0754, 0.0693]])
    check("attn_weights (v2)", weights,
          [[0.1921, 0.1646, 0.1652, 0.1550, 0.1721, 0.1510],
           [0.2041, 0.1659, 0.1662, 0.1496, 0.1665, 0.1477],
           [0.2036, 0.1659, 0.1662, 0.1498, 0.1664, 0.1480],
           [0.1869, 0.1667, 0.1668, 0.1571, 0.1661, 0.1564],
           [0.1830, 0.1669, 0.1670, 0.1588, 0.1658, 0.1585],
           [0.1935, 0.1663, 0.1666, 0.1542, 0.1666, 0.1529]])
    mask_simple = torch.tril(torch.ones(6, 6))
    masked_simple = weights * mask_simple
    print("masked_simple:\n", masked_simple)
    masked_norm = masked_simple / masked_simple.sum(dim=-1, keepdim=True)
    check("masked_simple_norm", masked_norm,
          [[1.0000, 0, 0, 0, 0, 0], [0.5517, 0.4483, 0, 0, 0, 0],
           [0.3800, 0.3097, 0.3103, 0, 0, 0], [0.2758, 0.2460, 0.2462, 0.2319, 0, 0],
           [0.2175, 0.1983, 0.1984, 0.1888, 0.1971, 0],
           [0.1935, 0.1663, 0.1666, 0.1542, 0.1666, 0.1529]])
    mask = torch.triu(torch.ones(6, 6), diagonal=1)
    masked = scores.masked_fill(mask.bool(), -torch.inf)
    check("masked scores", masked,
          [[0.2899, -torch.inf, -torch.inf, -torch.inf, -torch.inf, -torch.inf],
           [0.4656, 0.1723, -torch.inf, -torch.inf, -torch.inf, -torch.inf],
           [0.4594, 0.1703, 0.1731, -torch.inf, -torch.inf, -torch.inf],
           [0.2642, 0.1024, 0.1036, 0.0186, -torch.inf, -torch.inf],
           [0.2183, 0.0874, 0.0882, 0.0177, 0.0786, -torch.inf],
           [0.3408, 0.1270, 0.1290, 0.0198, 0.1290, 0.0078]])
    via_inf = torch.softmax(masked / d_k ** 0.5, dim=-1)
    assert torch.allclose(via_inf, masked_norm, atol=1e-6)
    print("causal context vectors (v2 weights):\n", via_inf @ v)

# 10. Two heads: CausalAttention, the wrapper and the efficient MultiHeadAttention (seed 123).
# (copied from the book's definitions, as tests/golden/make_layers_golden.py does)
class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, n, _ = x.shape
        s = self.W_query(x) @ self.W_key(x).transpose(1, 2)
        s.masked_fill_(self.mask.bool()[:n, :n], -torch.inf)
        w = self.dropout(torch.softmax(s / self.W_key.weight.shape[0] ** 0.5, dim=-1))
        return w @ self.W_value(x)


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList([CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)
                                    for _ in range(num_heads)])

    def forward(self, x):
        return torch.cat([h(x) for h in self.heads], dim=-1)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, n, _ = x.shape
        def split(t):
            return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        q, k, v = split(self.W_query(x)), split(self.W_key(x)), split(self.W_value(x))
        s = (q @ k.transpose(2, 3)).masked_fill(self.mask.bool()[:n, :n], -torch.inf)
        w = self.dropout(torch.softmax(s / k.shape[-1] ** 0.5, dim=-1))
        return self.out_proj((w @ v).transpose(1, 2).contiguous().view(b, n, self.d_out))


batch = torch.stack((inputs, inputs), dim=0)
with torch.no_grad():
    torch.manual_seed(123)
    check("CausalAttention", CausalAttention(3, 2, 6, 0.0)(batch)[0],
          [[-0.4519, 0.2216], [-0.5874, 0.0058], [-0.6300, -0.0632],
           [-0.5675, -0.0843], [-0.5526, -0.0981], [-0.5299, -0.1081]])
    torch.manual_seed(123)
    check("MultiHeadAttentionWrapper", MultiHeadAttentionWrapper(3, 2, 6, 0.0, 2)(batch)[0],
          [[-0.4519, 0.2216, 0.4772, 0.1063], [-0.5874, 0.0058, 0.5891, 0.3257],
           [-0.6300, -0.0632, 0.6202, 0.3860], [-0.5675, -0.0843, 0.5478, 0.3589],
           [-0.5526, -0.0981, 0.5321, 0.3428], [-0.5299, -0.1081, 0.5077, 0.3493]])
    torch.manual_seed(123)
    check("MultiHeadAttention", MultiHeadAttention(3, 2, 6, 0.0, 2)(batch)[0],
          [[0.3190, 0.4858], [0.2943, 0.3897], [0.2856, 0.3593],
           [0.2693, 0.3873], [0.2639, 0.3928], [0.2575, 0.4028]])

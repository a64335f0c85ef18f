#!/usr/bin/env python3
"""The numbers of the simplified self-attention lecture (notes 004, Raschka's
LLMs-from-scratch ch. 3, "Your journey starts with one step"), recomputed with
PyTorch. tests/reference/simplified_attention_test.cpp and
tests/reference/sdpa_test.cpp hard-code exactly what this prints (to 1e-4,
the precision the notes print); rerun it to check them:

    python3 tests/golden/notes_numbers.py
"""
import torch

torch.set_printoptions(precision=6)

inputs = torch.tensor(
    [[0.43, 0.15, 0.89],   # Your     (x^1)
     [0.55, 0.87, 0.66],   # journey  (x^2)
     [0.57, 0.85, 0.64],   # starts   (x^3)
     [0.22, 0.58, 0.33],   # with     (x^4)
     [0.77, 0.25, 0.10],   # one      (x^5)
     [0.05, 0.80, 0.55]])  # step     (x^6)

query = inputs[1]
attn_scores_2 = inputs @ query
print("scores of query x2:       ", attn_scores_2)
print("divide-by-sum weights:    ", attn_scores_2 / attn_scores_2.sum())
print("naive softmax weights:    ", torch.exp(attn_scores_2) / torch.exp(attn_scores_2).sum())
attn_weights_2 = torch.softmax(attn_scores_2, dim=0)
print("softmax weights (row 2):  ", attn_weights_2)
print("context z2:               ", attn_weights_2 @ inputs)

attn_scores = inputs @ inputs.T
attn_weights = torch.softmax(attn_scores, dim=-1)
print("all scores:\n", attn_scores)
print("all weights:\n", attn_weights)
print("all context vectors:\n", attn_weights @ inputs)

# The same thing through SDPA: Q = K = V = inputs and scale 1.
out = torch.nn.functional.scaled_dot_product_attention(
    inputs[None, None], inputs[None, None], inputs[None, None], scale=1.0)[0, 0]
print("SDPA(Q=K=V=inputs, scale=1):\n", out)

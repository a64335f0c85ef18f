#!/usr/bin/env python3
"""Numbers for tests/layers/embedding_loss_test.cpp, from PyTorch (the test
hard-codes what this prints):

    .venv/bin/python tests/golden/embedding_loss_numbers.py
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_printoptions(precision=8)
torch.manual_seed(0)
emb = nn.Embedding(5, 4)   # N(0, 1) init, the same draws as torch.randn(5, 4)
print("Embedding(5, 4) after manual_seed(0), weight:\n", emb.weight.data)
torch.manual_seed(1)
emb = nn.Embedding(10, 3)  # 30 normals: torch's vectorised (>= 16) path
print("Embedding(10, 3) after manual_seed(1), weight[9]:", emb.weight.data[9])

logits = torch.tensor([[1.0, 2.0, 3.0], [1.0, -1.0, 0.5], [100.0, 0.0, -100.0]], dtype=torch.float64,
                      requires_grad=True)
targets = torch.tensor([2, 0, 1])
loss = F.cross_entropy(logits, targets)
loss.backward()
print("cross_entropy:", repr(loss.item()))
print("d logits:\n", logits.grad)

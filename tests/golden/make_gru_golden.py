#!/usr/bin/env python3
"""Golden outputs and gradients for the recurrent pieces, from PyTorch.

    python3 tests/golden/make_gru_golden.py     # writes tests/golden/gru_golden.json

Read by tests/layers/gru_test.cpp, tests/layers/lstm_test.cpp and
tests/layers/embedding_loss_test.cpp.

"gru"       torch.nn.GRU (one layer, one direction): sequence-first and
            batch_first, unbatched, with and without h0 and biases, and
            variable lengths through pack_padded_sequence → GRU →
            pad_packed_sequence (enforce_sorted=False).
"gru_cell"  torch.nn.GRUCell, batched and unbatched.
"lstm"      torch.nn.LSTM (one layer, one direction), the same variety as "gru",
            with gradients also through c_n and into c0.
"init"      torch.manual_seed(s) then nn.GRU / nn.GRUCell / nn.LSTM in float32: the
            weights torch draws, which the C++ layers must reproduce bit for bit.
"embedding" torch.nn.Embedding: output and weight gradient (repeated ids add up).
"cross_entropy"  F.cross_entropy(logits, target, ignore_index=-100), mean over
            the targets that are not ignored: loss and d logits.

Every case stores its inputs, its parameters (state_dict names), random
upstream gradients, the outputs, and the gradients of
sum(output * grad_output) + sum(h_n * grad_h_n) with respect to every input
and parameter, computed in float64 by torch autograd. Inputs and weights are
rounded to 8 significant digits before torch sees them, so the C++ test starts
from exactly the same numbers.
"""

import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "gru_golden.json")
rng = np.random.default_rng(20261123)


def rounded(a):
    return np.array([float(f"{x:.8g}") for x in np.asarray(a, dtype=np.float64).ravel()]).reshape(np.shape(a))


def rand(*shape, scale=1.0):
    return torch.tensor(rounded(rng.uniform(-scale, scale, size=shape)), dtype=torch.float64)


def enc(t, digits=12):
    t = t.detach()
    vals = t.to(torch.float64).reshape(-1).tolist()
    return {"shape": list(t.shape), "data": [float(f"{v:.{digits}g}") for v in vals]}


def enc_exact(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().reshape(-1).tolist()]}


def set_params(module, scale=0.6):
    params = {}
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(rand(*p.shape, scale=scale))
            params[name] = enc(p)
    return params


def gru_case(name, L, B, I, H, batch_first=False, unbatched=False, with_h0=True, bias=True, lengths=None):
    gru = nn.GRU(I, H, bias=bias, batch_first=batch_first).double()
    params = set_params(gru)
    if unbatched:
        x = rand(L, I)
        h0 = rand(1, H) if with_h0 else None
    else:
        x = rand(B, L, I) if batch_first else rand(L, B, I)
        h0 = rand(1, B, H) if with_h0 else None
    x.requires_grad_(True)
    if h0 is not None:
        h0.requires_grad_(True)
    if lengths is None:
        out, h_n = gru(x, h0)
    else:
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        out_p, h_n = gru(packed, h0)
        out, _ = pad_packed_sequence(out_p, batch_first=batch_first, total_length=L)
    g_out = rand(*out.shape)
    g_hn = rand(*h_n.shape)
    ((out * g_out).sum() + (h_n * g_hn).sum()).backward()
    return {
        "name": name, "L": L, "B": B, "input_size": I, "hidden_size": H, "batch_first": batch_first,
        "unbatched": unbatched, "bias": bias, "lengths": lengths,
        "input": enc(x), "h0": enc(h0) if h0 is not None else None, "params": params,
        "grad_output": enc(g_out), "grad_h_n": enc(g_hn),
        "output": enc(out), "h_n": enc(h_n),
        "d_input": enc(x.grad), "d_h0": enc(h0.grad) if h0 is not None else None,
        "grads": {n: enc(p.grad) for n, p in gru.named_parameters()},
    }


def lstm_case(name, L, B, I, H, batch_first=False, unbatched=False, with_state=True, bias=True, lengths=None):
    lstm = nn.LSTM(I, H, bias=bias, batch_first=batch_first).double()
    params = set_params(lstm)
    if unbatched:
        x = rand(L, I)
        st = (rand(1, H), rand(1, H)) if with_state else None
    else:
        x = rand(B, L, I) if batch_first else rand(L, B, I)
        st = (rand(1, B, H), rand(1, B, H)) if with_state else None
    x.requires_grad_(True)
    if st is not None:
        for t in st:
            t.requires_grad_(True)
    if lengths is None:
        out, (h_n, c_n) = lstm(x, st)
    else:
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        out_p, (h_n, c_n) = lstm(packed, st)
        out, _ = pad_packed_sequence(out_p, batch_first=batch_first, total_length=L)
    g_out, g_hn, g_cn = rand(*out.shape), rand(*h_n.shape), rand(*c_n.shape)
    ((out * g_out).sum() + (h_n * g_hn).sum() + (c_n * g_cn).sum()).backward()
    return {
        "name": name, "L": L, "B": B, "input_size": I, "hidden_size": H, "batch_first": batch_first,
        "unbatched": unbatched, "bias": bias, "lengths": lengths,
        "input": enc(x), "h0": enc(st[0]) if st else None, "c0": enc(st[1]) if st else None, "params": params,
        "grad_output": enc(g_out), "grad_h_n": enc(g_hn), "grad_c_n": enc(g_cn),
        "output": enc(out), "h_n": enc(h_n), "c_n": enc(c_n),
        "d_input": enc(x.grad), "d_h0": enc(st[0].grad) if st else None, "d_c0": enc(st[1].grad) if st else None,
        "grads": {n: enc(p.grad) for n, p in lstm.named_parameters()},
    }


def cell_case(name, B, I, H, unbatched=False, bias=True):
    cell = nn.GRUCell(I, H, bias=bias).double()
    params = set_params(cell)
    x = (rand(I) if unbatched else rand(B, I)).requires_grad_(True)
    h = (rand(H) if unbatched else rand(B, H)).requires_grad_(True)
    h1 = cell(x, h)
    g = rand(*h1.shape)
    (h1 * g).sum().backward()
    return {"name": name, "B": B, "input_size": I, "hidden_size": H, "unbatched": unbatched, "bias": bias,
            "input": enc(x), "h": enc(h), "params": params, "grad_output": enc(g), "output": enc(h1),
            "d_input": enc(x.grad), "d_h": enc(h.grad), "grads": {n: enc(p.grad) for n, p in cell.named_parameters()}}


def init_case(kind, seed, I, H, bias=True):
    torch.manual_seed(seed)
    m = {"gru": nn.GRU, "cell": nn.GRUCell, "lstm": nn.LSTM}[kind](I, H, bias=bias)
    return {"kind": kind, "seed": seed, "input_size": I, "hidden_size": H, "bias": bias,
            "params": {n: enc_exact(p) for n, p in m.named_parameters()}}


def embedding_case():
    emb = nn.Embedding(7, 5).double()
    params = set_params(emb, scale=1.0)
    ids = torch.tensor([[3, 0, 6, 3], [1, 1, 5, 2]])
    out = emb(ids)
    g = rand(*out.shape)
    (out * g).sum().backward()
    torch.manual_seed(5)
    init = nn.Embedding(6, 4)
    return {"num_embeddings": 7, "embedding_dim": 5, "ids": {"shape": list(ids.shape), "data": ids.reshape(-1).tolist()},
            "params": params, "grad_output": enc(g), "output": enc(out), "grads": {"weight": enc(emb.weight.grad)},
            "init": {"seed": 5, "num_embeddings": 6, "embedding_dim": 4, "weight": enc_exact(init.weight)}}


def cross_entropy_case(name, N, C, target, scale=3.0):
    logits = rand(N, C, scale=scale).requires_grad_(True)
    t = torch.tensor(target)
    loss = F.cross_entropy(logits, t, ignore_index=-100)
    loss.backward()
    return {"name": name, "logits": enc(logits), "target": target, "loss": float(f"{loss.item():.12g}"),
            "d_logits": enc(logits.grad)}


def main():
    torch.use_deterministic_algorithms(True)
    data = {
        "gru": [
            gru_case("seq_first_h0", L=5, B=3, I=4, H=6),
            gru_case("batch_first_no_h0", L=4, B=2, I=3, H=5, batch_first=True, with_h0=False),
            gru_case("unbatched_h0", L=6, B=1, I=2, H=4, unbatched=True),
            gru_case("no_bias", L=3, B=2, I=4, H=3, bias=False),
            gru_case("packed_batch_first", L=6, B=4, I=3, H=5, batch_first=True, lengths=[6, 2, 4, 1]),
            gru_case("packed_seq_first_no_h0", L=5, B=3, I=2, H=4, with_h0=False, lengths=[3, 5, 1]),
            gru_case("long_sequence", L=24, B=2, I=3, H=4),
        ],
        "gru_cell": [cell_case("batched", B=3, I=4, H=5), cell_case("unbatched", B=1, I=3, H=2, unbatched=True),
                     cell_case("no_bias", B=2, I=2, H=3, bias=False)],
        "lstm": [
            lstm_case("seq_first_state", L=5, B=3, I=4, H=6),
            lstm_case("batch_first_no_state", L=4, B=2, I=3, H=5, batch_first=True, with_state=False),
            lstm_case("unbatched_state", L=6, B=1, I=2, H=4, unbatched=True),
            lstm_case("no_bias", L=3, B=2, I=4, H=3, bias=False),
            lstm_case("packed_batch_first", L=6, B=4, I=3, H=5, batch_first=True, lengths=[6, 2, 4, 1]),
            lstm_case("long_sequence", L=24, B=2, I=3, H=4),
        ],
        "init": [init_case("gru", 0, 3, 4), init_case("gru", 123, 5, 2, bias=False), init_case("cell", 7, 2, 3),
                 init_case("lstm", 3, 3, 4)],
        "embedding": embedding_case(),
        "cross_entropy": [
            cross_entropy_case("plain", 4, 5, [0, 4, 2, 2]),
            cross_entropy_case("ignore_index", 5, 3, [1, -100, 0, -100, 2]),
            cross_entropy_case("large_logits", 3, 4, [3, 0, 1], scale=80.0),
        ],
    }
    with open(OUT, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

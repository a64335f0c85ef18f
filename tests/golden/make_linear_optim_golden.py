#!/usr/bin/env python3
"""nn.Linear forward/backward and torch.optim trajectories, for
tests/layers/linear_test.cpp (LinearGolden.*) and tests/layers/optim_test.cpp
(OptimGolden.*).

Inputs are built from formulas, not random numbers, and the weights are
written out too, so the C++ tests load exactly these numbers:

    pattern(shape, seed).flat[n] = sin(seed + 0.7 * n)

Linear: y = x·Wᵀ + b and, for a fixed upstream gradient dy, torch autograd's
dx, dW, db.

Optimizers: two parameters (shapes [2, 3] and [4]) on the quadratic
L(p) = Σ a·(p − target)²/2, whose gradient a·(p − target) is computed here
explicitly in the parameter's dtype (the C++ test does the same operations),
then optimizer.step(); the parameters after each of 6 steps are recorded.

Run:  python3 tests/golden/make_linear_optim_golden.py  (writes linear_optim_golden.json beside it)
"""
import json
import math
import pathlib

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def pattern(shape, seed, dtype):
    n = math.prod(shape)
    return torch.sin(seed + 0.7 * torch.arange(n, dtype=torch.float64)).reshape(shape).to(dtype)


def values(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


# ---- Linear --------------------------------------------------------------------
linear = []
for name, fin, fout, bias, dtype, x_shape in [
    ("linear_3_2_float32", 3, 2, True, "float32", [4, 3]),
    ("linear_3_2_float64", 3, 2, True, "float64", [4, 3]),
    ("linear_5_7_nobias_float64", 5, 7, False, "float64", [2, 3, 5]),
    ("linear_rank1_float64", 4, 3, True, "float64", [4]),
    ("linear_batched_float32", 6, 5, True, "float32", [2, 2, 3, 6]),
]:
    dt = DTYPES[dtype]
    torch.manual_seed(123)
    lin = torch.nn.Linear(fin, fout, bias=bias, dtype=dt)
    x = pattern(x_shape, 0.3, dt).requires_grad_(True)
    y = lin(x)
    dy = pattern(list(y.shape), 1.1, dt)
    y.backward(dy)
    linear.append({
        "name": name, "in": fin, "out": fout, "bias": bias, "dtype": dtype,
        "weight": values(lin.weight), "bias_values": values(lin.bias) if bias else [],
        "x_shape": x_shape, "x": values(x), "y_shape": list(y.shape), "y": values(y),
        "dy": values(dy), "dx": values(x.grad), "dW": values(lin.weight.grad),
        "db": values(lin.bias.grad) if bias else [],
    })

# ---- optimizers -------------------------------------------------------------------
OPTIMIZERS = [
    ("sgd_plain", "SGD", dict(lr=0.1)),
    ("sgd_momentum", "SGD", dict(lr=0.1, momentum=0.9)),
    ("sgd_dampening_decay", "SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    ("sgd_nesterov", "SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("sgd_maximize", "SGD", dict(lr=0.01, momentum=0.5, maximize=True)),
    ("adam_lr", "Adam", dict(lr=0.1)),
    ("adam_all_options", "Adam", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    ("adam_maximize", "Adam", dict(lr=0.01, maximize=True)),
    ("adamw_lr_decay", "AdamW", dict(lr=0.1, weight_decay=0.1)),
    ("adamw_amsgrad", "AdamW", dict(lr=0.02, betas=(0.5, 0.9), amsgrad=True)),
]
SHAPES = [[2, 3], [4]]
STEPS = 6

optim = []
for name, kind, kwargs in OPTIMIZERS:
    for dtype, dt in DTYPES.items():
        params = [pattern(s, 0.5 + k, dt).requires_grad_(True) for k, s in enumerate(SHAPES)]
        curv = [1.0 + 0.5 * torch.arange(math.prod(s), dtype=dt).reshape(s) for s in SHAPES]
        target = [pattern(s, 2.0 + k, dt) * 0.25 for k, s in enumerate(SHAPES)]
        opt = getattr(torch.optim, kind)(params, foreach=False, **kwargs)
        init = [values(p) for p in params]
        traj = []
        for _ in range(STEPS):
            with torch.no_grad():
                for p, a, t in zip(params, curv, target):
                    p.grad = a * (p - t)
            opt.step()
            traj.append([values(p) for p in params])
        optim.append({
            "name": f"{name}_{dtype}", "optimizer": kind, "dtype": dtype,
            "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()},
            "shapes": SHAPES, "init": init, "curvature": [values(a) for a in curv],
            "target": [values(t) for t in target], "after_step": traj,
        })

out = {"generated_by": "tests/golden/make_linear_optim_golden.py", "torch_version": torch.__version__,
       "linear": linear, "optim": optim}
path = pathlib.Path(__file__).with_name("linear_optim_golden.json")
path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
print(f"wrote {path} ({path.stat().st_size} bytes)")

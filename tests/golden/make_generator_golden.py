#!/usr/bin/env python3
"""Random draws from PyTorch's CPU generator, for tests/core/generator_test.cpp
(GeneratorGolden.*) and tests/layers/linear_test.cpp (LinearGolden.*).

attn::Generator claims to reproduce torch.manual_seed + torch.rand / randn /
uniform_ / normal_ / nn.Linear bit for bit. This script records what torch
draws; the C++ tests compare with ==, float32 included.

torch's CPU results depend on the kernel set it picks at run time: on an
x86-64 CPU with AVX2 (and without AVX-512) it runs AVX2 kernels that fuse the
multiply-add of uniform_ and use polynomial log/sin/cos in float randn; the
"default" and AVX-512 kernels do neither. attn reproduces the AVX2 kernels, so
this script forces them (ATEN_CPU_CAPABILITY=avx2, needs an AVX2 CPU).

Every value is written with Python's repr of a double, which round-trips
exactly (a float32 value is exact in a double).

Run:  python3 tests/golden/make_generator_golden.py  (writes generator_golden.json beside it)
"""
import json
import os
import pathlib

os.environ["ATEN_CPU_CAPABILITY"] = "avx2"  # must be set before torch is imported

import torch  # noqa: E402

assert torch.backends.cpu.get_cpu_capability() == "AVX2", "this CPU cannot run torch's AVX2 kernels"

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def values(t):
    return [float(v) for v in t.reshape(-1).tolist()]


def step(op, dtype, shape, t, **kw):
    return {"op": op, "dtype": dtype, "shape": list(shape), **kw, "values": values(t)}


cases = []

# One draw after a fresh seed: the sizes cross normal_'s 16-element switch and
# its "redraw the last 16" tail (17, 33, 40), and 1 / 5 take the scalar path.
for dtype in DTYPES:
    for seed in (0, 123):
        for n in (1, 5, 15, 16, 17, 33, 40):
            torch.manual_seed(seed)
            cases.append({"name": f"rand_{dtype}_{n}_seed{seed}", "seed": seed,
                          "steps": [step("rand", dtype, [n], torch.rand(n, dtype=DTYPES[dtype]))]})
            torch.manual_seed(seed)
            cases.append({"name": f"randn_{dtype}_{n}_seed{seed}", "seed": seed,
                          "steps": [step("randn", dtype, [n], torch.randn(n, dtype=DTYPES[dtype]))]})

# A multi-dimensional shape fills in row-major order.
torch.manual_seed(7)
cases.append({"name": "rand_float32_2x3x4", "seed": 7,
              "steps": [step("rand", "float32", [2, 3, 4], torch.rand(2, 3, 4))]})
torch.manual_seed(7)
cases.append({"name": "randn_float32_3x7", "seed": 7,
              "steps": [step("randn", "float32", [3, 7], torch.randn(3, 7))]})

# Several draws from one seed: the scalar path caches the second Box–Muller
# sample in the generator, and the cache outlives the call (randn(3) leaves one
# behind, the next scalar draw uses it; normal_fill neither reads nor clears it).
for dtype in DTYPES:
    torch.manual_seed(42)
    steps = []
    for n in (3, 5, 20, 1, 2, 17, 1):
        steps.append(step("randn", dtype, [n], torch.randn(n, dtype=DTYPES[dtype])))
    steps.append(step("rand", dtype, [3], torch.rand(3, dtype=DTYPES[dtype])))
    steps.append(step("randn", dtype, [1], torch.randn(1, dtype=DTYPES[dtype])))
    cases.append({"name": f"sequence_{dtype}", "seed": 42, "steps": steps})

# uniform_(from, to) and normal_(mean, std) with non-trivial parameters: these
# show torch's fused multiply-add (the AVX2 kernels contract x*(to-from)+from).
for dtype in DTYPES:
    torch.manual_seed(5)
    steps = []
    for n in (7, 40):
        t = torch.empty(n, dtype=DTYPES[dtype]).uniform_(-0.37, 0.81)
        steps.append(step("uniform_", dtype, [n], t, a=-0.37, b=0.81))
    for n in (5, 40, 3):
        t = torch.empty(n, dtype=DTYPES[dtype]).normal_(0.3, 2.5)
        steps.append(step("normal_", dtype, [n], t, a=0.3, b=2.5))
    cases.append({"name": f"params_{dtype}", "seed": 5, "steps": steps})

# A transposed (non-contiguous) tensor is filled in memory order, and normal_
# takes the scalar path for it even with >= 16 elements. Values are listed in
# the row-major order of the [6, 4] view.
for dtype in DTYPES:
    torch.manual_seed(11)
    u = torch.zeros(4, 6, dtype=DTYPES[dtype]).t()
    u.uniform_()
    n = torch.zeros(4, 6, dtype=DTYPES[dtype]).t()
    n.normal_()
    cases.append({"name": f"transposed_{dtype}", "seed": 11,
                  "steps": [step("uniform_t", dtype, [6, 4], u, a=0.0, b=1.0),
                            step("normal_t", dtype, [6, 4], n, a=0.0, b=1.0)]})

# random64(): int64 random_() keeps its low 63 bits (as strings: JSON numbers
# are doubles in most readers).
torch.manual_seed(123)
r = torch.empty(4, dtype=torch.int64).random_()
random64_low63 = {"seed": 123, "values": [str(v) for v in r.tolist()]}

# nn.Linear's initialisation: kaiming_uniform_(weight, a=sqrt(5)) then
# uniform_(bias, -1/sqrt(in), 1/sqrt(in)), from the global generator.
linear_init = []
for seed, fin, fout, bias, dtype in [(123, 3, 2, True, "float32"), (123, 5, 7, False, "float32"),
                                     (0, 7, 5, True, "float32"), (123, 3, 2, True, "float64"),
                                     (3, 16, 4, True, "float64"), (9, 6, 6, True, "float32")]:
    torch.manual_seed(seed)
    lin = torch.nn.Linear(fin, fout, bias=bias, dtype=DTYPES[dtype])
    linear_init.append({"seed": seed, "in": fin, "out": fout, "bias": bias, "dtype": dtype,
                        "weight": values(lin.weight.detach()),
                        "bias_values": values(lin.bias.detach()) if bias else []})

# Two Linears in a row consume one stream: the second starts where the first ended.
torch.manual_seed(2024)
a = torch.nn.Linear(4, 3)
b = torch.nn.Linear(3, 2)
linear_chain = {"seed": 2024, "first": {"weight": values(a.weight.detach()), "bias": values(a.bias.detach())},
                "second": {"weight": values(b.weight.detach()), "bias": values(b.bias.detach())}}

# Large draws, recorded as a checksum of their bit patterns: the few hundred
# values above rarely exercise every rounding of the float polynomials, a
# million do. checksum = sum over i of (i + 1) * bits(value_i) mod 2^64, with
# bits the uint32 (float32) or uint64 (float64) pattern; any single changed
# value changes it.
def checksum(t):
    import numpy as np
    b = t.numpy().view(np.uint32 if t.dtype == torch.float32 else np.uint64).astype(np.uint64)
    weights = np.arange(1, b.size + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return str(int(np.sum(b * weights, dtype=np.uint64)))


large = []
N_LARGE = (1 << 20) + 7  # not a multiple of 16: the tail is redrawn
for dtype in DTYPES:
    for op in ("rand", "randn", "uniform_", "normal_"):
        torch.manual_seed(2024)
        t = torch.empty(N_LARGE, dtype=DTYPES[dtype])
        a, b = {"rand": (0.0, 1.0), "randn": (0.0, 1.0), "uniform_": (-0.37, 0.81), "normal_": (0.3, 2.5)}[op]
        if op in ("rand", "uniform_"):
            t.uniform_(a, b)
        else:
            t.normal_(a, b)
        large.append({"op": op, "dtype": dtype, "seed": 2024, "n": N_LARGE, "a": a, "b": b,
                      "first": values(t[:4]), "checksum": checksum(t)})

out = {
    "generated_by": "tests/golden/make_generator_golden.py",
    "torch_version": torch.__version__,
    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    "cases": cases,
    "large": large,
    "random64_low63": random64_low63,
    "linear_init": linear_init,
    "linear_chain": linear_chain,
}
path = pathlib.Path(__file__).with_name("generator_golden.json")
path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
print(f"wrote {path} ({path.stat().st_size} bytes, {len(cases)} cases)")

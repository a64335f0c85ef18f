"""Per-call cost of calling attn from Python, beside torch's SDPA.

    .venv/bin/python python/benchmarks/overhead.py            # prints a Markdown report
    .venv/bin/python python/benchmarks/overhead.py --quick

For each shape it times (best of several timeit repeats, one thread):
  * torch   F.scaled_dot_product_attention on torch tensors
  * attn/torch, attn/numpy   attn.scaled_dot_product_attention on the same data
  * attn/torch+grad          the same with requires_grad inputs (autograd.Function, forward only)
  * C++     the library's function called in a C++ loop (attn._core.time_sdpa_forward)
The binding's overhead is a Python call minus the C++ call: what Python,
nanobind and the array hand-over add. At large shapes it should vanish
against the compute.
"""

import argparse
import os
import platform
import timeit

import numpy as np
import torch
import torch.nn.functional as F

import attn
from attn import _core


def best_per_call(fn, min_time):
    timer = timeit.Timer(fn)
    n, t = timer.autorange()  # calls that take >= 0.2 s
    n = max(1, int(n * min_time / max(t, 1e-9)))
    return min(timer.repeat(repeat=5, number=n)) / n


def measure(B, H, L, d, causal, min_time):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((B, H, L, d)).astype(np.float32) for _ in range(3))
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    gq, gk, gv = (t.clone().requires_grad_() for t in (tq, tk, tv))
    out = {
        "torch": best_per_call(lambda: F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal), min_time),
        "attn/numpy": best_per_call(lambda: attn.scaled_dot_product_attention(q, k, v, is_causal=causal),
                                    min_time),
        "attn/torch": best_per_call(lambda: attn.scaled_dot_product_attention(tq, tk, tv, is_causal=causal),
                                    min_time),
        "attn/torch+grad": best_per_call(
            lambda: attn.scaled_dot_product_attention(gq, gk, gv, is_causal=causal), min_time),
        "torch+grad": best_per_call(lambda: F.scaled_dot_product_attention(gq, gk, gv, is_causal=causal),
                                    min_time),
    }
    reps = max(1, int(min_time / max(_core.time_sdpa_forward(q, k, v, causal, 1), 1e-9)))
    out["C++"] = min(_core.time_sdpa_forward(q, k, v, causal, reps) for _ in range(5))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter timing runs")
    args = ap.parse_args()
    torch.set_num_threads(1)
    attn.set_num_threads(1)
    min_time = 0.05 if args.quick else 0.3
    shapes = [(1, 1, 4, 8, False), (1, 1, 64, 64, True), (1, 8, 512, 64, True)]
    print(f"attn {attn.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
          f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, 1 thread\n")
    print("| B, H, L, d, causal | C++ call | attn numpy | attn torch | torch SDPA | attn torch+grad | "
          "torch SDPA+grad | binding overhead numpy / torch |")
    print("|---|---|---|---|---|---|---|---|")
    for B, H, L, d, causal in shapes:
        r = measure(B, H, L, d, causal, min_time)
        us = {key: value * 1e6 for key, value in r.items()}
        print(f"| {B}, {H}, {L}, {d}, {causal} | {us['C++']:.2f} µs | {us['attn/numpy']:.2f} µs | "
              f"{us['attn/torch']:.2f} µs | {us['torch']:.2f} µs | {us['attn/torch+grad']:.2f} µs | "
              f"{us['torch+grad']:.2f} µs | {us['attn/numpy'] - us['C++']:.2f} / "
              f"{us['attn/torch'] - us['C++']:.2f} µs |")


if __name__ == "__main__":
    main()

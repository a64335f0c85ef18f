"""Per-call cost of calling attn from Python, beside torch's SDPA.

    .venv/bin/python python/benchmarks/overhead.py            # prints a Markdown report
    .venv/bin/python python/benchmarks/overhead.py --quick

For each shape it times (best of several timeit repeats, one thread):
  * torch   F.scaled_dot_product_attention on torch tensors
  * attn/torch, attn/numpy   attn.scaled_dot_product_attention on the same data
  * attn/torch+grad          the same with requires_grad inputs (autograd.Function, forward only)
  * core    attn._core.sdpa_forward on numpy arrays: the nanobind boundary without the Python wrapper
            (the general entry, 17 arguments)
  * lean    attn._core.sdpa_forward_simple on numpy arrays: the entry the common call takes
  * +bwd    forward and backward (out.backward(g)) with requires_grad inputs, attn and torch
  * C++     the library's function called in a C++ loop (attn._core.time_sdpa_forward)
The binding's overhead is a Python call minus the C++ call: what Python,
nanobind and the array hand-over add. At large shapes it should vanish
against the compute. Times are the calling thread's CPU time (robust on a
busy machine), best of many slices.
"""

import argparse
import os
import platform
import time
import timeit

import numpy as np
import torch
import torch.nn.functional as F

import attn
from attn import _core


def best_per_call(fn, slice_time, repeats):
    """CPU seconds of this thread per call: the best of `repeats` slices of
    ~slice_time each. Thread CPU time (not wall-clock) because the machine may
    be shared: time the core spends on other processes is not counted. With
    one thread in torch and attn, all of a call's work is on this thread."""
    timer = timeit.Timer(fn, timer=time.thread_time)
    n, t = timer.autorange()  # n calls take >= 0.2 s
    n = max(1, int(n * slice_time / max(t, 1e-9)))
    return min(timer.repeat(repeat=repeats, number=n)) / n


def measure(B, H, L, d, causal, slice_time, repeats):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((B, H, L, d)).astype(np.float32) for _ in range(3))
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    gq, gk, gv = (t.clone().requires_grad_() for t in (tq, tk, tv))
    options = (causal, False, -1, -1, None, 0.0, 0, False, 0.0)
    # builds with the lean entry (before torch.ops.attn) take no framework argument
    core_framework = () if hasattr(_core, "sdpa_forward_simple") else (0,)

    def timed(fn):
        return best_per_call(fn, slice_time, repeats)

    out = {
        "torch": timed(lambda: F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)),
        "attn/numpy": timed(lambda: attn.scaled_dot_product_attention(q, k, v, is_causal=causal)),
        "core": timed(lambda: _core.sdpa_forward(q, k, v, None, None, None, *options, False, False,
                                                 *core_framework)),
        "attn/torch": timed(lambda: attn.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)),
        "attn/torch+grad": timed(lambda: attn.scaled_dot_product_attention(gq, gk, gv, is_causal=causal)),
        "torch+grad": timed(lambda: F.scaled_dot_product_attention(gq, gk, gv, is_causal=causal)),
    }
    # the lean entry (absent from builds before it; lets this script time an older build too)
    lean = getattr(_core, "sdpa_forward_simple", None)
    out["lean"] = timed(lambda: lean(q, k, v, causal, None, False, 0)) if lean else float("nan")
    g = torch.from_numpy(rng.standard_normal((B, H, L, d)).astype(np.float32))

    def fwd_bwd(sdpa):
        def run():
            for t in (gq, gk, gv):
                t.grad = None
            sdpa(gq, gk, gv, is_causal=causal).backward(g)
        return run

    out["attn/fwd+bwd"] = timed(fwd_bwd(attn.scaled_dot_product_attention))
    out["torch/fwd+bwd"] = timed(fwd_bwd(F.scaled_dot_product_attention))
    reps = max(1, int(slice_time / max(_core.time_sdpa_forward(q, k, v, causal, 1), 1e-9)))
    out["C++"] = min(_core.time_sdpa_forward(q, k, v, causal, reps) for _ in range(repeats))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter timing runs")
    args = ap.parse_args()
    torch.set_num_threads(1)
    attn.set_num_threads(1)
    slice_time, repeats = (0.01, 10) if args.quick else (0.02, 40)
    shapes = [(1, 1, 4, 8, False), (1, 1, 64, 64, True), (1, 8, 512, 64, True)]
    print(f"attn {attn.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
          f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"1 thread, thread CPU time, best of {repeats} slices of {slice_time * 1e3:.0f} ms\n")
    print("| B, H, L, d, causal | C++ call | core (general) | core (lean) | attn (numpy) | attn (torch) | "
          "torch SDPA | attn (grad) | torch SDPA (grad) | attn fwd+bwd | torch fwd+bwd | "
          "overhead numpy / torch / grad |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for B, H, L, d, causal in shapes:
        r = measure(B, H, L, d, causal, slice_time, repeats)
        us = {key: value * 1e6 for key, value in r.items()}
        f = (lambda x: f"{x:.1f} µs") if us["C++"] < 1000 else (lambda x: f"{x / 1e3:.2f} ms")
        print(f"| {B}, {H}, {L}, {d}, {causal} | {f(us['C++'])} | {f(us['core'])} | {f(us['lean'])} | "
              f"{f(us['attn/numpy'])} | {f(us['attn/torch'])} | {f(us['torch'])} | {f(us['attn/torch+grad'])} | "
              f"{f(us['torch+grad'])} | {f(us['attn/fwd+bwd'])} | {f(us['torch/fwd+bwd'])} | "
              f"{f(us['attn/numpy'] - us['C++'])} / {f(us['attn/torch'] - us['C++'])} / "
              f"{f(us['attn/torch+grad'] - us['C++'])} |")


if __name__ == "__main__":
    main()

"""Large shapes lose nothing to the binding: the C++ call (timed in a C++ loop)
and attn.scaled_dot_product_attention from Python on numpy arrays and torch
tensors, interleaved in one run, best of 30 each (thread CPU time, 1 thread).

    .venv/bin/python python/benchmarks/large_shapes.py
"""
import time

import numpy as np
import torch

import attn
from attn import _core


def main():
    torch.set_num_threads(1)
    attn.set_num_threads(1)
    print("| B, H, L, d (causal) | C++ call | attn (numpy) | attn (torch) | Python vs C++ (numpy / torch) |")
    print("|---|---|---|---|---|")
    for B, H, L, d in [(1, 8, 512, 64), (4, 8, 256, 64)]:
        rng = np.random.default_rng(0)
        q, k, v = (rng.standard_normal((B, H, L, d)).astype(np.float32) for _ in range(3))
        tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
        best = {"C++": float("inf"), "numpy": float("inf"), "torch": float("inf")}
        for _ in range(30):  # interleaved, so load changes hit all three alike
            best["C++"] = min(best["C++"], _core.time_sdpa_forward(q, k, v, True, 1))
            t0 = time.thread_time()
            attn.scaled_dot_product_attention(q, k, v, is_causal=True)
            best["numpy"] = min(best["numpy"], time.thread_time() - t0)
            t0 = time.thread_time()
            attn.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
            best["torch"] = min(best["torch"], time.thread_time() - t0)
        cells = " | ".join(f"{best[x] * 1e3:.3f} ms" for x in ("C++", "numpy", "torch"))
        print(f"| {B}, {H}, {L}, {d} | {cells} | {(best['numpy'] / best['C++'] - 1) * 100:+.1f} % / "
              f"{(best['torch'] / best['C++'] - 1) * 100:+.1f} % |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Side-by-side forward timings: attn's fast CPU path against PyTorch, same run.

For each shape of issue 4 — (B, H, N, d) = (1, 16, N, 64) for N in 512..4096,
(1, 8, 2048, 128), GQA 32/8 — causal and not, this prints ms and GFLOP/s of
  * attn      flash_bench's BM_FlashForward (run as a subprocess, JSON output)
  * torch     torch.nn.functional.scaled_dot_product_attention (PyPI build)
  * math      the plain composition softmax(q·kᵀ·scale + mask)·v in torch
              (skipped where its [H, N, N] scores would not fit in memory)
  * sgemm     OpenBLAS sgemm (from flash_bench) and torch.mm, n = 2048
and then forward + backward (attn: BM_FlashForward + BM_FlashBackward; torch:
SDPA forward and autograd backward), with every library on the same number of
threads, and the ratios attn/torch and attn/sgemm. FLOPs: 4·B·H·N²·d, half
when causal; backward 2.5× forward.

  python3 bench/compare_torch.py --bench build-release/bench/flash_bench [--threads 2] [--quick]

Timings are best-of-repeats wall times; the machine may be shared, so read
them as preliminary unless it was idle.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

SHAPES = [  # (B, Hq, Hkv, N, d)
    (1, 16, 16, 512, 64),
    (1, 16, 16, 1024, 64),
    (1, 16, 16, 2048, 64),
    (1, 16, 16, 4096, 64),
    (1, 8, 8, 2048, 128),
    (1, 32, 8, 2048, 64),
]


def flops(B, H, N, d, causal):
    return 4.0 * B * H * N * N * d * (0.5 if causal else 1.0)


def best_time(fn, min_time, min_reps=3):
    fn()  # warm-up (allocations, thread pools)
    times, start = [], time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def torch_sdpa(B, Hq, Hkv, N, d, causal, min_time):
    g = torch.Generator().manual_seed(0)
    q = torch.rand(B, Hq, N, d, generator=g) * 2 - 1
    k = torch.rand(B, Hkv, N, d, generator=g) * 2 - 1
    v = torch.rand(B, Hkv, N, d, generator=g) * 2 - 1
    gqa = Hq != Hkv
    with torch.no_grad():
        sdpa = best_time(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa), min_time)
        math = None
        if B * Hq * N * N * 4 * 3 <= 6 << 30:  # scores, mask and weights in memory
            kk = k.repeat_interleave(Hq // Hkv, dim=1) if gqa else k
            vv = v.repeat_interleave(Hq // Hkv, dim=1) if gqa else v
            mask = torch.ones(N, N, dtype=torch.bool).tril() if causal else None

            def plain():
                s = (q @ kk.transpose(-2, -1)) * (d ** -0.5)
                if mask is not None:
                    s = s.masked_fill(~mask, float("-inf"))
                return torch.softmax(s, dim=-1) @ vv

            math = best_time(plain, min_time)
    return sdpa, math


def torch_sdpa_train(B, Hq, Hkv, N, d, causal, min_time):
    g = torch.Generator().manual_seed(0)
    q = (torch.rand(B, Hq, N, d, generator=g) * 2 - 1).requires_grad_()
    k = (torch.rand(B, Hkv, N, d, generator=g) * 2 - 1).requires_grad_()
    v = (torch.rand(B, Hkv, N, d, generator=g) * 2 - 1).requires_grad_()
    dout = torch.rand(B, Hq, N, d, generator=g) * 2 - 1
    gqa = Hq != Hkv

    def step():
        for t in (q, k, v):
            t.grad = None
        F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa).backward(dout)

    return best_time(step, min_time)


def torch_mm(n, min_time):
    a, b = torch.rand(n, n), torch.rand(n, n)
    return best_time(lambda: torch.mm(a, b), min_time)


def run_flash_bench(path, threads, min_time, quick):
    sizes = "512|1024|2048" if quick else "512|1024|2048|4096"
    filt = f"BM_Sgemm/n:2048|BM_Flash(Forward|Backward)/.*N:({sizes})/"
    with tempfile.TemporaryDirectory() as tmp:
        json_path = os.path.join(tmp, "flash_bench.json")
        cmd = [path, f"--threads={threads}", f"--benchmark_filter={filt}", f"--benchmark_min_time={min_time}",
               f"--benchmark_out={json_path}", "--benchmark_out_format=json"]
        env = dict(os.environ)
        env.pop("OPENBLAS_CORETYPE", None)  # let OpenBLAS pick its kernel for this CPU
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, env=env)  # its console table and summary go to our stdout
        with open(json_path) as f:
            data = json.load(f)
    times = {}
    for b in data["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        times[b["name"]] = b["real_time"] * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
    return times, data.get("context", {})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="path to flash_bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement")
    ap.add_argument("--quick", action="store_true", help="skip N = 4096")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; attn via {args.bench}", flush=True)
    attn_times, ctx = run_flash_bench(args.bench, args.threads, args.min_time, args.quick)
    sgemm_n = 2048
    sgemm_attn = 2.0 * sgemm_n ** 3 / attn_times[f"BM_Sgemm/n:{sgemm_n}/real_time"] / 1e9
    sgemm_torch = 2.0 * sgemm_n ** 3 / torch_mm(sgemm_n, args.min_time) / 1e9
    print(f"sgemm n={sgemm_n}: OpenBLAS {sgemm_attn:.1f} GFLOP/s, torch.mm {sgemm_torch:.1f} GFLOP/s")
    print("\nforward")
    print(f"{'shape (B,Hq,Hkv,N,d)':24} {'causal':>6} | {'attn ms':>8} {'GFLOP/s':>8} {'%sgemm':>7} | "
          f"{'torch ms':>8} {'GFLOP/s':>8} | {'math ms':>8} {'GFLOP/s':>8} | {'x torch':>7} {'x math':>7}")
    rows = []
    for (B, Hq, Hkv, N, d) in SHAPES:
        if args.quick and N > 2048:
            continue
        for causal in (False, True):
            key = f"B:{B}/Hq:{Hq}/Hkv:{Hkv}/N:{N}/d:{d}/causal:{int(causal)}/real_time"
            t_attn = attn_times.get("BM_FlashForward/" + key)
            t_sdpa, t_math = torch_sdpa(B, Hq, Hkv, N, d, causal, args.min_time)
            f = flops(B, Hq, N, d, causal)
            print(f"{str((B, Hq, Hkv, N, d)):24} {str(causal):>6} | {ms(t_attn):8.2f} {gf(f, t_attn):8.1f} "
                  f"{100 * gf(f, t_attn) / sgemm_attn:6.0f}% | {ms(t_sdpa):8.2f} {gf(f, t_sdpa):8.1f} | "
                  f"{ms(t_math):8.2f} {gf(f, t_math):8.1f} | {ratio(t_attn, t_sdpa):7.2f} {ratio(t_attn, t_math):7.2f}",
                  flush=True)
            rows.append((B, Hq, Hkv, N, d, causal, key, t_attn))

    print("\nbackward, and forward + backward")
    print(f"{'shape (B,Hq,Hkv,N,d)':24} {'causal':>6} | {'attn bwd ms':>11} {'GFLOP/s':>8} {'%sgemm':>7} | "
          f"{'attn f+b ms':>11} {'torch f+b ms':>12} {'x torch':>7}")
    for (B, Hq, Hkv, N, d, causal, key, t_fwd) in rows:
        t_bwd = attn_times.get("BM_FlashBackward/" + key)
        t_torch = torch_sdpa_train(B, Hq, Hkv, N, d, causal, args.min_time)
        f = 2.5 * flops(B, Hq, N, d, causal)
        both = t_fwd + t_bwd if t_fwd and t_bwd else None
        print(f"{str((B, Hq, Hkv, N, d)):24} {str(causal):>6} | {ms(t_bwd):11.2f} {gf(f, t_bwd):8.1f} "
              f"{100 * gf(f, t_bwd) / sgemm_attn:6.0f}% | {ms(both):11.2f} {ms(t_torch):12.2f} {ratio(both, t_torch):7.2f}",
              flush=True)


def gf(f, t):
    return f / t / 1e9 if t else float("nan")


def ms(t):
    return t * 1e3 if t else float("nan")


def ratio(a, b):
    return b / a if a and b else float("nan")


if __name__ == "__main__":
    sys.exit(main())

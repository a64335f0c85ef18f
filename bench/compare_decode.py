#!/usr/bin/env python3
"""Side-by-side decode step: attn's KV-cache decoding against PyTorch and ggml.

One new query token against a cache of L = 16384 tokens, head size 128, 32
query heads over 32 and over 8 KV heads (issue 8's shapes), for each cache
storage, one row per (heads, storage), every peer measured back to back:
  * attn   bench/decode_bench (attn::attention_decode on a KVCache), which
           runs a plain streaming read of the same bytes before every step:
           "% read" is the step's share of what the memory gives this run
  * torch  torch.nn.functional.scaled_dot_product_attention on [1, H, 1, d]
           queries and [1, Hkv, L, d] keys/values (enable_gqa for 32/8), in
           float32 for the float32 row and bfloat16 for the bfloat16 row
           (torch has no int8 attention: n/a)
  * ggml   ggml_flash_attn_ext, what llama.cpp runs for attention, through
           bench/peers/ggml_attention.cpp, when --ggml points at it built (see
           that file), with the all-zero mask llama.cpp passes: cache f32 for the float32 row, f16 (llama.cpp's
           default, the same bytes as bfloat16) for the bfloat16 row and
           q8_0 (8.5 bits per element; attn's int8 with scales: 9) for int8
GB/s = bytes of K + V as attn stores them / step time (the same bytes for
every peer of a row; q8_0 holds 6% fewer than attn's int8). Times: attn the mean of
decode_bench's iterations, torch the best of its repeats, ggml the median
of at least 20 runs.

  .venv/bin/python bench/compare_decode.py --bench build/release/bench/decode_bench \\
      [--ggml build/ggml_attention] [--threads 2]
"""
import argparse
import sys

import torch
import torch.nn.functional as F

# The runners and formatting this script shares with the prefill comparison.
from compare_torch import best_time, google_benchmark_rows, ms, ratio, require_executables, run_ggml, seconds

L, D, HQ = 16384, 128, 32
ROWS = [  # (Hkv, attn storage, torch dtype or None, ggml type)
    (32, "f32", torch.float32, "f32"),
    (32, "bf16", torch.bfloat16, "f16"),
    (32, "int8", None, "q8_0"),
    (8, "f32", torch.float32, "f32"),
    (8, "bf16", torch.bfloat16, "f16"),
    (8, "int8", None, "q8_0"),
]


def run_attn(path, threads, min_time, hkv, storage):
    """decode_bench on one row: (seconds per step, GB/s, % of the same-run read, read GB/s)."""
    name = f"BM_Decode/Hq:{HQ}/Hkv:{hkv}/L:{L}/d:{D}/kv:{storage}/"
    rows = google_benchmark_rows([path, f"--threads={threads}", f"--benchmark_filter=^{name}",
                                  f"--benchmark_min_time={min_time}"])
    if len(rows) != 1:
        sys.exit(f"decode_bench: expected one benchmark for {name}, got {len(rows)}")
    b = rows[0]
    return seconds(b), b["GB/s"], b["%read"], b["read_GB/s"]


def run_torch(hkv, dtype, min_time):
    if dtype is None:
        return None
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, HQ, 1, D, generator=g).to(dtype)
    k = torch.randn(1, hkv, L, D, generator=g).to(dtype)
    v = torch.randn(1, hkv, L, D, generator=g).to(dtype)
    with torch.no_grad():
        return best_time(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=hkv != HQ), min_time, min_reps=5)


def ggml_decode(path, threads, min_time, hkv, gtype):
    """ggml's decode step (all-zero mask, as llama.cpp passes), median seconds of at least 20 runs."""
    if not path:
        return None
    return run_ggml(path, HQ, hkv, 1, L, D, gtype, "zeros", threads, 20, min_time)["median_ms"] * 1e-3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="path to decode_bench")
    ap.add_argument("--ggml", help="path to ggml_attention built from bench/peers/ggml_attention.cpp (optional)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement")
    args = ap.parse_args()
    require_executables(ap, bench=args.bench, ggml=args.ggml)

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; attn: {args.bench}; "
          f"ggml: {args.ggml or 'not given (--ggml)'}; 1 query token, L = {L}, d = {D}, {HQ} query heads\n", flush=True)
    print(f"{'Hq/Hkv':7} {'cache':5} {'MB':>6} | {'attn ms':>8} {'GB/s':>6} {'%read':>6} {'read GB/s':>9} | "
          f"{'torch ms':>8} {'GB/s':>6} {'x torch':>7} | {'ggml':>5} {'ggml ms':>8} {'GB/s':>6} {'x ggml':>6}")
    for hkv, storage, dtype, gtype in ROWS:
        t_attn, gbs, pct, read = run_attn(args.bench, args.threads, args.min_time, hkv, storage)
        nbytes = gbs * 1e9 * t_attn  # decode_bench's bytes of K + V as stored
        t_torch = run_torch(hkv, dtype, args.min_time)
        t_ggml = ggml_decode(args.ggml, args.threads, args.min_time, hkv, gtype)
        print(f"{HQ}/{hkv:<4} {storage:5} {nbytes / 1e6:6.1f} | {ms(t_attn):8.2f} {gbs:6.1f} {pct:5.0f}% {read:9.1f} | "
              f"{ms(t_torch):8.2f} {rate(nbytes, t_torch):6.1f} {ratio(t_attn, t_torch):7.2f} | "
              f"{gtype:>5} {ms(t_ggml):8.2f} {rate(nbytes, t_ggml):6.1f} {ratio(t_attn, t_ggml):6.2f}", flush=True)


def rate(nbytes, t):
    return nbytes / t / 1e9 if t else float("nan")


if __name__ == "__main__":
    sys.exit(main())

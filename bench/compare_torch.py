#!/usr/bin/env python3
"""Side-by-side timings: attn's fast CPU path against PyTorch, shape by shape.

For each shape of issue 4 — (B, H, N, d) = (1, 16, N, 64) for N in 512..4096,
(1, 8, 2048, 128), GQA 32/8 — causal and not, one row with
  * sgemm     OpenBLAS sgemm n = 2048 (flash_bench runs one before each attn run)
  * attn      flash_bench's forward and backward (a subprocess, JSON output)
  * torch     torch.nn.functional.scaled_dot_product_attention (PyPI build),
              forward, and forward + autograd backward
  * math      the plain composition softmax(q·kᵀ·scale + mask)·v in torch
              (skipped where its [H, N, N] scores would not fit in memory)
  * torch.mm  n = 2048, torch's own matmul yardstick
  * ort       ONNX Runtime's CPU kernel for the ONNX `Attention` operator
              (opset 23; forward only, ONNX Runtime does no training here),
              when `onnxruntime` and `onnx` import (pip install -r
              bench/requirements.txt); its column says n/a otherwise
  * ggml      ggml_flash_attn_ext, what llama.cpp runs for attention
              (forward; f32 K/V, a causal F16 mask or none), through
              bench/peers/ggml_attention.cpp when --ggml points at it built
              (see that file); its column says n/a otherwise
all measured back to back for that row, every library on the same number of
threads. Then (unless --no-memory) each library's forward once more in a fresh
process of its own (attn through its Python package, the same kernels):
the growth of the peak resident set (VmHWM) during that one call beyond its
output — the memory a forward needs besides its inputs and outputs. FLOPs: 4·B·H·N²·d, half when causal; backward 2.5× forward.

  python3 bench/compare_torch.py --bench build/release/bench/flash_bench [--threads 2] [--quick]
      [--ggml build/ggml_attention]

Timings: attn's are Google Benchmark's mean over its iterations (at least
--min-time seconds); torch's and ONNX Runtime's the best of their repeats;
ggml's the median of its runs — if anything this favours the peers. The machine may be shared: rows are
measured together so their ratios hold, but compare rows with care.
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

import numpy as np

try:  # optional peer
    import onnxruntime as ort
    from onnx import TensorProto, helper
except ImportError:
    ort = None

SGEMM_N = 2048
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
            math = best_time(lambda: math_attention(q, kk, vv, mask), min_time)
    return sdpa, math


def math_attention(q, k, v, mask=None):
    """The plain composition softmax(q·kᵀ/√d + mask)·v; k, v with q's heads, mask bool (True = attend)."""
    s = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


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


def ort_session(B, Hq, Hkv, N, d, causal, threads):
    """An ONNX Runtime session of one `Attention` node (opset 23) on [B, H, N, d]
    inputs q, k, v; N may be a name ("N") for any sequence length."""
    info = lambda name, h: helper.make_tensor_value_info(name, TensorProto.FLOAT, [B, h, N, d])
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], is_causal=int(causal))
    graph = helper.make_graph([node], "attention", [info("q", Hq), info("k", Hkv), info("v", Hkv)], [info("y", Hq)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def ort_attention(B, Hq, Hkv, N, d, causal, threads, min_time):
    """ONNX Runtime's Attention forward, best seconds."""
    if ort is None:
        return None
    sess = ort_session(B, Hq, Hkv, N, d, causal, threads)
    rng = np.random.default_rng(0)
    feeds = {"q": rng.uniform(-1, 1, (B, Hq, N, d)).astype(np.float32),
             "k": rng.uniform(-1, 1, (B, Hkv, N, d)).astype(np.float32),
             "v": rng.uniform(-1, 1, (B, Hkv, N, d)).astype(np.float32)}
    return best_time(lambda: sess.run(None, feeds), min_time)


def run_ggml(path, Hq, Hkv, Lq, Lk, d, kv_type, mask, threads, min_reps, min_time):
    """One run of bench/peers/ggml_attention (batch 1): its JSON line as a dict
    (median_ms, min_ms, kv_bytes, peak_growth_mib, ...)."""
    cmd = [path, str(Hq), str(Hkv), str(Lq), str(Lk), str(d), kv_type, mask, str(threads), str(min_reps),
           str(min_time)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{run.stderr}")
    return json.loads(run.stdout)


def ggml_attention(path, B, Hq, Hkv, N, d, causal, threads, min_time):
    """ggml's CPU flash attention forward (f32 K/V), median seconds."""
    if not path:
        return None
    assert B == 1, "ggml_attention runs batch 1"
    mask = "causal" if causal else "none"
    return run_ggml(path, Hq, Hkv, N, N, d, "f32", mask, threads, 3, min_time)["median_ms"] * 1e-3


def memory_probe(lib, B, Hq, Hkv, N, d, causal, threads):
    """Runs in a fresh process (--memory-probe): one forward of `lib`, returning
    the growth of the peak resident set during the call minus the output's
    bytes, in MiB. The library first runs a tiny problem (thread pools,
    one-time set-up), then the peak is lowered to the current resident set
    (5 > /proc/self/clear_refs), so neither the imports nor the inputs'
    creation can hide what the call allocates. Inputs are numpy arrays made
    without temporaries (shared with torch, not copied)."""
    def hwm_mib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024

    def make_inputs(n):
        rng = np.random.default_rng(0)
        return (rng.random((B, Hq, n, d), dtype=np.float32), rng.random((B, Hkv, n, d), dtype=np.float32),
                rng.random((B, Hkv, n, d), dtype=np.float32))

    gqa = Hq != Hkv
    torch.set_num_threads(threads)
    if lib == "attn":
        import attn
        attn.set_num_threads(threads)
        run = lambda q, k, v: attn.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)
    elif lib == "torch":
        def run(q, k, v):
            tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
            return F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal, enable_gqa=gqa)
    elif lib == "math":
        def run(q, k, v):
            tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
            n = tq.shape[2]
            with torch.no_grad():
                kk = tk.repeat_interleave(Hq // Hkv, dim=1) if gqa else tk
                vv = tv.repeat_interleave(Hq // Hkv, dim=1) if gqa else tv
                return math_attention(tq, kk, vv, torch.ones(n, n, dtype=torch.bool).tril() if causal else None)
    else:  # "ort"
        sess = ort_session(B, Hq, Hkv, "N", d, causal, threads)
        run = lambda q, k, v: sess.run(None, {"q": q, "k": k, "v": v})[0]
    run(*make_inputs(16))  # one-time set-up: thread pools, first allocations
    q, k, v = make_inputs(N)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak is now the current resident set
    before = hwm_mib()
    run(q, k, v)
    return hwm_mib() - before - B * Hq * N * d * 4 / 2**20


def peak_memory(lib, B, Hq, Hkv, N, d, causal, threads, ggml=None):
    """MiB a forward grows the peak resident set beyond its output, in a fresh process (None: not measured)."""
    if lib == "ort" and ort is None:
        return None
    if lib == "math" and B * Hq * N * N * 4 * 3 > 6 << 30:
        return None
    if lib == "ggml":
        if not ggml:
            return None
        assert B == 1, "ggml_attention runs batch 1"
        mask = "causal" if causal else "none"
        return run_ggml(ggml, Hq, Hkv, N, N, d, "f32", mask, threads, 1, 0)["peak_growth_mib"]
    args = json.dumps([lib, B, Hq, Hkv, N, d, causal, threads])
    run = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-probe", args],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"memory probe for {lib} failed:\n{run.stderr}")
    return float(run.stdout.split()[-1])


def torch_mm(n, min_time):
    a, b = torch.rand(n, n), torch.rand(n, n)
    return best_time(lambda: torch.mm(a, b), min_time)


def run_flash_bench(path, threads, min_time, shape_filter):
    """Runs flash_bench on one shape: forward and backward, each after its
    paired sgemm run. Returns {benchmark name: seconds per iteration}."""
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)  # let OpenBLAS pick its kernel for this CPU
    rows = google_benchmark_rows([path, f"--threads={threads}", f"--benchmark_filter={shape_filter}",
                                  f"--benchmark_min_time={min_time}"], env)
    return {b["name"]: seconds(b) for b in rows}


def google_benchmark_rows(cmd, env=None):
    """Runs a Google Benchmark program (cmd: program and flags) and returns
    its iteration rows from the JSON output (aggregates left out)."""
    with tempfile.TemporaryDirectory() as tmp:
        json_path = os.path.join(tmp, "benchmark.json")
        cmd = cmd + [f"--benchmark_out={json_path}", "--benchmark_out_format=json"]
        run = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if run.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{run.stderr}")
        with open(json_path) as f:
            return [b for b in json.load(f)["benchmarks"] if b.get("run_type") == "iteration"]


def seconds(row):
    """A Google Benchmark row's real time per iteration, in seconds."""
    return row["real_time"] * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[row["time_unit"]]


def require_executables(ap, **paths):
    """argparse error unless each given path (flag name -> path or None) is an executable file."""
    for flag, path in paths.items():
        if path and not (os.path.isfile(path) and os.access(path, os.X_OK)):
            ap.error(f"--{flag} {path}: not an executable file")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--memory-probe":  # internal: see peak_memory
        print(memory_probe(*json.loads(sys.argv[2])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="path to flash_bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement")
    ap.add_argument("--quick", action="store_true", help="skip N = 4096")
    ap.add_argument("--ggml", help="path to ggml_attention built from bench/peers/ggml_attention.cpp (optional)")
    ap.add_argument("--no-memory", dest="memory", action="store_false",
                    help="skip the peak-memory table (each library's forward once more, in a fresh process)")
    ap.add_argument("--memory-only", action="store_true", help="only the peak-memory table (no timings)")
    args = ap.parse_args()
    require_executables(ap, bench=args.bench, ggml=args.ggml)

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; attn: {args.bench} "
          f"--threads={args.threads} --benchmark_min_time={args.min_time} --benchmark_filter=<shape>", flush=True)
    print("Each row is measured together, in this order: OpenBLAS sgemm n=2048, attn forward, sgemm, attn backward "
          "(flash_bench), then torch SDPA forward, the math composition, torch.mm n=2048, torch SDPA forward + "
          "backward, ONNX Runtime's Attention forward and ggml's flash attention forward. %sgemm compares with the "
          "sgemm run just before.")
    print(f"onnxruntime: {ort.__version__ if ort else 'not installed (pip install -r bench/requirements.txt)'}; "
          f"ggml: {args.ggml or 'not given (--ggml)'}\n")
    if not args.memory_only:
        print(f"{'shape (B,Hq,Hkv,N,d)':22} {'causal':>6} | {'sgemm':>6} | {'attn fwd ms':>11} {'GFLOP/s':>7} {'%sgemm':>6} | "
              f"{'torch ms':>8} {'GFLOP/s':>7} {'x torch':>7} | {'math ms':>8} {'x math':>6} | "
              f"{'attn bwd ms':>11} {'GFLOP/s':>7} {'%sgemm':>6} | {'attn f+b':>8} {'torch f+b':>9} {'x torch':>7} | {'torch.mm':>8} | "
              f"{'ort ms':>8} {'x ort':>6} | {'ggml ms':>8} {'x ggml':>6}")
    for (B, Hq, Hkv, N, d) in ([] if args.memory_only else SHAPES):
        if args.quick and N > 2048:
            continue
        for causal in (False, True):
            key = f"B:{B}/Hq:{Hq}/Hkv:{Hkv}/N:{N}/d:{d}/causal:{int(causal)}"
            t = run_flash_bench(args.bench, args.threads, args.min_time, key)
            fwd_name, bwd_name = f"BM_FlashForward/{key}/real_time", f"BM_FlashBackward/{key}/real_time"
            sg = lambda name: 2.0 * SGEMM_N ** 3 / t[f"BM_Sgemm/n:{SGEMM_N}/for:{name[:-len('/real_time')]}/real_time"] / 1e9
            t_fwd, t_bwd = t[fwd_name], t[bwd_name]
            sg_fwd, sg_bwd = sg(fwd_name), sg(bwd_name)
            t_sdpa, t_math = torch_sdpa(B, Hq, Hkv, N, d, causal, args.min_time)
            mm = 2.0 * SGEMM_N ** 3 / torch_mm(SGEMM_N, args.min_time) / 1e9
            t_train = torch_sdpa_train(B, Hq, Hkv, N, d, causal, args.min_time)
            t_ort = ort_attention(B, Hq, Hkv, N, d, causal, args.threads, args.min_time)
            t_ggml = ggml_attention(args.ggml, B, Hq, Hkv, N, d, causal, args.threads, args.min_time)
            f = flops(B, Hq, N, d, causal)
            print(f"{str((B, Hq, Hkv, N, d)):22} {str(causal):>6} | {sg_fwd:6.1f} | {ms(t_fwd):11.2f} {gf(f, t_fwd):7.1f} "
                  f"{100 * gf(f, t_fwd) / sg_fwd:5.0f}% | {ms(t_sdpa):8.2f} {gf(f, t_sdpa):7.1f} {ratio(t_fwd, t_sdpa):7.2f} | "
                  f"{ms(t_math):8.2f} {ratio(t_fwd, t_math):6.2f} | {ms(t_bwd):11.2f} {gf(2.5 * f, t_bwd):7.1f} "
                  f"{100 * gf(2.5 * f, t_bwd) / sg_bwd:5.0f}% | {ms(t_fwd + t_bwd):8.1f} {ms(t_train):9.1f} "
                  f"{ratio(t_fwd + t_bwd, t_train):7.2f} | {mm:8.1f} | {ms(t_ort):8.2f} {ratio(t_fwd, t_ort):6.2f} | "
                  f"{ms(t_ggml):8.2f} {ratio(t_fwd, t_ggml):6.2f}",
                  flush=True)
    if args.memory or args.memory_only:
        libs = ["attn", "torch", "math", "ort", "ggml"]
        print("\nPeak memory of one forward beyond its inputs and output, MiB (fresh process each; "
              "inputs and output: B·(Hq + 2·Hkv)·N·d·4 + B·Hq·N·d·4 bytes)")
        print(f"{'shape (B,Hq,Hkv,N,d)':22} {'causal':>6} | {'in+out':>7} | " + " ".join(f"{x:>8}" for x in libs))
        for (B, Hq, Hkv, N, d) in SHAPES:
            if args.quick and N > 2048:
                continue
            for causal in (False, True):
                io = (B * (2 * Hq + 2 * Hkv) * N * d * 4) / 2**20
                mem = [peak_memory(x, B, Hq, Hkv, N, d, causal, args.threads, args.ggml) for x in libs]
                print(f"{str((B, Hq, Hkv, N, d)):22} {str(causal):>6} | {io:7.1f} | " +
                      " ".join(f"{m:8.1f}" if m is not None else f"{'n/a':>8}" for m in mem), flush=True)


def gf(f, t):
    return f / t / 1e9 if t else float("nan")


def ms(t):
    return t * 1e3 if t else float("nan")


def ratio(a, b):
    return b / a if a and b else float("nan")


if __name__ == "__main__":
    sys.exit(main())

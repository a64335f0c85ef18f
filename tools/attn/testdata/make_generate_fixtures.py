"""Writes the two small files the `attn generate --load` limit tests read
(tools/attn/limits_tests.cmake). Each is a valid safetensors file of a few
hundred bytes whose metadata describes a model it does not hold:

  generate_big_metadata.safetensors     sizes within the command's bounds (64 layers
                                        of width 4096: 13 G parameters) and one
                                        4-byte tensor "x"
  generate_absurd_metadata.safetensors  d_model 999999999

Before the check, `attn generate --load` built the model from the metadata
first: tens of GB for a 220-byte file. Run from this directory:
    python3 make_generate_fixtures.py
"""
import json
import struct


def write(path, metadata):
    header = {"__metadata__": metadata, "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + struct.pack("<f", 1.0))


base = {"attn.vocab": " abcdefghijklmnopqrstuvwxyz", "attn.d_model": "4096", "attn.heads": "32",
        "attn.kv_heads": "8", "attn.layers": "64", "attn.window": "4096"}
write("generate_big_metadata.safetensors", base)
write("generate_absurd_metadata.safetensors", dict(base, **{"attn.d_model": "999999999"}))

#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus/safetensors/ (run from anywhere).

Small valid files, one feature each, so the fuzzer starts from every dtype,
empty and 0-d tensors, metadata and the header padding; plus the repository's
own fixtures (copied by hand: tests/golden/*.safetensors,
tools/attn/testdata/heatmap_weights.safetensors and
tools/attn/testdata/bert_truncated/model.safetensors). Standard library only.
"""
import json
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safetensors")


def write(name, tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes), laid out in order."""
    header, data, offset = {}, b"", 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for tname, dtype, shape, raw in tensors:
        header[tname] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


os.makedirs(HERE, exist_ok=True)
write("seed_empty_header", [])
write("seed_metadata_only", [], {"format": "pt", "note": "héllo"})
write("seed_f32_scalar", [("x", "F32", [], struct.pack("<f", 1.5))])
write("seed_f64", [("x", "F64", [2], struct.pack("<2d", -0.0, 1e300))])
write("seed_f16", [("h", "F16", [4], struct.pack("<4H", 0x3C00, 0x7C00, 0x0001, 0xFE00))])
write("seed_bf16", [("b", "BF16", [2, 2], struct.pack("<4H", 0x3F80, 0xFF80, 0x7FC1, 0x0001))])
write("seed_ints", [("a", "I8", [3], struct.pack("<3b", -128, 0, 127)),
                    ("b", "U16", [1], struct.pack("<H", 65535)),
                    ("c", "I64", [1], struct.pack("<q", -(2 ** 63))),
                    ("d", "U64", [1], struct.pack("<Q", 2 ** 64 - 1))])
write("seed_bool_u32", [("m", "BOOL", [3], bytes([0, 1, 2])), ("n", "U32", [1], struct.pack("<I", 7))])
write("seed_zero_dims", [("e", "F32", [0, 5], b""), ("f", "F32", [2], struct.pack("<2f", 1, 2))])
write("seed_unpadded", [("x", "F32", [1], struct.pack("<f", 3.0))], pad=False)

#!/usr/bin/env python3
"""Small safetensors files written by the reference implementation (the
`safetensors` package, with torch), for tests/io/safetensors_test.cpp.

  safetensors_fixture.safetensors    one tensor of every dtype attn reads
      (F64, F32, F16, BF16, I64, I32, I8, U8, BOOL), a 0-d and an empty tensor,
      metadata, and float32 values `rounding_input` beside torch's own
      .to(float16) / .to(bfloat16) of them (`rounding_f16`, `rounding_bf16`):
      the C++ writer must produce the same bytes. The values the test expects
      are written out literally in the test, and listed here.
  safetensors_reference_f32.safetensors    {"weight": [2, 3], "bias": [2]}
      with metadata {"format": "pt"}: attn's writer must reproduce it byte for
      byte (same key order, same padding).

Needs: pip install safetensors (only to regenerate; the tests read the files).
Run:   python3 tests/golden/make_safetensors_fixtures.py
"""
import math
import pathlib

import torch
from safetensors.torch import save_file

here = pathlib.Path(__file__).parent

# The float32 values whose float16 / bfloat16 rounding is checked: signed
# zeros, infinities, NaN, the largest halves and where rounding overflows,
# subnormal halves and ties at every scale, bfloat16 ties and overflow.
rounding_input = [
    0.0, -0.0, math.inf, -math.inf, math.nan,
    65504.0, 65519.99609375, 65520.0, 1e6, -1e6,
    2.0**-24, 2.0**-25, 3 * 2.0**-26, 2.0**-25 * (1 + 2.0**-20), 2.0**-14, 2.0**-14 - 2.0**-25, 1e-5, -6.0e-5,
    1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-8, 1 + 3 * 2.0**-8, 1 + 2.0**-8 + 2.0**-20,
    3.14159265, -2.71828183, 3.4e38, -3.3895314e38, 1e-40, 2.0**-133,
] + [math.sin(0.5 + 0.7 * n) * 10.0 ** (n % 9 - 4) for n in range(12)]
x = torch.tensor(rounding_input, dtype=torch.float32)

fixture = {
    "f32": (torch.arange(6, dtype=torch.float32) * 0.5 - 1).reshape(2, 3),  # -1, -0.5, 0, 0.5, 1, 1.5
    "f64": torch.tensor([math.pi, -math.e, 1e-300], dtype=torch.float64),
    "f16": torch.tensor([1.0, -2.5, 65504.0, 2.0**-24], dtype=torch.float16),
    "bf16": torch.tensor([1.5, -256.0, 2.0**-130], dtype=torch.bfloat16),
    "i64": torch.tensor([[-3, 0], [7, 2**40]], dtype=torch.int64),
    "i32": torch.tensor([-7, 2**31 - 1], dtype=torch.int32),
    "i8": torch.tensor([-128, 127], dtype=torch.int8),
    "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
    "bool": torch.tensor([True, False, True]),
    "scalar": torch.tensor(4.25, dtype=torch.float32),
    "empty": torch.zeros(0, 3, dtype=torch.float32),
    "rounding_input": x,
    "rounding_f16": x.to(torch.float16),
    "rounding_bf16": x.to(torch.bfloat16),
}
save_file(fixture, here / "safetensors_fixture.safetensors", metadata={"format": "pt", "source": "attn fixture"})

# (n - 2.5) / 4: exact in float32, rebuilt by the C++ test.
reference = {
    "weight": ((torch.arange(6, dtype=torch.float32) - 2.5) / 4).reshape(2, 3),
    "bias": (torch.arange(2, dtype=torch.float32) - 2.5) / 4,
}
save_file(reference, here / "safetensors_reference_f32.safetensors", metadata={"format": "pt"})

for name in ("safetensors_fixture.safetensors", "safetensors_reference_f32.safetensors"):
    size = (here / name).stat().st_size
    assert size < 2048, f"{name} is {size} bytes; keep fixtures under 2 KB"
    print(f"wrote {here / name} ({size} bytes)")

"""Safetensors through Python, and `python -m attn`, which runs the `attn`
command's own code."""

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

import attn

def test_safetensors_round_trip_with_metadata(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"a": rng.standard_normal((2, 3)).astype(np.float32),
               "b.weight": rng.standard_normal(4).astype(np.float32)[::2]}  # strided
    path = tmp_path / "t.safetensors"
    attn.save_safetensors(path, tensors, metadata={"format": "pt"})
    back = attn.load_safetensors(path)
    assert set(back) == {"a", "b.weight"}
    for name, a in tensors.items():
        assert back[name].dtype == np.float32
        np.testing.assert_array_equal(back[name], a)
    assert attn.load_safetensors_metadata(path) == {"format": "pt"}


def test_safetensors_file_written_by_hand_is_read(tmp_path):
    # The format from its specification, not from attn's writer.
    f64 = np.array([1.5, -2.0], dtype="<f8")
    i32 = np.array([[7, -8]], dtype="<i4")
    header = {"x": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]},
              "n": {"dtype": "I32", "shape": [1, 2], "data_offsets": [16, 24]}}
    h = json.dumps(header).encode()
    h += b" " * (-(8 + len(h)) % 8)
    path = tmp_path / "hand.safetensors"
    path.write_bytes(struct.pack("<Q", len(h)) + h + f64.tobytes() + i32.tobytes())
    back = attn.load_safetensors(str(path))
    assert back["x"].dtype == np.float64 and back["x"].tolist() == [1.5, -2.0]
    assert back["n"].dtype == np.int64 and back["n"].tolist() == [[7, -8]]


def test_torch_state_dict_saves_and_loads_into_attn_layer(tmp_path):
    ref = torch.nn.MultiheadAttention(4, 2)
    path = tmp_path / "mha.safetensors"
    attn.save_safetensors(path, ref.state_dict())
    mha = attn.nn.TorchMultiheadAttention(4, 2)
    mha.load_state_dict(attn.load_safetensors(path))
    for name, p in ref.state_dict().items():
        np.testing.assert_array_equal(mha.state_dict()[name], p.numpy())
    with pytest.raises(TypeError, match="mix float32 and float64"):
        attn.save_safetensors(path, {"a": np.zeros(1, np.float32), "b": np.zeros(1)})
    attn.save_safetensors(path, {"a": np.zeros(1, np.float32), "b": np.ones(1)}, dtype="F16")
    assert attn.load_safetensors(path)["b"].tolist() == [1.0]


def run_module(*args):
    return subprocess.run([sys.executable, "-m", "attn", *args], capture_output=True, text=True, timeout=60)


def test_python_m_attn_demo_prints_the_notes_numbers():
    r = run_module("demo")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Your journey starts with one step"
    # The notes' printed numbers (PyTorch's), as the C++ command's own test checks them.
    assert any(l.split()[:2] == ["scores", "w2"] and l.split()[2:] ==
               ["0.9544", "1.4950", "1.4754", "0.8434", "0.7070", "1.0865"] for l in lines)
    assert any(l.split() == ["z2", "0.4419", "0.6515", "0.5683"] for l in lines)
    assert any(l.startswith("naive softmax") and l.split()[-6:] == ["nan", "nan", "nan", "0.0000", "0.0000", "nan"]
               for l in lines)


def test_python_m_attn_demo_json_and_usage_errors():
    r = run_module("demo", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["query_context"] == pytest.approx([0.4419, 0.6515, 0.5683], abs=5e-5)
    assert doc["overflow"]["naive_softmax"][0] is None
    r = run_module("bogus")
    assert r.returncode == 2 and "unknown command 'bogus'" in r.stderr
    r = run_module("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"attn {attn.__version__}"


def test_python_m_attn_demo_equals_the_cpp_command_when_built():
    # The C++ command of the release preset build (or $ATTN_CLI), if it is
    # there and newer than the command's sources: same bytes, same exit code.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    exe = os.environ.get("ATTN_CLI", os.path.join(root, "build", "release", "tools", "attn", "attn"))
    tools = os.path.join(root, "tools", "attn")
    if not os.access(exe, os.X_OK) or os.path.getmtime(exe) < max(
            os.path.getmtime(os.path.join(tools, f)) for f in os.listdir(tools)):
        pytest.skip("no up-to-date build of the C++ attn command (set ATTN_CLI to one)")
    for args in (["demo"], ["demo", "--json"], ["demo", "--overflow-factor", "50"], ["demo", "--bogus"]):
        cpp = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
        py = run_module(*args)
        assert (py.returncode, py.stdout) == (cpp.returncode, cpp.stdout)

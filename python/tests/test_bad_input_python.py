"""Bad input that only Python can hand over (issue 17's Python list): each
was a crash, a cut name or a silently wrong answer before, and is now a typed
error naming the argument, or the right answer."""

import os
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attn
from conftest import OUT_TOL, rand_tensor


@pytest.mark.parametrize("name,value", [("is_causal", "no"), ("is_causal", 1), ("enable_gqa", "yes"),
                                        ("enable_gqa", 0)])
@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_flags_must_be_bools(name, value, kind, gen):
    q, k, v = (rand_tensor(gen, (1, 2, 3, 4)) for _ in range(3))
    if kind == "numpy":
        q, k, v = q.numpy(), k.numpy(), v.numpy()
    with pytest.raises(TypeError, match=f"{name} is {value!r}"):
        attn.scaled_dot_product_attention(q, k, v, **{name: value})
    out = attn.scaled_dot_product_attention(q, k, v, is_causal=np.bool_(True))  # numpy's bool is a bool
    assert out.shape == (1, 2, 3, 4)


def test_lazily_negated_views_are_read_as_the_values_they_stand_for(gen):
    z = torch.complex(rand_tensor(gen, (1, 2, 5, 8)), rand_tensor(gen, (1, 2, 5, 8)))
    q = z.conj().imag  # the negative bit: its memory holds -q
    assert q.is_neg()
    expected = F.scaled_dot_product_attention(q.clone(), q.clone(), q.clone(), is_causal=True)
    torch.testing.assert_close(attn.scaled_dot_product_attention(q, q, q, is_causal=True), expected, rtol=0,
                               atol=OUT_TOL)
    g = q.detach().clone().requires_grad_()
    attn.scaled_dot_product_attention(g, q, q).sum().backward()  # neg-bit key/value on the grad route too
    ref = q.clone().requires_grad_()
    F.scaled_dot_product_attention(ref, q.clone(), q.clone()).sum().backward()
    torch.testing.assert_close(g.grad, ref.grad, rtol=0, atol=1e-4)


def test_sparse_tensors_are_a_type_error_naming_the_argument(gen):
    dense = rand_tensor(gen, (1, 1, 4, 8))
    with pytest.raises(TypeError, match="key is a torch.sparse_coo tensor"):
        attn.scaled_dot_product_attention(dense, dense.to_sparse(), dense)


def test_complex_tensors_with_or_without_the_conj_bit_are_a_type_error_naming_the_argument(gen):
    # torch's lazy conjugate bit exists only on complex tensors; attention over
    # complex numbers is not defined here, so the argument's dtype is refused
    # by name, with or without the bit (never read as its real part).
    z = torch.complex(rand_tensor(gen, (1, 1, 4, 8)), rand_tensor(gen, (1, 1, 4, 8)))
    real = rand_tensor(gen, (1, 1, 4, 8))
    for value in (z, z.conj()):
        with pytest.raises(TypeError, match="value.*complex"):
            attn.scaled_dot_product_attention(real, real, value)


def test_object_arrays_are_a_type_error_naming_the_argument():
    q = np.ones((1, 1, 4, 8), dtype=object)
    with pytest.raises(TypeError, match="query is an array of object"):
        attn.scaled_dot_product_attention(q, q, q)


def test_out_of_memory_names_what_was_asked_and_the_library_stays_usable(gen):
    big = torch.zeros(1, 1, 1 << 19, 8)  # the weights alone: 2^38 floats = 1 TiB
    with pytest.raises(MemoryError, match=r"return_weights .*B\*Hq\*Lq\*Lk"):
        attn.scaled_dot_product_attention(big, big, big, return_weights=True)
    q = rand_tensor(gen, (1, 2, 3, 4))
    torch.testing.assert_close(attn.scaled_dot_product_attention(q, q, q), F.scaled_dot_product_attention(q, q, q),
                               rtol=0, atol=OUT_TOL)


def test_nul_in_a_path_is_refused_and_no_other_file_is_written(tmp_path):
    target = tmp_path / "weights.safetensors"
    with pytest.raises(ValueError, match="NUL"):
        attn.save_safetensors(str(target) + "\0.bak", {"w": np.ones(2, np.float32)})
    assert not target.exists() and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="NUL"):
        attn.load_safetensors(str(target) + "\0")
    with pytest.raises(ValueError, match="NUL"):
        attn.load_safetensors_metadata(str(target) + "\0")


def test_nul_in_tensor_names_keeps_every_tensor(tmp_path):
    path = tmp_path / "nul.safetensors"
    tensors = {"a\0x": np.ones(2, np.float32), "a\0y": np.full(2, 2.0, np.float32)}
    attn.save_safetensors(path, tensors, metadata={"k\0": "v\0w"})
    back = attn.load_safetensors(path)
    assert sorted(back) == ["a\0x", "a\0y"]
    np.testing.assert_array_equal(back["a\0y"], tensors["a\0y"])
    assert attn.load_safetensors_metadata(path) == {"k\0": "v\0w"}


def _raw_safetensors(path, header):
    data = np.ones(2, np.float32).tobytes()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)


@pytest.mark.parametrize("header", [
    b'{"\xff\xfe":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
    b'{"__metadata__":{"k":"\xff"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
])
def test_a_header_that_is_not_utf8_is_an_os_error_naming_the_file(tmp_path, header):
    """The reader refuses the header (JSON must be UTF-8); its message quotes the
    bad bytes, escaped, where it used to fail as a UnicodeDecodeError."""
    path = tmp_path / "bad.safetensors"
    _raw_safetensors(path, header)
    for load in (attn.load_safetensors, attn.load_safetensors_metadata):
        with pytest.raises(OSError, match=r"bad.safetensors.*UTF-8.*\\xff"):
            load(path)

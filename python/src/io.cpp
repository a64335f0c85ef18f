// python/src/io.cpp — safetensors files (attn/safetensors.hpp) for Python.
//
//   load_safetensors(path) -> (tensors, dtypes, metadata)
//     tensors: name -> float32 array when every tensor in the file is F32, F16
//     or BF16 (exact), else name -> float64 array (exact for F64 and for
//     integers up to 2^53); dtypes: name -> the dtype spelled in the file, so
//     python/attn/io.py can give integers and bools back their kind.
//   save_safetensors(path, tensors, metadata, dtype)
//     tensors all float32 or all float64 (python/attn/io.py sees to it).
// The library validates the file before trusting any of it; its IOError
// arrives as OSError with the file's name and the problem.
#include <map>
#include <string>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>

#include <attn/safetensors.hpp>

#include "convert.hpp"

namespace attn::python {
namespace {

// A name or value from a file's header as a Python str with all of its bytes:
// a NUL inside is part of the name, not where it ends. (The reader has checked
// that the header is UTF-8 JSON.)
nb::str header_str(const std::string& s) { return nb::str(s.data(), s.size()); }

// Paths go to the C library as C strings: a NUL would cut them (and write or
// read another file), so it is refused, as Python's open() does.
void require_no_nul(const std::string& path, const char* fn) {
  if (path.find('\0') != std::string::npos)
    throw attn::ValueError(std::string(fn) + ": path contains a NUL byte");
}

template <class T>
nb::dict to_dict(const std::map<std::string, Tensor<T>>& tensors) {
  nb::dict out;
  for (const auto& [name, t] : tensors) out[header_str(name)] = to_python(t, Framework::NumPy);
  return out;
}

template <class T>
void save(const std::string& path, const std::map<std::string, Array>& arrays,
          const std::map<std::string, std::string>& metadata, const std::string& dtype) {
  std::map<std::string, Tensor<T>> tensors;
  for (const auto& [name, a] : arrays) {
    if (!has_dtype<T>(a))
      throw nb::type_error(("save_safetensors: '" + name + "' has dtype " + dtype_name(a.dtype()) + ", expected " +
                            dtype_name(nb::dtype<T>()))
                               .c_str());
    tensors[name] = as_tensor<T>(a);
  }
  nb::gil_scoped_release no_gil;
  save_safetensors<T>(path, tensors, metadata, dtype);
}

}  // namespace

void bind_io(nb::module_& m) {
  m.def(
      "load_safetensors",
      [](const std::string& path) {
        require_no_nul(path, "load_safetensors");
        const SafetensorsHeader header = read_safetensors_header(path);
        nb::dict dtypes;
        bool all_float32 = true;
        for (const auto& [name, info] : header.tensors) {
          dtypes[header_str(name)] = info.dtype;
          all_float32 = all_float32 && (info.dtype == "F32" || info.dtype == "F16" || info.dtype == "BF16");
        }
        nb::dict tensors;
        if (all_float32) {
          std::map<std::string, Tensor<float>> t;
          {
            nb::gil_scoped_release no_gil;
            t = load_safetensors<float>(path);
          }
          tensors = to_dict(t);
        } else {
          std::map<std::string, Tensor<double>> t;
          {
            nb::gil_scoped_release no_gil;
            t = load_safetensors<double>(path);
          }
          tensors = to_dict(t);
        }
        nb::dict metadata;
        for (const auto& [k, v] : header.metadata)
          metadata[header_str(k)] = header_str(v);
        return nb::make_tuple(tensors, dtypes, metadata);
      },
      nb::arg("path"));

  m.def(
      "load_safetensors_metadata",
      [](const std::string& path) {
        require_no_nul(path, "load_safetensors_metadata");
        nb::dict metadata;
        for (const auto& [k, v] : load_safetensors_metadata(path))
          metadata[header_str(k)] = header_str(v);
        return metadata;
      },
      nb::arg("path"));

  m.def(
      "save_safetensors",
      [](const std::string& path, const std::map<std::string, Array>& tensors,
         const std::map<std::string, std::string>& metadata, const std::string& dtype, bool float64) {
        require_no_nul(path, "save_safetensors");
        if (float64)
          save<double>(path, tensors, metadata, dtype);
        else
          save<float>(path, tensors, metadata, dtype);
      },
      nb::arg("path"), nb::arg("tensors"), nb::arg("metadata"), nb::arg("dtype"), nb::arg("float64"));
}

}  // namespace attn::python

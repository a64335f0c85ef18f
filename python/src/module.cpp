// python/src/module.cpp — the extension module attn._core: errors, random
// numbers, threads, the `attn` command; the rest is bound in sdpa.cpp,
// layers.cpp and io.cpp. The public Python API is python/attn/*.py.
//
// Errors. Every exception the library throws on purpose arrives in Python as
// the built-in exception a Python user expects, carrying the library's message:
//   attn::ShapeError  -> attn.ShapeError, a subclass of ValueError
//   attn::ValueError  -> ValueError
//   attn::IOError     -> OSError
//   attn::ResourceError -> MemoryError (memory or threads the system refused)
//   other attn::Error -> RuntimeError
// (dtype problems are raised as TypeError where they are detected).
#include <cstring>
#include <cstdint>
#include <string>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <iostream>

#include <attn/errors.hpp>
#include <attn/generator.hpp>
#include <attn/threading.hpp>

#include "convert.hpp"
#include "run_main.hpp"  // tools/attn/: the `attn` command as a function

namespace attn::python {

void bind_sdpa(nb::module_& m);
void bind_layers(nb::module_& m);
void bind_notes_layers(nb::module_& m);
void bind_io(nb::module_& m);
void bind_inference(nb::module_& m);  // inference.cpp: KVCache, decode, merge, RoPE, MLA

std::string dtype_name(nb::dlpack::dtype dt) {
  using code = nb::dlpack::dtype_code;
  std::string base;
  switch (static_cast<code>(dt.code)) {
    case code::Int: base = "int"; break;
    case code::UInt: base = "uint"; break;
    case code::Float: base = "float"; break;
    case code::Bfloat: base = "bfloat"; break;
    case code::Complex: base = "complex"; break;
    case code::Bool: return "bool";
    default: base = "unknown"; break;
  }
  return base + std::to_string(dt.bits);
}

namespace {

PyObject* shape_error_type = nullptr;

// Sets a Python exception of `type` from a library message. A message may quote
// bytes of a bad file (a header that is not UTF-8): those are escaped
// (backslashreplace) rather than failing the conversion with a UnicodeDecodeError.
void set_error(PyObject* type, const char* what) {
  PyObject* msg = PyUnicode_DecodeUTF8(what, static_cast<Py_ssize_t>(std::strlen(what)), "backslashreplace");
  if (!msg) return;  // (out of memory: that error is set instead)
  PyErr_SetObject(type, msg);
  Py_DECREF(msg);
}

void translate(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const attn::ShapeError& e) {
    set_error(shape_error_type, e.what());
  } catch (const attn::ValueError& e) {
    set_error(PyExc_ValueError, e.what());
  } catch (const attn::IOError& e) {
    set_error(PyExc_OSError, e.what());
  } catch (const attn::ResourceError& e) {
    set_error(PyExc_MemoryError, e.what());
  } catch (const attn::Error& e) {
    set_error(PyExc_RuntimeError, e.what());
  }
}

Shape shape_of(const std::vector<int64_t>& shape, const char* fn) {
  for (int64_t s : shape)
    if (s < 0) throw attn::ValueError(std::string(fn) + ": negative size in shape " + shape_str(shape));
  return shape;
}

template <class T>
nb::object random_tensor(const std::vector<int64_t>& shape, bool normal) {
  const Shape s = shape_of(shape, normal ? "randn" : "rand");
  Tensor<T> t = normal ? attn::randn<T>(s) : attn::rand<T>(s);
  return to_python(t, Framework::NumPy);
}

}  // namespace
}  // namespace attn::python

NB_MODULE(_core, m) {
  namespace nb = nanobind;
  using namespace attn::python;
  m.doc() = "attn's C++ core (use the attn package, not this module)";
  m.attr("__version__") = ATTN_VERSION;

  shape_error_type = PyErr_NewExceptionWithDoc(
      "attn.ShapeError",
      "A tensor argument has the wrong rank or sizes, or shapes do not match (a ValueError).",
      PyExc_ValueError, nullptr);
  m.attr("ShapeError") = nb::handle(shape_error_type);
  nb::register_exception_translator(translate);

  // ---- random numbers: torch's CPU generator, draw for draw ---------------------
  m.def("manual_seed", [](uint64_t seed) { attn::manual_seed(seed); }, nb::arg("seed"),
        "Seed the default generator, like torch.manual_seed.");
  m.def("initial_seed", [] { return attn::default_generator().initial_seed(); });
  m.def("random64", [] { return attn::default_generator().random64(); },
        "The next 64 random bits of the default generator (dropout seeds are drawn this way).");
  m.def(
      "rand",
      [](const std::vector<int64_t>& shape, bool dbl) {
        return dbl ? random_tensor<double>(shape, false) : random_tensor<float>(shape, false);
      },
      nb::arg("shape"), nb::arg("float64"));
  m.def(
      "randn",
      [](const std::vector<int64_t>& shape, bool dbl) {
        return dbl ? random_tensor<double>(shape, true) : random_tensor<float>(shape, true);
      },
      nb::arg("shape"), nb::arg("float64"));

  // ---- threads of the fast kernels ---------------------------------------------
  m.def("set_num_threads", [](int n) { attn::set_num_threads(n); }, nb::arg("n"));
  m.def("get_num_threads", [] { return attn::get_num_threads(); });

  // ---- the `attn` command ------------------------------------------------------
  // argv[0] is the program name. The command prints through C++'s std::cout
  // and std::cerr (file descriptors 1 and 2), flushed before returning.
  m.def(
      "run_command",
      [](std::vector<std::string> args) {
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        const int rc = attn::cli::run_main(static_cast<int>(args.size()), argv.data());
        std::cout.flush();
        std::cerr.flush();
        return rc;
      },
      nb::arg("argv"), "Run the `attn` command with this argv; returns its exit code.");

  bind_sdpa(m);
  bind_layers(m);
  bind_notes_layers(m);
  bind_io(m);
  bind_inference(m);
}

// python/src/sdpa.cpp — attn::scaled_dot_product_attention (forward and
// backward) and the notes' simplified self-attention, for Python.
//
// These are the low-level entry points that python/attn/_sdpa.py calls; they
// take rank-4 arrays in PyTorch's SDPA layout (the Python side reshapes other
// ranks and broadcasts batch dims):
//   query [B, Hq, Lq, Dk]   key [B, Hkv, Lk, Dk]   value [B, Hkv, Lk, Dv]
//   attn_mask  bool (True = attend) or float of query's dtype, broadcastable
//              to [B, Hq, Lq, Lk]
//   alibi_slopes [Hq] or [B, Hq], sinks [Hq], both of query's dtype
// Inputs are read in place (any strides, no copy); outputs are the library's
// own tensors handed over without a copy. The GIL is released while the
// library computes, so other Python threads run meanwhile.
#include <algorithm>
#include <ctime>
#include <new>
#include <optional>
#include <string>
#include <utility>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <attn/sdpa.hpp>
#include <attn/simplified_attention.hpp>
#include <attn/varlen.hpp>

#include "convert.hpp"

namespace attn::python {
namespace {

using OptArray = std::optional<Array>;

// The SDPA arguments after query, key and value, as the Python side passes
// them to both forward and backward (so backward sees exactly the forward's
// options, dropout seed included).
struct Args {
  OptArray attn_mask;
  bool is_causal;
  bool bottom_right;
  int64_t window_left, window_right;
  std::optional<double> scale;
  double dropout_p;
  uint64_t dropout_seed;
  bool enable_gqa;
  OptArray alibi_slopes;
  double softcap;
  OptArray sinks;
};

// The library names the two kinds of mask by their SdpaOptions fields; in
// Python both are the argument attn_mask.
std::string python_names(std::string msg) {
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"bool_mask", "attn_mask (bool)"},
                                 {"float_mask", "attn_mask (float)"}}) {
    for (size_t at = msg.find(from); at != std::string::npos; at = msg.find(from, at + to.size()))
      msg.replace(at, from.size(), to);
  }
  return msg;
}

// Runs `f`, rethrowing the library's errors with Python's argument names.
template <class F>
auto with_python_names(F&& f) {
  try {
    return f();
  } catch (const attn::ShapeError& e) {
    throw attn::ShapeError(python_names(e.what()));
  } catch (const attn::ValueError& e) {
    throw attn::ValueError(python_names(e.what()));
  }
}

std::string shape_of(const Array& a) {
  std::string s = "[";
  for (size_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + "]";
}

// A failed allocation as Python's MemoryError naming what was asked for (the
// inputs' shapes and the buffers they imply), not a bare std::bad_alloc. Called
// with the GIL held; the library is usable afterwards (nothing was half-built).
[[noreturn]] void out_of_memory(const char* fn, const Array& q, const Array& k, const Array& v, bool weights) {
  std::string msg = std::string(fn) + ": out of memory for query " + shape_of(q) + ", key " + shape_of(k) +
                    ", value " + shape_of(v);
  if (weights && q.ndim() == 4 && k.ndim() == 4)
    msg += " with return_weights (the weights alone are B*Hq*Lq*Lk = " +
           std::to_string(static_cast<double>(q.shape(0)) * static_cast<double>(q.shape(1)) *
                          static_cast<double>(q.shape(2)) * static_cast<double>(k.shape(2))) +
           " elements)";
  PyErr_SetString(PyExc_MemoryError, msg.c_str());
  throw nb::python_error();
}

template <class T>
SdpaOptions<T> options_of(const Args& a, const char* fn) {
  SdpaOptions<T> o;
  if (a.attn_mask) {
    if (has_dtype<bool>(*a.attn_mask))
      o.bool_mask = as_tensor<bool>(*a.attn_mask);
    else if (has_dtype<T>(*a.attn_mask))
      o.float_mask = as_tensor<T>(*a.attn_mask);
    else
      throw nb::type_error((std::string(fn) + ": attn_mask has dtype " + dtype_name(a.attn_mask->dtype()) +
                            ", expected bool (True = attend) or " + dtype_name(nb::dtype<T>()) +
                            " (added to the scores)")
                               .c_str());
  }
  o.is_causal = a.is_causal;
  o.causal_alignment = a.bottom_right ? CausalAlignment::BottomRight : CausalAlignment::TopLeft;
  o.window_left = a.window_left;
  o.window_right = a.window_right;
  o.scale = a.scale;
  o.dropout_p = a.dropout_p;
  o.dropout_seed = a.dropout_seed;
  o.enable_gqa = a.enable_gqa;
  if (a.alibi_slopes) {
    require_dtype<T>(*a.alibi_slopes, "alibi_slopes", fn);
    o.alibi_slopes = as_tensor<T>(*a.alibi_slopes);
  }
  o.softcap = a.softcap;
  if (a.sinks) {
    require_dtype<T>(*a.sinks, "sinks", fn);
    o.sinks = as_tensor<T>(*a.sinks);
  }
  return o;
}

template <class T>
nb::tuple forward(const Array& q, const Array& k, const Array& v, const Args& args, bool return_lse,
                  bool return_weights, Framework fw) {
  const char* fn = "scaled_dot_product_attention";
  require_dtype<T>(k, "key", fn);
  require_dtype<T>(v, "value", fn);
  SdpaOptions<T> o = options_of<T>(args, fn);
  o.return_lse = return_lse;
  o.return_weights = return_weights;
  const Tensor<T> tq = as_tensor<T>(q), tk = as_tensor<T>(k), tv = as_tensor<T>(v);
  SdpaResult<T> r;
  try {
    nb::gil_scoped_release no_gil;
    r = with_python_names([&] { return scaled_dot_product_attention(tq, tk, tv, o); });
  } catch (const std::bad_alloc&) {
    out_of_memory(fn, q, k, v, return_weights);
  } catch (const attn::ResourceError&) {  // a tensor or workspace the system refused
    out_of_memory(fn, q, k, v, return_weights);
  }
  return nb::make_tuple(to_python(r.output, fw), to_python(r.lse, fw), to_python(r.weights, fw));
}

template <class T>
nb::tuple backward(const Array& grad_output, const Array& q, const Array& k, const Array& v, const Array& output,
                   const Array& lse, const Args& args, bool need_mask_grad, Framework fw) {
  const char* fn = "scaled_dot_product_attention_backward";
  require_dtype<T>(k, "key", fn);
  require_dtype<T>(v, "value", fn);
  require_dtype<T>(grad_output, "grad_output", fn);
  require_dtype<T>(output, "output", fn);
  require_dtype<T>(lse, "lse", fn);
  const SdpaOptions<T> o = options_of<T>(args, fn);
  const Tensor<T> tg = as_tensor<T>(grad_output), tq = as_tensor<T>(q), tk = as_tensor<T>(k),
                  tv = as_tensor<T>(v), to = as_tensor<T>(output), tl = as_tensor<T>(lse);
  SdpaGradients<T> g;
  try {
    nb::gil_scoped_release no_gil;
    g = with_python_names([&] {
      return scaled_dot_product_attention_backward(tg, tq, tk, tv, to, tl, o,
                                                   need_mask_grad && o.float_mask.defined());
    });
  } catch (const std::bad_alloc&) {
    out_of_memory(fn, q, k, v, false);
  } catch (const attn::ResourceError&) {  // a tensor or workspace the system refused
    out_of_memory(fn, q, k, v, false);
  }
  return nb::make_tuple(to_python(g.d_query, fw), to_python(g.d_key, fw), to_python(g.d_value, fw),
                        to_python(g.d_float_mask, fw), to_python(g.d_sinks, fw));
}

// ---- packed variable-length batches (attn/varlen.hpp) -------------------------------
//   query [total_q, Hq, Dk]  key/value [total_k, Hkv, D]  cu_seqlens_q/k [batch + 1],
//   both int32 or both int64; output [total_q, Hq, Dv], lse [Hq, total_q].

template <class I>
bool offsets_have(const Array& cu_q, const Array& cu_k, const char* fn) {
  for (const auto& [name, a] : {std::pair{"cu_seqlens_q", &cu_q}, std::pair{"cu_seqlens_k", &cu_k}})
    if (!has_dtype<int32_t>(*a) && !has_dtype<int64_t>(*a))
      throw nb::type_error((std::string(fn) + ": " + name + " has dtype " + dtype_name(a->dtype()) +
                            ", expected int32 or int64 (cumulative sequence offsets)")
                               .c_str());
  if (cu_q.dtype() != cu_k.dtype())
    throw nb::type_error((std::string(fn) + ": cu_seqlens_q has dtype " + dtype_name(cu_q.dtype()) +
                          " and cu_seqlens_k " + dtype_name(cu_k.dtype()) + "; expected one dtype (int32 or int64)")
                             .c_str());
  return has_dtype<I>(cu_q);
}

template <class T, class I>
nb::tuple varlen_forward(const Array& q, const Array& k, const Array& v, const Array& cu_q, const Array& cu_k,
                         int64_t max_q, int64_t max_k, const Args& args, Framework fw) {
  const char* fn = "varlen_attention";
  require_dtype<T>(k, "key", fn);
  require_dtype<T>(v, "value", fn);
  const SdpaOptions<T> o = options_of<T>(args, fn);
  const Tensor<T> tq = as_tensor<T>(q), tk = as_tensor<T>(k), tv = as_tensor<T>(v);
  const Tensor<I> tcq = as_tensor<I>(cu_q), tck = as_tensor<I>(cu_k);
  VarlenResult<T> r;
  try {
    nb::gil_scoped_release no_gil;
    r = varlen_attention(tq, tk, tv, tcq, tck, max_q, max_k, o);
  } catch (const std::bad_alloc&) {
    out_of_memory(fn, q, k, v, false);
  } catch (const attn::ResourceError&) {
    out_of_memory(fn, q, k, v, false);
  }
  return nb::make_tuple(to_python(r.output, fw), to_python(r.lse, fw));
}

template <class T, class I>
nb::tuple varlen_backward(const Array& grad_output, const Array& q, const Array& k, const Array& v,
                          const Array& output, const Array& lse, const Array& cu_q, const Array& cu_k, int64_t max_q,
                          int64_t max_k, const Args& args, Framework fw) {
  const char* fn = "varlen_attention_backward";
  require_dtype<T>(k, "key", fn);
  require_dtype<T>(v, "value", fn);
  require_dtype<T>(grad_output, "grad_output", fn);
  require_dtype<T>(output, "output", fn);
  require_dtype<T>(lse, "lse", fn);
  const SdpaOptions<T> o = options_of<T>(args, fn);
  const Tensor<T> tg = as_tensor<T>(grad_output), tq = as_tensor<T>(q), tk = as_tensor<T>(k), tv = as_tensor<T>(v),
                  to = as_tensor<T>(output), tl = as_tensor<T>(lse);
  const Tensor<I> tcq = as_tensor<I>(cu_q), tck = as_tensor<I>(cu_k);
  SdpaGradients<T> g;
  try {
    nb::gil_scoped_release no_gil;
    g = varlen_attention_backward(tg, tq, tk, tv, to, tl, tcq, tck, max_q, max_k, o);
  } catch (const std::bad_alloc&) {
    out_of_memory(fn, q, k, v, false);
  } catch (const attn::ResourceError&) {
    out_of_memory(fn, q, k, v, false);
  }
  return nb::make_tuple(to_python(g.d_query, fw), to_python(g.d_key, fw), to_python(g.d_value, fw),
                        to_python(g.d_sinks, fw));
}

// CPU time of the calling thread: unlike wall-clock time it does not count the
// time other processes hold the core, so timings hold on a busy machine
// (Python's time.thread_time() reads the same clock).
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

[[noreturn]] void bad_query_dtype(const Array& q, const char* fn) {
  throw nb::type_error((std::string(fn) + ": query has dtype " + dtype_name(q.dtype()) +
                        ", expected float32 or float64")
                           .c_str());
}

// ---- simplified self-attention (notes 004) --------------------------------------

Normalization normalization_of(const std::string& how) {
  if (how == "softmax") return Normalization::Softmax;
  if (how == "naive_softmax") return Normalization::NaiveSoftmax;
  if (how == "divide_by_sum") return Normalization::DivideBySum;
  throw attn::ValueError("normalization is '" + how +
                         "', expected 'softmax', 'naive_softmax' or 'divide_by_sum'");
}

template <class T>
nb::tuple simplified(const Array& inputs, const std::string& how, Framework fw) {
  const Tensor<T> x = as_tensor<T>(inputs);
  const Normalization n = normalization_of(how);
  SimplifiedAttentionResult<T> r;
  {
    nb::gil_scoped_release no_gil;
    r = simplified_self_attention(x, n);
  }
  return nb::make_tuple(to_python(r.scores, fw), to_python(r.weights, fw), to_python(r.context, fw));
}

template <class T>
nb::object normalize(const Array& scores, const std::string& how, Framework fw) {
  const Tensor<T> s = as_tensor<T>(scores);
  return to_python(normalize_rows(s, normalization_of(how)), fw);
}

}  // namespace

void bind_sdpa(nb::module_& m) {
  // The options come after the arrays in one fixed order, so that the Python
  // side keeps them in one tuple and passes it to forward and backward alike.
  m.def(
      "sdpa_forward",
      [](const Array& q, const Array& k, const Array& v, OptArray attn_mask, OptArray alibi_slopes,
         OptArray sinks, bool is_causal, bool bottom_right, int64_t window_left, int64_t window_right,
         std::optional<double> scale, double dropout_p, uint64_t dropout_seed, bool enable_gqa, double softcap,
         bool return_lse, bool return_weights, int framework) {
        const Args a{std::move(attn_mask), is_causal,  bottom_right,           window_left, window_right,
                     scale,                dropout_p,  dropout_seed,           enable_gqa,  std::move(alibi_slopes),
                     softcap,              std::move(sinks)};
        const auto fw = static_cast<Framework>(framework);
        if (has_dtype<float>(q)) return forward<float>(q, k, v, a, return_lse, return_weights, fw);
        if (has_dtype<double>(q)) return forward<double>(q, k, v, a, return_lse, return_weights, fw);
        bad_query_dtype(q, "scaled_dot_product_attention");
      },
      nb::arg("query"), nb::arg("key"), nb::arg("value"), nb::arg("attn_mask").none(),
      nb::arg("alibi_slopes").none(), nb::arg("sinks").none(), nb::arg("is_causal"), nb::arg("bottom_right"),
      nb::arg("window_left"), nb::arg("window_right"), nb::arg("scale").none(), nb::arg("dropout_p"),
      nb::arg("dropout_seed"), nb::arg("enable_gqa"), nb::arg("softcap"), nb::arg("return_lse"),
      nb::arg("return_weights"), nb::arg("framework"),
      "Rank-4 SDPA forward on arrays read in place; returns (output, lse or None, weights or None) as "
      "numpy arrays (framework 0) or DLPack capsules (2, for torch.ops.attn.sdpa). Use "
      "attn.scaled_dot_product_attention instead.");

  m.def(
      "sdpa_backward",
      [](const Array& grad_output, const Array& q, const Array& k, const Array& v, const Array& output,
         const Array& lse, OptArray attn_mask, OptArray alibi_slopes, OptArray sinks, bool is_causal,
         bool bottom_right, int64_t window_left, int64_t window_right, std::optional<double> scale,
         double dropout_p, uint64_t dropout_seed, bool enable_gqa, double softcap, bool need_mask_grad,
         int framework) {
        const Args a{std::move(attn_mask), is_causal,  bottom_right,           window_left, window_right,
                     scale,                dropout_p,  dropout_seed,           enable_gqa,  std::move(alibi_slopes),
                     softcap,              std::move(sinks)};
        const auto fw = static_cast<Framework>(framework);
        if (has_dtype<float>(q)) return backward<float>(grad_output, q, k, v, output, lse, a, need_mask_grad, fw);
        if (has_dtype<double>(q)) return backward<double>(grad_output, q, k, v, output, lse, a, need_mask_grad, fw);
        bad_query_dtype(q, "scaled_dot_product_attention_backward");
      },
      nb::arg("grad_output"), nb::arg("query"), nb::arg("key"), nb::arg("value"), nb::arg("output"),
      nb::arg("lse"), nb::arg("attn_mask").none(), nb::arg("alibi_slopes").none(), nb::arg("sinks").none(),
      nb::arg("is_causal"), nb::arg("bottom_right"), nb::arg("window_left"), nb::arg("window_right"),
      nb::arg("scale").none(), nb::arg("dropout_p"), nb::arg("dropout_seed"), nb::arg("enable_gqa"),
      nb::arg("softcap"), nb::arg("need_mask_grad"), nb::arg("framework"),
      "Rank-4 SDPA backward; returns (d_query, d_key, d_value, d_float_mask or None, d_sinks or None) "
      "as numpy arrays (framework 0) or DLPack capsules (2).");

  // Packed variable-length batches: the options as for SDPA (no mask, GQA
  // always allowed), after the offsets and the two max_seqlen bounds.
  m.def(
      "varlen_forward",
      [](const Array& q, const Array& k, const Array& v, const Array& cu_q, const Array& cu_k, int64_t max_q,
         int64_t max_k, OptArray alibi_slopes, OptArray sinks, bool is_causal, bool bottom_right,
         int64_t window_left, int64_t window_right, std::optional<double> scale, double dropout_p,
         uint64_t dropout_seed, double softcap, int framework) {
        const Args a{std::nullopt, is_causal, bottom_right, window_left, window_right, scale, dropout_p,
                     dropout_seed, true,         std::move(alibi_slopes), softcap, std::move(sinks)};
        const auto fw = static_cast<Framework>(framework);
        const char* fn = "varlen_attention";
        const bool i32 = offsets_have<int32_t>(cu_q, cu_k, fn);
        if (has_dtype<float>(q))
          return i32 ? varlen_forward<float, int32_t>(q, k, v, cu_q, cu_k, max_q, max_k, a, fw)
                     : varlen_forward<float, int64_t>(q, k, v, cu_q, cu_k, max_q, max_k, a, fw);
        if (has_dtype<double>(q))
          return i32 ? varlen_forward<double, int32_t>(q, k, v, cu_q, cu_k, max_q, max_k, a, fw)
                     : varlen_forward<double, int64_t>(q, k, v, cu_q, cu_k, max_q, max_k, a, fw);
        bad_query_dtype(q, fn);
      },
      nb::arg("query"), nb::arg("key"), nb::arg("value"), nb::arg("cu_seqlens_q"), nb::arg("cu_seqlens_k"),
      nb::arg("max_seqlen_q"), nb::arg("max_seqlen_k"), nb::arg("alibi_slopes").none(), nb::arg("sinks").none(),
      nb::arg("is_causal"), nb::arg("bottom_right"), nb::arg("window_left"), nb::arg("window_right"),
      nb::arg("scale").none(), nb::arg("dropout_p"), nb::arg("dropout_seed"), nb::arg("softcap"),
      nb::arg("framework"),
      "Packed varlen attention forward; returns (output [total_q, Hq, Dv], lse [Hq, total_q]). Use "
      "attn.varlen_attention instead.");

  m.def(
      "varlen_backward",
      [](const Array& grad_output, const Array& q, const Array& k, const Array& v, const Array& output,
         const Array& lse, const Array& cu_q, const Array& cu_k, int64_t max_q, int64_t max_k,
         OptArray alibi_slopes, OptArray sinks, bool is_causal, bool bottom_right, int64_t window_left,
         int64_t window_right, std::optional<double> scale, double dropout_p, uint64_t dropout_seed,
         double softcap, int framework) {
        const Args a{std::nullopt, is_causal, bottom_right, window_left, window_right, scale, dropout_p,
                     dropout_seed, true,         std::move(alibi_slopes), softcap, std::move(sinks)};
        const auto fw = static_cast<Framework>(framework);
        const char* fn = "varlen_attention_backward";
        const bool i32 = offsets_have<int32_t>(cu_q, cu_k, fn);
        if (has_dtype<float>(q))
          return i32 ? varlen_backward<float, int32_t>(grad_output, q, k, v, output, lse, cu_q, cu_k, max_q, max_k, a, fw)
                     : varlen_backward<float, int64_t>(grad_output, q, k, v, output, lse, cu_q, cu_k, max_q, max_k, a, fw);
        if (has_dtype<double>(q))
          return i32 ? varlen_backward<double, int32_t>(grad_output, q, k, v, output, lse, cu_q, cu_k, max_q, max_k, a, fw)
                     : varlen_backward<double, int64_t>(grad_output, q, k, v, output, lse, cu_q, cu_k, max_q, max_k, a, fw);
        bad_query_dtype(q, fn);
      },
      nb::arg("grad_output"), nb::arg("query"), nb::arg("key"), nb::arg("value"), nb::arg("output"),
      nb::arg("lse"), nb::arg("cu_seqlens_q"), nb::arg("cu_seqlens_k"), nb::arg("max_seqlen_q"),
      nb::arg("max_seqlen_k"), nb::arg("alibi_slopes").none(), nb::arg("sinks").none(), nb::arg("is_causal"),
      nb::arg("bottom_right"), nb::arg("window_left"), nb::arg("window_right"), nb::arg("scale").none(),
      nb::arg("dropout_p"), nb::arg("dropout_seed"), nb::arg("softcap"), nb::arg("framework"),
      "Packed varlen attention backward; returns (d_query, d_key, d_value, d_sinks or None).");

  // For python/benchmarks/overhead.py: the C++ call alone, timed in C++, so
  // that the Python per-call time minus this is what the binding costs.
  m.def(
      "time_sdpa_forward",
      [](const Array& q, const Array& k, const Array& v, bool is_causal, int64_t repeats) {
        require_dtype<float>(q, "query", "time_sdpa_forward");
        require_dtype<float>(k, "key", "time_sdpa_forward");
        require_dtype<float>(v, "value", "time_sdpa_forward");
        const Tensor<float> tq = as_tensor<float>(q), tk = as_tensor<float>(k), tv = as_tensor<float>(v);
        SdpaOptions<float> o;
        o.is_causal = is_causal;
        o.return_lse = false;  // what a forward-only call from Python asks for
        nb::gil_scoped_release no_gil;
        const double start = thread_cpu_seconds();
        for (int64_t i = 0; i < repeats; ++i) (void)scaled_dot_product_attention(tq, tk, tv, o);
        return (thread_cpu_seconds() - start) / static_cast<double>(std::max<int64_t>(repeats, 1));
      },
      nb::arg("query"), nb::arg("key"), nb::arg("value"), nb::arg("is_causal"), nb::arg("repeats"),
      "CPU seconds of the calling thread per call of the C++ forward on float32 arrays (a benchmark "
      "helper; with attn.set_num_threads(1) all the work is on this thread).");

  m.def(
      "simplified_self_attention",
      [](const Array& inputs, const std::string& how, int framework) {
        const auto fw = static_cast<Framework>(framework);
        if (has_dtype<float>(inputs)) return simplified<float>(inputs, how, fw);
        if (has_dtype<double>(inputs)) return simplified<double>(inputs, how, fw);
        throw nb::type_error(("simplified_self_attention: inputs has dtype " + dtype_name(inputs.dtype()) +
                              ", expected float32 or float64")
                                 .c_str());
      },
      nb::arg("inputs"), nb::arg("normalization"), nb::arg("framework"));

  m.def(
      "normalize_rows",
      [](const Array& scores, const std::string& how, int framework) {
        const auto fw = static_cast<Framework>(framework);
        if (has_dtype<float>(scores)) return normalize<float>(scores, how, fw);
        if (has_dtype<double>(scores)) return normalize<double>(scores, how, fw);
        throw nb::type_error(("normalize_rows: scores has dtype " + dtype_name(scores.dtype()) +
                              ", expected float32 or float64")
                                 .c_str());
      },
      nb::arg("scores"), nb::arg("normalization"), nb::arg("framework"));
}

}  // namespace attn::python

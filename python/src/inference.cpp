// python/src/inference.cpp — the inference API for Python (issue 14, part 3):
// attn::KVCache, attention_decode, merge_attention_partials, apply_rope (and
// its backward), and multi-head latent attention (the trainable layer and its
// cached decoder). python/attn/inference.py is the public layer over these.
//
// Shapes are the C++ API's (include/attn/kv_cache.hpp, rope.hpp, mla.hpp):
//   KVCache.append   key [B, Hkv, Lnew, Dk], value [B, Hkv, Lnew, Dv]
//                    (or [Hkv, Lnew, D] for one sequence of a varlen batch)
//   attention_decode query [B, Hq, Lq, Dk] -> output [B, Hq, Lq, Dv], lse [B, Hq, Lq]
//   merge_attention_partials [S, B, H, L, Dv], [S, B, H, L] -> [B, H, L, Dv], [B, H, L]
//   apply_rope       x [B, H, L, D], positions [L] or [B, L] (int64) -> [B, H, L, D]
// Inputs are read in place (any strides, no copy; convert.hpp); outputs are
// the library's tensors handed over without a copy. The GIL is released
// while the library computes. The library's errors already name the argument
// (ShapeError / ValueError, translated in module.cpp); dtypes are checked
// here (TypeError naming the argument).
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <attn/kv_cache.hpp>
#include <attn/mla.hpp>
#include <attn/rope.hpp>

#include "convert.hpp"
#include "layer_common.hpp"

namespace attn::python {
namespace {

using OptArray = std::optional<Array>;
// RoPE options as the Python side passes them: (theta, interleaved, rotary_dim).
using RopeTuple = std::tuple<double, bool, int64_t>;

/// Throws nb::type_error naming `what` unless `a` holds T; `expected` says why.
template <class T>
void require(const Array& a, const char* what, const char* fn, const char* expected) {
  if (!has_dtype<T>(a))
    throw nb::type_error((std::string(fn) + ": " + what + " has dtype " + dtype_name(a.dtype()) + ", expected " +
                          expected)
                             .c_str());
}

RopeOptions rope_of(const RopeTuple& r) {
  RopeOptions o;
  o.theta = std::get<0>(r);
  o.layout = std::get<1>(r) ? RopeLayout::Interleaved : RopeLayout::Half;
  o.rotary_dim = std::get<2>(r);
  return o;
}

KVStorage storage_of(const std::string& s) {
  if (s == "float32") return KVStorage::Float32;
  if (s == "bfloat16") return KVStorage::BFloat16;
  if (s == "int8") return KVStorage::Int8;
  throw attn::ValueError("KVCache: storage is '" + s + "', expected 'float32', 'bfloat16' or 'int8'");
}

// ---- KVCache -------------------------------------------------------------------

void bind_kv_cache(nb::module_& m) {
  nb::class_<KVCache> c(m, "KVCache");
  c.def(
       "__init__",
       [](KVCache* self, int64_t num_layers, int64_t batch, int64_t num_kv_heads, int64_t capacity,
          int64_t head_dim, int64_t value_dim, int64_t page_size, int64_t num_pages, int64_t window_tokens,
          const std::string& storage, int64_t quant_group) {
         KVCacheConfig cfg;
         cfg.num_layers = num_layers;
         cfg.batch = batch;
         cfg.num_kv_heads = num_kv_heads;
         cfg.capacity = capacity;
         cfg.head_dim = head_dim;
         cfg.value_dim = value_dim;
         cfg.page_size = page_size;
         cfg.num_pages = num_pages;
         cfg.window_tokens = window_tokens;
         cfg.storage = storage_of(storage);
         cfg.quant_group = quant_group;
         new (self) KVCache(cfg);
       },
       nb::arg("num_layers"), nb::arg("batch"), nb::arg("num_kv_heads"), nb::arg("capacity"), nb::arg("head_dim"),
       nb::arg("value_dim"), nb::arg("page_size"), nb::arg("num_pages"), nb::arg("window_tokens"),
       nb::arg("storage"), nb::arg("quant_group"))
      .def_prop_ro("num_layers", [](const KVCache& s) { return s.config().num_layers; })
      .def_prop_ro("batch", [](const KVCache& s) { return s.config().batch; })
      .def_prop_ro("num_kv_heads", [](const KVCache& s) { return s.config().num_kv_heads; })
      .def_prop_ro("capacity", [](const KVCache& s) { return s.config().capacity; })
      .def_prop_ro("head_dim", [](const KVCache& s) { return s.config().head_dim; })
      .def_prop_ro("value_dim", &KVCache::value_dim)
      .def_prop_ro("page_size", [](const KVCache& s) { return s.config().page_size; })
      .def_prop_ro("num_pages", [](const KVCache& s) { return s.config().num_pages; })
      .def_prop_ro("window_tokens", [](const KVCache& s) { return s.config().window_tokens; })
      .def_prop_ro("storage", [](const KVCache& s) { return std::string(to_string(s.config().storage)); })
      .def_prop_ro("quant_group", [](const KVCache& s) { return s.config().quant_group; })
      .def_prop_ro("paged", &KVCache::paged)
      .def("bytes_per_token", &KVCache::bytes_per_token)
      .def(
          "append",
          [](KVCache& self, int64_t layer, std::optional<int64_t> batch_index, const Array& key, const Array& value,
             std::optional<RopeTuple> rope) {
            const char* fn = "KVCache.append";
            require<float>(key, "key", fn, "float32");
            require<float>(value, "value", fn, "float32");
            const Tensor<float> tk = as_tensor<float>(key), tv = as_tensor<float>(value);
            std::optional<RopeOptions> ro;
            if (rope) ro = rope_of(*rope);
            nb::gil_scoped_release no_gil;
            if (batch_index) {
              if (ro)
                self.append(layer, *batch_index, tk, tv, *ro);
              else
                self.append(layer, *batch_index, tk, tv);
            } else if (ro) {
              self.append(layer, tk, tv, *ro);
            } else {
              self.append(layer, tk, tv);
            }
          },
          nb::arg("layer"), nb::arg("batch_index").none(), nb::arg("key"), nb::arg("value"), nb::arg("rope").none())
      .def("length", &KVCache::length, nb::arg("layer"), nb::arg("b"))
      .def("lengths", &KVCache::lengths, nb::arg("layer"))
      .def("clear", [](KVCache& self) { self.clear(); })
      .def("clear_sequence", [](KVCache& self, int64_t b) { self.clear(b); }, nb::arg("b"))
      .def(
          "key_storage",
          [](const KVCache& self, int64_t layer, int fw) {
            return to_python(self.key_storage(layer), static_cast<Framework>(fw));
          },
          nb::arg("layer"), nb::arg("framework"))
      .def(
          "value_storage",
          [](const KVCache& self, int64_t layer, int fw) {
            return to_python(self.value_storage(layer), static_cast<Framework>(fw));
          },
          nb::arg("layer"), nb::arg("framework"))
      .def(
          "keys",
          [](const KVCache& self, int64_t layer, int64_t b, int fw) {
            return to_python(self.keys(layer, b), static_cast<Framework>(fw));
          },
          nb::arg("layer"), nb::arg("b"), nb::arg("framework"))
      .def(
          "values",
          [](const KVCache& self, int64_t layer, int64_t b, int fw) {
            return to_python(self.values(layer, b), static_cast<Framework>(fw));
          },
          nb::arg("layer"), nb::arg("b"), nb::arg("framework"))
      .def("page_table", &KVCache::page_table, nb::arg("layer"), nb::arg("b"))
      .def("free_pages", &KVCache::free_pages, nb::arg("layer"))
      .def("first_kept", &KVCache::first_kept, nb::arg("layer"), nb::arg("b"));
}

// ---- the decode step -------------------------------------------------------------

nb::tuple decode(const Array& query, const KVCache& cache, int64_t layer, bool is_causal, bool bottom_right,
                 int64_t window_left, int64_t window_right, std::optional<double> scale, bool enable_gqa,
                 const OptArray& alibi_slopes, double softcap, const OptArray& sinks, std::optional<RopeTuple> rope,
                 int64_t split_keys, bool reference, int fw) {
  const char* fn = "attention_decode";
  require<float>(query, "query", fn, "float32 (the cache computes in float32)");
  SdpaOptions<float> o;
  o.is_causal = is_causal;
  o.causal_alignment = bottom_right ? CausalAlignment::BottomRight : CausalAlignment::TopLeft;
  o.window_left = window_left;
  o.window_right = window_right;
  o.scale = scale;
  o.enable_gqa = enable_gqa;
  if (alibi_slopes) {
    require<float>(*alibi_slopes, "alibi_slopes", fn, "float32");
    o.alibi_slopes = as_tensor<float>(*alibi_slopes);
  }
  o.softcap = softcap;
  if (sinks) {
    require<float>(*sinks, "sinks", fn, "float32");
    o.sinks = as_tensor<float>(*sinks);
  }
  const Tensor<float> q = as_tensor<float>(query);
  SdpaResult<float> r;
  {
    nb::gil_scoped_release no_gil;
    if (reference) {
      if (rope) throw attn::ValueError("attention_decode: rope is not taken by the reference step");
      r = attention_decode_reference(q, cache, layer, o);
    } else if (rope) {
      r = attention_decode(q, cache, layer, o, rope_of(*rope), split_keys);
    } else {
      r = attention_decode(q, cache, layer, o, split_keys);
    }
  }
  const Framework f = static_cast<Framework>(fw);
  return nb::make_tuple(to_python(r.output, f), to_python(r.lse, f));
}

template <class T>
nb::tuple merge(const Array& partial_outputs, const Array& partial_lse, int fw) {
  require<T>(partial_lse, "partial_lse", "merge_attention_partials", "the dtype of partial_outputs");
  const Tensor<T> o = as_tensor<T>(partial_outputs), l = as_tensor<T>(partial_lse);
  SdpaResult<T> r;
  {
    nb::gil_scoped_release no_gil;
    r = merge_attention_partials(o, l);
  }
  const Framework f = static_cast<Framework>(fw);
  return nb::make_tuple(to_python(r.output, f), to_python(r.lse, f));
}

// ---- RoPE ------------------------------------------------------------------------

template <class T>
nb::object rope(const Array& x, int64_t start_pos, const OptArray& positions, const RopeTuple& options,
                bool backward, int fw) {
  const char* fn = backward ? "apply_rope_backward" : "apply_rope";
  const RopeOptions o = rope_of(options);
  const Tensor<T> tx = as_tensor<T>(x);
  Tensor<T> y;
  if (positions) {
    require<int64_t>(*positions, "positions", fn, "int64");
    const Tensor<int64_t> p = as_tensor<int64_t>(*positions);
    nb::gil_scoped_release no_gil;
    y = backward ? apply_rope_backward(tx, p, o) : apply_rope(tx, p, o);
  } else {
    nb::gil_scoped_release no_gil;
    y = backward ? apply_rope_backward(tx, start_pos, o) : apply_rope(tx, start_pos, o);
  }
  return to_python(y, static_cast<Framework>(fw));
}

// ---- multi-head latent attention -------------------------------------------------

template <class T>
void bind_mla(nb::module_& m, const char* layer_name, const char* decoder_name) {
  using L = MultiHeadLatentAttention<T>;
  nb::class_<L> c(m, layer_name);
  c.def(
       "__init__",
       [](L* self, int64_t d_model, int64_t num_heads, int64_t head_dim, int64_t rope_dim, int64_t kv_latent_dim,
          int64_t q_latent_dim, double rope_theta, bool interleaved) {
         MLAConfig cfg{d_model, num_heads, head_dim, rope_dim, kv_latent_dim, q_latent_dim, rope_theta,
                       interleaved ? RopeLayout::Interleaved : RopeLayout::Half};
         new (self) L(cfg);
       },
       nb::arg("d_model"), nb::arg("num_heads"), nb::arg("head_dim"), nb::arg("rope_dim"), nb::arg("kv_latent_dim"),
       nb::arg("q_latent_dim"), nb::arg("rope_theta"), nb::arg("interleaved"))
      .def_prop_ro("d_model", [](const L& s) { return s.config().d_model; })
      .def_prop_ro("num_heads", [](const L& s) { return s.config().num_heads; })
      .def_prop_ro("head_dim", [](const L& s) { return s.config().head_dim; })
      .def_prop_ro("rope_dim", [](const L& s) { return s.config().rope_dim; })
      .def_prop_ro("kv_latent_dim", [](const L& s) { return s.config().kv_latent_dim; })
      .def_prop_ro("q_latent_dim", [](const L& s) { return s.config().q_latent_dim; })
      .def_prop_ro("rope_theta", [](const L& s) { return s.config().rope_theta; })
      .def_prop_ro("interleaved", [](const L& s) { return s.config().rope_layout == RopeLayout::Interleaved; })
      .def(
          "forward",
          [](L& self, const Array& x, int fw, int64_t start_pos) {
            require<T>(x, "x", "MultiHeadLatentAttention.forward", "the layer's dtype");
            const Tensor<T> tx = copy_of<T>(x);  // the Linears keep their input for backward
            Tensor<T> y;
            {
              nb::gil_scoped_release no_gil;
              y = self.forward(tx, start_pos);
            }
            return to_python(y, static_cast<Framework>(fw));
          },
          nb::arg("x"), nb::arg("framework"), nb::arg("start_pos") = 0)
      .def(
          "backward",
          [](L& self, const Array& grad_output, int fw) {
            require<T>(grad_output, "grad_output", "MultiHeadLatentAttention.backward", "the layer's dtype");
            const Tensor<T> g = as_tensor<T>(grad_output);
            Tensor<T> dx;
            {
              nb::gil_scoped_release no_gil;
              dx = self.backward(g);
            }
            return to_python(dx, static_cast<Framework>(fw));
          },
          nb::arg("grad_output"), nb::arg("framework"));
  bind_module_common<T>(c);

  using D = MLADecoder<T>;
  nb::class_<D>(m, decoder_name)
      .def(
          "__init__",
          [](D* self, const L& layer, int64_t batch, int64_t max_len, bool absorbed) {
            new (self) D(layer, batch, max_len, absorbed ? MLACacheForm::Absorbed : MLACacheForm::Naive);
          },
          nb::arg("layer"), nb::arg("batch"), nb::arg("max_len"), nb::arg("absorbed"),
          nb::keep_alive<1, 2>())  // the decoder reads the layer's weights at every step
      .def(
          "step",
          [](D& self, const Array& h, int fw) {
            require<T>(h, "h", "MLADecoder.step", "the layer's dtype");
            const Tensor<T> th = as_tensor<T>(h);
            Tensor<T> y;
            {
              nb::gil_scoped_release no_gil;
              y = self.step(th);
            }
            return to_python(y, static_cast<Framework>(fw));
          },
          nb::arg("h"), nb::arg("framework"))
      .def_prop_ro("length", &D::length)
      .def_prop_ro("max_len", &D::max_len)
      .def_prop_ro("absorbed", [](const D& s) { return s.form() == MLACacheForm::Absorbed; })
      .def("reset", &D::reset)
      .def("cache_bytes_per_token", &D::cache_bytes_per_token);
}

}  // namespace

void bind_inference(nb::module_& m) {
  bind_kv_cache(m);
  m.def("attention_decode", &decode, nb::arg("query"), nb::arg("cache"), nb::arg("layer"), nb::arg("is_causal"),
        nb::arg("bottom_right"), nb::arg("window_left"), nb::arg("window_right"), nb::arg("scale").none(),
        nb::arg("enable_gqa"), nb::arg("alibi_slopes").none(), nb::arg("softcap"), nb::arg("sinks").none(),
        nb::arg("rope").none(), nb::arg("split_keys"), nb::arg("reference"), nb::arg("framework"));
  m.def(
      "merge_attention_partials",
      [](const Array& partial_outputs, const Array& partial_lse, int fw) {
        if (has_dtype<double>(partial_outputs)) return merge<double>(partial_outputs, partial_lse, fw);
        require<float>(partial_outputs, "partial_outputs", "merge_attention_partials", "float32 or float64");
        return merge<float>(partial_outputs, partial_lse, fw);
      },
      nb::arg("partial_outputs"), nb::arg("partial_lse"), nb::arg("framework"));
  m.def(
      "apply_rope",
      [](const Array& x, int64_t start_pos, const OptArray& positions, const RopeTuple& options, bool backward,
         int fw) {
        const char* what = backward ? "grad_output" : "x";
        const char* fn = backward ? "apply_rope_backward" : "apply_rope";
        if (has_dtype<double>(x)) return rope<double>(x, start_pos, positions, options, backward, fw);
        require<float>(x, what, fn, "float32 or float64");
        return rope<float>(x, start_pos, positions, options, backward, fw);
      },
      nb::arg("x"), nb::arg("start_pos"), nb::arg("positions").none(), nb::arg("options"), nb::arg("backward"),
      nb::arg("framework"));
  bind_mla<float>(m, "MultiHeadLatentAttention32", "MLADecoder32");
  bind_mla<double>(m, "MultiHeadLatentAttention64", "MLADecoder64");
}

}  // namespace attn::python

// The checks of an attention call, made once per call (see sdpa_problem.hpp).
#include "sdpa_problem.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "attn/errors.hpp"

namespace attn {
namespace {

std::string prefix(const char* fn) { return std::string(fn) + ": "; }

template <class X>
void require_rank4(const char* fn, const char* arg, const Tensor<X>& t, const char* expected) {
  if (!t.defined() || t.dim() != 4)
    throw ShapeError(prefix(fn) + arg + " has shape " + (t.defined() ? shape_str(t.shape()) : "(undefined)") +
                     ", expected rank 4 " + expected);
}

}  // namespace

template <class T>
void describe_options(const char* fn, const SdpaOptions<T>& o, SdpaProblem<T>& pb) {
  pb.options = &o;
  // Options that are numbers.
  if (!(o.dropout_p >= 0.0 && o.dropout_p < 1.0))
    throw ValueError(prefix(fn) + "dropout_p is " + std::to_string(o.dropout_p) + ", expected a value in [0, 1)");
  if (o.scale && !(std::isfinite(*o.scale) && *o.scale > 0.0))
    throw ValueError(prefix(fn) + "scale is " + std::to_string(*o.scale) + ", expected a finite value > 0");
  if (!(std::isfinite(o.softcap) && o.softcap >= 0.0))
    throw ValueError(prefix(fn) + "softcap is " + std::to_string(o.softcap) +
                     ", expected 0 (off) or a finite value > 0");
  if (o.window_left < -1 || o.window_right < -1)
    throw ValueError(prefix(fn) + "window_left is " + std::to_string(o.window_left) + " and window_right " +
                     std::to_string(o.window_right) + ", expected each >= 0 or -1 (unbounded)");

  // Masks: at most one, never with is_causal (PyTorch's rule), broadcastable.
  if (o.bool_mask.defined() && o.float_mask.defined())
    throw ValueError(prefix(fn) + "both bool_mask and float_mask are given; pass one attn_mask");
  if (o.is_causal && (o.bool_mask.defined() || o.float_mask.defined()))
    throw ValueError(prefix(fn) + "is_causal is true and an attn_mask (" +
                     (o.bool_mask.defined() ? "bool_mask" : "float_mask") +
                     ") is given; pass one or the other, as in PyTorch");
  const Shape scores_shape{pb.B, pb.Hq, pb.Lq, pb.Lk};
  if (o.bool_mask.defined()) pb.bool_mask = o.bool_mask.expand(scores_shape, (prefix(fn) + "bool_mask").c_str());
  if (o.float_mask.defined())
    pb.float_mask = o.float_mask.expand(scores_shape, (prefix(fn) + "float_mask").c_str());

  // Per-head tensors.
  if (o.alibi_slopes.defined()) {
    const Shape& s = o.alibi_slopes.shape();
    if (s != Shape{pb.Hq} && s != Shape{pb.B, pb.Hq})
      throw ShapeError(prefix(fn) + "alibi_slopes has shape " + shape_str(s) + ", expected [" +
                       std::to_string(pb.Hq) + "] or [" + std::to_string(pb.B) + ", " + std::to_string(pb.Hq) +
                       "] (one slope per query head)");
    pb.alibi = o.alibi_slopes.expand({pb.B, pb.Hq}, "alibi_slopes");
  }
  if (o.sinks.defined() && o.sinks.shape() != Shape{pb.Hq})
    throw ShapeError(prefix(fn) + "sinks has shape " + shape_str(o.sinks.shape()) + ", expected [" +
                     std::to_string(pb.Hq) + "] (one logit per query head)");
  // Their values, O(heads): a sink is a logit, finite or −∞ (no sink); +∞ or
  // NaN would leave every row's softmax undefined (e^{∞ − ∞}). A slope
  // multiplies distances, so it must be finite (∞ · 0 on the diagonal).
  if (o.sinks.defined())
    for (int64_t h = 0; h < pb.Hq; ++h) {
      const T s = o.sinks(h);
      if (std::isnan(s) || s == std::numeric_limits<T>::infinity())
        throw ValueError(prefix(fn) + "sinks[" + std::to_string(h) + "] is " + std::to_string(s) +
                         ", expected a finite logit or -inf (no sink)");
    }
  if (pb.alibi.defined())
    for (int64_t b = 0; b < pb.B; ++b)
      for (int64_t h = 0; h < pb.Hq; ++h)
        if (!std::isfinite(pb.alibi(b, h)))
          throw ValueError(prefix(fn) + "alibi_slopes has " + std::to_string(pb.alibi(b, h)) + " for batch " +
                           std::to_string(b) + ", head " + std::to_string(h) + ", expected finite slopes");

  pb.diag = o.causal_alignment == CausalAlignment::BottomRight ? pb.Lk - pb.Lq : 0;
  pb.scale = o.scale ? *o.scale : default_scale(pb.Dk);
  pb.dropout_scale = 1.0 / (1.0 - o.dropout_p);
}

template <class T>
SdpaProblem<T> describe_sdpa(const char* fn, const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                             const SdpaOptions<T>& o) {
  require_rank4(fn, "query", query, "[B, Hq, Lq, Dk]");
  require_rank4(fn, "key", key, "[B, Hkv, Lk, Dk]");
  require_rank4(fn, "value", value, "[B, Hkv, Lk, Dv]");
  SdpaProblem<T> pb;
  pb.B = query.size(0), pb.Hq = query.size(1), pb.Lq = query.size(2), pb.Dk = query.size(3);
  pb.Hkv = key.size(1), pb.Lk = key.size(2), pb.Dv = value.size(3);
  const std::string qs = " to match query " + shape_str(query.shape());
  if (key.size(0) != pb.B || key.size(3) != pb.Dk)
    throw ShapeError(prefix(fn) + "key has shape " + shape_str(key.shape()) + ", expected [" +
                     std::to_string(pb.B) + ", Hkv, Lk, " + std::to_string(pb.Dk) + "]" + qs +
                     " in batch (dim 0) and Dk (dim 3)");
  if (value.size(0) != pb.B || value.size(1) != pb.Hkv || value.size(2) != pb.Lk)
    throw ShapeError(prefix(fn) + "value has shape " + shape_str(value.shape()) + ", expected [" +
                     std::to_string(pb.B) + ", " + std::to_string(pb.Hkv) + ", " + std::to_string(pb.Lk) +
                     ", Dv] to match key " + shape_str(key.shape()) + " in batch, heads and Lk");
  describe_heads_and_options(fn, o, pb);
  return pb;
}

template <class T>
void describe_heads_and_options(const char* fn, const SdpaOptions<T>& o, SdpaProblem<T>& pb) {
  if ((pb.Hkv == 0 && pb.Hq != 0) || (pb.Hkv != 0 && pb.Hq % pb.Hkv != 0))
    throw ShapeError(prefix(fn) + "query has " + std::to_string(pb.Hq) + " heads and key " +
                     std::to_string(pb.Hkv) + "; the query heads must be a multiple of the key/value heads");
  if (pb.Hq != pb.Hkv && !o.enable_gqa)
    throw ValueError(prefix(fn) + "query has " + std::to_string(pb.Hq) + " heads but key has " +
                     std::to_string(pb.Hkv) + "; set enable_gqa = true for grouped-query attention");
  pb.group = pb.Hkv > 0 ? pb.Hq / pb.Hkv : 1;
  describe_options(fn, o, pb);
}

template <class T>
void check_sdpa_backward(const char* fn, const SdpaProblem<T>& pb, const Tensor<T>& grad_output,
                         const Tensor<T>& output, const Tensor<T>& lse, bool need_float_mask_grad) {
  const Shape want_out{pb.B, pb.Hq, pb.Lq, pb.Dv}, want_lse{pb.B, pb.Hq, pb.Lq};
  auto check = [&](const char* arg, const Tensor<T>& t, const Shape& want) {
    if (!t.defined() || t.shape() != want)
      throw ShapeError(prefix(fn) + arg + " has shape " + (t.defined() ? shape_str(t.shape()) : "(undefined)") +
                       ", expected " + shape_str(want) + " [B, Hq, Lq" + (want.size() == 4 ? ", Dv]" : "]") +
                       " from query and value");
  };
  check("grad_output", grad_output, want_out);
  check("output", output, want_out);
  check("lse", lse, want_lse);
  if (need_float_mask_grad && !pb.options->float_mask.defined())
    throw ValueError(prefix(fn) + "need_float_mask_grad is true but options.float_mask is not given");
}

#define ATTN_INSTANTIATE(T)                                                                                    \
  template void describe_options<T>(const char*, const SdpaOptions<T>&, SdpaProblem<T>&);                      \
  template void describe_heads_and_options<T>(const char*, const SdpaOptions<T>&, SdpaProblem<T>&);            \
  template SdpaProblem<T> describe_sdpa<T>(const char*, const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,  \
                                           const SdpaOptions<T>&);                                             \
  template void check_sdpa_backward<T>(const char*, const SdpaProblem<T>&, const Tensor<T>&, const Tensor<T>&, \
                                       const Tensor<T>&, bool);
ATTN_INSTANTIATE(float)
ATTN_INSTANTIATE(double)
#undef ATTN_INSTANTIATE

}  // namespace attn

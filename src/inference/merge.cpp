// merge_attention_partials: attention over several disjoint parts of the key
// axis combined into attention over their union (split-KV decoding).
//
// Why it works: for one query row, part s computed
//   lse_s = log Σ_{j∈s} e^{x_j}     out_s = Σ_{j∈s} e^{x_j − lse_s} v_j
// so e^{lse_s}·out_s = Σ_{j∈s} e^{x_j} v_j, and summing over the parts gives
//   Σ_j e^{x_j} v_j = Σ_s e^{lse_s} out_s,   e^{lse} = Σ_s e^{lse_s}
// hence out = Σ_s e^{lse_s − lse} out_s. The max m of the lse_s is subtracted
// before exponentiating, so no term overflows (the same trick as the softmax).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "attn/kv_cache.hpp"
#include "cpu/decode_params.hpp"

namespace attn {
namespace cpu {

template <class T>
void merge_partial_row(int64_t S, int64_t Dv, const T* out, int64_t out_split_stride, int64_t out_d_stride,
                       const T* lse, int64_t lse_split_stride, T* weights, T* result, int64_t result_stride,
                       T* result_lse) {
  constexpr T neg_inf = -std::numeric_limits<T>::infinity();
  T m = neg_inf;
  bool saw_nan = false;  // a part whose row is NaN makes the merged row NaN
  for (int64_t s = 0; s < S; ++s) {
    m = std::max(m, lse[s * lse_split_stride]);
    saw_nan = saw_nan || std::isnan(lse[s * lse_split_stride]);
  }
  if (saw_nan) {
    for (int64_t d = 0; d < Dv; ++d) result[d * result_stride] = std::numeric_limits<T>::quiet_NaN();
    *result_lse = std::numeric_limits<T>::quiet_NaN();
    return;
  }
  if (m == neg_inf) {  // no part saw a key: output 0, lse −∞ (as the unsplit attention)
    for (int64_t d = 0; d < Dv; ++d) result[d * result_stride] = T(0);
    *result_lse = neg_inf;
    return;
  }
  T sum = 0;
  for (int64_t s = 0; s < S; ++s) sum += std::exp(lse[s * lse_split_stride] - m);
  const T total = m + std::log(sum);
  for (int64_t s = 0; s < S; ++s) weights[s] = std::exp(lse[s * lse_split_stride] - total);
  for (int64_t d = 0; d < Dv; ++d) {
    T acc = 0;
    for (int64_t s = 0; s < S; ++s)
      // A part that saw no key has weight 0 and is skipped, not multiplied:
      // its output is 0 anyway, and 0 · NaN would not be.
      if (weights[s] != T(0)) acc += weights[s] * out[s * out_split_stride + d * out_d_stride];
    result[d * result_stride] = acc;
  }
  *result_lse = total;
}

template void merge_partial_row<float>(int64_t, int64_t, const float*, int64_t, int64_t, const float*, int64_t,
                                       float*, float*, int64_t, float*);
template void merge_partial_row<double>(int64_t, int64_t, const double*, int64_t, int64_t, const double*, int64_t,
                                        double*, double*, int64_t, double*);

}  // namespace cpu

template <class T>
SdpaResult<T> merge_attention_partials(const Tensor<T>& partial_outputs, const Tensor<T>& partial_lse) {
  const std::string fn = "merge_attention_partials: ";
  if (!partial_outputs.defined() || partial_outputs.dim() != 5)
    throw ShapeError(fn + "partial_outputs has shape " +
                     (partial_outputs.defined() ? shape_str(partial_outputs.shape()) : "(undefined)") +
                     ", expected rank 5 [S, B, H, L, Dv]");
  const Shape& po = partial_outputs.shape();
  const Shape want_lse{po[0], po[1], po[2], po[3]};
  if (!partial_lse.defined() || partial_lse.shape() != want_lse)
    throw ShapeError(fn + "partial_lse has shape " +
                     (partial_lse.defined() ? shape_str(partial_lse.shape()) : "(undefined)") + ", expected " +
                     shape_str(want_lse) + " to match partial_outputs " + shape_str(po) + " [S, B, H, L, Dv]");
  const int64_t S = po[0], B = po[1], H = po[2], L = po[3], Dv = po[4];
  SdpaResult<T> r;
  r.output = Tensor<T>({B, H, L, Dv});
  r.lse = Tensor<T>({B, H, L});
  std::vector<T> weights(static_cast<size_t>(std::max<int64_t>(S, 1)));  // [S]
  const Shape& os = partial_outputs.strides();
  const Shape& ls = partial_lse.strides();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i) {
        const T* o = partial_outputs.data() + b * os[1] + h * os[2] + i * os[3];
        const T* l = partial_lse.data() + b * ls[1] + h * ls[2] + i * ls[3];
        cpu::merge_partial_row<T>(S, Dv, o, os[0], os[4], l, ls[0], weights.data(), &r.output(b, h, i, 0), 1,
                                  &r.lse(b, h, i));
      }
  return r;
}

template SdpaResult<float> merge_attention_partials<float>(const Tensor<float>&, const Tensor<float>&);
template SdpaResult<double> merge_attention_partials<double>(const Tensor<double>&, const Tensor<double>&);

}  // namespace attn

// rope.cpp — rotary position embeddings, forward beside backward.
//
// Buffers:
//   x          [B, H, L, D]   any strides
//   positions  [L] or [B, L]  (or start_pos + l)
//   cos, sin   [R/2]          for one (b, l) row, computed in double, rounded to T
// The per-row arithmetic is detail::RopeTable (inference/rope_row.hpp), shared
// with the KV cache's fused append and the decode step.
//   y          [B, H, L, D]   contiguous
// The forward rotates by +p·ω_i, the backward by −p·ω_i (the transpose of a
// rotation is its inverse), so both are one function with a sign.
#include "attn/rope.hpp"

#include "inference/rope_row.hpp"

#include <cmath>
#include <string>
#include <vector>

namespace attn {

namespace {

// Validates x and the options; returns the frequency table.
template <class T>
detail::RopeTable check_rope(const Tensor<T>& x, const RopeOptions& o, const char* who) {
  if (!x.defined() || x.dim() != 4)
    throw ShapeError(std::string(who) + ": x has shape " + (x.defined() ? shape_str(x.shape()) : "undefined") +
                     ", expected rank 4 [batch, heads, seq, head_dim]");
  return detail::RopeTable(o, x.size(3), std::string(who) + " (x of shape " + shape_str(x.shape()) + ")");
}

// The shared body. pos(b, l) gives a token's position; sign = +1 forward, −1 backward.
template <class T, class PosFn>
Tensor<T> rotate(const Tensor<T>& x, const PosFn& pos, const detail::RopeTable& table, double sign) {
  const int64_t B = x.size(0), H = x.size(1), L = x.size(2), D = x.size(3);
  Tensor<T> y({B, H, L, D});
  std::vector<T> c(static_cast<size_t>(table.R / 2 + 1)), s(c.size());  // [R/2] each
  const int64_t sb = x.stride(0), sh = x.stride(1), sl = x.stride(2), sd = x.stride(3);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l) {
      table.angles(pos(b, l), sign, c.data(), s.data());
      for (int64_t h = 0; h < H; ++h)  // x[b, h, l, :] (stride sd) → y[b, h, l, :] (contiguous)
        table.rotate(x.data() + b * sb + h * sh + l * sl, sd, c.data(), s.data(), y.data() + ((b * H + h) * L + l) * D);
    }
  return y;
}

template <class T>
Tensor<T> rope_start(const Tensor<T>& x, int64_t start_pos, const RopeOptions& o, double sign, const char* who) {
  const detail::RopeTable table = check_rope(x, o, who);
  if (start_pos < 0)
    throw ValueError(std::string(who) + ": start_pos = " + std::to_string(start_pos) + ", expected >= 0");
  return rotate(x, [start_pos](int64_t, int64_t l) { return start_pos + l; }, table, sign);
}

template <class T>
Tensor<T> rope_positions(const Tensor<T>& x, const Tensor<int64_t>& positions, const RopeOptions& o, double sign,
                         const char* who) {
  const detail::RopeTable table = check_rope(x, o, who);
  const int64_t B = x.size(0), L = x.size(2);
  const bool ok = positions.defined() && ((positions.dim() == 1 && positions.size(0) == L) ||
                                          (positions.dim() == 2 && positions.size(0) == B && positions.size(1) == L));
  if (!ok)
    throw ShapeError(std::string(who) + ": positions has shape " +
                     (positions.defined() ? shape_str(positions.shape()) : "undefined") + ", expected [" +
                     std::to_string(L) + "] or [" + std::to_string(B) + ", " + std::to_string(L) +
                     "] for x of shape " + shape_str(x.shape()));
  const Tensor<int64_t> p2 = positions.dim() == 1 ? positions.expand({B, L}) : positions;
  for (int64_t i = 0; i < p2.numel(); ++i)
    if (p2.flat(i) < 0)
      throw ValueError(std::string(who) + ": positions holds " + std::to_string(p2.flat(i)) + ", expected >= 0");
  return rotate(x, [&p2](int64_t b, int64_t l) { return p2(b, l); }, table, sign);
}

}  // namespace

template <class T>
Tensor<T> apply_rope(const Tensor<T>& x, int64_t start_pos, const RopeOptions& options) {
  return rope_start(x, start_pos, options, +1.0, "apply_rope");
}
template <class T>
Tensor<T> apply_rope(const Tensor<T>& x, const Tensor<int64_t>& positions, const RopeOptions& options) {
  return rope_positions(x, positions, options, +1.0, "apply_rope");
}

// in the forward pass this was y = R_p·x (per pair, a 2×2 rotation by p·ω_i)
// so now dx = R_pᵀ·dy = R_{−p}·dy: the same code with sin negated.
template <class T>
Tensor<T> apply_rope_backward(const Tensor<T>& grad_output, int64_t start_pos, const RopeOptions& options) {
  return rope_start(grad_output, start_pos, options, -1.0, "apply_rope_backward");
}
template <class T>
Tensor<T> apply_rope_backward(const Tensor<T>& grad_output, const Tensor<int64_t>& positions,
                              const RopeOptions& options) {
  return rope_positions(grad_output, positions, options, -1.0, "apply_rope_backward");
}

template Tensor<float> apply_rope(const Tensor<float>&, int64_t, const RopeOptions&);
template Tensor<double> apply_rope(const Tensor<double>&, int64_t, const RopeOptions&);
template Tensor<float> apply_rope(const Tensor<float>&, const Tensor<int64_t>&, const RopeOptions&);
template Tensor<double> apply_rope(const Tensor<double>&, const Tensor<int64_t>&, const RopeOptions&);
template Tensor<float> apply_rope_backward(const Tensor<float>&, int64_t, const RopeOptions&);
template Tensor<double> apply_rope_backward(const Tensor<double>&, int64_t, const RopeOptions&);
template Tensor<float> apply_rope_backward(const Tensor<float>&, const Tensor<int64_t>&, const RopeOptions&);
template Tensor<double> apply_rope_backward(const Tensor<double>&, const Tensor<int64_t>&, const RopeOptions&);

}  // namespace attn

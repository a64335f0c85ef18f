// layers/layer_util.hpp — small helpers shared by the trainable attention
// layers (private to src/layers; not part of the public API).
//
// The attention core of every layer is attn::scaled_dot_product_attention;
// what is here is only the glue around it: argument checks that produce the
// library's typed errors, moving between [seq, d] and [batch, seq, d], and a
// linear map on *borrowed* weight tensors (torch's F.linear), which
// torch.nn.MultiheadAttention needs because its q/k/v weights live packed in
// one [3E, E] parameter rather than in three nn.Linear modules.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "attn/detail/size_math.hpp"
#include "attn/errors.hpp"
#include "attn/tensor.hpp"

namespace attn::detail {

/// Throws ShapeError unless x is [seq, width] or [batch, seq, width].
/// `where` is the calling function, `name` the argument, `expected` the shape
/// in words ("[batch, seq, d_in]").
template <class T>
void check_sequence_input(const Tensor<T>& x, int64_t width, const std::string& where, const std::string& name,
                          const std::string& expected) {
  if (!x.defined()) throw ShapeError(where + ": " + name + " is undefined, expected " + expected);
  if (x.dim() != 2 && x.dim() != 3)
    throw ShapeError(where + ": " + name + " has shape " + shape_str(x.shape()) + " (rank " +
                     std::to_string(x.dim()) + "), expected " + expected + " or its unbatched form");
  if (x.size(-1) != width)
    throw ShapeError(where + ": " + name + " has shape " + shape_str(x.shape()) + ", expected last dim " +
                     std::to_string(width) + " (" + expected + ")");
}

/// [seq, d] -> [1, seq, d]; [batch, seq, d] unchanged (a view either way).
template <class T>
Tensor<T> as_batched(const Tensor<T>& x) {
  return x.dim() == 2 ? x.reshape({1, x.size(0), x.size(1)}) : x;
}

/// Throws ValueError unless backward may run (forward has saved its buffers).
inline void check_forward_ran(bool ran, const std::string& where) {
  if (!ran) throw ValueError(where + ": backward called before forward (nothing saved)");
}

/// Throws ShapeError unless grad has exactly `shape` (the forward output's).
template <class T>
void check_grad_shape(const Tensor<T>& grad, const Shape& shape, const std::string& where) {
  if (!grad.defined() || grad.shape() != shape)
    throw ShapeError(where + ": grad_output has shape " + (grad.defined() ? shape_str(grad.shape()) : "undefined") +
                     ", expected " + shape_str(shape) + " (the shape of the forward output)");
}

/// Throws ValueError unless 0 <= p < 1.
inline void check_dropout(double p, const std::string& where) {
  if (!(p >= 0.0 && p < 1.0))
    throw ValueError(where + ": dropout = " + std::to_string(p) + ", expected a probability in [0, 1)");
}

/// Returns n; throws ValueError unless n > 0. (Returns so that constructors
/// can check a size in their member-initialiser list, before it is used.)
inline int64_t positive(int64_t n, const std::string& where, const std::string& name) {
  if (n <= 0) throw ValueError(where + ": " + name + " = " + std::to_string(n) + ", expected > 0");
  return n;
}

/// a·b for a size a layer derives from its arguments (3·hidden_size for a
/// GRU's gates, num_heads·head_dim, ...); throws ValueError naming the
/// product when it does not fit in int64_t (it would wrap to a small or
/// negative size). a, b >= 0.
inline int64_t size_mul(int64_t a, int64_t b, const std::string& where, const std::string& what) {
  int64_t r;
  if (!checked_mul(a, b, r))
    throw ValueError(where + ": " + what + " = " + std::to_string(a) + " x " + std::to_string(b) +
                     " does not fit in 64 bits");
  return r;
}

/// a + b, the same way.
inline int64_t size_add(int64_t a, int64_t b, const std::string& where, const std::string& what) {
  int64_t r;
  if (!checked_add(a, b, r))
    throw ValueError(where + ": " + what + " = " + std::to_string(a) + " + " + std::to_string(b) +
                     " does not fit in 64 bits");
  return r;
}

/// a += b element-wise (same shape; any strides).
template <class T>
void add_(const Tensor<T>& a, const Tensor<T>& b) {
  for (int64_t i = 0; i < a.numel(); ++i) a.flat(i) += b.flat(i);
}

/// y = x·Wᵀ + b (torch's F.linear) for x [..., in], W [out, in], b [out] or
/// undefined. W and b may be views (slices of a packed weight).
template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& W, const Tensor<T>& b) {
  const int64_t in = W.size(1), out = W.size(0);
  const Tensor<T> xc = x.contiguous();
  const int64_t rows = in ? xc.numel() / in : 0;
  Shape yshape = x.shape();
  yshape.back() = out;
  Tensor<T> y(yshape);
  const T* xp = xc.data();
  T* yp = y.data();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      T acc = b.defined() ? b(o) : T(0);
      for (int64_t i = 0; i < in; ++i) acc += xp[r * in + i] * W(o, i);
      yp[r * out + o] = acc;
    }
  return y;
}

/// Backward of linear(): in the forward pass this was y = x·Wᵀ + b, so
///   dW += dyᵀ·x   (summed over every leading index of x)
///   db += Σ dy    (when db is defined)
///   dx  = dy·W    (returned, shape of x)
/// dW and db are accumulated in place, so they may be views into a packed
/// parameter's gradient.
template <class T>
Tensor<T> linear_backward(const Tensor<T>& x, const Tensor<T>& W, const Tensor<T>& dy, const Tensor<T>& dW,
                          const Tensor<T>& db) {
  const int64_t in = W.size(1), out = W.size(0);
  const Tensor<T> xc = x.contiguous(), dyc = dy.contiguous();
  const int64_t rows = in ? xc.numel() / in : dyc.numel() / std::max<int64_t>(out, 1);
  Tensor<T> dx(x.shape());
  const T* xp = xc.data();
  const T* dyp = dyc.data();
  T* dxp = dx.data();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      const T g = dyp[r * out + o];
      if (db.defined()) db(o) += g;
      for (int64_t i = 0; i < in; ++i) {
        dW(o, i) += g * xp[r * in + i];
        dxp[r * in + i] += g * W(o, i);
      }
    }
  return dx;
}

}  // namespace attn::detail

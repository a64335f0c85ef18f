// linear.cpp — nn.Linear: y = x·Wᵀ + b, forward beside backward.
//
// Buffers (R = product of x's leading dims, the "rows"; rank-1 x has R = 1):
//   x       [..., in]    viewed as [R, in]    (any strides; made contiguous here)
//   weight  [out, in]
//   bias    [out]        (size 0 when bias = false)
//   y       [..., out]   viewed as [R, out]
//   dy      [..., out]   same shape as y
//   dx      [..., in]    same shape as x
// forward() saves x (a handle, not a copy): backward needs it for dW = dyᵀ·x.
// backward_from(x, dy) is the same backward with x passed in.
//
// Initialisation follows torch.nn.Linear.reset_parameters() to the bit:
//   kaiming_uniform_(weight, a=√5): gain = √(2 / (1 + a²)), std = gain / √in,
//                                   bound = √3 · std, weight ~ U(−bound, bound)
//   bias ~ U(−1/√in, 1/√in)
// in that order, from the given Generator. The bounds are computed in double
// with the same operations as torch's Python code (√3 · (gain / √in) is not
// always the same double as 1/√in, and a one-ulp different bound changes the
// float weights).
#include "attn/linear.hpp"

#include <cmath>
#include <string>

namespace attn {

namespace {

// x's shape with the last dim replaced by `last`.
Shape with_last_dim(Shape shape, int64_t last) {
  shape.back() = last;
  return shape;
}

template <class T>
void check_input(const Tensor<T>& x, int64_t in_features, const char* who) {
  if (!x.defined() || x.dim() < 1 || x.size(-1) != in_features) {
    const std::string seen = x.defined() ? shape_str(x.shape()) : std::string("undefined");
    throw ShapeError(std::string(who) + ": input has shape " + seen + ", expected [..., " +
                     std::to_string(in_features) + "] (last dim = in_features)");
  }
}

}  // namespace

template <class T>
Linear<T>::Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen)
    : in_features_(in_features), out_features_(out_features), has_bias_(bias) {
  if (in_features < 0 || out_features < 0)
    throw ValueError("Linear: in_features = " + std::to_string(in_features) + " and out_features = " +
                     std::to_string(out_features) + " must be >= 0");
  weight = Parameter<T>({out_features, in_features});
  this->bias = Parameter<T>({bias ? out_features : 0});

  // kaiming_uniform_(weight, a=sqrt(5)); torch skips tensors with a zero-size dim.
  const double fan_in = static_cast<double>(in_features);
  if (weight.value.numel() > 0) {
    const double a = std::sqrt(5.0);
    const double gain = std::sqrt(2.0 / (1 + std::pow(a, 2)));  // calculate_gain("leaky_relu", a)
    const double std_dev = gain / std::sqrt(fan_in);
    const double bound = std::sqrt(3.0) * std_dev;
    gen.uniform_(weight.value, -bound, bound);
  }
  if (bias) {
    const double bound = in_features > 0 ? 1 / std::sqrt(fan_in) : 0.0;
    gen.uniform_(this->bias.value, -bound, bound);
  }
}

template <class T>
std::vector<NamedParameter<T>> Linear<T>::named_parameters() {
  std::vector<NamedParameter<T>> out{{"weight", &weight}};
  if (has_bias_) out.push_back({"bias", &bias});
  return out;
}

// ---- forward ------------------------------------------------------------------

template <class T>
Tensor<T> Linear<T>::forward(const Tensor<T>& x) {
  Tensor<T> y = apply(x);  // validates x
  saved_input_ = x;
  return y;
}

template <class T>
Tensor<T> Linear<T>::apply(const Tensor<T>& x) const {
  check_input(x, in_features_, "Linear::forward");
  const int64_t in = in_features_, out = out_features_;
  const int64_t rows = numel_of(Shape(x.shape().begin(), x.shape().end() - 1));
  const Tensor<T> xc = x.contiguous(), w = weight.value.contiguous(), b = bias.value.contiguous();
  const T* X = xc.data();
  const T* W = w.data();
  const T* B = b.data();
  Tensor<T> y(with_last_dim(x.shape(), out));
  T* Y = y.data();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      // y[r, o] = b[o] + Σ_i x[r, i] · W[o, i]   (both rows contiguous)
      T acc = has_bias_ ? B[o] : T(0);
      for (int64_t i = 0; i < in; ++i) acc += X[r * in + i] * W[o * in + i];
      Y[r * out + o] = acc;
    }
  }
  return y;
}

// ---- backward -----------------------------------------------------------------

template <class T>
Tensor<T> Linear<T>::backward(const Tensor<T>& grad_output) {
  if (!saved_input_.defined())
    throw ValueError("Linear::backward: no saved input; call forward() before backward()");
  return backward_from(saved_input_, grad_output);
}

template <class T>
Tensor<T> Linear<T>::backward_from(const Tensor<T>& x, const Tensor<T>& grad_output) {
  check_input(x, in_features_, "Linear::backward");
  const Shape y_shape = with_last_dim(x.shape(), out_features_);
  if (!grad_output.defined() || grad_output.shape() != y_shape)
    throw ShapeError("Linear::backward: grad_output has shape " +
                     (grad_output.defined() ? shape_str(grad_output.shape()) : std::string("undefined")) +
                     ", expected " + shape_str(y_shape) + " (the output's shape for input " + shape_str(x.shape()) +
                     ")");
  if (weight.grad.shape() != weight.value.shape() || (has_bias_ && bias.grad.shape() != bias.value.shape()))
    throw ShapeError("Linear::backward: weight.grad / bias.grad have shapes " + shape_str(weight.grad.shape()) +
                     " / " + shape_str(bias.grad.shape()) + ", expected " + shape_str(weight.value.shape()) +
                     " / " + shape_str(bias.value.shape()));

  const int64_t in = in_features_, out = out_features_;
  const int64_t rows = numel_of(Shape(x.shape().begin(), x.shape().end() - 1));
  const Tensor<T> xc = x.contiguous(), dyc = grad_output.contiguous(), w = weight.value.contiguous();
  const T* X = xc.data();
  const T* dY = dyc.data();
  const T* W = w.data();

  // in the forward pass this was: y[r, o] = b[o] + Σ_i x[r, i] · W[o, i]
  // so now:  dx[r, i] = Σ_o dy[r, o] · W[o, i]
  //          dW[o, i] += Σ_r dy[r, o] · x[r, i]
  //          db[o]    += Σ_r dy[r, o]
  // One pass over the rows; every inner loop walks contiguous memory. The
  // sums over r go into fresh buffers first and are then added to the
  // gradients, which may be views with any strides.
  Tensor<T> dx(x.shape()), dW({out, in}), db({out});
  T* dX = dx.data();
  T* dWp = dW.data();
  T* dbp = db.data();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      const T g = dY[r * out + o];
      for (int64_t i = 0; i < in; ++i) {
        dX[r * in + i] += g * W[o * in + i];
        dWp[o * in + i] += g * X[r * in + i];
      }
      dbp[o] += g;
    }
  for (int64_t k = 0; k < out * in; ++k) weight.grad.flat(k) += dWp[k];
  if (has_bias_)
    for (int64_t o = 0; o < out; ++o) bias.grad.flat(o) += dbp[o];
  return dx;
}

template class Linear<float>;
template class Linear<double>;

}  // namespace attn

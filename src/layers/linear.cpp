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
// Two paths with the same arithmetic: the plain loops below are the reference
// (and run small products, where a BLAS call costs more than the product);
// products of at least kBlasMinProducts multiply-adds go to BLAS (OpenBLAS's
// sgemm / dgemm, ~50-100x the loops here: `attn generate` trains 16x faster).
// They differ only in the order of the sums (rounding), which the tests
// bound against PyTorch on both.
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

#include <cblas.h>

#include <atomic>
#include <cmath>
#include <string>

#include "attn/threading.hpp"

namespace attn {

namespace {

constexpr int64_t kBlasMinProducts = 16384;
// Below this many multiply-adds OpenBLAS runs on one thread: handing a small
// product to a second thread costs more than it saves on this machine
// (`attn generate`, 100 training steps of 16M-product Linears: 4.0 s on one
// thread, 4.1 s on two, which spend a third of their time in sched_yield).
constexpr int64_t kBlasMinProductsPerThread = int64_t{1} << 26;

// C[M, N] = op(A)·op(B) + beta·C, row-major; op = transpose when trans_*.
// Large products use as many OpenBLAS threads as attn::get_num_threads()
// (attn::set_num_threads / OMP_NUM_THREADS), as the library's own kernels do.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  static std::atomic<int> blas_threads{0};
  const int threads = M * N * K >= kBlasMinProductsPerThread ? get_num_threads() : 1;
  if (blas_threads.exchange(threads) != threads) openblas_set_num_threads(threads);
  const auto ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  const auto m = static_cast<blasint>(M), n = static_cast<blasint>(N), k = static_cast<blasint>(K);
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, A, static_cast<blasint>(lda), B, static_cast<blasint>(ldb),
                beta, C, static_cast<blasint>(ldc));
  else
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, A, static_cast<blasint>(lda), B, static_cast<blasint>(ldb),
                beta, C, static_cast<blasint>(ldc));
}

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
    : Linear(in_features, out_features, bias, SkipInit{}) {
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
Linear<T>::Linear(int64_t in_features, int64_t out_features, bool bias, SkipInit)
    : in_features_(in_features), out_features_(out_features), has_bias_(bias) {
  if (in_features < 0 || out_features < 0)
    throw ValueError("Linear: in_features = " + std::to_string(in_features) + " and out_features = " +
                     std::to_string(out_features) + " must be >= 0");
  weight = Parameter<T>({out_features, in_features});
  this->bias = Parameter<T>({bias ? out_features : 0});
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
  if (rows * in * out >= kBlasMinProducts) {  // the same sums, by BLAS: Y = b + X·Wᵀ
    if (has_bias_)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < out; ++o) Y[r * out + o] = B[o];
    gemm<T>(false, true, rows, out, in, X, in, W, in, has_bias_ ? T(1) : T(0), Y, out);
    return y;
  }
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
  if (rows * in * out >= kBlasMinProducts) {  // the same sums, by BLAS
    gemm<T>(false, false, rows, in, out, dY, out, W, in, T(0), dX, in);  // dX = dY·W
    gemm<T>(true, false, out, in, rows, dY, out, X, in, T(0), dWp, in);  // dW = dYᵀ·X
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) dbp[o] += dY[r * out + o];
  } else {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) {
        const T g = dY[r * out + o];
        for (int64_t i = 0; i < in; ++i) {
          dX[r * in + i] += g * W[o * in + i];
          dWp[o * in + i] += g * X[r * in + i];
        }
        dbp[o] += g;
      }
  }
  for (int64_t k = 0; k < out * in; ++k) weight.grad.flat(k) += dWp[k];
  if (has_bias_)
    for (int64_t o = 0; o < out; ++o) bias.grad.flat(o) += dbp[o];
  return dx;
}

template class Linear<float>;
template class Linear<double>;

}  // namespace attn

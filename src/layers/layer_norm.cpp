// layer_norm.cpp — LayerNorm and GELU, forward beside backward.
//
// LayerNorm buffers (R = product of x's leading dims):
//   x [..., D] viewed as [R, D];  x̂ [R, D] and rstd [R] saved by forward.
// Forward, per row r:  μ = Σx/D,  σ² = Σ(x − μ)²/D,  rstd = 1/√(σ² + eps),
//                      x̂ = (x − μ)·rstd,  y = x̂·γ + β
// Backward, per row r (g = dy·γ):
//   in the forward pass this was y = x̂·γ + β, so  dγ += dy·x̂,  dβ += dy;
//   and x̂ = (x − μ)·rstd with μ, rstd functions of the whole row, so
//   dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)).
#include "attn/layer_norm.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "attn/threading.hpp"
#include "cpu/parallel.hpp"
#include "layers/layer_util.hpp"

namespace attn {

namespace {

template <class T>
void check_last_dim(const Tensor<T>& x, int64_t d, const char* who) {
  if (!x.defined() || x.dim() < 1 || x.size(-1) != d)
    throw ShapeError(std::string(who) + ": input has shape " +
                     (x.defined() ? shape_str(x.shape()) : std::string("undefined")) + ", expected [..., " +
                     std::to_string(d) + "] (last dim = normalized_shape)");
}

// Normalises every row of xc [R, D] into y; optionally keeps x̂ and rstd.
template <class T>
void layer_norm_rows(const T* xc, int64_t R, int64_t D, double eps, const T* gamma, const T* beta, T* y, T* xhat,
                     double* rstd_out) {
  for (int64_t r = 0; r < R; ++r) {
    const T* row = xc + r * D;
    double mean = 0;
    for (int64_t i = 0; i < D; ++i) mean += row[i];
    mean /= static_cast<double>(D);
    double var = 0;
    for (int64_t i = 0; i < D; ++i) {
      const double c = row[i] - mean;
      var += c * c;
    }
    var /= static_cast<double>(D);
    const double rstd = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < D; ++i) {
      const double h = (row[i] - mean) * rstd;
      if (xhat) xhat[r * D + i] = static_cast<T>(h);
      y[r * D + i] = static_cast<T>(h * gamma[i] + beta[i]);
    }
    if (rstd_out) rstd_out[r] = rstd;
  }
}

}  // namespace

template <class T>
LayerNorm<T>::LayerNorm(int64_t normalized_shape, double eps)
    : weight({detail::positive(normalized_shape, "LayerNorm", "normalized_shape")}),
      bias({normalized_shape}),
      d_(normalized_shape),
      eps_(eps) {
  if (!(eps >= 0.0) || !std::isfinite(eps))
    throw ValueError("LayerNorm: eps = " + std::to_string(eps) + ", expected a finite value >= 0");
  weight.value.fill_(T(1));
}

template <class T>
Tensor<T> LayerNorm<T>::apply(const Tensor<T>& x) const {
  check_last_dim(x, d_, "LayerNorm");
  const Tensor<T> xc = x.contiguous();
  Tensor<T> y(x.shape());
  const Tensor<T> g = weight.value.contiguous(), b = bias.value.contiguous();
  layer_norm_rows(xc.data(), x.numel() / d_, d_, eps_, g.data(), b.data(), y.data(), static_cast<T*>(nullptr),
                  nullptr);
  return y;
}

template <class T>
Tensor<T> LayerNorm<T>::forward(const Tensor<T>& x) {
  check_last_dim(x, d_, "LayerNorm");
  const Tensor<T> xc = x.contiguous();
  const int64_t R = x.numel() / d_;
  Tensor<T> y(x.shape());
  saved_xhat_ = Tensor<T>({R, d_});
  saved_rstd_.assign(static_cast<size_t>(R), 0.0);
  saved_shape_ = x.shape();
  const Tensor<T> g = weight.value.contiguous(), b = bias.value.contiguous();
  layer_norm_rows(xc.data(), R, d_, eps_, g.data(), b.data(), y.data(), saved_xhat_.data(), saved_rstd_.data());
  return y;
}

template <class T>
Tensor<T> LayerNorm<T>::backward(const Tensor<T>& grad_output) {
  detail::check_forward_ran(saved_xhat_.defined(), "LayerNorm::backward");
  detail::check_grad_shape(grad_output, saved_shape_, "LayerNorm::backward");
  const Tensor<T> dy = grad_output.contiguous();
  const int64_t R = saved_xhat_.size(0), D = d_;
  Tensor<T> dx(saved_shape_);
  const T* xh = saved_xhat_.data();
  const T* dyp = dy.data();
  T* dxp = dx.data();
  for (int64_t r = 0; r < R; ++r) {
    double mean_g = 0, mean_gx = 0;
    for (int64_t i = 0; i < D; ++i) {
      const double g = static_cast<double>(dyp[r * D + i]) * weight.value.flat(i);
      mean_g += g;
      mean_gx += g * xh[r * D + i];
      weight.grad.flat(i) += dyp[r * D + i] * xh[r * D + i];
      bias.grad.flat(i) += dyp[r * D + i];
    }
    mean_g /= static_cast<double>(D);
    mean_gx /= static_cast<double>(D);
    for (int64_t i = 0; i < D; ++i) {
      const double g = static_cast<double>(dyp[r * D + i]) * weight.value.flat(i);
      dxp[r * D + i] = static_cast<T>(saved_rstd_[static_cast<size_t>(r)] * (g - mean_g - xh[r * D + i] * mean_gx));
    }
  }
  return dx;
}

// ---- GELU -------------------------------------------------------------------------

namespace {
// erf costs ~10 ns an element: a BERT's intermediate activations (B·L × 4·hidden)
// are worth splitting over the library's threads, in chunks of kGeluChunk.
constexpr int64_t kGeluChunk = int64_t{1} << 15;

template <class T>
struct GeluJob {
  const T* in;
  T* out;
  int64_t n;
};

template <class T>
void gelu_chunk(void* ctx, int64_t item, int /*thread*/) {
  const auto& job = *static_cast<const GeluJob<T>*>(ctx);
  const int64_t begin = item * kGeluChunk, end = std::min(job.n, begin + kGeluChunk);
  constexpr T kInvSqrt2 = static_cast<T>(0.70710678118654752440);
  for (int64_t i = begin; i < end; ++i) job.out[i] = T(0.5) * job.in[i] * (T(1) + std::erf(job.in[i] * kInvSqrt2));
}
}  // namespace

template <class T>
Tensor<T> gelu(const Tensor<T>& x) {
  if (!x.defined()) throw ShapeError("gelu: input is undefined");
  const Tensor<T> xc = x.contiguous();
  Tensor<T> y(x.shape());
  GeluJob<T> job{xc.data(), y.data(), x.numel()};
  const int64_t chunks = (job.n + kGeluChunk - 1) / kGeluChunk;
  if (chunks <= 1) {
    if (chunks == 1) gelu_chunk<T>(&job, 0, 0);
  } else {
    cpu::parallel_for(chunks, static_cast<int>(std::min<int64_t>(get_num_threads(), chunks)), &gelu_chunk<T>, &job);
  }
  return y;
}

template <class T>
Tensor<T> gelu_backward(const Tensor<T>& x, const Tensor<T>& grad_output) {
  if (!x.defined() || !grad_output.defined() || x.shape() != grad_output.shape())
    throw ShapeError("gelu_backward: grad_output has shape " +
                     (grad_output.defined() ? shape_str(grad_output.shape()) : std::string("undefined")) +
                     ", expected the input's shape " + (x.defined() ? shape_str(x.shape()) : std::string("undefined")));
  const Tensor<T> xc = x.contiguous(), dy = grad_output.contiguous();
  Tensor<T> dx(x.shape());
  const double inv_sqrt2 = 0.70710678118654752440, inv_sqrt_2pi = 0.39894228040143267794;
  for (int64_t i = 0; i < x.numel(); ++i) {
    // in the forward pass this was y = x·Φ(x), so dy/dx = Φ(x) + x·φ(x)
    const double v = xc.data()[i];
    const double cdf = 0.5 * (1.0 + std::erf(v * inv_sqrt2));
    const double pdf = std::exp(-0.5 * v * v) * inv_sqrt_2pi;
    dx.data()[i] = static_cast<T>(dy.data()[i] * (cdf + v * pdf));
  }
  return dx;
}

template <class T>
Tensor<T> GELU<T>::backward(const Tensor<T>& grad_output) {
  detail::check_forward_ran(saved_input_.defined(), "GELU::backward");
  return gelu_backward(saved_input_, grad_output);
}

template class LayerNorm<float>;
template class LayerNorm<double>;
template Tensor<float> gelu(const Tensor<float>&);
template Tensor<double> gelu(const Tensor<double>&);
template Tensor<float> gelu_backward(const Tensor<float>&, const Tensor<float>&);
template Tensor<double> gelu_backward(const Tensor<double>&, const Tensor<double>&);
template class GELU<float>;
template class GELU<double>;

}  // namespace attn

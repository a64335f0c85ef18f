// cross_entropy.cpp — mean cross-entropy over class indices, forward beside backward.
//
// Buffers:
//   logits   [N, C]   any strides
//   targets  [N]      int64 class indices
//   dlogits  [N, C]   (softmax − one_hot) · grad_loss / N
#include <cmath>
#include <string>

#include "attn/errors.hpp"
#include "attn/loss.hpp"

namespace attn {

namespace {

template <class T>
void check(const Tensor<T>& logits, const Tensor<int64_t>& targets, const char* who) {
  if (!logits.defined() || logits.dim() != 2 || logits.size(1) < 1)
    throw ShapeError(std::string(who) + ": logits has shape " +
                     (logits.defined() ? shape_str(logits.shape()) : std::string("undefined")) +
                     ", expected [N, C] with C >= 1");
  if (!targets.defined() || targets.dim() != 1 || targets.size(0) != logits.size(0))
    throw ShapeError(std::string(who) + ": targets has shape " +
                     (targets.defined() ? shape_str(targets.shape()) : std::string("undefined")) + ", expected [" +
                     std::to_string(logits.size(0)) + "] (one class per row of logits " + shape_str(logits.shape()) +
                     ")");
  for (int64_t n = 0; n < targets.size(0); ++n)
    if (targets(n) < 0 || targets(n) >= logits.size(1))
      throw ValueError(std::string(who) + ": targets[" + std::to_string(n) + "] = " + std::to_string(targets(n)) +
                       " is outside [0, " + std::to_string(logits.size(1)) + ") (C = logits.size(1))");
}

// m = max_c x[c]; logsumexp = m + log Σ_c e^(x[c] − m): every exponent <= 0.
template <class T>
T row_logsumexp(const Tensor<T>& logits, int64_t n) {
  const int64_t C = logits.size(1);
  T m = logits(n, 0);
  for (int64_t c = 1; c < C; ++c) m = std::max(m, logits(n, c));
  T s = 0;
  for (int64_t c = 0; c < C; ++c) s += std::exp(logits(n, c) - m);
  return m + std::log(s);
}

}  // namespace

template <class T>
T cross_entropy(const Tensor<T>& logits, const Tensor<int64_t>& targets) {
  check(logits, targets, "cross_entropy");
  const int64_t N = logits.size(0);
  if (N == 0) return T(0);
  double total = 0;  // summed in double: N can be large and the mean should not drift
  for (int64_t n = 0; n < N; ++n) total += static_cast<double>(row_logsumexp(logits, n) - logits(n, targets(n)));
  return static_cast<T>(total / static_cast<double>(N));
}

template <class T>
Tensor<T> cross_entropy_backward(const Tensor<T>& logits, const Tensor<int64_t>& targets, T grad_loss) {
  check(logits, targets, "cross_entropy_backward");
  const int64_t N = logits.size(0), C = logits.size(1);
  Tensor<T> d({N, C});
  if (N == 0) return d;
  const T scale = grad_loss / static_cast<T>(N);
  for (int64_t n = 0; n < N; ++n) {
    const T lse = row_logsumexp(logits, n);
    for (int64_t c = 0; c < C; ++c) {
      const T p = std::exp(logits(n, c) - lse);  // softmax(logits[n])[c]
      d(n, c) = (p - (c == targets(n) ? T(1) : T(0))) * scale;
    }
  }
  return d;
}

template float cross_entropy(const Tensor<float>&, const Tensor<int64_t>&);
template double cross_entropy(const Tensor<double>&, const Tensor<int64_t>&);
template Tensor<float> cross_entropy_backward(const Tensor<float>&, const Tensor<int64_t>&, float);
template Tensor<double> cross_entropy_backward(const Tensor<double>&, const Tensor<int64_t>&, double);

}  // namespace attn

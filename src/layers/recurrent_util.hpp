// layers/recurrent_util.hpp — what the recurrent layers (GRU, LSTM) share:
// the three matrix products of a recurrent step, written as rows of axpy
// (c[:] += a · w[:]) so every inner loop walks contiguous memory and the
// compiler vectorises it without reassociating a sum (a dot-product loop
// needs -ffast-math for that); the parameter checks and torch's initialisation.
// Private to src/layers.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "attn/errors.hpp"
#include "attn/generator.hpp"
#include "attn/module.hpp"

namespace attn::detail {

// C[M, N] += A[M, K] · W[N, K]ᵀ, via Wt = Wᵀ [K, N] so the inner loop is over N.
template <class T>
void matmul_nt_add(const T* A, const T* W, T* C, int64_t M, int64_t K, int64_t N) {
  std::vector<T> Wt(static_cast<size_t>(K * N));  // [K, N]
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) Wt[static_cast<size_t>(k * N + n)] = W[n * K + k];
  for (int64_t m = 0; m < M; ++m) {
    T* c = C + m * N;
    for (int64_t k = 0; k < K; ++k) {
      const T a = A[m * K + k];
      const T* w = Wt.data() + k * N;
      for (int64_t n = 0; n < N; ++n) c[n] += a * w[n];
    }
  }
}

// C[M, K] += G[M, N] · W[N, K]   (the input gradient of y = x·Wᵀ)
template <class T>
void matmul_nn_add(const T* G, const T* W, T* C, int64_t M, int64_t N, int64_t K) {
  for (int64_t m = 0; m < M; ++m) {
    T* c = C + m * K;
    for (int64_t n = 0; n < N; ++n) {
      const T g = G[m * N + n];
      if (g == T(0)) continue;
      const T* w = W + n * K;
      for (int64_t k = 0; k < K; ++k) c[k] += g * w[k];
    }
  }
}

// dW[N, K] += G[M, N]ᵀ · A[M, K];  db[N] += Σ_m G[m, N] when db is given   (the weight gradient)
template <class T>
void matmul_tn_add(const T* G, const T* A, T* dW, T* db, int64_t M, int64_t N, int64_t K) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      const T g = G[m * N + n];
      if (g == T(0)) continue;
      if (db) db[n] += g;
      const T* a = A + m * K;
      T* d = dW + n * K;
      for (int64_t k = 0; k < K; ++k) d[k] += g * a[k];
    }
}

template <class T>
T sigmoid(T v) {
  return T(1) / (T(1) + std::exp(-v));
}

// Parameters are created contiguous here and load_state_dict copies into them,
// so data() walks them row-major; a grad of the wrong shape is refused.
template <class T>
void check_param(const Parameter<T>& p, const std::string& where, const std::string& name) {
  if (p.grad.shape() != p.value.shape() || !p.value.is_contiguous() || !p.grad.is_contiguous())
    throw ShapeError(where + ": " + name + ".grad has shape " + shape_str(p.grad.shape()) + ", expected " +
                     shape_str(p.value.shape()) + " (contiguous)");
}

// torch's reset_parameters(): every parameter U(−1/√H, 1/√H), in state_dict order.
template <class T>
void init_uniform(const std::vector<NamedParameter<T>>& params, int64_t hidden_size, Generator& gen) {
  const double stdv = 1.0 / std::sqrt(static_cast<double>(hidden_size));
  for (const auto& np : params) gen.uniform_(np.param->value, -stdv, stdv);
}

}  // namespace attn::detail

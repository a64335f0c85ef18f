// sdpa_run.hpp — run a described attention call on the path it picks (internal).
//
// The public scaled_dot_product_attention (src/sdpa.cpp) is
//   describe_sdpa (src/sdpa_problem.hpp)  →  run_sdpa_forward (here)
// and varlen_attention (src/varlen.cpp) runs one described call per packed
// sequence through the same two functions, so a packed batch takes exactly
// the route, the backend choice and the kernels of an SDPA call.
#pragma once

#include "attn/sdpa.hpp"
#include "sdpa_problem.hpp"

namespace attn {

/// The implementation for a described call: options.backend, with Auto
/// resolved (Reference for tiny problems or non-float T). ValueError if
/// Fast was asked for and the fast path does not take the call.
template <class T>
SdpaBackend choose_sdpa_backend(const char* fn, const SdpaProblem<T>& problem, bool backward);

/// Forward of a described call (checked already). `out` [B, Hq, Lq, Dv] and
/// `lse` [B, Hq, Lq] are written in place when defined (any strides: views
/// into a larger buffer work), else allocated. With options.return_weights,
/// `*weights` is set too (needs weights != nullptr).
template <class T>
void run_sdpa_forward(const char* fn, const SdpaProblem<T>& problem, const Tensor<T>& query, const Tensor<T>& key,
                      const Tensor<T>& value, Tensor<T>& out, Tensor<T>& lse, Tensor<T>* weights = nullptr);

/// Backward of a described call (checked already, check_sdpa_backward included).
template <class T>
SdpaGradients<T> run_sdpa_backward(const char* fn, const SdpaProblem<T>& problem, const Tensor<T>& grad_output,
                                   const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                                   const Tensor<T>& output, const Tensor<T>& lse, bool need_float_mask_grad);

}  // namespace attn

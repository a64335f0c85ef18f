// reference/sdpa.hpp — the reference path of scaled dot-product attention
// (internal). The public attn::scaled_dot_product_attention (src/sdpa.cpp)
// checks and describes its arguments once (src/sdpa_problem.hpp), then runs
// these plain loops or the fast kernel of src/cpu/flash_attention.hpp on the
// description; tests that check the fast path pass SdpaBackend::Reference to
// get these.
#pragma once

#include "attn/sdpa.hpp"
#include "sdpa_problem.hpp"

namespace attn::reference {

/// The plain-loop forward and backward of a described call (checked already:
/// nothing is checked again; options.backend is ignored).
template <class T>
SdpaResult<T> scaled_dot_product_attention(const SdpaProblem<T>& problem, const Tensor<T>& query,
                                           const Tensor<T>& key, const Tensor<T>& value);

template <class T>
SdpaGradients<T> scaled_dot_product_attention_backward(const SdpaProblem<T>& problem, const Tensor<T>& grad_output,
                                                       const Tensor<T>& query, const Tensor<T>& key,
                                                       const Tensor<T>& value, const Tensor<T>& output,
                                                       const Tensor<T>& lse, bool need_float_mask_grad);

/// The same with the public functions' contract: the arguments are checked
/// first (options.backend is ignored).
template <class T>
SdpaResult<T> scaled_dot_product_attention(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                                           const SdpaOptions<T>& options = {});

template <class T>
SdpaGradients<T> scaled_dot_product_attention_backward(const Tensor<T>& grad_output, const Tensor<T>& query,
                                                       const Tensor<T>& key, const Tensor<T>& value,
                                                       const Tensor<T>& output, const Tensor<T>& lse,
                                                       const SdpaOptions<T>& options = {},
                                                       bool need_float_mask_grad = false);

}  // namespace attn::reference

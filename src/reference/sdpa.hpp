// reference/sdpa.hpp — the reference path of scaled dot-product attention
// (internal). The public attn::scaled_dot_product_attention (src/sdpa.cpp)
// validates its arguments here, then runs these plain loops or the fast
// kernel of src/cpu/flash_attention.hpp; tests that check the fast path pass
// SdpaBackend::Reference to get these.
#pragma once

#include "attn/sdpa.hpp"

namespace attn::reference {

/// Throws what attn/sdpa.hpp lists under "Errors" for the forward arguments;
/// `fn` starts each message.
template <class T>
void check_sdpa_arguments(const char* fn, const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                          const SdpaOptions<T>& options);

/// The same for backward: the forward's checks, then grad_output, output, lse.
template <class T>
void check_sdpa_backward_arguments(const char* fn, const Tensor<T>& grad_output, const Tensor<T>& query,
                                   const Tensor<T>& key, const Tensor<T>& value, const Tensor<T>& output,
                                   const Tensor<T>& lse, const SdpaOptions<T>& options, bool need_float_mask_grad);

/// The plain-loop forward and backward, with the public functions' contract
/// (options.backend is ignored).
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

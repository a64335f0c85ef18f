// attn/rope.hpp — rotary position embeddings (RoPE, Su et al. 2021).
//
// RoPE encodes a token's position p by rotating pairs of its query/key
// coordinates by angles p·ω_i, one frequency per pair:
//
//   ω_i = theta^(−2i / R),   i = 0 .. R/2 − 1     (R = rotary_dim, theta = 10000 by default)
//   [y_a]   [cos(p·ω_i)  −sin(p·ω_i)] [x_a]
//   [y_b] = [sin(p·ω_i)   cos(p·ω_i)] [x_b]
//
// Because rotations compose, (R_p q)·(R_s k) = q·(R_{s−p} k): after RoPE a
// query–key score depends on the two positions only through their difference.
//
// Which coordinates form pair i is the layout:
//   RopeLayout::Half        (GPT-NeoX, Llama in Hugging Face): a = i, b = i + R/2
//                           ("rotate_half": the first half against the second half)
//   RopeLayout::Interleaved (GPT-J, the RoFormer paper, Meta's Llama code): a = 2i, b = 2i + 1
// Coordinates R .. D−1 are copied unchanged (partial rotary, GPT-NeoX's rotary_pct).
//
// Shapes: x [B, H, L, D], any strides (so a [B, L, H, D] tensor viewed with
// transpose(1, 2) works). Positions are either start_pos + l for token l (a
// KV-cache step that starts at start_pos) or an integer tensor positions [L]
// (shared by the batch) or [B, L]. The result is a new contiguous [B, H, L, D].
// The angles are computed in double and cos/sin rounded to T once.
//
// Backward: RoPE is linear and orthogonal, so dL/dx = R_pᵀ·dL/dy = R_{−p}·dL/dy,
// the rotation by the opposite angle: apply_rope_backward.
//
// Errors: ShapeError if x is not rank 4 or positions is not [L] / [B, L];
// ValueError if rotary_dim is odd, negative (other than −1) or > D, if theta
// is not finite or <= 0, or if start_pos or a position is negative.
#pragma once

#include <cstdint>

#include "attn/tensor.hpp"

namespace attn {

/// Which coordinates RoPE rotates together (see the file comment).
enum class RopeLayout {
  Half,         ///< GPT-NeoX / HF Llama: pair (i, i + R/2)
  Interleaved,  ///< GPT-J / RoFormer: pair (2i, 2i + 1)
};

struct RopeOptions {
  double theta = 10000.0;               ///< base of the frequencies ω_i = theta^(−2i/R); > 0
  RopeLayout layout = RopeLayout::Half;
  int64_t rotary_dim = -1;              ///< R: rotate only the first R dims (even, <= D); −1 = all of D
};

/// y = RoPE(x) with token l of every sequence at position start_pos + l.
template <class T>
Tensor<T> apply_rope(const Tensor<T>& x, int64_t start_pos = 0, const RopeOptions& options = {});

/// y = RoPE(x) with token l at positions[l] (positions [L]) or positions[b, l] ([B, L]).
template <class T>
Tensor<T> apply_rope(const Tensor<T>& x, const Tensor<int64_t>& positions, const RopeOptions& options = {});

/// dL/dx given dL/dy: the inverse rotation R_{−p} of grad_output [B, H, L, D].
template <class T>
Tensor<T> apply_rope_backward(const Tensor<T>& grad_output, int64_t start_pos = 0, const RopeOptions& options = {});
template <class T>
Tensor<T> apply_rope_backward(const Tensor<T>& grad_output, const Tensor<int64_t>& positions,
                              const RopeOptions& options = {});

}  // namespace attn

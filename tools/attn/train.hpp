// tools/attn/train.hpp — `attn train`'s model for other subcommands: `attn view`
// trains it (quietly, the same steps and seeds) and shows what it learned.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <attn/multihead_attention.hpp>
#include <attn/tensor.hpp>

namespace attn::cli {

struct LearnedAttention {
  std::vector<std::string> tokens;  ///< "the cat sat on the mat because it was warm", 10 tokens
  std::vector<Tensor<float>> heads; ///< per head [L, L], causal: softmax(Q_h K_hᵀ/√hd + mask)
  std::string predicted;            ///< the model's answer for that sentence ("mat" once learned)
  int64_t steps = 0, d_model = 0;
  uint64_t seed = 0;
  double heldout_accuracy = 0;
  float final_loss = 0;
};

/// The per-head weights of `mha` on x [1, L, d_in] with the causal mask:
/// [H] × [L, L], softmax(Q_h K_hᵀ/√head_dim + mask), through the library's SDPA.
std::vector<Tensor<float>> causal_head_weights(const MultiHeadAttention<float>& mha, const Tensor<float>& x);

/// Trains `attn train --steps S --seed SEED`'s model (other options at their
/// defaults) with no output and no files; deterministic, as `attn train` is.
LearnedAttention learned_attention(int64_t steps = 600, uint64_t seed = 0);

}  // namespace attn::cli

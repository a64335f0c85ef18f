// attn/embedding.hpp — a lookup table of learned vectors, PyTorch's nn.Embedding.
//
//   ids [...] (integers in [0, num_embeddings)) → out [..., embedding_dim]
//   out[..., :] = weight[ids[...], :]
//   weight [num_embeddings, embedding_dim] (state_dict name "weight"),
//   initialised as nn.Embedding does: N(0, 1), i.e. torch.randn from the
//   given Generator, so manual_seed(s) + Embedding(n, d) equals torch's weights.
//
// The backward of a lookup is a scatter-add: every row that was looked up
// receives the gradient of each place it was used (a token that occurs twice
// gets both gradients added). The ids themselves get no gradient.
#pragma once

#include <cstdint>
#include <vector>

#include "attn/generator.hpp"
#include "attn/module.hpp"
#include "attn/tensor.hpp"

namespace attn {

template <class T>
class Embedding : public Module<T> {
 public:
  /// Throws ValueError if a size is negative.
  Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen = default_generator());
  int64_t num_embeddings() const { return num_embeddings_; }
  int64_t embedding_dim() const { return embedding_dim_; }

  /// ids of any shape (any strides) → [*ids.shape(), embedding_dim]. Throws
  /// ValueError naming the first id outside [0, num_embeddings). Saves ids.
  Tensor<T> forward(const Tensor<int64_t>& ids);
  /// weight.grad[ids[k], :] += grad_output[k, :] for every position k.
  /// grad_output must have the forward output's shape (ShapeError otherwise).
  void backward(const Tensor<T>& grad_output);

  std::vector<NamedParameter<T>> named_parameters() override;

  Parameter<T> weight;  ///< [num_embeddings, embedding_dim]

 private:
  int64_t num_embeddings_, embedding_dim_;
  Tensor<int64_t> saved_ids_;  // the forward's ids, for backward
};

}  // namespace attn

// attn/embedding.hpp — torch.nn.Embedding: a lookup table of token vectors.
//
//   ids     [...]       int64 token ids, each in [0, num_embeddings)
//   weight  [N, D]      one row per token (state_dict name "weight"),
//                       initialised N(0, 1) as torch does, from the Generator
//   output  [..., D]    output[..., :] = weight[id, :]
// backward(d_output) adds each d_output row into the row of its id (an id that
// occurs twice gets both), as torch's dense embedding gradient does. The ids
// get no gradient: they are not numbers one can nudge.
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
  /// Throws ValueError unless num_embeddings > 0 and embedding_dim > 0.
  Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen = default_generator());
  /// Zero weights, nothing drawn: for weights loaded afterwards (see SkipInit).
  Embedding(int64_t num_embeddings, int64_t embedding_dim, SkipInit);

  /// Returns [..., D]; saves the ids. Throws ValueError naming an id outside [0, N).
  Tensor<T> forward(const Tensor<int64_t>& ids);
  /// Accumulates d_output [..., D] into weight.grad. Throws ShapeError on a wrong shape.
  void backward(const Tensor<T>& grad_output);

  std::vector<NamedParameter<T>> named_parameters() override { return {{"weight", &weight}}; }

  int64_t num_embeddings() const { return num_embeddings_; }
  int64_t embedding_dim() const { return embedding_dim_; }

  Parameter<T> weight;  ///< [num_embeddings, embedding_dim]

 private:
  int64_t num_embeddings_, embedding_dim_;
  Tensor<int64_t> ids_;  // saved by forward
};

}  // namespace attn

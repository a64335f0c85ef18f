// embedding.cpp — torch.nn.Embedding: forward is a row lookup, backward a
// scatter-add of the output gradient into the rows that were looked up.
//   ids     [R]      (the caller's shape flattened)
//   weight  [N, D]
//   output  [R, D]   reshaped to ids.shape + [D]
#include "attn/embedding.hpp"

#include <string>

#include "layers/layer_util.hpp"

namespace attn {

template <class T>
Embedding<T>::Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen)
    : weight({detail::positive(num_embeddings, "Embedding", "num_embeddings"),
              detail::positive(embedding_dim, "Embedding", "embedding_dim")}),
      num_embeddings_(num_embeddings),
      embedding_dim_(embedding_dim) {
  gen.normal_(weight.value, 0.0, 1.0);  // torch: init.normal_(self.weight)
}

template <class T>
Embedding<T>::Embedding(int64_t num_embeddings, int64_t embedding_dim, SkipInit)
    : weight({detail::positive(num_embeddings, "Embedding", "num_embeddings"),
              detail::positive(embedding_dim, "Embedding", "embedding_dim")}),
      num_embeddings_(num_embeddings),
      embedding_dim_(embedding_dim) {}

template <class T>
Tensor<T> Embedding<T>::forward(const Tensor<int64_t>& ids) {
  if (!ids.defined()) throw ShapeError("Embedding.forward: ids is undefined, expected a tensor of token ids");
  const int64_t R = ids.numel(), D = embedding_dim_;
  Shape out_shape = ids.shape();
  out_shape.push_back(D);
  Tensor<T> out(out_shape);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t id = ids.flat(r);
    if (id < 0 || id >= num_embeddings_)
      throw ValueError("Embedding.forward: ids contains " + std::to_string(id) + ", expected 0 <= id < num_embeddings (" +
                       std::to_string(num_embeddings_) + ")");
    for (int64_t d = 0; d < D; ++d) out.data()[r * D + d] = weight.value(id, d);
  }
  ids_ = ids.clone();
  return out;
}

template <class T>
void Embedding<T>::backward(const Tensor<T>& grad_output) {
  detail::check_forward_ran(ids_.defined(), "Embedding.backward");
  Shape want = ids_.shape();
  want.push_back(embedding_dim_);
  detail::check_grad_shape(grad_output, want, "Embedding.backward");
  // in the forward pass this was out[r, :] = weight[id_r, :], so dweight[id_r, :] += dout[r, :]
  const Tensor<T> g = grad_output.contiguous();
  const int64_t D = embedding_dim_;
  for (int64_t r = 0; r < ids_.numel(); ++r)
    for (int64_t d = 0; d < D; ++d) weight.grad(ids_.flat(r), d) += g.data()[r * D + d];
}

template class Embedding<float>;
template class Embedding<double>;

}  // namespace attn

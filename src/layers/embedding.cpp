// embedding.cpp — nn.Embedding: a row lookup forward, a scatter-add backward.
//
// Buffers (K = ids.numel(), the number of lookups; D = embedding_dim):
//   ids     [...]        viewed as [K]
//   weight  [V, D]
//   out     [..., D]     viewed as [K, D]
//   dout    [..., D]     same shape as out
#include "attn/embedding.hpp"

#include <string>

#include "attn/errors.hpp"

namespace attn {

template <class T>
Embedding<T>::Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen)
    : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {
  if (num_embeddings < 0 || embedding_dim < 0)
    throw ValueError("Embedding: num_embeddings = " + std::to_string(num_embeddings) + " and embedding_dim = " +
                     std::to_string(embedding_dim) + " must be >= 0");
  // nn.Embedding.reset_parameters(): init.normal_(weight), the same draws as torch.randn.
  weight.value = randn<T>({num_embeddings, embedding_dim}, gen);
  weight.grad = Tensor<T>({num_embeddings, embedding_dim});
}

template <class T>
std::vector<NamedParameter<T>> Embedding<T>::named_parameters() {
  return {{"weight", &weight}};
}

template <class T>
Tensor<T> Embedding<T>::forward(const Tensor<int64_t>& ids) {
  const int64_t K = ids.numel(), D = embedding_dim_;
  Shape out_shape = ids.shape();
  out_shape.push_back(D);
  Tensor<T> out(out_shape);  // [K, D] in memory
  for (int64_t k = 0; k < K; ++k) {
    const int64_t id = ids.flat(k);
    if (id < 0 || id >= num_embeddings_)
      throw ValueError("Embedding::forward: ids (shape " + shape_str(ids.shape()) + ") holds " + std::to_string(id) +
                       " at flat index " + std::to_string(k) + ", outside [0, " + std::to_string(num_embeddings_) +
                       ")");
    for (int64_t d = 0; d < D; ++d) out.flat(k * D + d) = weight.value(id, d);
  }
  saved_ids_ = ids;
  return out;
}

template <class T>
void Embedding<T>::backward(const Tensor<T>& grad_output) {
  if (!saved_ids_.defined())
    throw ValueError("Embedding::backward: no saved ids; call forward() before backward()");
  Shape want = saved_ids_.shape();
  want.push_back(embedding_dim_);
  if (!grad_output.defined() || grad_output.shape() != want)
    throw ShapeError("Embedding::backward: grad_output has shape " +
                     (grad_output.defined() ? shape_str(grad_output.shape()) : std::string("undefined")) +
                     ", expected " + shape_str(want) + " (the forward output's shape)");
  const int64_t K = saved_ids_.numel(), D = embedding_dim_;
  const Tensor<T> g = grad_output.contiguous();  // [K, D]
  for (int64_t k = 0; k < K; ++k) {
    const int64_t id = saved_ids_.flat(k);
    for (int64_t d = 0; d < D; ++d) weight.grad(id, d) += g.flat(k * D + d);  // repeated ids add up
  }
}

template class Embedding<float>;
template class Embedding<double>;

}  // namespace attn

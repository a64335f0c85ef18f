// attn/lstm.hpp — long short-term memory (Hochreiter & Schmidhuber 1997),
// torch.nn.LSTM with one layer and one direction, with backward through time.
//
// One step, in PyTorch's gate order i, f, g, o:
//   i  = σ(W_ii·x + b_ii + W_hi·h + b_hi)     input gate       [B, H]
//   f  = σ(W_if·x + b_if + W_hf·h + b_hf)     forget gate      [B, H]
//   g  = tanh(W_ig·x + b_ig + W_hg·h + b_hg)  candidate cell   [B, H]
//   o  = σ(W_io·x + b_io + W_ho·h + b_ho)     output gate      [B, H]
//   c' = f ⊙ c + i ⊙ g                        next cell state
//   h' = o ⊙ tanh(c')                         next hidden state
//
// Parameters (torch's state_dict names and layout, U(−1/√H, 1/√H) in this
// order from the Generator, so manual_seed(s) gives torch's weights):
//   weight_ih_l0 [4H, I]  W_ii | W_if | W_ig | W_io      weight_hh_l0 [4H, H]
//   bias_ih_l0   [4H]                                   bias_hh_l0   [4H]
// Shapes as attn::GRU (see gru.hpp), with the cell state beside h:
//   input [L, B, I] ([B, L, I] batch_first, [L, I] unbatched); h0, c0, h_n,
//   c_n [1, B, H] ([1, H] unbatched); output [L, B, H]. `lengths` behaves as
//   pack_padded_sequence: padding steps keep (h, c) and output 0.
#pragma once

#include <cstdint>
#include <vector>

#include "attn/generator.hpp"
#include "attn/module.hpp"
#include "attn/tensor.hpp"

namespace attn {

template <class T>
struct LSTMOutput {
  Tensor<T> output;  ///< [L, B, H] ([B, L, H] batch_first, [L, H] unbatched)
  Tensor<T> h_n;     ///< [1, B, H] ([1, H] unbatched)
  Tensor<T> c_n;     ///< same shape as h_n
};

template <class T>
struct LSTMGradients {
  Tensor<T> d_input;  ///< shape of the input
  Tensor<T> d_h0;     ///< shape of h_n
  Tensor<T> d_c0;     ///< shape of c_n
};

template <class T>
class LSTM : public Module<T> {
 public:
  /// Throws ValueError if input_size or hidden_size is not positive.
  LSTM(int64_t input_size, int64_t hidden_size, bool bias = true, bool batch_first = false,
       Generator& gen = default_generator());

  /// h0 and c0: both given or both undefined (zeros), as torch takes (h0, c0).
  /// Saves the input, every (h, c) and the gates i, f, g, o of every step.
  /// Throws ShapeError for a wrong rank, width or state shape, ValueError for bad lengths.
  LSTMOutput<T> forward(const Tensor<T>& input, const Tensor<T>& h0 = {}, const Tensor<T>& c0 = {},
                        const std::vector<int64_t>& lengths = {});
  /// Backward through time; each gradient may be undefined (= 0). Accumulates parameter grads.
  LSTMGradients<T> backward(const Tensor<T>& grad_output, const Tensor<T>& grad_h_n = {},
                            const Tensor<T>& grad_c_n = {});

  std::vector<NamedParameter<T>> named_parameters() override;

  Parameter<T> weight_ih_l0;  ///< [4H, I]
  Parameter<T> weight_hh_l0;  ///< [4H, H]
  Parameter<T> bias_ih_l0;    ///< [4H] (size 0 when bias = false)
  Parameter<T> bias_hh_l0;    ///< [4H]

 private:
  int64_t input_size_, hidden_size_;
  bool has_bias_, batch_first_;
  int64_t L_ = 0, B_ = 0, input_rank_ = 0;
  bool ran_ = false;
  std::vector<int64_t> lengths_;  // [B]
  Tensor<T> x_;      // [L, B, I]
  Tensor<T> hs_;     // [L + 1, B, H]   hs_[0] = h0
  Tensor<T> cs_;     // [L + 1, B, H]   cs_[0] = c0
  Tensor<T> gates_;  // [L, B, 4H]      i | f | g | o after σ / tanh
};

}  // namespace attn

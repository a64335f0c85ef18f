// attn/gru.hpp — the gated recurrent unit (Cho et al. 2014), torch.nn.GRU and
// torch.nn.GRUCell, with backward through time.
//
// The recurrent network is what attention was invented to help (notes 000 and
// 002): an encoder GRU reads the input one token at a time and squeezes all of
// it into its hidden state h. One step, in PyTorch's gate order r, z, n:
//
//   r  = σ(W_ir·x + b_ir + W_hr·h + b_hr)          reset gate      [B, H]
//   z  = σ(W_iz·x + b_iz + W_hz·h + b_hz)          update gate     [B, H]
//   n  = tanh(W_in·x + b_in + r ⊙ (W_hn·h + b_hn))  candidate state [B, H]
//   h' = (1 − z) ⊙ n + z ⊙ h                        next state      [B, H]
//
// Parameters (state_dict names and layout exactly as torch.nn.GRU, one layer):
//   weight_ih_l0 [3H, I]   rows [0, H) = W_ir, [H, 2H) = W_iz, [2H, 3H) = W_in
//   weight_hh_l0 [3H, H]   same row blocks for W_hr, W_hz, W_hn
//   bias_ih_l0   [3H]      b_ir | b_iz | b_in      (absent when bias = false)
//   bias_hh_l0   [3H]      b_hr | b_hz | b_hn
// GRUCell names them weight_ih, weight_hh, bias_ih, bias_hh. Both initialise
// every parameter U(−1/√H, 1/√H) in that order from the given Generator, as
// torch's reset_parameters() does, so manual_seed(s) gives torch's weights.
//
// Shapes (L = sequence length, B = batch, I = input_size, H = hidden_size):
//   input   [L, B, I]  ([B, L, I] with batch_first; [L, I] unbatched)
//   h0      [1, B, H]  ([1, H] unbatched; undefined = zeros)
//   output  [L, B, H]  the state after every step (batch_first: [B, L, H])
//   h_n     [1, B, H]  the final state
// Only one layer, one direction (num_layers = 1, bidirectional = False).
//
// Variable lengths: forward(x, h0, lengths) with one length per sequence
// behaves as torch's pack_padded_sequence → GRU → pad_packed_sequence: steps
// t >= lengths[b] are padding; they leave the state unchanged, their output is
// 0, and h_n[b] is the state after step lengths[b] − 1 (h0 if the length is 0).
#pragma once

#include <cstdint>
#include <vector>

#include "attn/generator.hpp"
#include "attn/module.hpp"
#include "attn/tensor.hpp"

namespace attn {

template <class T>
struct GRUOutput {
  Tensor<T> output;  ///< [L, B, H] ([B, L, H] batch_first, [L, H] unbatched)
  Tensor<T> h_n;     ///< [1, B, H] ([1, H] unbatched)
};

template <class T>
struct GRUGradients {
  Tensor<T> d_input;  ///< shape of the input
  Tensor<T> d_h0;     ///< shape of h0 (zeros-h0 still gets its gradient, [1, B, H])
};

/// torch.nn.GRU with num_layers = 1, bidirectional = False.
template <class T>
class GRU : public Module<T> {
 public:
  /// Throws ValueError if input_size or hidden_size is not positive.
  GRU(int64_t input_size, int64_t hidden_size, bool bias = true, bool batch_first = false,
      Generator& gen = default_generator());

  /// Runs the whole sequence. `lengths` (optional, one per sequence, each in
  /// [0, L]) marks padding, see the file comment. Saves for backward: the input,
  /// every state h_0..h_L, the gates r, z, n and W_hn·h + b_hn of every step.
  /// Throws ShapeError for a wrong rank, width or h0 shape; ValueError for bad lengths.
  GRUOutput<T> forward(const Tensor<T>& input, const Tensor<T>& h0 = {}, const std::vector<int64_t>& lengths = {});

  /// Backward through time from dL/doutput (shape of output; undefined = 0)
  /// and dL/dh_n (shape of h_n; undefined = 0). Returns dL/dinput and dL/dh0;
  /// accumulates into every parameter's grad.
  GRUGradients<T> backward(const Tensor<T>& grad_output, const Tensor<T>& grad_h_n = {});

  std::vector<NamedParameter<T>> named_parameters() override;

  int64_t input_size() const { return input_size_; }
  int64_t hidden_size() const { return hidden_size_; }
  bool batch_first() const { return batch_first_; }

  Parameter<T> weight_ih_l0;  ///< [3H, I]  W_ir | W_iz | W_in
  Parameter<T> weight_hh_l0;  ///< [3H, H]  W_hr | W_hz | W_hn
  Parameter<T> bias_ih_l0;    ///< [3H] (size 0 when bias = false)
  Parameter<T> bias_hh_l0;    ///< [3H]

 private:
  int64_t input_size_, hidden_size_;
  bool has_bias_, batch_first_;
  // saved by forward (time-major, contiguous)
  int64_t L_ = 0, B_ = 0, input_rank_ = 0;
  bool ran_ = false;
  std::vector<int64_t> lengths_;  // [B]
  Tensor<T> x_;                   // [L, B, I]
  Tensor<T> hs_;                  // [L + 1, B, H]   hs_[0] = h0, hs_[t + 1] = state after step t
  Tensor<T> gates_;               // [L, B, 3H]      r | z | n after their nonlinearities
  Tensor<T> hn_;                  // [L, B, H]       W_hn·h + b_hn (r multiplies it, so dr needs it)
};

/// torch.nn.GRUCell: one step, h' = GRU(x, h). backward() inverts the last forward().
template <class T>
class GRUCell : public Module<T> {
 public:
  GRUCell(int64_t input_size, int64_t hidden_size, bool bias = true, Generator& gen = default_generator());

  /// x [B, I] or [I]; h [B, H] or [H] (undefined = zeros). Returns h' [B, H] ([H]).
  Tensor<T> forward(const Tensor<T>& x, const Tensor<T>& h = {});
  /// Returns dL/dx and dL/dh (in GRUGradients' d_input, d_h0), accumulates parameter grads.
  GRUGradients<T> backward(const Tensor<T>& grad_h_next);

  std::vector<NamedParameter<T>> named_parameters() override;

  Parameter<T> weight_ih;  ///< [3H, I]
  Parameter<T> weight_hh;  ///< [3H, H]
  Parameter<T> bias_ih;    ///< [3H] (size 0 when bias = false)
  Parameter<T> bias_hh;    ///< [3H]

 private:
  int64_t input_size_, hidden_size_;
  bool has_bias_;
  int64_t B_ = 0, input_rank_ = 0;
  bool ran_ = false;
  Tensor<T> x_, h_, gates_, hn_;  // [B, I], [B, H], [B, 3H], [B, H]
};

}  // namespace attn

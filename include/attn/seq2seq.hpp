// attn/seq2seq.hpp — a GRU encoder–decoder, with or without attention: the
// experiment of notes 000/002 and of Bahdanau, Cho & Bengio (2014) in one class.
//
// The encoder reads the source tokens x_1..x_Ls into states h_1..h_Ls. The
// decoder starts from the encoder's final state h_Ls and, fed the previous
// target token (teacher forcing while training, its own guess while
// decoding greedily), produces states s_1..s_Lt and predicts each target token.
//
//   bottleneck  (attention = false): logits_i = W_out·s_i + b
//               everything the decoder knows about the source went through
//               h_Ls, one vector of hidden_dim numbers, whatever the length.
//   attention   (attention = true): α_i = softmax_j(vᵀ tanh(W_s·s_i + W_h·h_j)),
//               c_i = Σ_j α_ij h_j (attn::AdditiveAttention, padded source
//               steps masked), logits_i = W_out·[s_i; c_i] + b
//               every encoder state stays reachable at every output step.
// The additive score is Bahdanau's; the context joins the decoder state at the
// output rather than feeding the next recurrent step (Luong et al. 2015's
// arrangement), so the teacher-forced decoder runs as one GRU call and the
// attention over all target steps as one AdditiveAttention call.
//
// Shapes (B batch, Ls source steps, Lt target steps, E embed_dim, H hidden_dim,
// V target vocabulary):
//   src       [B, Ls] int64     padding beyond src_lengths[b] (any id) is ignored
//   tgt_in    [B, Lt] int64     decoder inputs: BOS, y_1, ..., y_{Lt-1}
//   enc       [B, Ls, H]        encoder states (0 at padding)
//   dec       [B, Lt, H]        decoder states
//   context   [B, Lt, H]        (attention only)
//   logits    [B, Lt, V]
// Parameter names: src_embed.weight, tgt_embed.weight, encoder.*_l0,
// decoder.*_l0, attention.{W_s,W_h,v}.weight (attention only), out.weight, out.bias.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "attn/additive_attention.hpp"
#include "attn/embedding.hpp"
#include "attn/generator.hpp"
#include "attn/gru.hpp"
#include "attn/linear.hpp"
#include "attn/module.hpp"
#include "attn/tensor.hpp"

namespace attn {

struct Seq2SeqConfig {
  int64_t src_vocab = 0;      ///< source token ids are in [0, src_vocab)
  int64_t tgt_vocab = 0;      ///< target ids (and BOS) are in [0, tgt_vocab)
  int64_t embed_dim = 16;     ///< E
  int64_t hidden_dim = 64;    ///< H, the encoder's and decoder's state width
  int64_t attention_dim = 64; ///< A, AdditiveAttention's hidden width
  bool attention = false;     ///< false: the bottleneck model; true: with attention
};

template <class T>
class Seq2Seq : public Module<T> {
 public:
  /// Throws ValueError for a size that is not positive. Parameters are drawn
  /// from `gen` in the order of named_parameters().
  explicit Seq2Seq(const Seq2SeqConfig& config, Generator& gen = default_generator());

  /// Teacher-forced logits [B, Lt, V]. Saves what backward needs (every
  /// sub-layer saves its own inputs). Throws ShapeError for mismatched
  /// batches or a wrong src_lengths size, ValueError for an id out of range.
  Tensor<T> forward(const Tensor<int64_t>& src, const std::vector<int64_t>& src_lengths, const Tensor<int64_t>& tgt_in);
  /// From d logits [B, Lt, V], accumulates every parameter's grad.
  void backward(const Tensor<T>& grad_logits);

  /// Greedy decoding: starting from `bos`, `steps` times feed the argmax back
  /// in. Returns the ids [B, steps]. With attention and `weights` given,
  /// fills it with the attention weights [B, steps, Ls] (rows sum to 1 over
  /// the unpadded source steps).
  Tensor<int64_t> greedy_decode(const Tensor<int64_t>& src, const std::vector<int64_t>& src_lengths, int64_t bos,
                                int64_t steps, Tensor<T>* weights = nullptr);

  std::vector<NamedParameter<T>> named_parameters() override;
  const Seq2SeqConfig& config() const { return config_; }

  Embedding<T> src_embed;  ///< [src_vocab, E]
  Embedding<T> tgt_embed;  ///< [tgt_vocab, E]
  GRU<T> encoder;          ///< E → H, batch_first
  GRU<T> decoder;          ///< E → H, batch_first
  std::unique_ptr<AdditiveAttention<T>> attention;  ///< null in the bottleneck model
  Linear<T> out;           ///< [V, H] or [V, 2H] with attention

 private:
  // Encodes src; returns the encoder states [B, Ls, H] and h_n [1, B, H].
  GRUOutput<T> encode(const Tensor<int64_t>& src, const std::vector<int64_t>& src_lengths, const char* where);
  Tensor<bool> padding_mask(int64_t B, int64_t Ls, const std::vector<int64_t>& src_lengths) const;

  Seq2SeqConfig config_;
  int64_t H_;
  Shape logits_shape_;  // saved by forward
};

}  // namespace attn

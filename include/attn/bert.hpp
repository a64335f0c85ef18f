// attn/bert.hpp — a BERT encoder (Hugging Face's BertModel, inference) built
// from the library's layers, and sentence embeddings from it (mean pooling +
// L2 normalisation, sentence-transformers' all-MiniLM-L6-v2 recipe).
//
//   input_ids       [B, L]  int64, token ids (WordPieceTokenizer::encode)
//   attention_mask  [B, L]  bool, True = a real token, False = padding;
//                           undefined = every token is real
//   hidden          [B, L, hidden_size]   last_hidden_state
//   attentions[l]   [B, heads, L, L]      layer l's attention weights (if asked)
//
// One layer, as BertLayer computes it (x: [B, L, hidden]):
//   q, k, v = query(x), key(x), value(x)           Linear, viewed [B, L, H, D], D = hidden / H
//   ctx     = SDPA(q, k, v, mask)                   attn::scaled_dot_product_attention on the
//                                                   [B, H, L, D] views (.transpose(1, 2), no copy);
//                                                   the mask [B, 1, 1, L] hides padded keys
//   x       = LayerNorm(x + dense(ctx))             attention.output
//   x       = LayerNorm(x + dense(gelu(dense(x))))  intermediate + output
// Embeddings: word[id] + position[i] + token_type[0], then LayerNorm.
//
// Weights are loaded by their BertModel state_dict names
// ("embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight",
// ...; a "bert." prefix, as BertFor* models save them, is accepted; the pooler
// and unused buffers are ignored). Errors name the file and the tensor:
//   IOError     the directory, config.json or model.safetensors missing or unreadable,
//               config.json not JSON, model.safetensors malformed or truncated
//   ValueError  config.json's model_type not "bert", hidden_act not "gelu",
//               a field missing or out of range, a tensor missing
//   ShapeError  a tensor of the wrong shape (seen and expected shapes named)
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "attn/embedding.hpp"
#include "attn/layer_norm.hpp"
#include "attn/linear.hpp"
#include "attn/module.hpp"
#include "attn/tensor.hpp"

namespace attn {

/// The fields of a BERT config.json this encoder uses.
struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;

  /// Parses and checks config.json (model_type "bert", hidden_act "gelu",
  /// position_embedding_type "absolute" if given, positive sizes, hidden_size
  /// divisible by the heads). Throws IOError / ValueError naming `path`.
  static BertConfig from_json_file(const std::string& path);
  /// Throws ValueError naming the first field out of range.
  void validate(const std::string& source = "BertConfig") const;
};

/// One encoder layer (BertLayer); state_dict names as in BertModel's "encoder.layer.N.".
template <class T>
class BertLayer : public Module<T> {
 public:
  explicit BertLayer(const BertConfig& config);
  /// x [B, L, hidden], mask [B, L] bool or undefined. weights: if non-null,
  /// receives the attention weights [B, H, L, L].
  Tensor<T> forward(const Tensor<T>& x, const Tensor<bool>& attention_mask, Tensor<T>* weights = nullptr) const;
  std::vector<NamedParameter<T>> named_parameters() override;

  Linear<T> query, key, value, attention_dense;
  LayerNorm<T> attention_norm;
  Linear<T> intermediate, output_dense;
  LayerNorm<T> output_norm;

 private:
  int64_t heads_, head_dim_;
};

template <class T>
class BertModel : public Module<T> {
 public:
  /// Weights zero (LayerNorm: γ = 1, β = 0) until loaded (load_state_dict, load_bert_weights, from_pretrained).
  explicit BertModel(const BertConfig& config);

  /// Reads DIR/config.json and DIR/model.safetensors (see the errors above).
  static BertModel from_pretrained(const std::string& dir);

  struct Output {
    Tensor<T> last_hidden_state;        ///< [B, L, hidden]
    std::vector<Tensor<T>> attentions;  ///< per layer [B, H, L, L], if output_attentions
  };
  /// input_ids [B, L] (ids in [0, vocab_size), 1 <= L <= max_position_embeddings),
  /// attention_mask [B, L] bool or undefined. Throws ShapeError / ValueError.
  Output forward(const Tensor<int64_t>& input_ids, const Tensor<bool>& attention_mask = {},
                 bool output_attentions = false) const;

  std::vector<NamedParameter<T>> named_parameters() override;
  const BertConfig& config() const { return config_; }

  Embedding<T> word_embeddings, position_embeddings, token_type_embeddings;
  LayerNorm<T> embeddings_norm;
  std::vector<BertLayer<T>> layers;

 private:
  BertConfig config_;
};

/// Loads a BertModel's weights from `tensors` (state_dict names, optional
/// "bert." prefix; extra names ignored). Throws ValueError naming a missing
/// tensor and ShapeError naming one of the wrong shape; `source` (a file name)
/// starts each message.
template <class T>
void load_bert_weights(BertModel<T>& model, const std::map<std::string, Tensor<T>>& tensors,
                       const std::string& source);

/// Mean of hidden [B, L, D] over the positions where attention_mask [B, L] is
/// True (all positions if undefined) → [B, D]; a row with no True gives 0.
template <class T>
Tensor<T> mean_pooling(const Tensor<T>& hidden, const Tensor<bool>& attention_mask = {});

/// Each row of x [B, D] divided by max(‖row‖₂, 1e-12) (torch's F.normalize).
template <class T>
Tensor<T> l2_normalize(const Tensor<T>& x);

}  // namespace attn

// tools/attn/bert_model.hpp — what `attn embed` and `attn heatmap --model`
// share: a BERT model directory (config.json, model.safetensors, vocab.txt)
// loaded into the library's BertModel and WordPieceTokenizer.
#pragma once

#include <filesystem>
#include <string>

#include <attn/bert.hpp>
#include <attn/errors.hpp>
#include <attn/wordpiece.hpp>

namespace attn::cli {

struct LoadedBert {
  BertModel<float> model;
  WordPieceTokenizer tokenizer;
  int64_t max_length;  ///< tokens per text, [CLS] and [SEP] included: min(512, max_position_embeddings)
};

/// Throws attn::IOError / ValueError / ShapeError naming the file or tensor.
inline LoadedBert load_bert_dir(const std::string& dir) {
  BertModel<float> model = BertModel<float>::from_pretrained(dir);  // checks the directory, config, weights
  const std::string vocab = (std::filesystem::path(dir) / "vocab.txt").string();
  WordPieceTokenizer tok = WordPieceTokenizer::from_vocab_file(vocab);
  if (tok.vocab_size() > model.config().vocab_size)
    throw ValueError(vocab + ": " + std::to_string(tok.vocab_size()) + " tokens, more than the model's vocab_size " +
                     std::to_string(model.config().vocab_size));
  const int64_t max_length = std::min<int64_t>(512, model.config().max_position_embeddings);
  if (max_length < 2) throw ValueError(dir + "/config.json: max_position_embeddings < 2 leaves no room for [CLS] [SEP]");
  return {std::move(model), std::move(tok), max_length};
}

}  // namespace attn::cli

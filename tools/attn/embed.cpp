// tools/attn/embed.cpp — `attn embed`: sentence embeddings from a real BERT
// model, computed by the library alone (no Python, no hub).
//
//   attn embed --model DIR [--json] [--batch-size N] TEXT...
//
// DIR holds config.json, model.safetensors and vocab.txt (a Hugging Face BERT
// directory, e.g. sentence-transformers' all-MiniLM-L6-v2). Each TEXT is
// tokenised (attn::WordPieceTokenizer: [CLS] ... [SEP], at most
// min(512, max_position_embeddings) tokens), run through attn::BertModel, and
// pooled as all-MiniLM-L6-v2 does: the mean of the last hidden states over
// the text's tokens, then L2-normalised. Texts run in batches of similar
// length, padded, with padded keys hidden by a bool mask. Prints each text's
// tokens and embedding and the cosine similarity of every pair (the dot
// product of the normalised embeddings); --json the same, every number.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <malloc.h>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bert_model.hpp"
#include "command.hpp"
#include "print.hpp"

namespace attn::cli {
namespace {

struct EmbedOptions {
  std::string model;
  std::vector<std::string> texts;
  bool json = false;
  int64_t batch_size = 32;
};

struct Embedded {
  WordPieceTokenizer::Encoding enc;
  std::vector<float> embedding;
};

// Runs the texts in batches of up to batch_size, sorted by length so that a
// batch pads little; returns the embeddings in the texts' order.
std::vector<Embedded> embed_all(const LoadedBert& bert, const std::vector<std::string>& texts, int64_t batch_size) {
  std::vector<Embedded> out(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) out[i].enc = bert.tokenizer.encode(texts[i], bert.max_length);
  std::vector<size_t> order(texts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return out[a].enc.ids.size() < out[b].enc.ids.size(); });
  const int64_t pad_id = bert.tokenizer.contains("[PAD]") ? bert.tokenizer.token_to_id("[PAD]") : 0;
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(order.size(), start + static_cast<size_t>(batch_size));
    const int64_t B = static_cast<int64_t>(end - start);
    int64_t L = 0;
    for (size_t k = start; k < end; ++k) L = std::max<int64_t>(L, static_cast<int64_t>(out[order[k]].enc.ids.size()));
    Tensor<int64_t> ids = Tensor<int64_t>::full({B, L}, pad_id);
    Tensor<bool> mask({B, L});  // False = padding
    for (int64_t b = 0; b < B; ++b) {
      const auto& e = out[order[start + static_cast<size_t>(b)]].enc.ids;
      for (size_t i = 0; i < e.size(); ++i) {
        ids(b, static_cast<int64_t>(i)) = e[i];
        mask(b, static_cast<int64_t>(i)) = true;
      }
    }
    const Tensor<float> hidden = bert.model.forward(ids, mask).last_hidden_state;  // [B, L, hidden]
    const Tensor<float> emb = l2_normalize(mean_pooling(hidden, mask));             // [B, hidden]
    for (int64_t b = 0; b < B; ++b) out[order[start + static_cast<size_t>(b)]].embedding = emb.select(0, b).to_vector();
  }
  return out;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {  // both unit length
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& t : v) s += (s.empty() ? "" : " ") + t;
  return s;
}

int usage(const std::string& what) {
  std::cerr << "attn embed: error: " << what << "\nusage: attn embed --model DIR [--json] TEXT...; "
            << "see `attn embed --help`\n";
  return kExitUsage;
}

Run setup_embed(CLI::App& sub) {
  auto opt = std::make_shared<EmbedOptions>();
  sub.add_option("--model", opt->model, "a BERT model directory: config.json, model.safetensors, vocab.txt")
      ->required();
  sub.add_option("texts", opt->texts, "the texts to embed (one argument each)");
  sub.add_flag("--json", opt->json, "print tokens, ids, embeddings and similarities as JSON");
  sub.add_option("--batch-size", opt->batch_size, "texts per forward pass (padded to the longest)")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}))
      ->capture_default_str();
  return [opt]() {
    if (opt->texts.empty()) return usage("no TEXT given");
    // Each layer allocates its activations afresh (tens of MB for a batch);
    // glibc would mmap and unmap each one, page-faulting it in every time
    // (~10% of the run). Keep freed memory in the heap for reuse instead.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    const auto t0 = std::chrono::steady_clock::now();
    const LoadedBert bert = load_bert_dir(opt->model);
    const auto t1 = std::chrono::steady_clock::now();
    const std::vector<Embedded> res = embed_all(bert, opt->texts, opt->batch_size);
    const auto t2 = std::chrono::steady_clock::now();
    const double load_s = std::chrono::duration<double>(t1 - t0).count();
    const double run_s = std::chrono::duration<double>(t2 - t1).count();
    const size_t n = res.size();
    const BertConfig& c = bert.model.config();

    if (opt->json) {
      nlohmann::ordered_json j;
      j["model"] = opt->model;
      j["config"] = {{"hidden_size", c.hidden_size}, {"num_hidden_layers", c.num_hidden_layers},
                     {"num_attention_heads", c.num_attention_heads}, {"vocab_size", c.vocab_size},
                     {"max_length", bert.max_length}};
      j["pooling"] = "mean over attention_mask, then L2 normalisation";
      nlohmann::ordered_json texts = nlohmann::ordered_json::array();
      for (size_t i = 0; i < n; ++i)
        texts.push_back({{"text", opt->texts[i]}, {"tokens", res[i].enc.tokens}, {"ids", res[i].enc.ids},
                         {"embedding", res[i].embedding}});
      j["texts"] = texts;
      std::vector<std::vector<double>> sim(n, std::vector<double>(n));
      for (size_t a = 0; a < n; ++a)
        for (size_t b = 0; b < n; ++b) sim[a][b] = cosine(res[a].embedding, res[b].embedding);
      j["similarities"] = sim;
      j["seconds"] = {{"load", load_s}, {"embed", run_s}};
      std::cout << dump_json(j, 1) << "\n";
      return kExitOk;
    }
    std::cout << "model " << opt->model << ": BERT, " << c.num_hidden_layers << " layers, hidden " << c.hidden_size
              << ", " << c.num_attention_heads << " heads, vocabulary " << bert.tokenizer.vocab_size()
              << "; mean pooling + L2 norm\n";
    for (size_t i = 0; i < n; ++i) {
      const auto& e = res[i].embedding;
      std::cout << "\n[" << i + 1 << "] " << opt->texts[i] << "\n    " << res[i].enc.tokens.size()
                << " tokens: " << joined(res[i].enc.tokens) << "\n    embedding [" << e.size() << "]:";
      for (size_t k = 0; k < std::min<size_t>(8, e.size()); ++k) std::cout << " " << num(e[k]);
      if (e.size() > 8) std::cout << " ... (--json for all)";
      std::cout << "\n";
    }
    if (n > 1) {
      std::cout << "\ncosine similarity\n";
      for (size_t a = 0; a < n; ++a)
        for (size_t b = a + 1; b < n; ++b)
          std::cout << "  [" << a + 1 << "] [" << b + 1 << "] " << num(cosine(res[a].embedding, res[b].embedding))
                    << "\n";
    }
    std::cout << "\n" << n << (n == 1 ? " text" : " texts") << " in " << num(run_s, 3) << " s (" << num(n / run_s, 1)
              << " texts/s), model loaded in " << num(load_s, 3) << " s\n";
    return kExitOk;
  };
}

const Register kEmbed{{"embed", "Sentence embeddings and similarities from a BERT model directory (e.g. all-MiniLM-L6-v2)",
                       setup_embed}};

}  // namespace
}  // namespace attn::cli

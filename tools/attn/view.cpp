// tools/attn/view.cpp — `attn view`: one self-contained HTML page that teaches
// the notes interactively. No server, no network, no files beside it.
//
//   attn view [--text "..."] [--model DIR] [--out attention.html] [--train-steps N]
//
// The C++ computes every number and embeds it as one JSON document; the page's
// plain JavaScript and SVG (tools/attn/view/page.html, compiled in as a string)
// only draw. The page has four parts:
//   1 the notes' walkthrough: the words as 3-d vectors; any word as the query
//     (its scores, the three normalisations, the weights, its context vector:
//     `attn demo --json --query N` for every N); toggles for scaling by √d_k,
//     the causal mask and dropout (the 8 combinations precomputed with the
//     library's SDPA on demo step 9's seed-789 weights); a slider multiplying
//     the scores (naive against stable softmax, recomputed in the page in
//     float32: that demonstration is about float overflow);
//   2 the seeded MultiHeadAttention of demo step 11, per head;
//   3 the model `attn train` learns (trained here, quietly, same seed);
//   4 with --model: every layer and head of a trained BERT on the text.
// Parts 2-4 share a head view (lines from each token to the tokens it attends
// to, one colour per head) and a grid of all heads.
#include <unistd.h>  // getpid

#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <attn/attn.hpp>
#include <attn/errors.hpp>
#include <attn/multihead_attention.hpp>
#include <attn/sdpa.hpp>
#include <attn/self_attention.hpp>
#include <nlohmann/json.hpp>

#include "bert_model.hpp"
#include "command.hpp"
#include "demo.hpp"
#include "print.hpp"
#include "train.hpp"
#include "view_page.hpp"  // kViewPage, generated from view/page.html by CMakeLists.txt
#include "words.hpp"

#ifndef ATTN_VERSION
#define ATTN_VERSION "unknown"
#endif

namespace attn::cli {
namespace {

using json = nlohmann::ordered_json;

struct ViewOptions {
  std::string text;  // empty: the notes' sentence
  std::string model_dir;
  std::string out = "attention.html";
  int64_t train_steps = 600;  // `attn train`'s default; 0 leaves the trained model out
};

constexpr int64_t kMaxModelTokens = 128;  // a BERT's [L, L] per head for 6 x 12 heads stays well under 2 MB

// ---- part 1: the walkthrough ------------------------------------------------------

// Per query word: the parts of `attn demo --json --query i` that depend on the query.
json per_query(const std::string& text, int64_t L) {
  json out = json::array();
  for (int64_t i = 0; i < L; ++i) {
    const json d = demo_document(text, i);
    out.push_back({{"query", d["query"]},
                   {"query_scores", d["query_scores"]},
                   {"normalizations", d["normalizations"]},
                   {"overflow", d["overflow"]},
                   {"query_context", d["query_context"]}});
  }
  return out;
}

// softmax(Q·Kᵀ·scale [+ causal mask]) [with dropout] and its context vectors,
// for the 8 settings of the three toggles, through the library's SDPA on
// SelfAttention_v2's weights (torch.manual_seed(789), demo step 9).
json toggle_variants(const Tensor<float>& x) {
  const int64_t L = x.size(0);
  Generator gen(kSeedLinear);
  SelfAttention<float> sa(3, kDOut, /*qkv_bias=*/false, gen);
  auto as4 = [&](const Tensor<float>& t) { return t.clone().reshape({1, 1, L, kDOut}); };
  const Tensor<float> q = as4(sa.W_query.apply(x)), k = as4(sa.W_key.apply(x)), v = as4(sa.W_value.apply(x));
  json out = json::object();
  for (int scale = 0; scale < 2; ++scale)
    for (int causal = 0; causal < 2; ++causal)
      for (int dropout = 0; dropout < 2; ++dropout) {
        SdpaOptions<float> opt;
        opt.scale = scale ? 1.0 / std::sqrt(static_cast<double>(kDOut)) : 1.0;
        opt.is_causal = causal != 0;
        opt.dropout_p = dropout ? kDropoutP : 0.0;
        opt.dropout_seed = kDropoutSeed;
        opt.return_weights = true;
        const auto r = scaled_dot_product_attention(q, k, v, opt);
        const std::string key = std::to_string(scale) + std::to_string(causal) + std::to_string(dropout);
        out[key] = {{"weights", to_json(r.weights.select(0, 0).select(0, 0))},
                    {"context", to_json(r.output.select(0, 0).select(0, 0))}};
      }
  return out;
}

// ---- parts 2-4: heads ----------------------------------------------------------------

json round4(const Tensor<float>& m) {  // [L, L] to 4 decimals: BERT's many heads, kept light
  json rows = json::array();
  for (int64_t i = 0; i < m.size(0); ++i) {
    json row = json::array();
    for (int64_t j = 0; j < m.size(1); ++j) row.push_back(std::round(static_cast<double>(m(i, j)) * 1e4) / 1e4);
    rows.push_back(row);
  }
  return rows;
}

json layer_json(const std::string& name, const std::vector<Tensor<float>>& heads, bool exact) {
  json hs = json::array();
  for (const auto& h : heads) hs.push_back(exact ? to_json(h) : round4(h));
  return {{"name", name}, {"heads", hs}};
}

// Demo step 11's MultiHeadAttention(3, 2, L, 0, num_heads=2) from manual_seed(123):
// per head softmax(Q_h·K_hᵀ/√head_dim + causal mask), through SDPA as the layer does.
json seeded_heads(const std::vector<std::string>& words, const Tensor<float>& x) {
  const int64_t L = x.size(0), H = 2;
  Generator gen(kSeedHeads);
  MultiHeadAttention<float> m(3, kDOut, L, 0.0, H, /*qkv_bias=*/false, gen);
  const std::vector<Tensor<float>> heads = causal_head_weights(m, x.clone().reshape({1, L, 3}));
  return {{"id", "seeded"},
          {"name", "seeded MultiHeadAttention"},
          {"description", "attn::MultiHeadAttention(d_in 3, d_out 2, num_heads 2, head_dim 1), causal, weights from "
                          "manual_seed(123): demo step 11, untrained"},
          {"causal", true},
          {"tokens", words},
          {"layers", json::array({layer_json("MultiHeadAttention", heads, true)})}};
}

json trained_heads(int64_t steps) {
  const LearnedAttention a = learned_attention(steps, 0);
  return {{"id", "trained"},
          {"name", "trained by attn train"},
          {"description", "attn train --steps " + std::to_string(steps) + " --seed 0: causal MultiHeadAttention(d_model " +
                              std::to_string(a.d_model) + ", 2 heads) learned which noun \"it\" refers to; held-out accuracy " +
                              num(100 * a.heldout_accuracy, 1) + "%; predicts \"" + a.predicted + "\""},
          {"causal", true},
          {"tokens", a.tokens},
          {"layers", json::array({layer_json("MultiHeadAttention", a.heads, true)})}};
}

json bert_heads(const std::string& dir, const std::string& text) {
  const LoadedBert bert = load_bert_dir(dir);
  const BertConfig& c = bert.model.config();
  const auto enc = bert.tokenizer.encode(text, bert.max_length);
  const int64_t L = static_cast<int64_t>(enc.ids.size());
  if (L > kMaxModelTokens)
    throw ValueError("--text is " + std::to_string(L) + " tokens for the model; at most " + std::to_string(kMaxModelTokens) +
                     " fit the page");
  const Tensor<int64_t> ids({1, L}, enc.ids);
  const auto out = bert.model.forward(ids, {}, /*output_attentions=*/true);
  json layers = json::array();
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const Tensor<float> w = out.attentions[static_cast<size_t>(l)].select(0, 0);  // [H, L, L]
    std::vector<Tensor<float>> heads;
    for (int64_t h = 0; h < c.num_attention_heads; ++h) heads.push_back(w.select(0, h).clone());
    layers.push_back(layer_json("layer " + std::to_string(l), heads, false));
  }
  std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  std::string name = p.filename().string();  // with its parent's when it is as bland as "model", as heatmap names it
  if (name == "model" && p.has_parent_path()) name = p.parent_path().filename().string() + "/" + name;
  return {{"id", "bert"},
          {"name", "BERT: " + name},
          {"description", "attn::BertModel from " + name + ": " + std::to_string(c.num_hidden_layers) +
                              " layers x " + std::to_string(c.num_attention_heads) +
                              " heads, bidirectional; WordPiece tokens of the text; weights to 4 decimals"},
          {"causal", false},
          {"tokens", enc.tokens},
          {"layers", layers}};
}

// ---- the page -----------------------------------------------------------------------

json page_data(const ViewOptions& o) {
  const json demo = demo_document(o.text);
  const std::vector<std::string> words = demo["tokens"];
  const int64_t L = static_cast<int64_t>(words.size());
  const Tensor<float> x = embed_words(words);
  json d;
  d["version"] = ATTN_VERSION;
  d["command"] = "attn view" + (o.text.empty() ? std::string() : " --text \"" + o.text + "\"");
  d["demo"] = demo;
  d["queries"] = per_query(o.text, L);
  d["toggles"] = {{"seed", kSeedLinear}, {"d_k", kDOut}, {"dropout_p", kDropoutP}, {"dropout_seed", kDropoutSeed},
                  {"variants", toggle_variants(x)}};
  // The model first: a directory that is not a BERT fails before the training's seconds.
  const json bert = o.model_dir.empty() ? json() : bert_heads(o.model_dir, demo["sentence"].get<std::string>());
  json models = json::array({seeded_heads(words, x)});
  if (o.train_steps > 0) models.push_back(trained_heads(o.train_steps));
  if (!bert.is_null()) models.push_back(bert);
  d["models"] = models;
  return d;
}

// The data goes inside <script type="application/json">: a "<" only occurs in
// JSON strings, where \u003c reads the same and "</script>" cannot end the element.
std::string script_safe(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) o += c == '<' ? std::string("\\u003c") : std::string(1, c);
  return o;
}

std::string render_page(const json& data) {
  std::string page = kViewPage;
  const std::string marker = "\"@ATTN_VIEW_DATA@\"";
  const size_t at = page.find(marker);
  if (at == std::string::npos) throw ValueError("view: the page template has no data marker");
  page.replace(at, marker.size(), script_safe(data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  return page;
}

// Written beside the target and renamed over it, so a reader never sees half a
// page. One function, so the shared atomic writer can replace it.
void write_file_atomically(const std::string& path, const std::string& content) {
  const std::filesystem::path target(path);
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw IOError("--out " + path + ": cannot write (" + std::strerror(errno) + ")");
    out << content;
    out.close();
    if (!out) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw IOError("--out " + path + ": cannot write (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw IOError("--out " + path + ": cannot write: " + ec.message());
  }
}

int usage(const std::string& what) {
  std::cerr << "attn view: error: " << what
            << "\nusage: attn view [--text \"...\"] [--model DIR] [--out attention.html]; see `attn view --help`\n";
  return kExitUsage;
}

Run setup_view(CLI::App& sub) {
  auto opt = std::make_shared<ViewOptions>();
  auto* text = sub.add_option("--text", opt->text,
                              "the sentence (default: \"Your journey starts with one step\"); one token per word, at most " +
                                  std::to_string(kDemoMaxWords) + " words");
  sub.add_option("--model", opt->model_dir,
                 "a trained BERT directory (config.json, model.safetensors, vocab.txt), e.g. all-MiniLM-L6-v2: add "
                 "every layer and head of it on the text");
  sub.add_option("--out", opt->out, "the HTML file to write")->capture_default_str();
  sub.add_option("--train-steps", opt->train_steps,
                 "steps of `attn train`'s model to show (its default; 0 leaves the trained model out)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{100000}));
  return [opt, text]() {
    if (text->count() > 0) {
      const auto words = split_words(opt->text);
      if (words.empty()) return usage("--text has no words");
      if (static_cast<int64_t>(words.size()) > kDemoMaxWords)
        return usage("--text has " + std::to_string(words.size()) + " words; at most " + std::to_string(kDemoMaxWords) +
                     " fit the page");
    }
    if (opt->out.empty()) return usage("--out: expected a file name");
    if (std::filesystem::is_directory(opt->out)) return usage("--out " + opt->out + " is a directory; expected a file name");
    json data;
    try {
      data = page_data(*opt);
    } catch (const ValueError& e) {
      const std::string what = e.what();
      if (what.rfind("--", 0) == 0) return usage(what);  // too many tokens for the page
      throw;
    }
    const std::string page = render_page(data);
    write_file_atomically(opt->out, page);
    std::cout << "wrote " << opt->out << " (" << page.size() << " bytes, " << num(page.size() / 1048576.0, 2)
              << " MiB; open it in a browser)\n";
    return kExitOk;
  };
}

const Register kView{{"view", "Write one self-contained interactive HTML page: the walkthrough, heads, a real model", setup_view}};

}  // namespace
}  // namespace attn::cli

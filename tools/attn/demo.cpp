// tools/attn/demo.cpp — `attn demo`: the lecture notes' example (notes 004 and
// 001), "Your journey starts with one step", computed with the library's
// simplified self-attention (attn/simplified_attention.hpp) and printed stage
// by stage with the notes' numbers:
//
//   inputs  X [6, 3]      one 3-d embedding per word
//   scores  ω2 = X·x2     [6]     the query "journey" against every token
//   weights α2 [6]        three normalisations side by side, and their sums
//   overflow              the same with scores ×100: naive exp/sum breaks
//   context z2 [3]        Σj α2j·xj
//   all rows S = X·Xᵀ, A = softmax(S), Z = A·X
//
// `attn demo --json` prints the same data as one JSON object.
// Float32 throughout, as torch.tensor(...) in the notes, so the digits match
// and the overflow happens where it does in PyTorch (e^88.7 > FLT_MAX).
#include <algorithm>
#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <attn/attn.hpp>
#include <attn/simplified_attention.hpp>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "print.hpp"

namespace attn::cli {
namespace {

struct DemoOptions {
  bool json = false;
  float overflow_factor = 100.0f;
};

// The notes' six words and their 3-d embeddings (x¹ ... x⁶).
const std::vector<std::string> kWords = {"Your", "journey", "starts", "with", "one", "step"};
const std::vector<float> kEmbeddings = {
    0.43f, 0.15f, 0.89f,  // Your     (x^1)
    0.55f, 0.87f, 0.66f,  // journey  (x^2)
    0.57f, 0.85f, 0.64f,  // starts   (x^3)
    0.22f, 0.58f, 0.33f,  // with     (x^4)
    0.77f, 0.25f, 0.10f,  // one      (x^5)
    0.05f, 0.80f, 0.55f,  // step     (x^6)
};
constexpr int64_t kQuery = 1;  // x² = "journey", row 1 counting from 0

// Everything the demo shows, computed once; printed as text or as JSON.
struct Walkthrough {
  Tensor<float> inputs;          // [6, 3]
  Tensor<float> query_scores;    // [6]     ω2j = x2·xj
  Tensor<float> by_sum;          // [6]     ω / Σω
  Tensor<float> naive;           // [6]     e^ω / Σe^ω
  Tensor<float> softmax;         // [6]     e^(ω−max) / Σe^(ω−max)
  Tensor<float> big_scores;      // [6]     ω × overflow_factor
  Tensor<float> big_naive;       // [6]     inf/inf = nan where e^ω overflows
  Tensor<float> big_softmax;     // [6]     still fine
  Tensor<float> z_query;         // [3]     Σj α2j xj, summed as the notes' loop does
  SimplifiedAttentionResult<float> all;  // scores [6,6], weights [6,6], context [6,3]
  Tensor<float> row_sums;        // [6]
};

float sum_of(const Tensor<float>& t) {
  float s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += t.flat(i);
  return s;
}

Walkthrough compute(const DemoOptions& opt) {
  Walkthrough w;
  w.inputs = Tensor<float>({6, 3}, kEmbeddings);

  // Scores of the query against every token: row 2 of X·Xᵀ is exactly
  // [x2·x1, x2·x2, ..., x2·x6], the notes' loop of torch.dot.
  const Tensor<float> scores = simplified_attention_scores(w.inputs);
  w.query_scores = scores.select(0, kQuery).clone();

  w.by_sum = normalize_rows(w.query_scores, Normalization::DivideBySum);
  w.naive = normalize_rows(w.query_scores, Normalization::NaiveSoftmax);
  w.softmax = normalize_rows(w.query_scores, Normalization::Softmax);

  w.big_scores = w.query_scores.clone();
  for (int64_t j = 0; j < w.big_scores.numel(); ++j) w.big_scores.flat(j) *= opt.overflow_factor;
  w.big_naive = normalize_rows(w.big_scores, Normalization::NaiveSoftmax);
  w.big_softmax = normalize_rows(w.big_scores, Normalization::Softmax);

  // z2 = α21·x1 + α22·x2 + ... + α26·x6, written out as the notes' loop.
  w.z_query = Tensor<float>({3});
  for (int64_t j = 0; j < 6; ++j)
    for (int64_t k = 0; k < 3; ++k) w.z_query(k) += w.softmax(j) * w.inputs(j, k);

  // All queries at once: S = X·Xᵀ, A = softmax(S) row-wise, Z = A·X.
  w.all = simplified_self_attention(w.inputs, Normalization::Softmax);
  w.row_sums = Tensor<float>({6});
  for (int64_t i = 0; i < 6; ++i) w.row_sums(i) = sum_of(w.all.weights.select(0, i));
  return w;
}

std::vector<std::string> row_labels() {
  std::vector<std::string> out;
  for (size_t i = 0; i < kWords.size(); ++i) out.push_back("x" + std::to_string(i + 1) + " " + kWords[i]);
  return out;
}

void print_text(const Walkthrough& w, const DemoOptions& opt) {
  std::ostream& os = std::cout;
  const auto rows = row_labels();
  const int lw = 14;  // label column width

  os << "Your journey starts with one step\n"
     << "=================================\n"
     << "Simplified self-attention, no trainable weights (notes 004). Each word's\n"
     << "embedding vector x(i) becomes a context vector z(i): an enriched embedding\n"
     << "that also says how the word relates to every other word in the sentence.\n\n";

  os << "1. The inputs: one 3-d embedding vector per word, X [6, 3]\n\n";
  print_matrix(os, w.inputs, rows, {"dim 0", "dim 1", "dim 2"}, lw);

  os << "\n2. Attention scores for the query x2 (\"journey\"): w2j = x2 . xj (omega in the notes)\n"
     << "   The dot product says how aligned two vectors are: the larger, the more\n"
     << "   similar, the more attention. \"starts\" is closest to \"journey\".\n\n";
  print_header(os, "", lw, kWords);
  print_row(os, "scores w2", lw, values_of(w.query_scores));

  os << "\n3. Attention weights: normalise the scores so that they sum to 1.\n"
     << "   Three ways, side by side (the last column is the sum):\n\n";
  std::vector<std::string> cols = kWords;
  cols.push_back("sum");
  print_header(os, "", lw + 10, cols);
  auto with_sum = [](const Tensor<float>& t) {
    auto v = values_of(t);
    v.push_back(sum_of(t));
    return v;
  };
  print_row(os, "divide by sum  w/sum(w)", lw + 10, with_sum(w.by_sum));
  print_row(os, "naive softmax  e^w/sum", lw + 10, with_sum(w.naive));
  print_row(os, "softmax  e^(w-max)/sum", lw + 10, with_sum(w.softmax));
  os << "\n   All three sum to 1. Dividing by the sum keeps the scores' proportions, but\n"
     << "   a negative score would give a negative weight. The exponential makes every\n"
     << "   weight positive and pushes large scores towards 1 and small ones towards 0.\n"
     << "   Subtracting the row's maximum first changes nothing mathematically (e^-max\n"
     << "   cancels in the fraction), so the last two rows agree.\n";

  os << "\n4. Why subtract the maximum? Multiply the scores by " << num(opt.overflow_factor, 0)
     << " (large scores are\n"
     << "   common in real models). A float holds e^s only for s < 88.7:\n\n";
  print_header(os, "", lw + 10, kWords);
  print_row(os, "scores w2 x " + num(opt.overflow_factor, 0), lw + 10, values_of(w.big_scores));
  print_row(os, "naive softmax  e^w/sum", lw + 10, values_of(w.big_naive));
  print_row(os, "softmax  e^(w-max)/sum", lw + 10, values_of(w.big_softmax));
  float big_max = w.big_scores.flat(0);
  for (int64_t j = 1; j < w.big_scores.numel(); ++j) big_max = std::max(big_max, w.big_scores.flat(j));
  os << "\n   Naive: e^" << num(big_max, 1) << (big_max > 88.7f ? " overflows to inf, and inf/inf is nan: the weights are lost.\n" : " still fits in a float this time; try a larger factor.\n")
     << "   Stable: after subtracting the max every exponent is <= 0, so e^(s-max) <= 1\n"
     << "   never overflows, and the weights still sum to " << num(sum_of(w.big_softmax)) << ".\n";

  os << "\n5. The context vector of \"journey\": z2 = sum over j of a2j * xj\n"
     << "   (each input scaled by its attention weight, then added up)\n\n";
  print_header(os, "", lw, {"dim 0", "dim 1", "dim 2"});
  print_row(os, "z2", lw, values_of(w.z_query));

  os << "\n6. Every query at once, as two matrix products.\n"
     << "   Attention scores S = X . X^T [6, 6]; row 2 is w2 from step 2:\n\n";
  print_matrix(os, w.all.scores, rows, kWords, lw);
  os << "\n   Attention weights A = softmax(S, dim=-1) [6, 6]; each row sums to 1:\n\n";
  std::vector<std::string> wcols = kWords;
  wcols.push_back("row sum");
  print_header(os, "", lw, wcols);
  for (int64_t i = 0; i < 6; ++i) {
    auto v = values_of(w.all.weights.select(0, i));
    v.push_back(w.row_sums(i));
    print_row(os, rows[static_cast<size_t>(i)], lw, v);
  }
  os << "\n   Context vectors Z = A . X [6, 3]; row 2 is z2 from step 5:\n\n";
  print_matrix(os, w.all.context, rows, {"dim 0", "dim 1", "dim 2"}, lw);
  os << "\n   Next: trainable weights (query, key and value projections) let a word attend\n"
     << "   to words that matter in context, not only to words that look alike.\n";
}

nlohmann::ordered_json to_json_doc(const Walkthrough& w, const DemoOptions& opt) {
  using json = nlohmann::ordered_json;
  json j;
  j["sentence"] = "Your journey starts with one step";
  j["tokens"] = kWords;
  j["inputs"] = to_json(w.inputs);
  j["query"] = {{"index", kQuery}, {"token", kWords[kQuery]}};
  j["query_scores"] = to_json(w.query_scores);
  j["normalizations"] = {
      {"divide_by_sum", {{"weights", to_json(w.by_sum)}, {"sum", json_number(sum_of(w.by_sum))}}},
      {"naive_softmax", {{"weights", to_json(w.naive)}, {"sum", json_number(sum_of(w.naive))}}},
      {"softmax", {{"weights", to_json(w.softmax)}, {"sum", json_number(sum_of(w.softmax))}}},
  };
  j["overflow"] = {
      {"factor", json_number(opt.overflow_factor)},
      {"scores", to_json(w.big_scores)},
      {"naive_softmax", to_json(w.big_naive)},  // nulls: JSON has no nan
      {"softmax", to_json(w.big_softmax)},
  };
  j["query_context"] = to_json(w.z_query);
  j["scores"] = to_json(w.all.scores);
  j["weights"] = to_json(w.all.weights);
  j["row_sums"] = to_json(w.row_sums);
  j["context"] = to_json(w.all.context);
  return j;
}

Run setup_demo(CLI::App& sub) {
  auto opt = std::make_shared<DemoOptions>();
  sub.add_flag("--json", opt->json, "print the same data as one JSON object (non-finite numbers as null)");
  sub.add_option("--overflow-factor", opt->overflow_factor,
                 "scale the scores by this much to show naive softmax overflowing")
      ->capture_default_str()
      ->check(CLI::Range(0.001f, 1.0e6f));
  return [opt]() {
    const Walkthrough w = compute(*opt);
    if (opt->json)
      std::cout << pretty_json(to_json_doc(w, *opt)) << "\n";
    else
      print_text(w, *opt);
    return kExitOk;
  };
}

const Register kDemo{{"demo", "Walk through the notes' \"Your journey starts with one step\" example", setup_demo}};

}  // namespace
}  // namespace attn::cli

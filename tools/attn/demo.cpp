// tools/attn/demo.cpp — `attn demo`: the lecture notes' example (notes 004,
// 001, 002), "Your journey starts with one step", computed with the library
// and printed stage by stage with the notes' numbers:
//
//   1 inputs  X [6, 3]      one 3-d embedding per word
//   2 scores  ω2 = X·x2     [6]     the query "journey" against every token
//   3 weights α2 [6]        three normalisations side by side, and their sums
//   4 overflow              the same with scores ×100: naive exp/sum breaks
//   5 context z2 [3]        Σj α2j·xj
//   6 all rows S = X·Xᵀ, A = softmax(S), Z = A·X
//   7 trainable weights     W_query, W_key, W_value [3, 2] from manual_seed(123)
//   8 scaling by √d_k       softmax(q·kᵀ) against softmax(q·kᵀ/√d_k); all rows
//   9 causal masking        nn.Linear weights (seed 789): the mask, masked and
//                           renormalised weights, then the −∞ way
//  10 dropout               p = 0.5 on the causal weights, kept ones ×2
//  11 two heads             CausalAttention, MultiHeadAttentionWrapper and
//                           MultiHeadAttention from manual_seed(123)
//
// Stages 7-11 follow Raschka's "Build a Large Language Model (From Scratch)",
// ch. 3, which the notes follow; the library's generator reproduces
// torch.manual_seed + torch.rand / nn.Linear bit for bit, so the weights and
// every printed number are the book's (tools/attn/testdata/demo_expected.py
// recomputes them with PyTorch). Dropout is the one exception: the library's
// mask is counter-based, torch's is a Bernoulli draw, so the masks differ.
//
// `attn demo --json` prints the same data as one JSON object; `--text` runs it
// on any sentence (words.hpp's built-in embedding), `--step` pauses between
// stages, `--plot FILE.png` draws the embeddings in 3-D (plot3d.hpp).
// Float32 throughout, as torch.tensor(...) in the notes, so the digits match
// and the overflow happens where it does in PyTorch (e^88.7 > FLT_MAX).
#include <unistd.h>  // isatty

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <attn/attn.hpp>
#include <attn/simplified_attention.hpp>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "demo.hpp"
#include "plot3d.hpp"
#include "print.hpp"
#include "words.hpp"

namespace attn::cli {
namespace {

struct DemoOptions {
  bool json = false;
  bool step = false;
  float overflow_factor = 100.0f;
  std::string text;  // empty: the notes' sentence
  std::string plot;  // empty: no picture
  int64_t query = -1;  // 0-based; -1: the second word ("journey" in the notes)
};

// The seeds, d_out and the dropout rate are in demo.hpp (`attn view` uses them too).
constexpr int64_t kMaxWords = kDemoMaxWords;

// ---- small matrix helpers (row-major float loops, as the notes' torch ops) ----

// a [m, k] · b [k, n] → [m, n]
Tensor<float> matmul(const Tensor<float>& a, const Tensor<float>& b) {
  Tensor<float> c({a.size(0), b.size(1)});
  for (int64_t i = 0; i < a.size(0); ++i)
    for (int64_t j = 0; j < b.size(1); ++j) {
      float s = 0;
      for (int64_t k = 0; k < a.size(1); ++k) s += a(i, k) * b(k, j);
      c(i, j) = s;
    }
  return c;
}

Tensor<float> scaled(const Tensor<float>& t, float f) {
  Tensor<float> o = t.clone();
  for (int64_t i = 0; i < o.numel(); ++i) o.flat(i) *= f;
  return o;
}

float sum_of(const Tensor<float>& t) {
  float s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += t.flat(i);
  return s;
}

// Row sums of a [m, n] matrix → [m].
Tensor<float> row_sums_of(const Tensor<float>& m) {
  Tensor<float> s({m.size(0)});
  for (int64_t i = 0; i < m.size(0); ++i) s(i) = sum_of(m.select(0, i));
  return s;
}

// ---- what the demo computes -------------------------------------------------------

// Stages 7-8: trainable weights as plain matrices (the book's SelfAttention_v1).
struct Trainable {
  Tensor<float> W_query, W_key, W_value;  // [3, 2] each, torch.rand(d_in, d_out) in draw order
  Tensor<float> query;                    // [2]     q2 = x2·W_query
  Tensor<float> keys, values;             // [L, 2]  K = X·W_key, V = X·W_value
  Tensor<float> scores;                   // [L]     ω2j = q2·kj
  Tensor<float> unscaled_weights;         // [L]     softmax(ω2)          (what not scaling gives)
  Tensor<float> scaled_scores;            // [L]     ω2 / √d_k
  Tensor<float> weights;                  // [L]     softmax(ω2 / √d_k)
  Tensor<float> context;                  // [2]     z2 = Σj α2j·vj
  Tensor<float> all_weights;              // [L, L]  softmax(Q·Kᵀ/√d_k)
  Tensor<float> all_context;              // [L, 2]  A·V
};

// Stage 9: nn.Linear weights (SelfAttention_v2, seed 789) and causal masking.
struct Causal {
  Tensor<float> self_attention;  // [L, 2]  the library's SelfAttention(3, 2) forward
  Tensor<float> scores;          // [L, L]  Q·Kᵀ
  Tensor<float> weights;         // [L, L]  softmax(Q·Kᵀ/√d_k), no mask
  Tensor<float> mask;            // [L, L]  1 on and below the diagonal (torch.tril(ones))
  Tensor<float> masked;          // [L, L]  weights · mask
  Tensor<float> renormalised;    // [L, L]  masked / row sums
  Tensor<float> masked_scores;   // [L, L]  scores with −∞ above the diagonal
  Tensor<float> inf_weights;     // [L, L]  softmax(masked_scores/√d_k)
  Tensor<float> context;         // [L, 2]  the library's CausalAttention(3, 2) forward, same weights
};

// Stage 10: dropout, p = 0.5, the library's counter-based mask.
struct Dropout {
  Tensor<float> ones;       // [L, L]  dropout(ones): 0 or 1/(1−p) = 2
  Tensor<float> weights;    // [L, L]  the causal weights after dropout (SDPA return_weights)
  Tensor<float> row_sums;   // [L]     no longer 1: dropout happens after the softmax
};

// Stage 11: two heads, seed 123, a batch of two copies of X as in the book.
struct Heads {
  Tensor<float> one_head;   // [L, 2]  CausalAttention(3, 2)
  Tensor<float> wrapper;    // [L, 4]  MultiHeadAttentionWrapper(3, 2, heads 2): two heads side by side
  Tensor<float> mha;        // [L, 2]  MultiHeadAttention(3, 2, heads 2): head_dim 1, then out_proj
};

// Everything the demo shows, computed once; printed as text or as JSON.
struct Walkthrough {
  std::vector<std::string> words;
  std::string sentence;
  int64_t query = 1;             // x2 = "journey", row 1 counting from 0
  Tensor<float> inputs;          // [L, 3]
  Tensor<float> query_scores;    // [L]     ω2j = x2·xj
  Tensor<float> by_sum;          // [L]     ω / Σω
  Tensor<float> naive;           // [L]     e^ω / Σe^ω
  Tensor<float> softmax;         // [L]     e^(ω−max) / Σe^(ω−max)
  Tensor<float> big_scores;      // [L]     ω × overflow_factor
  Tensor<float> big_naive;       // [L]     inf/inf = nan where e^ω overflows
  Tensor<float> big_softmax;     // [L]     still fine
  Tensor<float> z_query;         // [3]     Σj α2j xj, summed as the notes' loop does
  SimplifiedAttentionResult<float> all;  // scores [L,L], weights [L,L], context [L,3]
  Tensor<float> row_sums;        // [L]
  Trainable trainable;
  Causal causal;
  Dropout dropout;
  Heads heads;
};

Trainable compute_trainable(const Tensor<float>& x, int64_t q) {
  Trainable t;
  const int64_t L = x.size(0);
  // torch.manual_seed(123); W_query = torch.rand(d_in, d_out); W_key = ...; W_value = ...
  Generator gen(kSeedPlain);
  t.W_query = rand<float>({3, kDOut}, gen);
  t.W_key = rand<float>({3, kDOut}, gen);
  t.W_value = rand<float>({3, kDOut}, gen);
  const Tensor<float> queries = matmul(x, t.W_query);  // [L, 2]
  t.keys = matmul(x, t.W_key);
  t.values = matmul(x, t.W_value);
  t.query = queries.select(0, q).clone();
  t.scores = Tensor<float>({L});
  for (int64_t j = 0; j < L; ++j)
    for (int64_t c = 0; c < kDOut; ++c) t.scores(j) += t.query(c) * t.keys(j, c);
  const float inv_sqrt_dk = 1.0f / std::sqrt(static_cast<float>(kDOut));
  t.unscaled_weights = normalize_rows(t.scores, Normalization::Softmax);
  // The book divides by d_k**0.5; multiplying by its reciprocal is 1 ulp away at most.
  t.scaled_scores = Tensor<float>({L});
  for (int64_t j = 0; j < L; ++j) t.scaled_scores(j) = t.scores(j) / std::sqrt(static_cast<float>(kDOut));
  t.weights = normalize_rows(t.scaled_scores, Normalization::Softmax);
  t.context = Tensor<float>({kDOut});
  for (int64_t j = 0; j < L; ++j)
    for (int64_t c = 0; c < kDOut; ++c) t.context(c) += t.weights(j) * t.values(j, c);
  // All queries: A = softmax(Q·Kᵀ/√d_k) [L, L], Z = A·V [L, 2].
  t.all_weights = normalize_rows(scaled(matmul(queries, t.keys.transpose(0, 1)), inv_sqrt_dk), Normalization::Softmax);
  t.all_context = matmul(t.all_weights, t.values);
  return t;
}

Causal compute_causal(const Tensor<float>& x) {
  Causal c;
  const int64_t L = x.size(0);
  const float inf = std::numeric_limits<float>::infinity();
  // torch.manual_seed(789); SelfAttention_v2(3, 2): three nn.Linear(3, 2, bias=False).
  Generator gen(kSeedLinear);
  SelfAttention<float> sa(3, kDOut, /*qkv_bias=*/false, gen);
  c.self_attention = sa.forward(x);
  const Tensor<float> q = sa.W_query.apply(x), k = sa.W_key.apply(x);  // [L, 2]
  c.scores = matmul(q, k.transpose(0, 1));
  c.weights = normalize_rows(scaled(c.scores, 1.0f / std::sqrt(static_cast<float>(kDOut))), Normalization::Softmax);
  // The simple way: zero the weights above the diagonal, then renormalise each row.
  c.mask = Tensor<float>({L, L});
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = 0; j <= i; ++j) c.mask(i, j) = 1.0f;
  c.masked = c.weights.clone();
  for (int64_t i = 0; i < c.masked.numel(); ++i) c.masked.flat(i) *= c.mask.flat(i);
  c.renormalised = c.masked.clone();
  for (int64_t i = 0; i < L; ++i) {
    const float s = sum_of(c.masked.select(0, i));
    for (int64_t j = 0; j < L; ++j) c.renormalised(i, j) /= s;
  }
  // The −∞ way: mask the scores before the softmax; e^−∞ = 0, one softmax instead of two passes.
  c.masked_scores = c.scores.clone();
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = i + 1; j < L; ++j) c.masked_scores(i, j) = -inf;
  c.inf_weights = normalize_rows(scaled(c.masked_scores, 1.0f / std::sqrt(static_cast<float>(kDOut))),
                                 Normalization::Softmax);
  // The library's CausalAttention from the same seed draws the same three Linears.
  Generator gen2(kSeedLinear);
  CausalAttention<float> ca(3, kDOut, L, /*dropout=*/0.0, /*qkv_bias=*/false, gen2);
  ca.eval();
  c.context = ca.forward(x);
  return c;
}

Dropout compute_dropout(const Tensor<float>& x) {
  Dropout d;
  const int64_t L = x.size(0);
  // dropout(torch.ones(6, 6)): each element kept with probability 1 − p and
  // scaled by 1/(1 − p) = 2, so the expected value stays 1.
  d.ones = Tensor<float>({L, L});
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = 0; j < L; ++j)
      d.ones(i, j) = dropout_keep(kDropoutSeed, 0, 0, i, j, kDropoutP) ? static_cast<float>(1.0 / (1.0 - kDropoutP)) : 0.0f;
  // The causal weights of stage 9 through the library's SDPA with dropout on:
  // Q, K, V [1, 1, L, 2] from the seed-789 Linears, weights returned after dropout.
  Generator gen(kSeedLinear);
  SelfAttention<float> sa(3, kDOut, false, gen);
  auto as4 = [&](const Tensor<float>& t) { return t.clone().reshape({1, 1, L, kDOut}); };
  SdpaOptions<float> opt;
  opt.is_causal = true;
  opt.dropout_p = kDropoutP;
  opt.dropout_seed = kDropoutSeed;
  opt.return_weights = true;
  const auto r = scaled_dot_product_attention(as4(sa.W_query.apply(x)), as4(sa.W_key.apply(x)),
                                              as4(sa.W_value.apply(x)), opt);
  d.weights = r.weights.select(0, 0).select(0, 0).clone();
  d.row_sums = row_sums_of(d.weights);
  return d;
}

Heads compute_heads(const Tensor<float>& x) {
  Heads h;
  const int64_t L = x.size(0);
  // batch = torch.stack((inputs, inputs), dim=0): [2, L, 3]
  Tensor<float> batch({2, L, 3});
  batch.select(0, 0).copy_(x);
  batch.select(0, 1).copy_(x);
  {
    Generator gen(kSeedHeads);
    CausalAttention<float> ca(3, kDOut, L, 0.0, false, gen);
    ca.eval();
    h.one_head = ca.forward(batch).select(0, 0).clone();
  }
  {
    Generator gen(kSeedHeads);
    MultiHeadAttentionWrapper<float> w(3, kDOut, L, 0.0, /*num_heads=*/2, false, gen);
    w.eval();
    h.wrapper = w.forward(batch).select(0, 0).clone();
  }
  {
    Generator gen(kSeedHeads);
    MultiHeadAttention<float> m(3, kDOut, L, 0.0, /*num_heads=*/2, false, gen);
    m.eval();
    h.mha = m.forward(batch).select(0, 0).clone();
  }
  return h;
}

Walkthrough compute(const DemoOptions& opt) {
  Walkthrough w;
  w.words = opt.text.empty() ? kNotesWords : split_words(opt.text);
  w.sentence = opt.text.empty() ? "Your journey starts with one step" : opt.text;
  const int64_t L = static_cast<int64_t>(w.words.size());
  w.query = opt.query >= 0 ? opt.query : L >= 2 ? 1 : 0;  // default: the second word, as "journey" in the notes
  w.inputs = embed_words(w.words);

  // Scores of the query against every token: row 2 of X·Xᵀ is exactly
  // [x2·x1, x2·x2, ..., x2·x6], the notes' loop of torch.dot.
  const Tensor<float> scores = simplified_attention_scores(w.inputs);
  w.query_scores = scores.select(0, w.query).clone();

  w.by_sum = normalize_rows(w.query_scores, Normalization::DivideBySum);
  w.naive = normalize_rows(w.query_scores, Normalization::NaiveSoftmax);
  w.softmax = normalize_rows(w.query_scores, Normalization::Softmax);

  w.big_scores = scaled(w.query_scores, opt.overflow_factor);
  w.big_naive = normalize_rows(w.big_scores, Normalization::NaiveSoftmax);
  w.big_softmax = normalize_rows(w.big_scores, Normalization::Softmax);

  // z2 = α21·x1 + α22·x2 + ... + α26·x6, written out as the notes' loop.
  w.z_query = Tensor<float>({3});
  for (int64_t j = 0; j < L; ++j)
    for (int64_t k = 0; k < 3; ++k) w.z_query(k) += w.softmax(j) * w.inputs(j, k);

  // All queries at once: S = X·Xᵀ, A = softmax(S) row-wise, Z = A·X.
  w.all = simplified_self_attention(w.inputs, Normalization::Softmax);
  w.row_sums = row_sums_of(w.all.weights);

  w.trainable = compute_trainable(w.inputs, w.query);
  w.causal = compute_causal(w.inputs);
  w.dropout = compute_dropout(w.inputs);
  w.heads = compute_heads(w.inputs);
  return w;
}

// ---- text ------------------------------------------------------------------------

std::vector<std::string> row_labels(const Walkthrough& w) {
  std::vector<std::string> out;
  for (size_t i = 0; i < w.words.size(); ++i) out.push_back("x" + std::to_string(i + 1) + " " + w.words[i]);
  return out;
}

std::vector<std::string> with(std::vector<std::string> v, const std::string& extra) {
  v.push_back(extra);
  return v;
}

// A [L, L] matrix with a row-sum column.
void print_with_sums(std::ostream& os, const Tensor<float>& m, const std::vector<std::string>& rows,
                     const std::vector<std::string>& cols, int lw) {
  print_header(os, "", lw, with(cols, "row sum"));
  for (int64_t i = 0; i < m.size(0); ++i) {
    auto v = values_of(m.select(0, i));
    v.push_back(sum_of(m.select(0, i)));
    print_row(os, rows[static_cast<size_t>(i)], lw, v);
  }
}

// The stages as separate functions, so --step can pause between them.
std::vector<std::function<void(std::ostream&)>> text_stages(const Walkthrough& w, const DemoOptions& opt) {
  std::vector<std::function<void(std::ostream&)>> stages;
  const auto rows = row_labels(w);
  const auto& words = w.words;
  const int lw = 14;  // label column width
  const std::string qn = std::to_string(w.query + 1);           // "2"
  const std::string qword = "\"" + words[static_cast<size_t>(w.query)] + "\"";
  const std::vector<std::string> dims = {"dim 0", "dim 1", "dim 2"};
  const std::vector<std::string> dims2 = {"dim 0", "dim 1"};

  stages.push_back([=](std::ostream& os) {
    const std::string title = opt.text.empty() ? "Your journey starts with one step" : w.sentence;
    os << title << "\n" << std::string(title.size(), '=') << "\n"
       << "Simplified self-attention, no trainable weights (notes 004). Each word's\n"
       << "embedding vector x(i) becomes a context vector z(i): an enriched embedding\n"
       << "that also says how the word relates to every other word in the sentence.\n";
    if (!opt.text.empty())
      os << "(--text: a word of the notes' sentence keeps its notes' vector; any other word gets\n"
         << " 3 numbers in [0, 1) drawn from a generator seeded by the word's hash.)\n";
    os << "\n1. The inputs: one 3-d embedding vector per word, X [" << words.size() << ", 3]\n\n";
    print_matrix(os, w.inputs, rows, dims, lw);
  });

  stages.push_back([=](std::ostream& os) {
    os << "\n2. Attention scores for the query x" << qn << " (" << qword << "): w" << qn << "j = x" << qn
       << " . xj (omega in the notes)\n"
       << "   The dot product says how aligned two vectors are: the larger, the more\n"
       << "   similar, the more attention.";
    if (opt.text.empty()) os << " \"starts\" is closest to \"journey\".";
    os << "\n\n";
    print_header(os, "", lw, words);
    print_row(os, "scores w" + qn, lw, values_of(w.query_scores));

    os << "\n3. Attention weights: normalise the scores so that they sum to 1.\n"
       << "   Three ways, side by side (the last column is the sum):\n\n";
    print_header(os, "", lw + 10, with(words, "sum"));
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
  });

  stages.push_back([=](std::ostream& os) {
    os << "\n4. Why subtract the maximum? Multiply the scores by " << num(opt.overflow_factor, 0)
       << " (large scores are\n"
       << "   common in real models). A float holds e^s only for s < 88.7:\n\n";
    print_header(os, "", lw + 10, words);
    print_row(os, "scores w" + qn + " x " + num(opt.overflow_factor, 0), lw + 10, values_of(w.big_scores));
    print_row(os, "naive softmax  e^w/sum", lw + 10, values_of(w.big_naive));
    print_row(os, "softmax  e^(w-max)/sum", lw + 10, values_of(w.big_softmax));
    float big_max = w.big_scores.flat(0);
    for (int64_t j = 1; j < w.big_scores.numel(); ++j) big_max = std::max(big_max, w.big_scores.flat(j));
    os << "\n   Naive: e^" << num(big_max, 1)
       << (big_max > 88.7f ? " overflows to inf, and inf/inf is nan: the weights are lost.\n"
                           : " still fits in a float this time; try a larger factor.\n")
       << "   Stable: after subtracting the max every exponent is <= 0, so e^(s-max) <= 1\n"
       << "   never overflows, and the weights still sum to " << num(sum_of(w.big_softmax)) << ".\n";

    os << "\n5. The context vector of " << qword << ": z" << qn << " = sum over j of a" << qn << "j * xj\n"
       << "   (each input scaled by its attention weight, then added up)\n\n";
    print_header(os, "", lw, dims);
    print_row(os, "z" + qn, lw, values_of(w.z_query));
  });

  stages.push_back([=](std::ostream& os) {
    os << "\n6. Every query at once, as two matrix products.\n"
       << "   Attention scores S = X . X^T; row " << qn << " is w" << qn << " from step 2:\n\n";
    print_matrix(os, w.all.scores, rows, words, lw);
    os << "\n   Attention weights A = softmax(S, dim=-1); each row sums to 1:\n\n";
    print_with_sums(os, w.all.weights, rows, words, lw);
    os << "\n   Context vectors Z = A . X; row " << qn << " is z" << qn << " from step 5:\n\n";
    print_matrix(os, w.all.context, rows, dims, lw);
  });

  stages.push_back([=](std::ostream& os) {
    const Trainable& t = w.trainable;
    os << "\n7. Trainable weights. Without them a word attends to the words that look\n"
       << "   like it. Three learned matrices project each input into a query (what\n"
       << "   am I looking for?), a key (what do I offer?) and a value (what do I pass\n"
       << "   on?), so training can make \"warm\" attend to \"mat\" in \"The cat sat on the\n"
       << "   mat because it is warm\" (notes 004). Here d_in = 3, d_out = 2, and the\n"
       << "   weights are torch.manual_seed(123); torch.rand(3, 2) three times:\n\n";
    for (const auto& [name, m] : {std::pair<std::string, const Tensor<float>*>{"W_query", &t.W_query},
                                  {"W_key", &t.W_key}, {"W_value", &t.W_value}}) {
      os << "   " << name << " [3, 2]\n";
      print_matrix(os, *m, {"  row 0", "  row 1", "  row 2"}, dims2, lw);
    }
    os << "\n   Query of " << qword << ": q" << qn << " = x" << qn << " . W_query; keys K = X . W_key and values\n"
       << "   V = X . W_value, one row per word:\n\n";
    print_header(os, "", lw, dims2);
    print_row(os, "q" + qn, lw, values_of(t.query));
    os << "\n";
    print_header(os, "", lw, {"key 0", "key 1", "value 0", "value 1"});
    for (int64_t i = 0; i < t.keys.size(0); ++i)
      print_row(os, rows[static_cast<size_t>(i)], lw,
                {t.keys(i, 0), t.keys(i, 1), t.values(i, 0), t.values(i, 1)});
    os << "\n   Scores w" << qn << "j = q" << qn << " . kj (w" << qn << qn << " = " << num(t.scores(w.query))
       << ", the query against its own key):\n\n";
    print_header(os, "", lw + 10, words);
    print_row(os, "scores w" + qn, lw + 10, values_of(t.scores));
  });

  stages.push_back([=](std::ostream& os) {
    const Trainable& t = w.trainable;
    os << "\n8. Scaled dot-product: divide the scores by sqrt(d_k) = sqrt(2) before the\n"
       << "   softmax. A dot product of d_k terms grows like sqrt(d_k); with d_k = 128\n"
       << "   the softmax would put almost all weight on one key and its gradients\n"
       << "   would vanish (notes 003: \"for numeric stability\"). Side by side:\n\n";
    print_header(os, "", lw + 10, with(words, "sum"));
    auto with_sum = [](const Tensor<float>& v) {
      auto out = values_of(v);
      out.push_back(sum_of(v));
      return out;
    };
    print_row(os, "w" + qn + " / sqrt(d_k)", lw + 10, values_of(t.scaled_scores));
    print_row(os, "softmax(w" + qn + ")  unscaled", lw + 10, with_sum(t.unscaled_weights));
    print_row(os, "softmax(w" + qn + "/sqrt(d_k))", lw + 10, with_sum(t.weights));
    os << "\n   The scaled weights are flatter. The context vector of " << qword << " is now\n"
       << "   the weighted sum of the values, z" << qn << " = sum over j of a" << qn << "j * vj:\n\n";
    print_header(os, "", lw, dims2);
    print_row(os, "z" + qn, lw, values_of(t.context));
    os << "\n   All queries: A = softmax(Q . K^T / sqrt(d_k)), Z = A . V (the book's SelfAttention_v1):\n\n";
    print_with_sums(os, t.all_weights, rows, words, lw);
    os << "\n";
    print_matrix(os, t.all_context, rows, dims2, lw);
  });

  stages.push_back([=](std::ostream& os) {
    const Causal& c = w.causal;
    os << "\n9. Causal attention. A language model predicts the next word from the\n"
       << "   words before it, so a word must not attend to later words. The weights\n"
       << "   now come from nn.Linear layers (torch.manual_seed(789); the library's\n"
       << "   SelfAttention(3, 2), the book's SelfAttention_v2), whose context vectors are:\n\n";
    print_matrix(os, c.self_attention, rows, dims2, lw);
    os << "\n   Its attention weights softmax(Q . K^T / sqrt(d_k)), every word sees every word:\n\n";
    print_with_sums(os, c.weights, rows, words, lw);
    os << "\n   The mask: 1 on and below the diagonal (word i sees words 1..i), 0 above:\n\n";
    Tensor<float> m = c.mask;
    print_header(os, "", lw, words);
    for (int64_t i = 0; i < m.size(0); ++i) print_row(os, rows[static_cast<size_t>(i)], lw, values_of(m.select(0, i)), 9, 0);
    os << "\n   Way 1: multiply the weights by the mask; the rows no longer sum to 1 ...\n\n";
    print_with_sums(os, c.masked, rows, words, lw);
    os << "\n   ... so divide each row by its sum (renormalise):\n\n";
    print_with_sums(os, c.renormalised, rows, words, lw);
    os << "\n   Way 2: set the scores above the diagonal to -inf before the softmax;\n"
       << "   e^-inf = 0, so the softmax renormalises by itself, in one pass:\n\n";
    print_matrix(os, c.masked_scores, rows, words, lw);
    os << "\n   softmax(masked scores / sqrt(d_k)), the same weights as way 1:\n\n";
    print_with_sums(os, c.inf_weights, rows, words, lw);
    float diff = 0;
    for (int64_t i = 0; i < c.inf_weights.numel(); ++i)
      diff = std::max(diff, std::fabs(c.inf_weights.flat(i) - c.renormalised.flat(i)));
    os << "\n   Largest difference between the two ways: " << num(diff, 7)
       << ". Masking before the softmax\n"
       << "   is what the library's SDPA (is_causal) and CausalAttention do. The causal\n"
       << "   context vectors, CausalAttention(3, 2) with the same seed-789 weights:\n\n";
    print_matrix(os, c.context, rows, dims2, lw);
  });

  stages.push_back([=](std::ostream& os) {
    const Dropout& d = w.dropout;
    os << "\n10. Dropout (training only): each attention weight is dropped with\n"
       << "    probability p = 0.5 and the kept ones are multiplied by 1/(1 - p) = 2,\n"
       << "    so every weight keeps its expected value. dropout(ones) shows the mask:\n\n";
    print_header(os, "", lw, words);
    for (int64_t i = 0; i < d.ones.size(0); ++i)
      print_row(os, "  row " + std::to_string(i + 1), lw, values_of(d.ones.select(0, i)), 9, 1);
    os << "\n    Note: the library's dropout is counter-based (keep = a hash of seed, batch,\n"
       << "    head, row, column >= p, seed 123), so the mask does not depend on threads or\n"
       << "    tiling and backward regenerates it. torch's nn.Dropout draws a Bernoulli mask\n"
       << "    from its global generator: the same scaling, a different pattern of zeros\n"
       << "    from the book's for the same seed.\n\n"
       << "    The causal weights of step 9 through SDPA with dropout_p = 0.5";
    // Name one kept weight of the query's row, to show the doubling.
    const int64_t q = w.query;
    for (int64_t j = 0; j <= q; ++j)
      if (d.weights(q, j) > 0) {
        os << " (row " << qn << "'s\n    weight on \"" << words[static_cast<size_t>(j)] << "\", "
           << num(w.causal.inf_weights(q, j)) << ", was kept and doubled to " << num(d.weights(q, j)) << ")";
        break;
      }
    os << ";\n    rows no longer sum to 1 (only on average):\n\n";
    print_with_sums(os, d.weights, rows, words, lw);
  });

  stages.push_back([=](std::ostream& os) {
    const Heads& h = w.heads;
    os << "\n11. Multi-head attention: several causal heads in parallel, each with its\n"
       << "    own W_query/W_key/W_value, each free to learn a different notion of which\n"
       << "    words matter (notes 002, 003). torch.manual_seed(123), a batch of two copies\n"
       << "    of X (batch 0 shown; batch 1 is the same). One head, CausalAttention(3, 2):\n\n";
    print_matrix(os, h.one_head, rows, dims2, lw);
    os << "\n    Two heads, MultiHeadAttentionWrapper(3, 2, num_heads=2): the heads' context\n"
       << "    vectors side by side, d_out = 2 x 2 = 4 (head 1 is the head above):\n\n";
    print_matrix(os, h.wrapper, rows, {"h1 dim 0", "h1 dim 1", "h2 dim 0", "h2 dim 1"}, lw, 10);
    os << "\n    The efficient form, MultiHeadAttention(3, 2, num_heads=2): one projection of\n"
       << "    width 2 split into two heads of head_dim 1, then an output projection:\n\n";
    print_matrix(os, h.mha, rows, dims2, lw);
    os << "\n    Next: `attn heatmap` draws these weights, `attn train` learns them.\n";
  });
  return stages;
}

// --step: wait for Enter between stages. Never blocks a script: when stdin is
// not a terminal (a pipe, a file, /dev/null) it does not wait at all, and an
// end of input (Ctrl-D) stops the pausing.
class Stepper {
 public:
  explicit Stepper(bool on) : on_(on) {
    if (on_ && !isatty(STDIN_FILENO)) {
      std::cerr << "attn demo: --step: stdin is not a terminal, not pausing\n";
      on_ = false;
    }
  }
  void pause() {
    if (!on_) return;
    std::cout.flush();
    std::cerr << "\n-- press Enter for the next stage (Ctrl-D: run to the end) --" << std::flush;
    std::string line;
    if (!std::getline(std::cin, line)) {
      on_ = false;
      std::cerr << "\n";
    }
  }

 private:
  bool on_;
};

void print_text(const Walkthrough& w, const DemoOptions& opt) {
  const auto stages = text_stages(w, opt);
  Stepper stepper(opt.step);
  for (size_t s = 0; s < stages.size(); ++s) {
    if (s > 0) stepper.pause();
    stages[s](std::cout);
  }
}

// ---- JSON ------------------------------------------------------------------------

nlohmann::ordered_json to_json_doc(const Walkthrough& w, const DemoOptions& opt) {
  using json = nlohmann::ordered_json;
  json j;
  j["sentence"] = w.sentence;
  j["tokens"] = w.words;
  j["inputs"] = to_json(w.inputs);
  j["query"] = {{"index", w.query}, {"token", w.words[static_cast<size_t>(w.query)]}};
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
  const Trainable& t = w.trainable;
  j["trainable"] = {
      {"seed", kSeedPlain},
      {"W_query", to_json(t.W_query)},
      {"W_key", to_json(t.W_key)},
      {"W_value", to_json(t.W_value)},
      {"query", to_json(t.query)},
      {"keys", to_json(t.keys)},
      {"values", to_json(t.values)},
      {"scores", to_json(t.scores)},
      {"unscaled_weights", to_json(t.unscaled_weights)},
      {"scaled_scores", to_json(t.scaled_scores)},
      {"weights", to_json(t.weights)},
      {"context", to_json(t.context)},
      {"all_weights", to_json(t.all_weights)},
      {"all_context", to_json(t.all_context)},
  };
  const Causal& c = w.causal;
  j["causal"] = {
      {"seed", kSeedLinear},
      {"self_attention", to_json(c.self_attention)},
      {"scores", to_json(c.scores)},
      {"weights", to_json(c.weights)},
      {"mask", to_json(c.mask)},
      {"masked_weights", to_json(c.masked)},
      {"renormalized_weights", to_json(c.renormalised)},
      {"masked_scores", to_json(c.masked_scores)},  // -inf as null
      {"softmax_of_masked_scores", to_json(c.inf_weights)},
      {"context", to_json(c.context)},
  };
  const Dropout& d = w.dropout;
  j["dropout"] = {
      {"p", kDropoutP},
      {"seed", kDropoutSeed},
      {"generator", "counter-based (attn::dropout_keep), not torch's Bernoulli draw: the mask differs from torch's"},
      {"ones", to_json(d.ones)},
      {"causal_weights", to_json(d.weights)},
      {"row_sums", to_json(d.row_sums)},
  };
  const Heads& h = w.heads;
  j["heads"] = {
      {"seed", kSeedHeads},
      {"causal_attention", to_json(h.one_head)},
      {"wrapper", to_json(h.wrapper)},
      {"multi_head_attention", to_json(h.mha)},
  };
  return j;
}

// ---- the picture -------------------------------------------------------------------

void write_plot(const Walkthrough& w, const std::string& path) {
  Plot3D p;
  p.title = "Word embeddings in 3-D: \"" + w.sentence + "\"";
  for (size_t i = 0; i < w.words.size(); ++i) {
    const auto r = w.inputs.select(0, static_cast<int64_t>(i));
    p.arrows.push_back({{r(0), r(1), r(2)}, w.words[i], Plot3D::kInput});
  }
  const std::string q = w.words[static_cast<size_t>(w.query)];
  p.arrows.push_back({{w.z_query(0), w.z_query(1), w.z_query(2)}, "z: context of \"" + q + "\"", Plot3D::kContext});
  p.highlight = static_cast<int>(w.query);
  p.legend = {"embedding x(i) of a word", "context vector z of \"" + q + "\" (simplified attention)"};
  plot3d_renderer()(p, path);
}

int usage(const std::string& what) {
  std::cerr << "attn demo: error: " << what << "\nusage: attn demo [--json] [--text \"...\"] [--step] [--plot FILE.png]; "
            << "see `attn demo --help`\n";
  return kExitUsage;
}

Run setup_demo(CLI::App& sub) {
  auto opt = std::make_shared<DemoOptions>();
  auto* json = sub.add_flag("--json", opt->json, "print the same data as one JSON object (non-finite numbers as null)");
  sub.add_option("--overflow-factor", opt->overflow_factor,
                 "scale the scores by this much to show naive softmax overflowing")
      ->capture_default_str()
      ->check(finite_range(0.001, 1.0e6));
  auto* text = sub.add_option("--text", opt->text,
                 "another sentence, one token per word (notes' words keep their vectors, others get a built-in "
                 "deterministic 3-d embedding); the query is the second word");
  auto* query = sub.add_option("--query", opt->query,
                                "the query word, counted from 1 as the notes' x1..xL (default 2: \"journey\")")
                    ->check(CLI::Range(int64_t{1}, kMaxWords));
  sub.add_flag("--step", opt->step, "pause between stages until Enter is pressed (never waits when stdin is not a terminal)")
      ->excludes(json);
  sub.add_option("--plot", opt->plot,
                 "also draw the embeddings as arrows in 3-D with the query's context vector, as a PNG");
  return [opt, text, query]() {
    const auto words = text->count() > 0 ? split_words(opt->text) : kNotesWords;
    if (text->count() > 0) {
      if (words.empty()) return usage("--text has no words");
      if (static_cast<int64_t>(words.size()) > kMaxWords)
        return usage("--text has " + std::to_string(words.size()) + " words; at most " + std::to_string(kMaxWords));
    }
    if (query->count() > 0) {
      if (opt->query > static_cast<int64_t>(words.size()))
        return usage("--query " + std::to_string(opt->query) + ": the text has " + std::to_string(words.size()) + " words");
      opt->query -= 1;  // the notes count from 1, the tensors from 0
    }
    if (!opt->plot.empty() && plot3d_renderer() == nullptr)
      return usage("--plot: this build of the demo has no picture support (cairo); use the attn command");
    if (!opt->plot.empty()) {
      const std::string lp = lower_case(opt->plot);
      if (lp.size() < 4 || lp.substr(lp.size() - 4) != ".png")
        return usage("--plot " + opt->plot + ": expected a file name ending in .png");
    }
    const Walkthrough w = compute(*opt);
    if (opt->json)
      std::cout << pretty_json(to_json_doc(w, *opt)) << "\n";
    else
      print_text(w, *opt);
    if (!opt->plot.empty()) {
      write_plot(w, opt->plot);
      (opt->json ? std::cerr : std::cout) << "wrote " << opt->plot << "\n";
    }
    return kExitOk;
  };
}

const Register kDemo{{"demo", "Walk through the notes' \"Your journey starts with one step\" example", setup_demo}};

}  // namespace

nlohmann::ordered_json demo_document(const std::string& text, int64_t query, float overflow_factor) {
  DemoOptions opt;
  opt.text = text;
  opt.query = query;
  opt.overflow_factor = overflow_factor;
  const auto words = text.empty() ? kNotesWords : split_words(text);
  if (words.empty()) throw ValueError("demo: the text has no words");
  if (static_cast<int64_t>(words.size()) > kMaxWords)
    throw ValueError("demo: the text has " + std::to_string(words.size()) + " words; at most " + std::to_string(kMaxWords));
  if (query >= static_cast<int64_t>(words.size()))
    throw ValueError("demo: query " + std::to_string(query) + " is past the text's " + std::to_string(words.size()) + " words");
  return to_json_doc(compute(opt), opt);
}

}  // namespace attn::cli

// Packed variable-length batches (attn/varlen.hpp), forward and backward.
//
// What each test checks against, so no expected value comes from the code
// under test alone:
//   * NaiveAttention below: the formula of attn/sdpa.hpp written out as plain
//     loops over one sequence in double (scores, softcap, ALiBi, causal and
//     window by position, sinks, dropout by attn::dropout_keep): the forward's
//     oracle for random batches and every option.
//   * per-sequence scaled_dot_product_attention on contiguous copies, reference
//     path, double: the oracle of the backward (d_query, d_key, d_value,
//     d_sinks), whose own correctness tests/reference/sdpa_grad_test.cpp checks
//     against finite differences.
//   * a padded batch through one SDPA call with a key-padding mask: the same
//     dropout mask (sequence b draws batch b's).
//   * the fast path against the reference path, and 1 against 2 threads.
// Sits in attn_threaded_tests: the fast path runs the kernels' thread pool.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "attn/errors.hpp"
#include "attn/sdpa.hpp"
#include "attn/threading.hpp"
#include "attn/varlen.hpp"
#include "reference/sdpa_test_helpers.hpp"

namespace {

using attn::CausalAlignment;
using attn::SdpaBackend;
using attn::SdpaOptions;
using attn::Shape;
using attn::Tensor;
using attn::VarlenOptions;
using attn_test::expect_error;

constexpr double kInf = std::numeric_limits<double>::infinity();

/// A random packed batch: lengths, offsets and q/k/v [total, H, D] in double.
struct Batch {
  std::vector<int64_t> lq, lk, cu_q, cu_k;
  int64_t Hq = 0, Hkv = 0, Dk = 0, Dv = 0;
  Tensor<double> q, k, v;
  int64_t batch() const { return static_cast<int64_t>(lq.size()); }
  int64_t max_q() const { return lq.empty() ? 0 : *std::max_element(lq.begin(), lq.end()); }
  int64_t max_k() const { return lk.empty() ? 0 : *std::max_element(lk.begin(), lk.end()); }
  template <class I>
  Tensor<I> cu(const std::vector<int64_t>& c) const {
    Tensor<I> t({static_cast<int64_t>(c.size())});
    for (size_t i = 0; i < c.size(); ++i) t(static_cast<int64_t>(i)) = static_cast<I>(c[i]);
    return t;
  }
  template <class I = int32_t>
  Tensor<I> cu_q_tensor() const { return cu<I>(cu_q); }
  template <class I = int32_t>
  Tensor<I> cu_k_tensor() const { return cu<I>(cu_k); }
};

Tensor<double> random_tensor(std::mt19937& rng, const Shape& shape, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  Tensor<double> t(shape);
  for (int64_t n = 0; n < t.numel(); ++n) t.flat(n) = normal(rng);
  return t;
}

std::vector<int64_t> offsets(const std::vector<int64_t>& lengths) {
  std::vector<int64_t> cu{0};
  for (int64_t l : lengths) cu.push_back(cu.back() + l);
  return cu;
}

Batch make_batch(std::mt19937& rng, std::vector<int64_t> lq, std::vector<int64_t> lk, int64_t Hq, int64_t Hkv,
                 int64_t Dk, int64_t Dv) {
  Batch bt;
  bt.lq = std::move(lq), bt.lk = std::move(lk);
  bt.cu_q = offsets(bt.lq), bt.cu_k = offsets(bt.lk);
  bt.Hq = Hq, bt.Hkv = Hkv, bt.Dk = Dk, bt.Dv = Dv;
  bt.q = random_tensor(rng, {bt.cu_q.back(), Hq, Dk});
  bt.k = random_tensor(rng, {bt.cu_k.back(), Hkv, Dk});
  bt.v = random_tensor(rng, {bt.cu_k.back(), Hkv, Dv});
  return bt;
}

/// Lengths in [0, max]: empty, length-1 and Lq != Lk sequences all come up.
Batch random_batch(std::mt19937& rng, int64_t batch, int64_t max_len, int64_t Hq, int64_t Hkv, int64_t D) {
  std::uniform_int_distribution<int64_t> len(0, max_len);
  std::vector<int64_t> lq, lk;
  for (int64_t b = 0; b < batch; ++b) lq.push_back(len(rng)), lk.push_back(len(rng));
  if (batch >= 3) lq[1] = 1, lk[1] = 1, lq[2] = 0;  // always one length-1 and one empty query sequence
  return make_batch(rng, lq, lk, Hq, Hkv, D, D + 1);
}

/// The packed rows of sequence b as a contiguous [1, H, L, D] tensor.
Tensor<double> sequence(const Tensor<double>& packed, int64_t start, int64_t end) {
  Tensor<double> rows = packed.slice(0, start, end).transpose(0, 1).contiguous();  // [H, L, D]
  return rows.reshape({1, rows.size(0), rows.size(1), rows.size(2)});
}

/// The oracle: attn/sdpa.hpp's formula for sequence b, head h, written out.
/// Returns output [Lq, Dv] for this head and fills lse[i].
void NaiveAttention(const Batch& bt, const SdpaOptions<double>& o, int64_t b, int64_t h, Tensor<double>& out,
                    Tensor<double>& lse) {
  const int64_t q0 = bt.cu_q[b], k0 = bt.cu_k[b], Lq = bt.lq[b], Lk = bt.lk[b];
  const int64_t g = h / (bt.Hq / bt.Hkv);
  const int64_t diag = o.causal_alignment == CausalAlignment::BottomRight ? Lk - Lq : 0;
  const double scale = o.scale ? *o.scale : 1.0 / std::sqrt(static_cast<double>(bt.Dk));
  double slope = 0;
  if (o.alibi_slopes.defined()) slope = o.alibi_slopes.dim() == 1 ? o.alibi_slopes(h) : o.alibi_slopes(b, h);
  for (int64_t i = 0; i < Lq; ++i) {
    std::vector<double> s(static_cast<size_t>(Lk), -kInf);
    for (int64_t j = 0; j < Lk; ++j) {
      const int64_t rel = j - (i + diag);  // key j relative to query i's diagonal
      if (o.is_causal && rel > 0) continue;
      if (o.window_left >= 0 && rel < -o.window_left) continue;
      if (o.window_right >= 0 && rel > o.window_right) continue;
      double x = 0;
      for (int64_t d = 0; d < bt.Dk; ++d) x += bt.q(q0 + i, h, d) * bt.k(k0 + j, g, d);
      x *= scale;
      if (o.softcap > 0) x = o.softcap * std::tanh(x / o.softcap);
      x -= slope * std::abs(static_cast<double>(rel));
      s[static_cast<size_t>(j)] = x;
    }
    double m = o.sinks.defined() ? o.sinks(h) : -kInf;
    for (double x : s) m = std::max(m, x);
    double sum = 0;
    if (m > -kInf) {
      for (double x : s) sum += std::exp(x - m);
      if (o.sinks.defined()) sum += std::exp(o.sinks(h) - m);
    }
    const double row_lse = m > -kInf ? m + std::log(sum) : -kInf;
    lse(h, q0 + i) = row_lse;
    for (int64_t d = 0; d < bt.Dv; ++d) out(q0 + i, h, d) = 0;
    for (int64_t j = 0; j < Lk; ++j) {
      if (s[static_cast<size_t>(j)] == -kInf) continue;
      double w = std::exp(s[static_cast<size_t>(j)] - row_lse);
      if (o.dropout_p > 0)
        w = attn::dropout_keep(o.dropout_seed, b, h, i, j, o.dropout_p) ? w / (1.0 - o.dropout_p) : 0.0;
      for (int64_t d = 0; d < bt.Dv; ++d) out(q0 + i, h, d) += w * bt.v(k0 + j, g, d);
    }
  }
}

void NaiveVarlen(const Batch& bt, const SdpaOptions<double>& o, Tensor<double>& out, Tensor<double>& lse) {
  out = Tensor<double>({bt.cu_q.back(), bt.Hq, bt.Dv});
  lse = Tensor<double>({bt.Hq, bt.cu_q.back()});
  for (int64_t b = 0; b < bt.batch(); ++b)
    for (int64_t h = 0; h < bt.Hq; ++h) NaiveAttention(bt, o, b, h, out, lse);
}

/// Max |a − b| over two tensors of one shape (−inf == −inf counts as 0).
template <class A, class B>
double max_diff(const Tensor<A>& a, const Tensor<B>& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return kInf;
  double worst = 0;
  for (int64_t n = 0; n < a.numel(); ++n) {
    const double x = static_cast<double>(a.flat(n)), y = static_cast<double>(b.flat(n));
    if (x == y) continue;
    worst = std::max(worst, std::isnan(x - y) ? kInf : std::abs(x - y));
  }
  return worst;
}

/// The option sets every test runs: each option alone and all at once.
struct Case {
  std::string name;
  SdpaOptions<double> options;
};

std::vector<Case> option_cases(const Batch& bt, std::mt19937& rng) {
  std::vector<Case> cases;
  auto base = [] {
    SdpaOptions<double> o = VarlenOptions<double>{};
    o.backend = SdpaBackend::Reference;
    return o;
  };
  cases.push_back({"plain", base()});
  {
    Case c{"causal bottom-right", base()};
    c.options.is_causal = true;
    cases.push_back(c);
  }
  {
    Case c{"causal top-left", base()};
    c.options.is_causal = true;
    c.options.causal_alignment = CausalAlignment::TopLeft;
    cases.push_back(c);
  }
  {
    Case c{"window (3, 1)", base()};
    c.options.window_left = 3, c.options.window_right = 1;
    cases.push_back(c);
  }
  {
    Case c{"alibi [H] + softcap + scale", base()};
    c.options.alibi_slopes = random_tensor(rng, {bt.Hq}, 0.3);
    for (int64_t h = 0; h < bt.Hq; ++h) c.options.alibi_slopes(h) = std::abs(c.options.alibi_slopes(h));
    c.options.softcap = 2.0;
    c.options.scale = 0.4;
    cases.push_back(c);
  }
  {
    Case c{"alibi [batch, H], causal top-left", base()};
    c.options.alibi_slopes = random_tensor(rng, {bt.batch(), bt.Hq}, 0.3);
    c.options.is_causal = true;
    c.options.causal_alignment = CausalAlignment::TopLeft;
    cases.push_back(c);
  }
  {
    Case c{"sinks", base()};
    c.options.sinks = random_tensor(rng, {bt.Hq});
    cases.push_back(c);
  }
  {
    Case c{"dropout", base()};
    c.options.dropout_p = 0.3;
    c.options.dropout_seed = 1234;
    cases.push_back(c);
  }
  {
    Case c{"everything", base()};
    c.options.is_causal = true;
    c.options.window_left = 4;
    c.options.alibi_slopes = random_tensor(rng, {bt.batch(), bt.Hq}, 0.2);
    c.options.softcap = 3.0;
    c.options.sinks = random_tensor(rng, {bt.Hq});
    c.options.dropout_p = 0.2;
    c.options.dropout_seed = 99;
    cases.push_back(c);
  }
  return cases;
}

SdpaOptions<float> to_float(const SdpaOptions<double>& o) {
  SdpaOptions<float> f;
  f.is_causal = o.is_causal;
  f.causal_alignment = o.causal_alignment;
  f.window_left = o.window_left, f.window_right = o.window_right;
  f.scale = o.scale;
  f.dropout_p = o.dropout_p, f.dropout_seed = o.dropout_seed;
  f.enable_gqa = o.enable_gqa;
  if (o.alibi_slopes.defined()) f.alibi_slopes = o.alibi_slopes.to<float>();
  f.softcap = o.softcap;
  if (o.sinks.defined()) f.sinks = o.sinks.to<float>();
  f.backend = o.backend;
  return f;
}

// ---- forward against the written-out formula -------------------------------------------

TEST(Varlen, ForwardMatchesTheFormulaForRandomBatches) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 3; ++trial) {
    const int64_t Hkv = 1 + trial % 2, Hq = Hkv * (1 + trial);  // MHA, then GQA 2:1 and 3:1 ... heads ratio
    const Batch bt = random_batch(rng, 5, 9, Hq, Hkv, 4 + trial);
    for (const Case& c : option_cases(bt, rng)) {
      Tensor<double> want_out, want_lse;
      NaiveVarlen(bt, c.options, want_out, want_lse);
      const auto got = attn::varlen_attention(bt.q, bt.k, bt.v, bt.cu_q_tensor(), bt.cu_k_tensor(), bt.max_q(),
                                              bt.max_k(), c.options);
      EXPECT_LT(max_diff(got.output, want_out), 1e-12) << c.name << ", trial " << trial;
      EXPECT_LT(max_diff(got.lse, want_lse), 1e-12) << c.name << ", trial " << trial;
    }
  }
}

TEST(Varlen, Int32AndInt64OffsetsAgree) {
  std::mt19937 rng(8);
  const Batch bt = random_batch(rng, 4, 7, 2, 2, 3);
  SdpaOptions<double> o = VarlenOptions<double>{};
  o.is_causal = true;
  const auto a = attn::varlen_attention(bt.q, bt.k, bt.v, bt.cu_q_tensor<int32_t>(), bt.cu_k_tensor<int32_t>(),
                                        bt.max_q(), bt.max_k(), o);
  const auto b = attn::varlen_attention(bt.q, bt.k, bt.v, bt.cu_q_tensor<int64_t>(), bt.cu_k_tensor<int64_t>(),
                                        bt.max_q(), bt.max_k(), o);
  EXPECT_EQ(max_diff(a.output, b.output), 0.0);
  EXPECT_EQ(max_diff(a.lse, b.lse), 0.0);
}

TEST(Varlen, DefaultsAreFlashAttentionsBottomRightAndGqa) {
  const VarlenOptions<float> o;
  EXPECT_EQ(o.causal_alignment, CausalAlignment::BottomRight);
  EXPECT_TRUE(o.enable_gqa);
}

TEST(Varlen, EmptySequencesAndEmptyBatch) {
  std::mt19937 rng(9);
  // Sequence 0 has queries but no keys: output 0, lse −inf. Sequence 1 has
  // keys but no queries. Sequence 2 is empty on both sides.
  const Batch bt = make_batch(rng, {2, 0, 0, 3}, {0, 4, 0, 2}, 2, 1, 3, 3);
  const auto r = attn::varlen_attention(bt.q, bt.k, bt.v, bt.cu_q_tensor(), bt.cu_k_tensor(), 3, 4,
                                        VarlenOptions<double>{});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t h = 0; h < 2; ++h) {
      EXPECT_EQ(r.lse(h, i), -kInf);
      for (int64_t d = 0; d < 3; ++d) EXPECT_EQ(r.output(i, h, d), 0.0);
    }
  const auto g = attn::varlen_attention_backward(random_tensor(rng, {5, 2, 3}), bt.q, bt.k, bt.v, r.output, r.lse,
                                                 bt.cu_q_tensor(), bt.cu_k_tensor(), 3, 4, VarlenOptions<double>{});
  for (int64_t j = 0; j < 4; ++j)  // keys of the sequence without queries: no gradient
    for (int64_t d = 0; d < 3; ++d) {
      EXPECT_EQ(g.d_key(j, 0, d), 0.0);
      EXPECT_EQ(g.d_value(j, 0, d), 0.0);
    }

  // The fast path gives the same for a sequence without keys, forward and backward.
  SdpaOptions<float> fast = VarlenOptions<float>{};
  fast.backend = SdpaBackend::Fast;
  const auto rf = attn::varlen_attention(bt.q.to<float>(), bt.k.to<float>(), bt.v.to<float>(), bt.cu_q_tensor(),
                                         bt.cu_k_tensor(), 3, 4, fast);
  EXPECT_LT(max_diff(rf.output, r.output), 1e-6);
  EXPECT_LT(max_diff(rf.lse, r.lse), 1e-6);
  const auto gf = attn::varlen_attention_backward(random_tensor(rng, {5, 2, 3}).to<float>(), bt.q.to<float>(),
                                                  bt.k.to<float>(), bt.v.to<float>(), rf.output, rf.lse,
                                                  bt.cu_q_tensor(), bt.cu_k_tensor(), 3, 4, fast);
  for (int64_t n = 0; n < gf.d_query.numel(); ++n) EXPECT_TRUE(std::isfinite(gf.d_query.flat(n)));
  for (int64_t j = 0; j < 4; ++j)
    for (int64_t d = 0; d < 3; ++d) EXPECT_EQ(gf.d_key(j, 0, d), 0.0f);

  const Tensor<float> none({0, 2, 4});
  const Tensor<int64_t> zero({1});  // batch 0: cu_seqlens = [0]
  const auto e = attn::varlen_attention(none, none, none, zero, zero, 0, 0, VarlenOptions<float>{});
  EXPECT_EQ(e.output.shape(), (Shape{0, 2, 4}));
  EXPECT_EQ(e.lse.shape(), (Shape{2, 0}));
}

// ---- dropout: sequence b draws the padded batch's row b ---------------------------------

TEST(Varlen, DropoutDrawsThePaddedBatchsMask) {
  std::mt19937 rng(10);
  const Batch bt = random_batch(rng, 4, 8, 2, 2, 4);
  const int64_t B = bt.batch(), Lq = bt.max_q(), Lk = bt.max_k();
  // The same batch padded to [B, H, Lmax, D]; a bool mask hides the padded
  // keys and, top-left causal, the future (is_causal excludes a mask).
  Tensor<double> q({B, bt.Hq, Lq, bt.Dk}), k({B, bt.Hkv, Lk, bt.Dk}), v({B, bt.Hkv, Lk, bt.Dv});
  Tensor<double> dout({B, bt.Hq, Lq, bt.Dv});  // 0 on padded rows
  const Tensor<double> dout_packed = random_tensor(rng, {bt.cu_q.back(), bt.Hq, bt.Dv});
  Tensor<bool> mask({B, 1, Lq, Lk});
  for (int64_t b = 0; b < B; ++b) {
    q.slice(0, b, b + 1).slice(2, 0, bt.lq[b]).copy_(sequence(bt.q, bt.cu_q[b], bt.cu_q[b + 1]));
    k.slice(0, b, b + 1).slice(2, 0, bt.lk[b]).copy_(sequence(bt.k, bt.cu_k[b], bt.cu_k[b + 1]));
    v.slice(0, b, b + 1).slice(2, 0, bt.lk[b]).copy_(sequence(bt.v, bt.cu_k[b], bt.cu_k[b + 1]));
    dout.slice(0, b, b + 1).slice(2, 0, bt.lq[b]).copy_(sequence(dout_packed, bt.cu_q[b], bt.cu_q[b + 1]));
    for (int64_t i = 0; i < Lq; ++i)
      for (int64_t j = 0; j <= i && j < bt.lk[b]; ++j) mask(b, 0, i, j) = true;
  }
  SdpaOptions<double> o;  // top-left causal, as the mask above
  o.dropout_p = 0.4, o.dropout_seed = 31337, o.is_causal = true;
  SdpaOptions<double> po = o;
  po.is_causal = false;
  po.bool_mask = mask;
  const auto padded = attn::scaled_dot_product_attention(q, k, v, po);
  const auto padded_grads = attn::scaled_dot_product_attention_backward(dout, q, k, v, padded.output, padded.lse, po);
  auto rows = [](const Tensor<double>& t, int64_t b, int64_t L) { return t.slice(0, b, b + 1).slice(2, 0, L).contiguous(); };

  const auto r = attn::varlen_attention(bt.q, bt.k, bt.v, bt.cu_q_tensor(), bt.cu_k_tensor(), Lq, Lk, o);
  const auto g = attn::varlen_attention_backward(dout_packed, bt.q, bt.k, bt.v, r.output, r.lse, bt.cu_q_tensor(),
                                                 bt.cu_k_tensor(), Lq, Lk, o);
  SdpaOptions<float> f = to_float(o);
  f.backend = SdpaBackend::Fast;  // the fast kernel hashes the same coordinates
  const auto rf = attn::varlen_attention(bt.q.to<float>(), bt.k.to<float>(), bt.v.to<float>(), bt.cu_q_tensor(),
                                         bt.cu_k_tensor(), Lq, Lk, f);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t q0 = bt.cu_q[b], q1 = bt.cu_q[b + 1], k0 = bt.cu_k[b], k1 = bt.cu_k[b + 1];
    EXPECT_LT(max_diff(sequence(r.output, q0, q1), rows(padded.output, b, bt.lq[b])), 1e-12) << "sequence " << b;
    EXPECT_LT(max_diff(sequence(rf.output.to<double>(), q0, q1), rows(padded.output, b, bt.lq[b])), 2e-5)
        << "sequence " << b << " (fast)";
    EXPECT_LT(max_diff(sequence(g.d_query, q0, q1), rows(padded_grads.d_query, b, bt.lq[b])), 1e-12) << b;
    EXPECT_LT(max_diff(sequence(g.d_key, k0, k1), rows(padded_grads.d_key, b, bt.lk[b])), 1e-12) << b;
    EXPECT_LT(max_diff(sequence(g.d_value, k0, k1), rows(padded_grads.d_value, b, bt.lk[b])), 1e-12) << b;
  }
}

// ---- backward against per-sequence SDPA ---------------------------------------------------

TEST(Varlen, BackwardMatchesPerSequenceSdpa) {
  std::mt19937 rng(11);
  const Batch bt = random_batch(rng, 5, 8, 4, 2, 3);
  for (const Case& c : option_cases(bt, rng)) {
    // A batch of one has batch index 0, so its dropout mask differs:
    // dropout's backward is checked against the padded batch above.
    if (c.options.dropout_p > 0) continue;
    const auto r = attn::varlen_attention(bt.q, bt.k, bt.v, bt.cu_q_tensor(), bt.cu_k_tensor(), bt.max_q(),
                                          bt.max_k(), c.options);
    const Tensor<double> dout = random_tensor(rng, r.output.shape());
    const auto g = attn::varlen_attention_backward(dout, bt.q, bt.k, bt.v, r.output, r.lse, bt.cu_q_tensor(),
                                                   bt.cu_k_tensor(), bt.max_q(), bt.max_k(), c.options);
    ASSERT_EQ(g.d_query.shape(), bt.q.shape());
    ASSERT_EQ(g.d_key.shape(), bt.k.shape());
    ASSERT_EQ(g.d_value.shape(), bt.v.shape());
    Tensor<double> d_sinks({bt.Hq});
    for (int64_t b = 0; b < bt.batch(); ++b) {
      const int64_t q0 = bt.cu_q[b], q1 = bt.cu_q[b + 1], k0 = bt.cu_k[b], k1 = bt.cu_k[b + 1];
      SdpaOptions<double> o = c.options;
      if (o.alibi_slopes.defined() && o.alibi_slopes.dim() == 2)
        o.alibi_slopes = o.alibi_slopes.slice(0, b, b + 1);  // [1, Hq]: this sequence's row
      const Tensor<double> qb = sequence(bt.q, q0, q1), kb = sequence(bt.k, k0, k1), vb = sequence(bt.v, k0, k1);
      const auto rb = attn::scaled_dot_product_attention(qb, kb, vb, o);
      const auto gb = attn::scaled_dot_product_attention_backward(sequence(dout, q0, q1), qb, kb, vb, rb.output,
                                                                  rb.lse, o);
      const std::string where = c.name + ", sequence " + std::to_string(b);
      EXPECT_LT(max_diff(sequence(r.output, q0, q1), rb.output), 1e-12) << where;
      if (q1 > q0) {
        EXPECT_LT(max_diff(sequence(g.d_query, q0, q1), gb.d_query), 1e-12) << where;
        EXPECT_LT(max_diff(sequence(g.d_key, k0, k1), gb.d_key), 1e-12) << where;
        EXPECT_LT(max_diff(sequence(g.d_value, k0, k1), gb.d_value), 1e-12) << where;
        if (gb.d_sinks.defined())
          for (int64_t h = 0; h < bt.Hq; ++h) d_sinks(h) += gb.d_sinks(h);
      }
    }
    if (c.options.sinks.defined()) EXPECT_LT(max_diff(g.d_sinks, d_sinks), 1e-12) << c.name;
  }
}

// ---- fast against reference, threads -------------------------------------------------------

TEST(Varlen, FastMatchesReferenceForwardAndBackward) {
  std::mt19937 rng(12);
  // Lengths up to 70: several query and key blocks per sequence on the fast path.
  const Batch bt = random_batch(rng, 6, 70, 4, 2, 16);
  const Tensor<float> q = bt.q.to<float>(), k = bt.k.to<float>(), v = bt.v.to<float>();
  for (const Case& c : option_cases(bt, rng)) {
    const auto want = attn::varlen_attention(bt.q, bt.k, bt.v, bt.cu_q_tensor(), bt.cu_k_tensor(), bt.max_q(),
                                             bt.max_k(), c.options);
    SdpaOptions<float> f = to_float(c.options);
    f.backend = SdpaBackend::Fast;
    const auto got = attn::varlen_attention(q, k, v, bt.cu_q_tensor<int64_t>(), bt.cu_k_tensor<int64_t>(),
                                            bt.max_q(), bt.max_k(), f);
    EXPECT_LT(max_diff(got.output, want.output), 2e-5) << c.name;
    EXPECT_LT(max_diff(got.lse, want.lse), 2e-5) << c.name;

    const Tensor<double> dout = random_tensor(rng, want.output.shape());
    const auto gw = attn::varlen_attention_backward(dout, bt.q, bt.k, bt.v, want.output, want.lse,
                                                    bt.cu_q_tensor(), bt.cu_k_tensor(), bt.max_q(), bt.max_k(),
                                                    c.options);
    const auto gg = attn::varlen_attention_backward(dout.to<float>(), q, k, v, got.output, got.lse,
                                                    bt.cu_q_tensor<int64_t>(), bt.cu_k_tensor<int64_t>(),
                                                    bt.max_q(), bt.max_k(), f);
    EXPECT_LT(max_diff(gg.d_query, gw.d_query), 1e-4) << c.name;
    EXPECT_LT(max_diff(gg.d_key, gw.d_key), 1e-4) << c.name;
    EXPECT_LT(max_diff(gg.d_value, gw.d_value), 1e-4) << c.name;
    if (gw.d_sinks.defined()) EXPECT_LT(max_diff(gg.d_sinks, gw.d_sinks), 1e-4) << c.name;
  }
}

/// Max |a − b| / max(1, |b|): errors relative to the reference's magnitude.
template <class A>
double max_rel_diff(const Tensor<A>& a, const Tensor<double>& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double worst = 0;
  for (int64_t n = 0; n < a.numel() && a.shape() == b.shape(); ++n) {
    const double x = static_cast<double>(a.flat(n)), y = b.flat(n);
    if (x == y) continue;
    worst = std::max(worst, std::isnan(x - y) ? kInf : std::abs(x - y) / std::max(1.0, std::abs(y)));
  }
  return worst;
}

// The randomised fast-against-reference check of tests/cpu/flash_fuzz_test.cpp,
// drawing varlen batches: batch size, lengths (0 included), heads and GQA
// ratio, head dims, and every option at random, forward and backward.
TEST(Varlen, RandomBatchesAndOptionsFastMatchesReference) {
  std::mt19937 rng(2026);
  auto coin = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  double worst_out = 0, worst_grad = 0;
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t batch = pick(1, 6), Hkv = pick(1, 3), Hq = Hkv * pick(1, 3), Dk = pick(1, 40),
                  Dv = coin(0.5) ? Dk : pick(1, 40);
    std::vector<int64_t> lq, lk;
    for (int64_t b = 0; b < batch; ++b) lq.push_back(pick(0, 80)), lk.push_back(coin(0.3) ? lq.back() : pick(0, 80));
    const Batch bt = make_batch(rng, lq, lk, Hq, Hkv, Dk, Dv);
    SdpaOptions<double> o = VarlenOptions<double>{};
    o.backend = SdpaBackend::Reference;
    o.is_causal = coin(0.5);
    if (coin(0.5)) o.causal_alignment = CausalAlignment::TopLeft;
    if (coin(0.3)) o.window_left = pick(0, 20);
    if (coin(0.3)) o.window_right = pick(0, 20);
    if (coin(0.3)) o.scale = 0.05 + 0.5 * std::uniform_real_distribution<double>(0, 1)(rng);
    if (coin(0.3)) o.softcap = 1.0 + 10.0 * std::uniform_real_distribution<double>(0, 1)(rng);
    if (coin(0.3)) o.alibi_slopes = coin(0.5) ? random_tensor(rng, {Hq}, 0.2) : random_tensor(rng, {batch, Hq}, 0.2);
    if (coin(0.3)) o.sinks = random_tensor(rng, {Hq});
    if (coin(0.3)) o.dropout_p = 0.5 * std::uniform_real_distribution<double>(0, 1)(rng), o.dropout_seed = rng();
    SdpaOptions<float> f = to_float(o);
    f.backend = SdpaBackend::Fast;

    const auto want = attn::varlen_attention(bt.q, bt.k, bt.v, bt.cu_q_tensor(), bt.cu_k_tensor(), bt.max_q(),
                                             bt.max_k(), o);
    const auto got = attn::varlen_attention(bt.q.to<float>(), bt.k.to<float>(), bt.v.to<float>(), bt.cu_q_tensor(),
                                            bt.cu_k_tensor(), bt.max_q(), bt.max_k(), f);
    const Tensor<double> dout = random_tensor(rng, want.output.shape());
    const auto gw = attn::varlen_attention_backward(dout, bt.q, bt.k, bt.v, want.output, want.lse,
                                                    bt.cu_q_tensor(), bt.cu_k_tensor(), bt.max_q(), bt.max_k(), o);
    const auto gg = attn::varlen_attention_backward(dout.to<float>(), bt.q.to<float>(), bt.k.to<float>(),
                                                    bt.v.to<float>(), got.output, got.lse, bt.cu_q_tensor(),
                                                    bt.cu_k_tensor(), bt.max_q(), bt.max_k(), f);
    const double out = std::max(max_rel_diff(got.output, want.output), max_rel_diff(got.lse, want.lse));
    double grad = std::max({max_rel_diff(gg.d_query, gw.d_query), max_rel_diff(gg.d_key, gw.d_key),
                            max_rel_diff(gg.d_value, gw.d_value)});
    if (gw.d_sinks.defined()) grad = std::max(grad, max_rel_diff(gg.d_sinks, gw.d_sinks));
    EXPECT_LT(out, 2e-5) << "trial " << trial;
    EXPECT_LT(grad, 1e-4) << "trial " << trial;
    worst_out = std::max(worst_out, out), worst_grad = std::max(worst_grad, grad);
  }
  std::printf("[ varlen   ] largest fast/reference relative error: output %.2g, gradients %.2g\n", worst_out,
              worst_grad);
}

TEST(Varlen, OneAndTwoThreadsAreBitIdentical) {
  std::mt19937 rng(13);
  const Batch bt = random_batch(rng, 4, 120, 4, 4, 32);
  const Tensor<float> q = bt.q.to<float>(), k = bt.k.to<float>(), v = bt.v.to<float>();
  SdpaOptions<float> o = VarlenOptions<float>{};
  o.is_causal = true, o.dropout_p = 0.1, o.dropout_seed = 5, o.backend = SdpaBackend::Fast;
  const Tensor<float> dout = random_tensor(rng, {bt.cu_q.back(), 4, 33}).to<float>();
  std::vector<Tensor<float>> results[2];
  for (int threads : {1, 2}) {
    attn::set_num_threads(threads);
    const auto r = attn::varlen_attention(q, k, v, bt.cu_q_tensor(), bt.cu_k_tensor(), bt.max_q(), bt.max_k(), o);
    const auto g = attn::varlen_attention_backward(dout, q, k, v, r.output, r.lse, bt.cu_q_tensor(),
                                                   bt.cu_k_tensor(), bt.max_q(), bt.max_k(), o);
    results[threads - 1] = {r.output, r.lse, g.d_query, g.d_key, g.d_value};
  }
  attn::set_num_threads(0);
  for (size_t n = 0; n < results[0].size(); ++n) EXPECT_EQ(results[0][n].to_vector(), results[1][n].to_vector()) << n;
}

TEST(Varlen, StridedPackedInputs) {
  // q/k/v as views of a [total, D, H] buffer transposed: not contiguous.
  std::mt19937 rng(14);
  const Batch bt = random_batch(rng, 3, 6, 2, 2, 5);
  auto strided = [](const Tensor<double>& t) {
    return t.transpose(1, 2).contiguous().transpose(1, 2);  // same values, strides (H·D, 1, H)
  };
  const auto a = attn::varlen_attention(bt.q, bt.k, bt.v, bt.cu_q_tensor(), bt.cu_k_tensor(), bt.max_q(),
                                        bt.max_k(), VarlenOptions<double>{});
  const auto b = attn::varlen_attention(strided(bt.q), strided(bt.k), strided(bt.v), bt.cu_q_tensor(),
                                        bt.cu_k_tensor(), bt.max_q(), bt.max_k(), VarlenOptions<double>{});
  EXPECT_EQ(max_diff(a.output, b.output), 0.0);
}

// ---- bad input: each a typed error naming the argument --------------------------------------

TEST(Varlen, BadInputIsATypedErrorNamingTheArgument) {
  std::mt19937 rng(15);
  const Batch bt = make_batch(rng, {2, 3}, {4, 1}, 2, 1, 3, 3);  // total_q 5, total_k 5
  const VarlenOptions<double> o;
  auto cu = [](std::vector<int64_t> c) {
    Tensor<int64_t> t({static_cast<int64_t>(c.size())});
    for (size_t i = 0; i < c.size(); ++i) t(static_cast<int64_t>(i)) = c[i];
    return t;
  };
  const Tensor<int64_t> good_q = cu({0, 2, 5}), good_k = cu({0, 4, 5});
  auto call = [&](const Tensor<int64_t>& cq, const Tensor<int64_t>& ck, int64_t mq = 3, int64_t mk = 4,
                  const SdpaOptions<double>& opt = VarlenOptions<double>{}) {
    return [=] { attn::varlen_attention(bt.q, bt.k, bt.v, cq, ck, mq, mk, opt); };
  };
  using attn::ShapeError;
  using attn::ValueError;
  expect_error<ValueError>(call(cu({1, 2, 5}), good_k), {"cu_seqlens_q[0] is 1", "expected 0"});
  expect_error<ValueError>(call(good_q, cu({0, 6, 5})), {"cu_seqlens_k", "decreases at index 2", "6 then 5"});
  expect_error<ShapeError>(call(good_q, cu({0, 2, 4, 5})), {"cu_seqlens_q has shape [3]", "cu_seqlens_k", "[4]"});
  expect_error<ValueError>(call(cu({0, 2, 4}), good_k), {"cu_seqlens_q ends at 4", "expected 5", "query"});
  expect_error<ValueError>(call(good_q, cu({0, 4, 6})), {"cu_seqlens_k ends at 6", "expected 5"});
  expect_error<ValueError>(call(good_q, cu({0, -1, 5})), {"cu_seqlens_k decreases at index 1"});
  expect_error<ValueError>(call(cu({-2, 2, 5}), good_k), {"cu_seqlens_q[0] is -2"});
  expect_error<ValueError>(call(good_q, good_k, 2, 4), {"max_seqlen_q is 2", "sequence 1 has 3 tokens"});
  expect_error<ValueError>(call(good_q, good_k, 3, 3), {"max_seqlen_k is 3", "sequence 0 has 4 tokens"});
  expect_error<ValueError>(call(good_q, good_k, -1, 4), {"max_seqlen_q is -1"});
  expect_error<ShapeError>(call(Tensor<int64_t>({2, 3}), good_k), {"cu_seqlens_q has shape [2, 3]", "rank 1"});
  expect_error<ShapeError>(call(Tensor<int64_t>(), Tensor<int64_t>()), {"cu_seqlens_q", "(undefined)"});
  expect_error<ShapeError>(call(cu({}), cu({})), {"cu_seqlens_q has shape [0]"});
  // Tensors.
  expect_error<ShapeError>([&] { attn::varlen_attention(sequence(bt.q, 0, 5), bt.k, bt.v, good_q, good_k, 3, 4, o); },
                           {"query has shape [1, 2, 5, 3]", "rank 3"});
  expect_error<ShapeError>([&] { attn::varlen_attention(bt.q, bt.k, bt.v.slice(0, 0, 4), good_q, good_k, 3, 4, o); },
                           {"value has shape [4, 1, 3]", "to match key"});
  expect_error<ShapeError>(
      [&] { attn::varlen_attention(bt.q, bt.k.slice(2, 0, 2), bt.v, good_q, good_k, 3, 4, o); },
      {"key has shape [5, 1, 2]", "Dk"});
  expect_error<ShapeError>(
      [&] {
        attn::varlen_attention(bt.q.slice(1, 0, 1), random_tensor(rng, {5, 2, 3}), random_tensor(rng, {5, 2, 3}),
                               good_q, good_k, 3, 4, o);
      },
      {"query has 1 heads and key 2"});
  // Options: SDPA's checks on the batch's sizes, and what a packed batch refuses.
  SdpaOptions<double> bad = o;
  bad.alibi_slopes = Tensor<double>({3, 2});
  expect_error<ShapeError>(call(good_q, good_k, 3, 4, bad), {"alibi_slopes has shape [3, 2]", "[2] or [2, 2]"});
  bad = o, bad.sinks = Tensor<double>({3});
  expect_error<ShapeError>(call(good_q, good_k, 3, 4, bad), {"sinks has shape [3]"});
  bad = o, bad.dropout_p = 1.5;
  expect_error<ValueError>(call(good_q, good_k, 3, 4, bad), {"dropout_p"});
  bad = o, bad.bool_mask = Tensor<bool>({1});
  expect_error<ValueError>(call(good_q, good_k, 3, 4, bad), {"bool_mask", "no attn_mask"});
  bad = o, bad.return_weights = true;
  expect_error<ValueError>(call(good_q, good_k, 3, 4, bad), {"return_weights"});
  bad = o, bad.enable_gqa = false;
  expect_error<ValueError>(call(good_q, good_k, 3, 4, bad), {"enable_gqa"});
  // Backward: the packed shapes of grad_output, output, lse.
  const auto r = attn::varlen_attention(bt.q, bt.k, bt.v, good_q, good_k, 3, 4, o);
  expect_error<ShapeError>(
      [&] {
        attn::varlen_attention_backward(r.output, bt.q, bt.k, bt.v, r.output, r.lse.transpose(0, 1), good_q,
                                        good_k, 3, 4, o);
      },
      {"lse has shape [5, 2]", "[Hq, total_q]"});
  expect_error<ShapeError>(
      [&] {
        attn::varlen_attention_backward(r.output.slice(0, 0, 4), bt.q, bt.k, bt.v, r.output, r.lse, good_q, good_k,
                                        3, 4, o);
      },
      {"grad_output has shape [4, 2, 3]", "[total_q, Hq, Dv]"});
  expect_error<ValueError>(
      [&] {
        attn::varlen_attention_backward(r.output, bt.q, bt.k, bt.v, r.output, r.lse, cu({0, 5, 5}), good_k, 3, 4, o);
      },
      {"max_seqlen_q is 3", "sequence 0 has 5 tokens"});
}

}  // namespace

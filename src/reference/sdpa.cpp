// The reference path of scaled dot-product attention: plain loops, one step
// per function, computing in T throughout (float accumulates in float, as
// PyTorch's float32 kernels do). It is the specification the fast path is
// checked against, so it favours being obviously right over being fast.
//
// Buffers (the caller's may have any strides; ours are contiguous):
//   query   [B, Hq, Lq, Dk]     key   [B, Hkv, Lk, Dk]     value [B, Hkv, Lk, Dv]
//   masks   broadcast views of [B, Hq, Lq, Lk] (stride 0 on broadcast dims)
//   output  [B, Hq, Lq, Dv]     lse   [B, Hq, Lq]          weights [B, Hq, Lq, Lk]
// One row at a time, for query (b, h, i) and its key/value head g = h / (Hq / Hkv):
//   visible[j]  not hidden by a mask, causality or the window      [Lk]
//   qk[j]       scale·q·k, softcapped                               [Lk]
//   s[j]        qk[j] + ALiBi bias + float mask                     [Lk]
//   p[j]        softmax of the visible s (and the sink), lse        [Lk]
//   w[j]        p[j] after dropout                                  [Lk]
//   out[i]      Σ_j w[j]·v[j]                                       [Dv]
// What backward needs: output and lse only. It recomputes s and
// p = exp(s − lse) row by row (FlashAttention-2), never storing [Lq, Lk].
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "attn/sdpa.hpp"
#include "reference/sdpa.hpp"
#include "sdpa_problem.hpp"

namespace attn {
namespace {

// ---- one row, step by step ----------------------------------------------------------
//
// Each step of a row has its forward and, right below, its backward: what the
// forward computed from what, then the gradient of its inputs from the
// gradient of its outputs (the chain rule, one link per function, as llm.c
// writes its layers). The row's steps, query (b, h, i) against every key j:
//
//   scores_forward        visible_j, s_j = softcap(scale·q·k_j) + bias_ij
//   softmax_forward       p_j = e^{s_j} / (Σ_k e^{s_k} + e^{sink}),  lse
//   dropout_forward       w_j = p_j · z_j   (z_j = 0 or 1/(1 − dropout_p))
//   weighted_sum_forward  out_i = Σ_j w_j v_j
//
// and backward runs them in reverse: weighted_sum_backward, dropout_backward,
// softmax_backward, scores_backward (see the top of the file for what it
// saves and what it recomputes).

// Scratch for one query row (b, h, i); every vector has Lk entries.
template <class T>
struct Row {
  std::vector<char> visible;  // 1 where key j takes part in the softmax
  std::vector<T> qk;          // scale·q·k after softcap (backward needs it for d tanh)
  std::vector<T> s;           // the final score
  std::vector<T> p;           // softmax weight (0 where not visible)
  std::vector<T> z;           // dropout factor: 0 if dropped, else 1/(1 − dropout_p) (1 without dropout)
  std::vector<T> w;           // p·z: the weights the values are summed with (0 where not visible)
  explicit Row(int64_t Lk) : visible(Lk), qk(Lk), s(Lk), p(Lk), z(Lk), w(Lk) {}
};

// The gradients of a row's steps, dL/d of each Row vector the backward needs.
template <class T>
struct RowGrad {
  std::vector<T> dw;  // dL/dw_j = dout_i · v_j
  std::vector<T> dp;  // dL/dp_j = z_j · dw_j
  std::vector<T> ds;  // dL/ds_j = p_j (dp_j − D_i)
  explicit RowGrad(int64_t Lk) : dw(Lk), dp(Lk), ds(Lk) {}
};

// Is key j hidden from query (b, h, i) by causality or the window (`by_position`,
// the row's pb.visible_keys(i)) or by a mask?
template <class T>
bool key_visible(const SdpaProblem<T>& pb, KeyRange by_position, int64_t b, int64_t h, int64_t i, int64_t j) {
  if (j < by_position.lo || j >= by_position.hi) return false;
  if (pb.bool_mask.defined() && !pb.bool_mask(b, h, i, j)) return false;
  // A −∞ float mask hides the key for good: skipping it (rather than adding
  // −∞ to a score) keeps NaN/Inf in that key or value out of the output.
  if (pb.float_mask.defined() && pb.float_mask(b, h, i, j) == -std::numeric_limits<T>::infinity()) return false;
  return true;
}

// scale·q·k, then softcap·tanh(·/softcap): the part of the score that depends on q and k.
template <class T>
T scaled_dot(const SdpaProblem<T>& pb, const Tensor<T>& q, const Tensor<T>& k, int64_t b, int64_t h, int64_t i,
             int64_t j) {
  const int64_t g = pb.kv_head(h);
  T dot = 0;
  for (int64_t d = 0; d < pb.Dk; ++d) dot += q(b, h, i, d) * k(b, g, j, d);
  T s = static_cast<T>(pb.scale) * dot;
  if (pb.options->softcap > 0) {
    const T cap = static_cast<T>(pb.options->softcap);
    s = cap * std::tanh(s / cap);
  }
  return s;
}

// The additive bias of score (b, h, i, j): ALiBi, then the float mask.
template <class T>
T score_bias(const SdpaProblem<T>& pb, int64_t b, int64_t h, int64_t i, int64_t j) {
  T bias = 0;
  if (pb.alibi.defined()) {
    const T slope = pb.alibi(b, h);
    const int64_t distance = std::abs(i + pb.diag - j);
    bias -= slope * static_cast<T>(distance);
  }
  if (pb.float_mask.defined()) bias += pb.float_mask(b, h, i, j);
  return bias;
}

// Step 1, forward: the scores of query (b, h, i) against every visible key,
//   s_j = qk_j + bias_j,  qk_j = c·tanh(r_j / c) (qk_j = r_j without softcap),  r_j = scale · q_i·k_j.
template <class T>
void scores_forward(const SdpaProblem<T>& pb, const Tensor<T>& q, const Tensor<T>& k, int64_t b, int64_t h, int64_t i,
                    Row<T>& row) {
  const KeyRange by_position = pb.visible_keys(i);
  for (int64_t j = 0; j < pb.Lk; ++j) {
    row.visible[j] = key_visible(pb, by_position, b, h, i, j);
    if (!row.visible[j]) continue;  // never touch a hidden key
    row.qk[j] = scaled_dot(pb, q, k, b, h, i, j);
    row.s[j] = row.qk[j] + score_bias(pb, b, h, i, j);
  }
}

// Step 1, backward: from ds_j,
//   d(float_mask)_ij += ds_j                         (the bias is added as is)
//   dr_j = ds_j (1 − (qk_j / c)²)                    (d tanh; dr_j = ds_j without softcap)
//   dq_i += scale · dr_j · k_j,  dk_j += scale · dr_j · q_i
// d_key is indexed by the key/value head g, so the query heads of a GQA
// group sum into it by construction. Hidden keys get no gradient, and a key
// whose dr_j is exactly 0 (weight 0: a score of −∞, a dropped or underflowed
// key) is skipped, not multiplied, as weighted_sum_forward skips zero
// weights: an ∞ in k_j (the reason its score is −∞) would make 0 · ∞ = NaN.
template <class T>
void scores_backward(const SdpaProblem<T>& pb, const Tensor<T>& query, const Tensor<T>& key, int64_t b, int64_t h,
                     int64_t i, const Row<T>& row, const RowGrad<T>& grad, SdpaGradients<T>& g,
                     Tensor<T>& d_mask_view) {
  const int64_t kv = pb.kv_head(h);
  const T scale = static_cast<T>(pb.scale);
  const T cap = static_cast<T>(pb.options->softcap);
  for (int64_t j = 0; j < pb.Lk; ++j) {
    if (!row.visible[j]) continue;
    const T ds = grad.ds[j];
    if (d_mask_view.defined()) d_mask_view(b, h, i, j) += ds;
    T dr = ds;
    if (pb.options->softcap > 0) {
      const T t = row.qk[j] / cap;  // tanh(r / c)
      dr = ds * (T(1) - t * t);
    }
    if (dr == T(0)) continue;
    for (int64_t d = 0; d < pb.Dk; ++d) {
      g.d_query(b, h, i, d) += scale * dr * key(b, kv, j, d);
      g.d_key(b, kv, j, d) += scale * dr * query(b, h, i, d);
    }
  }
}

// The sink logit of head h, if sinks are given: one more term in the softmax
// denominator with no value behind it (gpt-oss), so a row may give less than
// all its weight to the keys.
template <class T>
std::optional<T> sink_logit(const SdpaProblem<T>& pb, int64_t h) {
  if (!pb.options->sinks.defined()) return std::nullopt;
  return pb.options->sinks(h);
}

// Step 2, forward: p = softmax over the visible scores (and the sink); returns
// lse = log(Σ_j e^{s_j} [+ e^{sink}]), −∞ when nothing is visible.
template <class T>
T softmax_forward(const SdpaProblem<T>& pb, std::optional<T> sink, Row<T>& row) {
  constexpr T neg_inf = -std::numeric_limits<T>::infinity();
  T m = sink.value_or(neg_inf);
  bool saw_nan = false;
  for (int64_t j = 0; j < pb.Lk; ++j)
    if (row.visible[j]) {
      m = std::max(m, row.s[j]);
      saw_nan = saw_nan || std::isnan(row.s[j]);
    }
  std::fill(row.p.begin(), row.p.end(), T(0));
  // A NaN score that takes part (NaN in the query or in a visible key) makes
  // the row NaN, weights, output and lse, as in PyTorch. (std::max would
  // silently skip it, and a row of only NaN scores would look empty.)
  if (saw_nan) {
    for (int64_t j = 0; j < pb.Lk; ++j)
      if (row.visible[j]) row.p[j] = std::numeric_limits<T>::quiet_NaN();
    return std::numeric_limits<T>::quiet_NaN();
  }
  if (m == neg_inf) return neg_inf;  // sees no key: weights 0, output 0 (torch would give NaN)
  // Subtracting the row max keeps every exponent <= 0 so exp cannot overflow.
  T sum = sink ? std::exp(*sink - m) : T(0);
  for (int64_t j = 0; j < pb.Lk; ++j)
    if (row.visible[j]) sum += row.p[j] = std::exp(row.s[j] - m);
  for (int64_t j = 0; j < pb.Lk; ++j) row.p[j] /= sum;
  return m + std::log(sum);
}

// Step 2, what backward has instead of the forward's sums: p_j = e^{s_j − lse},
// from the saved lse (the row's weights, recomputed).
template <class T>
void softmax_from_lse(const SdpaProblem<T>& pb, T lse, Row<T>& row) {
  for (int64_t j = 0; j < pb.Lk; ++j)
    if (row.visible[j]) row.p[j] = std::exp(row.s[j] - lse);
}

// Step 2, backward: p_j = e^{s_j} / (Σ_k e^{s_k} + e^{sink}), so
//   ds_j = p_j (dp_j − D_i)      d(sink) = −p_sink · D_i
// with D_i = Σ_k p_k dp_k = Σ_k w_k (dout_i · v_k) = dout_i · out_i: dropout
// hides inside out_i, so the FlashAttention-2 identity holds unchanged. A key
// dropout dropped has dp_j = 0 but still ds_j = −p_j D_i (it was in the
// softmax denominator). Returns d(sink), 0 without a sink.
template <class T>
T softmax_backward(const SdpaProblem<T>& pb, std::optional<T> sink, T lse, T D, const Row<T>& row, RowGrad<T>& grad) {
  for (int64_t j = 0; j < pb.Lk; ++j)
    if (row.visible[j]) grad.ds[j] = row.p[j] * (grad.dp[j] - D);
  return sink ? -(std::exp(*sink - lse) * D) : T(0);
}

// D_i = dout_i · out_i: the row's Σ_k p_k dp_k (see softmax_backward).
template <class T>
T rowsum_grad_times_output(const SdpaProblem<T>& pb, const Tensor<T>& grad_output, const Tensor<T>& output, int64_t b,
                           int64_t h, int64_t i) {
  T D = 0;
  for (int64_t d = 0; d < pb.Dv; ++d) D += grad_output(b, h, i, d) * output(b, h, i, d);
  return D;
}

// Step 3, forward: w_j = p_j · z_j, z_j the dropout factor of weight (b, h, i, j):
// 0 if dropped, else 1/(1 − dropout_p) (counter-based: the backward regenerates it).
template <class T>
void dropout_forward(const SdpaProblem<T>& pb, int64_t b, int64_t h, int64_t i, Row<T>& row) {
  const SdpaOptions<T>& o = *pb.options;
  for (int64_t j = 0; j < pb.Lk; ++j) {
    if (!row.visible[j]) {
      row.z[j] = 1, row.w[j] = 0;
      continue;
    }
    const bool dropped = o.dropout_p > 0.0 && !dropout_keep(o.dropout_seed, b + pb.dropout_batch_offset, h, i, j, o.dropout_p);
    row.z[j] = o.dropout_p <= 0.0 ? T(1) : dropped ? T(0) : static_cast<T>(pb.dropout_scale);
    row.w[j] = row.p[j] * row.z[j];
  }
}

// Step 3, backward: dp_j = z_j · dw_j.
template <class T>
void dropout_backward(const SdpaProblem<T>& pb, const Row<T>& row, RowGrad<T>& grad) {
  for (int64_t j = 0; j < pb.Lk; ++j)
    if (row.visible[j]) grad.dp[j] = row.z[j] != T(0) ? row.z[j] * grad.dw[j] : T(0);
}

// Step 4, forward: out_i = Σ_j w_j v_j over the keys that are visible and
// kept; skipping the rest (not multiplying by 0) keeps their NaN/Inf out.
template <class T>
void weighted_sum_forward(const SdpaProblem<T>& pb, const Tensor<T>& value, int64_t b, int64_t h, int64_t i,
                          const Row<T>& row, Tensor<T>& output) {
  const int64_t g = pb.kv_head(h);
  for (int64_t j = 0; j < pb.Lk; ++j) {
    if (!row.visible[j] || row.w[j] == T(0)) continue;
    for (int64_t d = 0; d < pb.Dv; ++d) output(b, h, i, d) += row.w[j] * value(b, g, j, d);
  }
}

// Step 4, backward: out_i = Σ_j w_j v_j, so
//   dv_j += w_j · dout_i      dw_j = dout_i · v_j
// A dropped key's value is never read (it may hold NaN): its dw_j stays 0
// and dropout_backward makes its dp_j 0 without it. A key of weight exactly
// 0 adds nothing to dv_j, as it added nothing to out_i (w_j · dout_i would be
// 0 · ∞ = NaN for an infinite dout_i).
template <class T>
void weighted_sum_backward(const SdpaProblem<T>& pb, const Tensor<T>& grad_output, const Tensor<T>& value, int64_t b,
                           int64_t h, int64_t i, const Row<T>& row, RowGrad<T>& grad, Tensor<T>& d_value) {
  const int64_t kv = pb.kv_head(h);
  for (int64_t j = 0; j < pb.Lk; ++j) {
    grad.dw[j] = 0;
    if (!row.visible[j] || row.z[j] == T(0)) continue;
    T dw = 0;
    for (int64_t d = 0; d < pb.Dv; ++d) dw += grad_output(b, h, i, d) * value(b, kv, j, d);
    grad.dw[j] = dw;
    if (row.w[j] == T(0)) continue;
    for (int64_t d = 0; d < pb.Dv; ++d) d_value(b, kv, j, d) += row.w[j] * grad_output(b, h, i, d);
  }
}

}  // namespace

// ---- forward and backward, row by row ------------------------------------------------

namespace reference {

template <class T>
SdpaResult<T> scaled_dot_product_attention(const SdpaProblem<T>& pb, const Tensor<T>& query, const Tensor<T>& key,
                                           const Tensor<T>& value) {
  const SdpaOptions<T>& options = *pb.options;
  SdpaResult<T> r;
  r.output = Tensor<T>({pb.B, pb.Hq, pb.Lq, pb.Dv});
  Tensor<T> lse({pb.B, pb.Hq, pb.Lq});
  if (options.return_weights) r.weights = Tensor<T>({pb.B, pb.Hq, pb.Lq, pb.Lk});

  Row<T> row(pb.Lk);
  for (int64_t b = 0; b < pb.B; ++b)
    for (int64_t h = 0; h < pb.Hq; ++h)
      for (int64_t i = 0; i < pb.Lq; ++i) {
        scores_forward(pb, query, key, b, h, i, row);
        lse(b, h, i) = softmax_forward(pb, sink_logit(pb, h), row);
        dropout_forward(pb, b, h, i, row);
        weighted_sum_forward(pb, value, b, h, i, row, r.output);
        if (r.weights.defined())
          for (int64_t j = 0; j < pb.Lk; ++j) r.weights(b, h, i, j) = row.w[j];
      }
  if (options.return_lse) r.lse = lse;
  return r;
}

template <class T>
SdpaResult<T> scaled_dot_product_attention(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                                           const SdpaOptions<T>& options) {
  const SdpaProblem<T> pb = describe_sdpa("scaled_dot_product_attention", query, key, value, options);
  return scaled_dot_product_attention(pb, query, key, value);
}

template <class T>
SdpaGradients<T> scaled_dot_product_attention_backward(const SdpaProblem<T>& pb, const Tensor<T>& grad_output,
                                                       const Tensor<T>& query, const Tensor<T>& key,
                                                       const Tensor<T>& value, const Tensor<T>& output,
                                                       const Tensor<T>& lse, bool need_float_mask_grad) {
  const SdpaOptions<T>& options = *pb.options;
  SdpaGradients<T> g;
  g.d_query = Tensor<T>(query.shape());
  g.d_key = Tensor<T>(key.shape());
  g.d_value = Tensor<T>(value.shape());
  // The mask gradient is summed over the dims the mask was broadcast along:
  // accumulating through a stride-0 expanded view of it does exactly that.
  Tensor<T> d_mask_view;
  if (need_float_mask_grad) {
    g.d_float_mask = Tensor<T>(options.float_mask.shape());
    d_mask_view = g.d_float_mask.expand({pb.B, pb.Hq, pb.Lq, pb.Lk});
  }
  if (options.sinks.defined()) g.d_sinks = Tensor<T>({pb.Hq});

  Row<T> row(pb.Lk);
  RowGrad<T> grad(pb.Lk);
  for (int64_t b = 0; b < pb.B; ++b)
    for (int64_t h = 0; h < pb.Hq; ++h) {
      const std::optional<T> sink = sink_logit(pb, h);
      for (int64_t i = 0; i < pb.Lq; ++i) {
        const T row_lse = lse(b, h, i);
        if (row_lse == -std::numeric_limits<T>::infinity()) continue;  // saw no key, no sink: zero gradient
        // The forward's row again, its weights from the saved lse.
        scores_forward(pb, query, key, b, h, i, row);
        softmax_from_lse(pb, row_lse, row);
        dropout_forward(pb, b, h, i, row);
        // Then the chain rule, last step first.
        weighted_sum_backward(pb, grad_output, value, b, h, i, row, grad, g.d_value);
        dropout_backward(pb, row, grad);
        const T D = rowsum_grad_times_output(pb, grad_output, output, b, h, i);
        const T d_sink = softmax_backward(pb, sink, row_lse, D, row, grad);
        if (sink) g.d_sinks(h) += d_sink;
        scores_backward(pb, query, key, b, h, i, row, grad, g, d_mask_view);
      }
    }
  return g;
}

template <class T>
SdpaGradients<T> scaled_dot_product_attention_backward(const Tensor<T>& grad_output, const Tensor<T>& query,
                                                       const Tensor<T>& key, const Tensor<T>& value,
                                                       const Tensor<T>& output, const Tensor<T>& lse,
                                                       const SdpaOptions<T>& options, bool need_float_mask_grad) {
  const char* fn = "scaled_dot_product_attention_backward";
  const SdpaProblem<T> pb = describe_sdpa(fn, query, key, value, options);
  check_sdpa_backward(fn, pb, grad_output, output, lse, need_float_mask_grad);
  return scaled_dot_product_attention_backward(pb, grad_output, query, key, value, output, lse,
                                               need_float_mask_grad);
}

#define ATTN_INSTANTIATE(T)                                                                                    \
  template SdpaResult<T> scaled_dot_product_attention<T>(const SdpaProblem<T>&, const Tensor<T>&,              \
                                                         const Tensor<T>&, const Tensor<T>&);                  \
  template SdpaResult<T> scaled_dot_product_attention<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,  \
                                                         const SdpaOptions<T>&);                                \
  template SdpaGradients<T> scaled_dot_product_attention_backward<T>(                                          \
      const SdpaProblem<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,            \
      const Tensor<T>&, const Tensor<T>&, bool);                                                                \
  template SdpaGradients<T> scaled_dot_product_attention_backward<T>(                                          \
      const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, \
      const SdpaOptions<T>&, bool);
ATTN_INSTANTIATE(float)
ATTN_INSTANTIATE(double)
#undef ATTN_INSTANTIATE

}  // namespace reference
}  // namespace attn

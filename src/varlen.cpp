// Packed variable-length batches (attn/varlen.hpp): one SDPA call per
// sequence, on zero-copy views of the packed tensors.
//
// The packed layout [tokens, heads, dim] holds sequence b in rows
// start_b .. start_b + L_b − 1. Its view
//   packed.slice(0, start_b, start_b + L_b)   [L_b, H, D]   (rows of b)
//         .transpose(0, 1)                    [H, L_b, D]   (SDPA's order)
//         .expand({1, H, L_b, D})             [1, H, L_b, D] (a batch of one)
// is SDPA's [B, H, L, D] with strides, which both paths read in place. The
// output and the [Hq, total_q] lse are written through the same kind of view,
// so the forward copies nothing on the fast path.
//
// Checking happens once, up front (describe_varlen): the packed shapes, the
// offsets, then SDPA's own head and option checks (describe_heads_and_options,
// src/sdpa_problem.cpp) on the batch's sizes. Each sequence is then described
// by describe_sdpa, which cannot fail any more, and run by run_sdpa_forward /
// run_sdpa_backward (src/sdpa.cpp): the same backend choice and kernels as a
// plain SDPA call.
#include "attn/varlen.hpp"

#include <string>
#include <tuple>
#include <vector>

#include "attn/errors.hpp"
#include "sdpa_problem.hpp"
#include "sdpa_run.hpp"

namespace attn {
namespace {

std::string prefix(const char* fn) { return std::string(fn) + ": "; }

template <class X>
std::string shape_of(const Tensor<X>& t) {
  return t.defined() ? shape_str(t.shape()) : std::string("(undefined)");
}

template <class X>
void require_rank3(const char* fn, const char* arg, const Tensor<X>& t, const char* expected) {
  if (!t.defined() || t.dim() != 3)
    throw ShapeError(prefix(fn) + arg + " has shape " + shape_of(t) + ", expected rank 3 " + expected +
                     " (packed tokens of every sequence)");
}

/// A checked packed batch: where each sequence starts and how long it is.
struct PackedBatch {
  int64_t batch = 0;
  int64_t Hq = 0, Hkv = 0, Dk = 0, Dv = 0, total_q = 0, total_k = 0;
  std::vector<int64_t> cu_q, cu_k;  ///< [batch + 1] offsets, as int64
  int64_t length_q(int64_t b) const { return cu_q[b + 1] - cu_q[b]; }
  int64_t length_k(int64_t b) const { return cu_k[b + 1] - cu_k[b]; }
};

// cu_seqlens as int64 offsets, checked: rank 1, cu[0] = 0, non-decreasing,
// cu[batch] = tokens, every length <= max_seqlen. Read through operator()
// (any strides); nothing indexes with a value before it is checked.
template <class Index>
std::vector<int64_t> read_offsets(const char* fn, const char* arg, const Tensor<Index>& cu, int64_t tokens,
                                  const char* tokens_of, const char* max_name, int64_t max_seqlen) {
  if (!cu.defined() || cu.dim() != 1 || cu.size(0) < 1)
    throw ShapeError(prefix(fn) + arg + " has shape " + shape_of(cu) +
                     ", expected rank 1 [batch + 1] (cumulative sequence offsets, starting at 0)");
  const int64_t n = cu.size(0);
  std::vector<int64_t> offsets(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) offsets[static_cast<size_t>(i)] = static_cast<int64_t>(cu(i));
  if (offsets[0] != 0)
    throw ValueError(prefix(fn) + arg + "[0] is " + std::to_string(offsets[0]) +
                     ", expected 0 (the first sequence starts at token 0)");
  for (int64_t b = 0; b + 1 < n; ++b) {
    const int64_t lo = offsets[static_cast<size_t>(b)], hi = offsets[static_cast<size_t>(b + 1)];
    if (hi < lo)
      throw ValueError(prefix(fn) + arg + " decreases at index " + std::to_string(b + 1) + " (" +
                       std::to_string(lo) + " then " + std::to_string(hi) +
                       "), expected non-decreasing offsets (sequence lengths >= 0)");
  }
  if (offsets.back() != tokens)
    throw ValueError(prefix(fn) + arg + " ends at " + std::to_string(offsets.back()) + ", expected " +
                     std::to_string(tokens) + ", the number of tokens in " + tokens_of + " (dim 0)");
  if (max_seqlen < 0)
    throw ValueError(prefix(fn) + max_name + " is " + std::to_string(max_seqlen) + ", expected >= 0");
  for (int64_t b = 0; b + 1 < n; ++b) {
    const int64_t length = offsets[static_cast<size_t>(b + 1)] - offsets[static_cast<size_t>(b)];
    if (length > max_seqlen)
      throw ValueError(prefix(fn) + max_name + " is " + std::to_string(max_seqlen) + " but sequence " +
                       std::to_string(b) + " has " + std::to_string(length) + " tokens (" + arg + "[" +
                       std::to_string(b) + ":" + std::to_string(b + 2) + "]); expected the longest length or more");
  }
  return offsets;
}

// Every check of a varlen call (attn/varlen.hpp lists them), in one place.
template <class T, class Index>
PackedBatch describe_varlen(const char* fn, const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                            const Tensor<Index>& cu_seqlens_q, const Tensor<Index>& cu_seqlens_k,
                            int64_t max_seqlen_q, int64_t max_seqlen_k, const SdpaOptions<T>& o) {
  require_rank3(fn, "query", query, "[total_q, Hq, Dk]");
  require_rank3(fn, "key", key, "[total_k, Hkv, Dk]");
  require_rank3(fn, "value", value, "[total_k, Hkv, Dv]");
  PackedBatch pk;
  pk.total_q = query.size(0), pk.Hq = query.size(1), pk.Dk = query.size(2);
  pk.total_k = key.size(0), pk.Hkv = key.size(1), pk.Dv = value.size(2);
  if (key.size(2) != pk.Dk)
    throw ShapeError(prefix(fn) + "key has shape " + shape_str(key.shape()) + ", expected [total_k, Hkv, " +
                     std::to_string(pk.Dk) + "] to match query " + shape_str(query.shape()) + " in Dk (dim 2)");
  if (value.size(0) != pk.total_k || value.size(1) != pk.Hkv)
    throw ShapeError(prefix(fn) + "value has shape " + shape_str(value.shape()) + ", expected [" +
                     std::to_string(pk.total_k) + ", " + std::to_string(pk.Hkv) + ", Dv] to match key " +
                     shape_str(key.shape()) + " in tokens and heads");

  // Options that have no meaning for a packed batch.
  if (o.bool_mask.defined() || o.float_mask.defined())
    throw ValueError(prefix(fn) + "options." + (o.bool_mask.defined() ? "bool_mask" : "float_mask") +
                     " is given; a packed batch takes no attn_mask (each sequence sees its own keys; use "
                     "is_causal, the window, alibi_slopes or softcap)");
  if (o.return_weights)
    throw ValueError(prefix(fn) + "options.return_weights is set; varlen_attention does not return the weights "
                     "(call scaled_dot_product_attention on one sequence for them)");

  // The offsets: each list on its own, then the two against each other.
  if (cu_seqlens_q.defined() && cu_seqlens_k.defined() && cu_seqlens_q.dim() == 1 && cu_seqlens_k.dim() == 1 &&
      cu_seqlens_q.size(0) != cu_seqlens_k.size(0))
    throw ShapeError(prefix(fn) + "cu_seqlens_q has shape " + shape_of(cu_seqlens_q) + " and cu_seqlens_k " +
                     shape_of(cu_seqlens_k) + "; expected the same length [batch + 1] (one offset per sequence "
                     "of queries and of keys)");
  pk.cu_q = read_offsets(fn, "cu_seqlens_q", cu_seqlens_q, pk.total_q, "query", "max_seqlen_q", max_seqlen_q);
  pk.cu_k = read_offsets(fn, "cu_seqlens_k", cu_seqlens_k, pk.total_k, "key", "max_seqlen_k", max_seqlen_k);
  pk.batch = static_cast<int64_t>(pk.cu_q.size()) - 1;

  // SDPA's own checks of heads and options, on the batch's sizes: alibi
  // slopes [Hq] or [batch, Hq], sinks [Hq], dropout_p, scale, softcap, window.
  SdpaProblem<T> whole;
  whole.B = pk.batch, whole.Hq = pk.Hq, whole.Hkv = pk.Hkv, whole.Lq = max_seqlen_q, whole.Lk = max_seqlen_k;
  whole.Dk = pk.Dk, whole.Dv = pk.Dv;
  describe_heads_and_options(fn, o, whole);
  return pk;
}

// Sequence b of a packed [tokens, H, D] tensor as SDPA's [1, H, L_b, D] (a view).
template <class T>
Tensor<T> sequence_view(const Tensor<T>& packed, int64_t start, int64_t end) {
  const Tensor<T> rows = packed.slice(0, start, end).transpose(0, 1);  // [H, L_b, D]
  return rows.expand({1, rows.size(0), rows.size(1), rows.size(2)});
}

// Columns of sequence b of a packed [H, tokens] lse as SDPA's [1, H, L_b] (a view).
template <class T>
Tensor<T> lse_view(const Tensor<T>& lse, int64_t start, int64_t end) {
  const Tensor<T> cols = lse.slice(1, start, end);
  return cols.expand({1, cols.size(0), cols.size(1)});
}

// The options of sequence b: the call's, with the ALiBi slopes of row b when
// they are per sequence ([batch, Hq]).
template <class T>
SdpaOptions<T> sequence_options(const SdpaOptions<T>& o, int64_t b) {
  SdpaOptions<T> ob = o;
  if (o.alibi_slopes.defined() && o.alibi_slopes.dim() == 2) ob.alibi_slopes = o.alibi_slopes.select(0, b);
  ob.return_lse = true;
  return ob;
}

// dst = src for two [1, H, L, D] tensors (dst a view into a packed tensor):
// row by row, the innermost dim walked by stride.
template <class T>
void copy_sequence(const Tensor<T>& dst, const Tensor<T>& src) {
  const int64_t H = dst.size(1), L = dst.size(2), D = dst.size(3);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < L; ++i) {
      T* out = &dst(0, h, i, 0);
      const T* in = &src(0, h, i, 0);
      const int64_t so = dst.stride(3), si = src.stride(3);
      for (int64_t d = 0; d < D; ++d) out[d * so] = in[d * si];
    }
}

}  // namespace

template <class T, class Index>
VarlenResult<T> varlen_attention(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                                 const Tensor<Index>& cu_seqlens_q, const Tensor<Index>& cu_seqlens_k,
                                 int64_t max_seqlen_q, int64_t max_seqlen_k, const SdpaOptions<T>& options) {
  const char* fn = "varlen_attention";
  const PackedBatch pk =
      describe_varlen(fn, query, key, value, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, options);
  // Every row of both belongs to exactly one sequence and is written by its call.
  Tensor<T> output = Tensor<T>::uninitialized({pk.total_q, pk.Hq, pk.Dv});
  Tensor<T> lse = Tensor<T>::uninitialized({pk.Hq, pk.total_q});
  for (int64_t b = 0; b < pk.batch; ++b) {
    const int64_t q0 = pk.cu_q[b], q1 = pk.cu_q[b + 1], k0 = pk.cu_k[b], k1 = pk.cu_k[b + 1];
    if (q1 == q0) continue;  // no queries: nothing to write
    const SdpaOptions<T> ob = sequence_options(options, b);
    const Tensor<T> qb = sequence_view(query, q0, q1), kb = sequence_view(key, k0, k1),
                    vb = sequence_view(value, k0, k1);
    SdpaProblem<T> pb = describe_sdpa(fn, qb, kb, vb, ob);
    pb.dropout_batch_offset = b;  // sequence b draws batch b's dropout mask
    Tensor<T> ob_out = sequence_view(output, q0, q1), ob_lse = lse_view(lse, q0, q1);
    run_sdpa_forward(fn, pb, qb, kb, vb, ob_out, ob_lse);
  }
  VarlenResult<T> r;
  r.output = std::move(output);
  if (options.return_lse) r.lse = std::move(lse);
  return r;
}

template <class T, class Index>
SdpaGradients<T> varlen_attention_backward(const Tensor<T>& grad_output, const Tensor<T>& query,
                                           const Tensor<T>& key, const Tensor<T>& value, const Tensor<T>& output,
                                           const Tensor<T>& lse, const Tensor<Index>& cu_seqlens_q,
                                           const Tensor<Index>& cu_seqlens_k, int64_t max_seqlen_q,
                                           int64_t max_seqlen_k, const SdpaOptions<T>& options) {
  const char* fn = "varlen_attention_backward";
  const PackedBatch pk =
      describe_varlen(fn, query, key, value, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, options);
  const Shape want_out{pk.total_q, pk.Hq, pk.Dv}, want_lse{pk.Hq, pk.total_q};
  for (const auto& [arg, t, want] : {std::tuple{"grad_output", &grad_output, &want_out},
                                     std::tuple{"output", &output, &want_out}, std::tuple{"lse", &lse, &want_lse}})
    if (!t->defined() || t->shape() != *want)
      throw ShapeError(prefix(fn) + arg + " has shape " + shape_of(*t) + ", expected " + shape_str(*want) +
                       (t == &lse ? " [Hq, total_q]" : " [total_q, Hq, Dv]") + " from query and value");

  SdpaGradients<T> g;
  // Zero-filled: a key sequence whose query sequence is empty gets no
  // gradient from any call, and its rows must read 0.
  g.d_query = Tensor<T>({pk.total_q, pk.Hq, pk.Dk});
  g.d_key = Tensor<T>({pk.total_k, pk.Hkv, pk.Dk});
  g.d_value = Tensor<T>({pk.total_k, pk.Hkv, pk.Dv});
  if (options.sinks.defined()) g.d_sinks = Tensor<T>({pk.Hq});
  for (int64_t b = 0; b < pk.batch; ++b) {
    const int64_t q0 = pk.cu_q[b], q1 = pk.cu_q[b + 1], k0 = pk.cu_k[b], k1 = pk.cu_k[b + 1];
    if (q1 == q0) continue;  // no queries: no loss depends on this sequence's keys
    const SdpaOptions<T> ob = sequence_options(options, b);
    const Tensor<T> qb = sequence_view(query, q0, q1), kb = sequence_view(key, k0, k1),
                    vb = sequence_view(value, k0, k1);
    SdpaProblem<T> pb = describe_sdpa(fn, qb, kb, vb, ob);
    pb.dropout_batch_offset = b;
    const SdpaGradients<T> gb =
        run_sdpa_backward(fn, pb, sequence_view(grad_output, q0, q1), qb, kb, vb, sequence_view(output, q0, q1),
                          lse_view(lse, q0, q1), false);
    copy_sequence(sequence_view(g.d_query, q0, q1), gb.d_query);
    copy_sequence(sequence_view(g.d_key, k0, k1), gb.d_key);
    copy_sequence(sequence_view(g.d_value, k0, k1), gb.d_value);
    // The sinks are shared by every sequence: their gradient sums over the
    // sequences, in order (the same sum for any thread count).
    if (g.d_sinks.defined())
      for (int64_t h = 0; h < pk.Hq; ++h) g.d_sinks(h) += gb.d_sinks(h);
  }
  return g;
}

#define ATTN_INSTANTIATE(T, I)                                                                                   \
  template VarlenResult<T> varlen_attention<T, I>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,         \
                                                  const Tensor<I>&, const Tensor<I>&, int64_t, int64_t,         \
                                                  const SdpaOptions<T>&);                                       \
  template SdpaGradients<T> varlen_attention_backward<T, I>(                                                    \
      const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, \
      const Tensor<I>&, const Tensor<I>&, int64_t, int64_t, const SdpaOptions<T>&);
ATTN_INSTANTIATE(float, int32_t)
ATTN_INSTANTIATE(float, int64_t)
ATTN_INSTANTIATE(double, int32_t)
ATTN_INSTANTIATE(double, int64_t)
#undef ATTN_INSTANTIATE

}  // namespace attn

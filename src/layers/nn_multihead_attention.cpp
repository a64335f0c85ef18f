// torch.nn.MultiheadAttention: forward and backward, following
// F.multi_head_attention_forward step by step (see the header for the story).
//
// Buffers, batch-first inside (N = batch, L = target, S = source, S' = S +
// add_bias_kv + add_zero_attn, E = embed_dim, H = heads, hd = E / H):
//   query_, key_, value_  [N, L, E], [N, S, kdim], [N, S, vdim]   saved (views of the inputs)
//   q                      [N, L, E]   = query·W_qᵀ + b_q
//   k_full, v_full         [N, S', E]  = key·W_kᵀ + b_k | bias_k | 0   (value likewise)
//   q_, k_, v_             [N, H, ·, hd] views of the above              saved
//   float mask             [N|1, H|1, L|1, S']  attn_mask + key_padding_mask, in sdpa_options_
//   context_, lse_         [N, H, L, hd], [N, H, L]   SDPA output        saved
//   merged                 [N, L, E]   heads side by side               saved by out_proj
//   output                 [N, L, E]   = merged·W_oᵀ + b_o, then the caller's layout
#include "attn/nn_multihead_attention.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "layers/layer_util.hpp"

namespace attn {

namespace {

const char* kWhere = "TorchMultiheadAttention";

// Returns embed_dim after checking it against num_heads (in the initialiser list,
// before out_proj is built and draws from the generator).
int64_t checked_embed_dim(int64_t embed_dim, int64_t num_heads) {
  if (embed_dim <= 0 || num_heads <= 0)
    throw ValueError(std::string(kWhere) + ": embed_dim and num_heads must be greater than 0, got embed_dim = " +
                     std::to_string(embed_dim) + " and num_heads = " + std::to_string(num_heads));
  if (embed_dim % num_heads != 0)
    throw ValueError(std::string(kWhere) + ": embed_dim = " + std::to_string(embed_dim) +
                     " must be divisible by num_heads = " + std::to_string(num_heads));
  return embed_dim;
}

// A parameter that this configuration does not have (torch registers None).
template <class T>
Parameter<T> absent() {
  Parameter<T> p;
  p.value = Tensor<T>();
  p.grad = Tensor<T>();
  return p;
}

// torch.nn.init's fans: dim 1 is fan-in, dim 0 fan-out, times the product of the rest.
std::pair<int64_t, int64_t> fans(const Shape& s) {
  int64_t receptive = 1;
  for (size_t i = 2; i < s.size(); ++i) receptive *= s[i];
  return {s[1] * receptive, s[0] * receptive};
}

// nn.init.xavier_uniform_: U(−a, a), a = √3 · √(2 / (fan_in + fan_out)), computed in torch's order.
template <class T>
void xavier_uniform_(Tensor<T>& w, Generator& gen) {
  auto [fan_in, fan_out] = fans(w.shape());
  const double std = 1.0 * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
  const double a = std::sqrt(3.0) * std;
  gen.uniform_(w, -a, a);
}

// nn.init.xavier_normal_: N(0, √(2 / (fan_in + fan_out))).
template <class T>
void xavier_normal_(Tensor<T>& w, Generator& gen) {
  auto [fan_in, fan_out] = fans(w.shape());
  gen.normal_(w, 0.0, 1.0 * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)));
}

std::string layout(bool batch_first, const char* seq, const char* feat) {
  return batch_first ? std::string("[N, ") + seq + ", " + feat + "]" : std::string("[") + seq + ", N, " + feat + "]";
}

}  // namespace

template <class T>
TorchMultiheadAttention<T>::TorchMultiheadAttention(int64_t embed_dim, int64_t num_heads,
                                                    const TorchMultiheadAttentionOptions& options, Generator& gen)
    : in_proj_weight(absent<T>()),
      q_proj_weight(absent<T>()),
      k_proj_weight(absent<T>()),
      v_proj_weight(absent<T>()),
      in_proj_bias(absent<T>()),
      bias_k(absent<T>()),
      bias_v(absent<T>()),
      // torch builds out_proj (and so draws its nn.Linear init) before _reset_parameters().
      out_proj(checked_embed_dim(embed_dim, num_heads), embed_dim, options.bias, gen),
      embed_dim_(embed_dim),
      num_heads_(num_heads),
      head_dim_(embed_dim / num_heads),
      kdim_(options.kdim.value_or(embed_dim)),
      vdim_(options.vdim.value_or(embed_dim)),
      packed_(kdim_ == embed_dim && vdim_ == embed_dim),
      options_(options) {
  detail::positive(kdim_, kWhere, "kdim");
  detail::positive(vdim_, kWhere, "vdim");
  detail::check_dropout(options.dropout, kWhere);
  const int64_t E = embed_dim;

  // _reset_parameters(), in torch's order.
  if (packed_) {
    in_proj_weight = Parameter<T>({3 * E, E});
    xavier_uniform_(in_proj_weight.value, gen);
  } else {
    q_proj_weight = Parameter<T>({E, E});
    k_proj_weight = Parameter<T>({E, kdim_});
    v_proj_weight = Parameter<T>({E, vdim_});
    xavier_uniform_(q_proj_weight.value, gen);
    xavier_uniform_(k_proj_weight.value, gen);
    xavier_uniform_(v_proj_weight.value, gen);
  }
  if (options.bias) {
    in_proj_bias = Parameter<T>({3 * E});  // zeros
    out_proj.bias.value.fill_(T(0));       // drawn by nn.Linear, then zeroed by torch
  }
  if (options.add_bias_kv) {
    bias_k = Parameter<T>({1, 1, E});
    bias_v = Parameter<T>({1, 1, E});
    xavier_normal_(bias_k.value, gen);
    xavier_normal_(bias_v.value, gen);
  }
}

template <class T>
Tensor<T> TorchMultiheadAttention<T>::proj_weight(int i) const {
  const int64_t E = embed_dim_;
  if (packed_) return in_proj_weight.value.slice(0, i * E, (i + 1) * E);
  return i == 0 ? q_proj_weight.value : i == 1 ? k_proj_weight.value : v_proj_weight.value;
}
template <class T>
Tensor<T> TorchMultiheadAttention<T>::proj_weight_grad(int i) const {
  const int64_t E = embed_dim_;
  if (packed_) return in_proj_weight.grad.slice(0, i * E, (i + 1) * E);
  return i == 0 ? q_proj_weight.grad : i == 1 ? k_proj_weight.grad : v_proj_weight.grad;
}
template <class T>
Tensor<T> TorchMultiheadAttention<T>::proj_bias(int i) const {
  if (!options_.bias) return Tensor<T>();
  return in_proj_bias.value.slice(0, i * embed_dim_, (i + 1) * embed_dim_);
}
template <class T>
Tensor<T> TorchMultiheadAttention<T>::proj_bias_grad(int i) const {
  if (!options_.bias) return Tensor<T>();
  return in_proj_bias.grad.slice(0, i * embed_dim_, (i + 1) * embed_dim_);
}

template <class T>
TorchMultiheadAttentionOutput<T> TorchMultiheadAttention<T>::forward(const Tensor<T>& query, const Tensor<T>& key,
                                                                     const Tensor<T>& value,
                                                                     const TorchMultiheadAttentionForwardOptions<T>& opt) {
  const std::string where = std::string(kWhere) + ".forward";
  const int64_t E = embed_dim_, H = num_heads_, hd = head_dim_;
  const bool bf = options_.batch_first;

  // ---- shapes (torch's _mha_shape_check, with the shapes in the message) ----
  if (!query.defined() || (query.dim() != 2 && query.dim() != 3))
    throw ShapeError(where + ": query has shape " + (query.defined() ? shape_str(query.shape()) : "undefined") +
                     ", expected " + layout(bf, "L", "E") + " (batch_first = " + (bf ? "true" : "false") +
                     ") or [L, E] (unbatched)");
  const bool batched = query.dim() == 3;
  for (auto [t, name] : {std::pair{&key, "key"}, std::pair{&value, "value"}})
    if (!t->defined() || t->dim() != query.dim())
      throw ShapeError(where + ": for a " + (batched ? "batched (3-D)" : "unbatched (2-D)") + " query " +
                       shape_str(query.shape()) + ", expected " + name + " to be " + (batched ? "3-D" : "2-D") +
                       ", got shape " + (t->defined() ? shape_str(t->shape()) : "undefined"));
  // Batch-first views: [N, ·, features] (a transpose view, or a leading 1 for unbatched input).
  auto batch_first_view = [&](const Tensor<T>& t) {
    if (!batched) return t.reshape({1, t.size(0), t.size(1)});
    return bf ? t : t.transpose(0, 1);
  };
  const Tensor<T> q_in = batch_first_view(query), k_in = batch_first_view(key), v_in = batch_first_view(value);
  const int64_t N = q_in.size(0), L = q_in.size(1), S = k_in.size(1);
  auto expect = [&](bool ok, const Tensor<T>& t, const char* name, const std::string& want) {
    if (!ok)
      throw ShapeError(where + ": " + name + " has shape " + shape_str(t.shape()) + ", expected " + want +
                       (batched ? std::string(" (batch_first = ") + (bf ? "true" : "false") + ")" : " (unbatched)") +
                       " with E = " + std::to_string(E) + ", kdim = " + std::to_string(kdim_) +
                       ", vdim = " + std::to_string(vdim_) + ", N = " + std::to_string(N));
  };
  const std::string qw = batched ? layout(bf, "L", "E") : "[L, E]";
  const std::string kw = batched ? layout(bf, "S", "kdim") : "[S, kdim]";
  const std::string vw = batched ? layout(bf, "S", "vdim") + " with the key's S" : "[S, vdim] with the key's S";
  expect(q_in.size(2) == E, query, "query", qw);
  expect(k_in.size(0) == N && k_in.size(2) == kdim_, key, "key", kw);
  expect(v_in.size(0) == N && v_in.size(1) == S && v_in.size(2) == vdim_, value, "value", vw);

  // ---- masks: one float mask [N|1, H|1, L|1, S'] = attn_mask + key_padding_mask ----
  if (opt.key_padding_mask.defined() && opt.float_key_padding_mask.defined())
    throw ValueError(where + ": key_padding_mask given both as bool and as float; give one");
  if (opt.attn_mask.defined() && opt.float_attn_mask.defined())
    throw ValueError(where + ": attn_mask given both as bool and as float; give one");
  const bool kpm_bool = opt.key_padding_mask.defined(), attn_bool = opt.attn_mask.defined();
  const bool has_kpm = kpm_bool || opt.float_key_padding_mask.defined();
  const bool has_attn = attn_bool || opt.float_attn_mask.defined();
  const Shape kpm_shape = kpm_bool ? opt.key_padding_mask.shape() : opt.float_key_padding_mask.shape();
  const Shape attn_shape = attn_bool ? opt.attn_mask.shape() : opt.float_attn_mask.shape();
  if (has_kpm) {
    const Shape want = batched ? Shape{N, S} : Shape{S};
    if (kpm_shape != want)
      throw ShapeError(where + ": key_padding_mask has shape " + shape_str(kpm_shape) + ", expected " +
                       shape_str(want) + (batched ? " [N, S]" : " [S] (unbatched)"));
  }
  const bool attn3d = has_attn && attn_shape.size() == 3;
  if (has_attn) {
    const Shape want2{L, S}, want3{N * H, L, S};
    if (attn_shape != want2 && attn_shape != want3)
      throw ShapeError(where + ": attn_mask has shape " + shape_str(attn_shape) + ", expected [L, S] = " +
                       shape_str(want2) + " or " + (batched ? "[N·num_heads, L, S] = " : "[num_heads, L, S] = ") +
                       shape_str(want3));
  }
  const bool build_causal = opt.is_causal && !has_attn;  // torch would raise; see the header
  const int64_t S_extra = S + (options_.add_bias_kv ? 1 : 0) + (options_.add_zero_attn ? 1 : 0);

  SdpaOptions<T> sdpa;
  if (has_kpm || has_attn || build_causal) {
    constexpr T kNegInf = -std::numeric_limits<T>::infinity();
    const int64_t Nm = (has_kpm || attn3d) ? N : 1, Hm = attn3d ? H : 1, Lm = (has_attn || build_causal) ? L : 1;
    const Tensor<bool> kpm_b = kpm_bool ? opt.key_padding_mask.reshape({Nm, S}) : Tensor<bool>();
    const Tensor<T> kpm_f = has_kpm && !kpm_bool ? opt.float_key_padding_mask.reshape({Nm, S}) : Tensor<T>();
    // Columns S.. (bias_k, zero attention) stay 0: torch pads both masks with zeros there.
    Tensor<T> mask({Nm, Hm, Lm, S_extra});
    for (int64_t b = 0; b < Nm; ++b)
      for (int64_t h = 0; h < Hm; ++h)
        for (int64_t i = 0; i < Lm; ++i)
          for (int64_t j = 0; j < S; ++j) {
            T m = 0;
            if (has_attn) {
              if (attn3d) m = attn_bool ? (opt.attn_mask(b * H + h, i, j) ? kNegInf : T(0))
                                        : opt.float_attn_mask(b * H + h, i, j);
              else m = attn_bool ? (opt.attn_mask(i, j) ? kNegInf : T(0)) : opt.float_attn_mask(i, j);
            }
            if (build_causal && j > i) m = kNegInf;
            if (has_kpm) m += kpm_bool ? (kpm_b(b, j) ? kNegInf : T(0)) : kpm_f(b, j);
            mask(b, h, i, j) = m;
          }
    sdpa.float_mask = mask;
  }
  sdpa.dropout_p = training_ ? options_.dropout : 0.0;
  sdpa.dropout_seed = dropout_seed_;
  if (sdpa.dropout_p > 0.0) ++dropout_seed_;  // a fresh mask for the next training call
  sdpa.return_weights = opt.need_weights;

  // ---- in-projection, bias_kv, heads, zero attention ----
  const Tensor<T> q = detail::linear(q_in, proj_weight(0), proj_bias(0));  // [N, L, E]
  Tensor<T> k_full({N, S_extra, E}), v_full({N, S_extra, E});              // zero-filled: the zero-attn row stays 0
  k_full.slice(1, 0, S).copy_(detail::linear(k_in, proj_weight(1), proj_bias(1)));
  v_full.slice(1, 0, S).copy_(detail::linear(v_in, proj_weight(2), proj_bias(2)));
  if (options_.add_bias_kv) {
    k_full.select(1, S).copy_(bias_k.value.reshape({1, E}).expand({N, E}));
    v_full.select(1, S).copy_(bias_v.value.reshape({1, E}).expand({N, E}));
  }
  // [N, ·, E] → [N, ·, H, hd] → [N, H, ·, hd]: views, no copies.
  q_ = q.reshape({N, L, H, hd}).transpose(1, 2);
  k_ = k_full.reshape({N, S_extra, H, hd}).transpose(1, 2);
  v_ = v_full.reshape({N, S_extra, H, hd}).transpose(1, 2);

  // ---- attention, merge heads, out_proj ----
  SdpaResult<T> r = scaled_dot_product_attention(q_, k_, v_, sdpa);
  context_ = r.output;
  lse_ = r.lse;
  sdpa.return_weights = false;
  sdpa_options_ = sdpa;
  query_ = q_in;
  key_ = k_in;
  value_ = v_in;
  batched_ = batched;

  const Tensor<T> merged = context_.transpose(1, 2).reshape({N, L, E});
  const Tensor<T> y = out_proj.forward(merged);  // [N, L, E]

  TorchMultiheadAttentionOutput<T> out;
  out.attn_output = !batched ? y.reshape({L, E}) : bf ? y : y.transpose(0, 1).contiguous();
  output_shape_ = out.attn_output.shape();
  if (opt.need_weights) {
    Tensor<T> w = r.weights;  // [N, H, L, S']
    if (opt.average_attn_weights) {
      Tensor<T> avg({N, L, S_extra});
      for (int64_t b = 0; b < N; ++b)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t i = 0; i < L; ++i)
            for (int64_t j = 0; j < S_extra; ++j) avg(b, i, j) += w(b, h, i, j) / T(H);
      w = avg;
    }
    out.attn_weights = batched ? w : w.select(0, 0).contiguous();
  }
  return out;
}

template <class T>
TorchMultiheadAttentionGradients<T> TorchMultiheadAttention<T>::backward(const Tensor<T>& grad_output) {
  const std::string where = std::string(kWhere) + ".backward";
  detail::check_forward_ran(context_.defined(), where);
  detail::check_grad_shape(grad_output, output_shape_, where);
  const int64_t E = embed_dim_, H = num_heads_, hd = head_dim_;
  const int64_t N = q_.size(0), L = q_.size(2), S_extra = k_.size(2), S = key_.size(1);
  const bool bf = options_.batch_first;

  // in the forward pass this was: output = out_proj(merged), in the caller's layout
  const Tensor<T> dy = !batched_ ? grad_output.reshape({1, L, E}) : bf ? grad_output : grad_output.transpose(0, 1);
  const Tensor<T> d_merged = out_proj.backward(dy.contiguous());  // [N, L, E]
  // merged = heads side by side
  const Tensor<T> d_context = d_merged.reshape({N, L, H, hd}).transpose(1, 2);
  // context = SDPA(q, k, v; mask, dropout) — the same options regenerate the same dropout mask
  SdpaGradients<T> g = scaled_dot_product_attention_backward(d_context, q_, k_, v_, context_, lse_, sdpa_options_);
  const Tensor<T> dq = g.d_query.transpose(1, 2).reshape({N, L, E});
  const Tensor<T> dk_full = g.d_key.transpose(1, 2).reshape({N, S_extra, E});
  const Tensor<T> dv_full = g.d_value.transpose(1, 2).reshape({N, S_extra, E});
  // k_full = [key·W_kᵀ + b_k | bias_k | 0]: the bias_k row was shared by every batch entry,
  // the zero row has no parameter.
  if (options_.add_bias_kv)
    for (int64_t b = 0; b < N; ++b)
      for (int64_t e = 0; e < E; ++e) {
        bias_k.grad(0, 0, e) += dk_full(b, S, e);
        bias_v.grad(0, 0, e) += dv_full(b, S, e);
      }
  // q = query·W_qᵀ + b_q, and likewise k, v
  const Tensor<T> d_q_in = detail::linear_backward(query_, proj_weight(0), dq, proj_weight_grad(0), proj_bias_grad(0));
  const Tensor<T> d_k_in =
      detail::linear_backward(key_, proj_weight(1), dk_full.slice(1, 0, S), proj_weight_grad(1), proj_bias_grad(1));
  const Tensor<T> d_v_in =
      detail::linear_backward(value_, proj_weight(2), dv_full.slice(1, 0, S), proj_weight_grad(2), proj_bias_grad(2));

  // Back to the caller's layout.
  auto to_caller = [&](const Tensor<T>& t) {
    if (!batched_) return t.reshape({t.size(1), t.size(2)});
    return bf ? t : t.transpose(0, 1).contiguous();
  };
  return {to_caller(d_q_in), to_caller(d_k_in), to_caller(d_v_in)};
}

template <class T>
std::vector<NamedParameter<T>> TorchMultiheadAttention<T>::named_parameters() {
  std::vector<NamedParameter<T>> out;
  if (packed_) {
    out.push_back({"in_proj_weight", &in_proj_weight});
  } else {
    out.push_back({"q_proj_weight", &q_proj_weight});
    out.push_back({"k_proj_weight", &k_proj_weight});
    out.push_back({"v_proj_weight", &v_proj_weight});
  }
  if (options_.bias) out.push_back({"in_proj_bias", &in_proj_bias});
  if (options_.add_bias_kv) {
    out.push_back({"bias_k", &bias_k});
    out.push_back({"bias_v", &bias_v});
  }
  append_prefixed(out, "out_proj.", out_proj);
  return out;
}

template class TorchMultiheadAttention<float>;
template class TorchMultiheadAttention<double>;

}  // namespace attn

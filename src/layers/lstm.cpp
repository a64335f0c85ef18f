// lstm.cpp — torch.nn.LSTM: forward through time beside backward through time.
//
// Buffers (L steps, B sequences, I = input_size, H = hidden_size; contiguous, time-major):
//   x      [L, B, I]      the input, saved
//   pre    [L, B, 4H]     x·W_ihᵀ + b_ih for every step at once, then + h·W_hhᵀ + b_hh per step
//   hs, cs [L + 1, B, H]  hidden and cell states; [0] = h0, c0; saved
//   gates  [L, B, 4H]     i | f | g | o after σ / tanh; saved
//   dpre   [L, B, 4H]     dL/dpre: the same for the input and the recurrent projection
//   dh, dc [B, H]         carried backwards through time
#include "attn/lstm.hpp"

#include <cmath>
#include <string>

#include "layers/layer_util.hpp"
#include "layers/recurrent_util.hpp"

namespace attn {

template <class T>
LSTM<T>::LSTM(int64_t input_size, int64_t hidden_size, bool bias, bool batch_first, Generator& gen)
    : input_size_(detail::positive(input_size, "LSTM", "input_size")),
      hidden_size_(detail::positive(hidden_size, "LSTM", "hidden_size")),
      has_bias_(bias),
      batch_first_(batch_first) {
  const int64_t gates = detail::size_mul(4, hidden_size, "LSTM", "4 x hidden_size");  // i, f, g, o stacked
  weight_ih_l0 = Parameter<T>({gates, input_size});
  weight_hh_l0 = Parameter<T>({gates, hidden_size});
  bias_ih_l0 = Parameter<T>({bias ? gates : 0});
  bias_hh_l0 = Parameter<T>({bias ? gates : 0});
  detail::init_uniform(named_parameters(), hidden_size, gen);
}

template <class T>
std::vector<NamedParameter<T>> LSTM<T>::named_parameters() {
  std::vector<NamedParameter<T>> out{{"weight_ih_l0", &weight_ih_l0}, {"weight_hh_l0", &weight_hh_l0}};
  if (has_bias_) {
    out.push_back({"bias_ih_l0", &bias_ih_l0});
    out.push_back({"bias_hh_l0", &bias_hh_l0});
  }
  return out;
}

template <class T>
LSTMOutput<T> LSTM<T>::forward(const Tensor<T>& input, const Tensor<T>& h0, const Tensor<T>& c0,
                               const std::vector<int64_t>& lengths) {
  const std::string where = "LSTM.forward";
  detail::check_sequence_input(input, input_size_, where, "input",
                               batch_first_ ? "[batch, seq, input_size]" : "[seq, batch, input_size]");
  const int64_t I = input_size_, H = hidden_size_;
  const Tensor<T> tm = input.dim() == 2 ? input.reshape({input.size(0), 1, I}) : batch_first_ ? input.transpose(0, 1) : input;
  const int64_t L = tm.size(0), B = tm.size(1);
  const Shape h_shape = input.dim() == 2 ? Shape{1, H} : Shape{1, B, H};
  if (h0.defined() != c0.defined())
    throw ValueError(where + ": h0 and c0 must be given together (or neither, for zeros)");
  for (const auto* s : {&h0, &c0})
    if (s->defined() && s->shape() != h_shape)
      throw ShapeError(where + ": " + (s == &h0 ? "h0" : "c0") + " has shape " + shape_str(s->shape()) + ", expected " +
                       shape_str(h_shape) + " for input " + shape_str(input.shape()));
  if (!lengths.empty() && static_cast<int64_t>(lengths.size()) != B)
    throw ShapeError(where + ": lengths has " + std::to_string(lengths.size()) + " entries, expected one per sequence (" +
                     std::to_string(B) + ") for input " + shape_str(input.shape()));
  for (int64_t len : lengths)
    if (len < 0 || len > L)
      throw ValueError(where + ": lengths contains " + std::to_string(len) + ", expected 0 <= length <= seq (" +
                       std::to_string(L) + ")");

  L_ = L;
  B_ = B;
  input_rank_ = input.dim();
  lengths_ = lengths.empty() ? std::vector<int64_t>(static_cast<size_t>(B), L) : lengths;
  x_ = tm.clone();
  hs_ = Tensor<T>({L + 1, B, H});
  cs_ = Tensor<T>({L + 1, B, H});
  gates_ = Tensor<T>({L, B, 4 * H});
  if (h0.defined()) {
    hs_.select(0, 0).copy_(h0.reshape({B, H}));
    cs_.select(0, 0).copy_(c0.reshape({B, H}));
  }
  // pre = x·W_ihᵀ + b_ih (all steps at once) + b_hh; the h·W_hhᵀ part is added step by step
  Tensor<T> pre({L, B, 4 * H});
  T* P = pre.data();
  for (int64_t r = 0; r < L * B; ++r)
    for (int64_t o = 0; o < 4 * H; ++o)
      P[r * 4 * H + o] = has_bias_ ? bias_ih_l0.value(o) + bias_hh_l0.value(o) : T(0);
  detail::matmul_nt_add(x_.data(), weight_ih_l0.value.data(), P, L * B, I, 4 * H);

  for (int64_t t = 0; t < L; ++t) {
    const T* h = hs_.data() + t * B * H;
    const T* c = cs_.data() + t * B * H;
    T* p = P + t * B * 4 * H;
    detail::matmul_nt_add(h, weight_hh_l0.value.data(), p, B, H, 4 * H);
    T* h_next = hs_.data() + (t + 1) * B * H;
    T* c_next = cs_.data() + (t + 1) * B * H;
    T* g = gates_.data() + t * B * 4 * H;
    for (int64_t b = 0; b < B; ++b) {
      if (t >= lengths_[static_cast<size_t>(b)]) {  // padding: keep the state
        for (int64_t j = 0; j < H; ++j) {
          h_next[b * H + j] = h[b * H + j];
          c_next[b * H + j] = c[b * H + j];
        }
        continue;
      }
      const T* pb = p + b * 4 * H;
      T* gb = g + b * 4 * H;
      for (int64_t j = 0; j < H; ++j) {
        const T i = detail::sigmoid(pb[j]), f = detail::sigmoid(pb[H + j]);
        const T gg = std::tanh(pb[2 * H + j]), o = detail::sigmoid(pb[3 * H + j]);
        gb[j] = i;
        gb[H + j] = f;
        gb[2 * H + j] = gg;
        gb[3 * H + j] = o;
        const T cn = f * c[b * H + j] + i * gg;
        c_next[b * H + j] = cn;
        h_next[b * H + j] = o * std::tanh(cn);
      }
    }
  }
  ran_ = true;

  Tensor<T> out({L, B, H});
  for (int64_t t = 0; t < L; ++t)
    for (int64_t b = 0; b < B; ++b)
      if (t < lengths_[static_cast<size_t>(b)])
        for (int64_t j = 0; j < H; ++j) out(t, b, j) = hs_(t + 1, b, j);
  LSTMOutput<T> result;
  result.h_n = hs_.select(0, L).clone().reshape(h_shape);
  result.c_n = cs_.select(0, L).clone().reshape(h_shape);
  if (input_rank_ == 2) result.output = out.reshape({L, H});
  else result.output = batch_first_ ? out.transpose(0, 1).contiguous() : out;
  return result;
}

template <class T>
LSTMGradients<T> LSTM<T>::backward(const Tensor<T>& grad_output, const Tensor<T>& grad_h_n, const Tensor<T>& grad_c_n) {
  const std::string where = "LSTM.backward";
  detail::check_forward_ran(ran_, where);
  for (const auto& np : named_parameters()) detail::check_param(*np.param, where, np.name);
  const int64_t L = L_, B = B_, I = input_size_, H = hidden_size_;
  const Shape out_shape = input_rank_ == 2 ? Shape{L, H} : batch_first_ ? Shape{B, L, H} : Shape{L, B, H};
  const Shape h_shape = input_rank_ == 2 ? Shape{1, H} : Shape{1, B, H};
  if (grad_output.defined()) detail::check_grad_shape(grad_output, out_shape, where);
  for (const auto* g : {&grad_h_n, &grad_c_n})
    if (g->defined() && g->shape() != h_shape)
      throw ShapeError(where + ": " + (g == &grad_h_n ? "grad_h_n" : "grad_c_n") + " has shape " + shape_str(g->shape()) +
                       ", expected " + shape_str(h_shape));
  Tensor<T> dout({L, B, H});
  if (grad_output.defined())
    dout.copy_(input_rank_ == 2 ? grad_output.reshape({L, 1, H}) : batch_first_ ? grad_output.transpose(0, 1) : grad_output);
  Tensor<T> dh({B, H}), dc({B, H});
  if (grad_h_n.defined()) dh.copy_(grad_h_n.reshape({B, H}));
  if (grad_c_n.defined()) dc.copy_(grad_c_n.reshape({B, H}));
  Tensor<T> dpre({L, B, 4 * H});

  for (int64_t t = L; t-- > 0;) {
    const T* c = cs_.data() + t * B * H;
    const T* c_next = cs_.data() + (t + 1) * B * H;
    const T* g = gates_.data() + t * B * 4 * H;
    T* dp = dpre.data() + t * B * 4 * H;
    for (int64_t b = 0; b < B; ++b) {
      if (t >= lengths_[static_cast<size_t>(b)]) continue;  // padding: dh, dc pass through, dpre = 0
      for (int64_t j = 0; j < H; ++j) {
        // in the forward pass this was c' = f⊙c + i⊙g, h' = o⊙tanh(c'), so
        //   do = dh'⊙tanh(c'),  dc' += dh'⊙o⊙(1 − tanh²(c')),
        //   di = dc'⊙g,  df = dc'⊙c,  dg = dc'⊙i,  dc = dc'⊙f,
        // and through σ (s(1 − s)) and tanh (1 − t²) to the pre-activations.
        const T dhv = dh(b, j) + dout(t, b, j);
        const T i = g[b * 4 * H + j], f = g[b * 4 * H + H + j], gg = g[b * 4 * H + 2 * H + j], o = g[b * 4 * H + 3 * H + j];
        const T tc = std::tanh(c_next[b * H + j]);
        const T dcv = dc(b, j) + dhv * o * (T(1) - tc * tc);
        T* d = dp + b * 4 * H;
        d[j] = dcv * gg * i * (T(1) - i);
        d[H + j] = dcv * c[b * H + j] * f * (T(1) - f);
        d[2 * H + j] = dcv * i * (T(1) - gg * gg);
        d[3 * H + j] = dhv * tc * o * (T(1) - o);
        dc(b, j) = dcv * f;
        dh(b, j) = 0;  // replaced by dpre·W_hh below (rows that are padding keep theirs)
      }
    }
    // pre = ... + h·W_hhᵀ + b_hh:  dW_hh += dpreᵀ·h,  db_hh += Σ dpre,  dh = dpre·W_hh
    detail::matmul_tn_add(dp, hs_.data() + t * B * H, weight_hh_l0.grad.data(),
                          has_bias_ ? bias_hh_l0.grad.data() : nullptr, B, 4 * H, H);
    detail::matmul_nn_add(dp, weight_hh_l0.value.data(), dh.data(), B, 4 * H, H);
  }
  // pre = x·W_ihᵀ + b_ih + ...:  dW_ih += dpreᵀ·x,  db_ih += Σ dpre,  dx = dpre·W_ih
  detail::matmul_tn_add(dpre.data(), x_.data(), weight_ih_l0.grad.data(), has_bias_ ? bias_ih_l0.grad.data() : nullptr,
                        L * B, 4 * H, I);
  Tensor<T> dx({L, B, I});
  detail::matmul_nn_add(dpre.data(), weight_ih_l0.value.data(), dx.data(), L * B, 4 * H, I);
  LSTMGradients<T> r;
  r.d_input = input_rank_ == 2 ? dx.reshape({L, I}) : batch_first_ ? dx.transpose(0, 1).contiguous() : dx;
  r.d_h0 = dh.reshape(h_shape);
  r.d_c0 = dc.reshape(h_shape);
  return r;
}

template class LSTM<float>;
template class LSTM<double>;

}  // namespace attn

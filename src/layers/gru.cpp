// gru.cpp — torch.nn.GRU / GRUCell: forward through time beside backward through time.
//
// Buffers (L steps, B sequences, I = input_size, H = hidden_size; all
// contiguous and time-major inside, whatever the caller's layout):
//   x      [L, B, I]      the input, saved
//   gi     [L, B, 3H]     x·W_ihᵀ + b_ih for every step at once (no recurrence in it)
//   gh     [B, 3H]        h·W_hhᵀ + b_hh, one step (a scratch buffer)
//   hs     [L + 1, B, H]  hs[0] = h0, hs[t + 1] = the state after step t; saved
//   gates  [L, B, 3H]     r | z | n of every step, after σ / tanh; saved
//   hn     [L, B, H]      W_hn·h + b_hn of every step (the part r multiplies); saved
//   dgi    [L, B, 3H]     dL/dgi: what the input projection receives
//   dgh    [B, 3H]        dL/dgh, one step
//   dh     [B, H]         dL/dh carried backwards through time
//
// The three matrix products (layers/recurrent_util.hpp) are rows of axpy (c[:] += a · w[:]),
// so every inner loop walks contiguous memory and the compiler vectorises it
// without reassociating a sum (a dot-product loop needs -ffast-math for that).
#include "attn/gru.hpp"

#include <cmath>
#include <string>

#include "layers/layer_util.hpp"
#include "layers/recurrent_util.hpp"

namespace attn {

namespace {

using detail::matmul_nn_add;
using detail::matmul_nt_add;
using detail::matmul_tn_add;
using detail::sigmoid;
using detail::check_param;
using detail::init_uniform;

// ---- one step, forward and backward ------------------------------------------------

// The recurrence for rows b with active[b] (all rows when active is null);
// an inactive row (padding) keeps its state: h_next = h, gates untouched (0).
//   gi     [B, 3H]   x·W_ihᵀ + b_ih of this step
//   h      [B, H]    the state before the step
//   gates  [B, 3H]   out: r | z | n
//   hn     [B, H]    out: W_hn·h + b_hn
//   h_next [B, H]    out
template <class T>
void gru_step_forward(const T* gi, const T* h, const T* W_hh, const T* b_hh, T* gates, T* hn, T* h_next, int64_t B,
                      int64_t H, const std::vector<char>* active) {
  std::vector<T> gh(static_cast<size_t>(B * 3 * H));  // [B, 3H] = h·W_hhᵀ + b_hh
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < 3 * H; ++o) gh[static_cast<size_t>(b * 3 * H + o)] = b_hh ? b_hh[o] : T(0);
  matmul_nt_add(h, W_hh, gh.data(), B, H, 3 * H);
  for (int64_t b = 0; b < B; ++b) {
    const T* gib = gi + b * 3 * H;
    const T* ghb = gh.data() + b * 3 * H;
    const T* hb = h + b * H;
    T* g = gates + b * 3 * H;
    T* out = h_next + b * H;
    if (active && !(*active)[static_cast<size_t>(b)]) {
      for (int64_t j = 0; j < H; ++j) out[j] = hb[j];
      continue;
    }
    for (int64_t j = 0; j < H; ++j) {
      const T r = sigmoid(gib[j] + ghb[j]);
      const T z = sigmoid(gib[H + j] + ghb[H + j]);
      const T n = std::tanh(gib[2 * H + j] + r * ghb[2 * H + j]);
      g[j] = r;
      g[H + j] = z;
      g[2 * H + j] = n;
      hn[b * H + j] = ghb[2 * H + j];
      out[j] = (T(1) - z) * n + z * hb[j];
    }
  }
}

// In the forward pass this was
//   r = σ(gi_r + gh_r),  z = σ(gi_z + gh_z),  n = tanh(gi_n + r ⊙ gh_n),
//   h' = (1 − z) ⊙ n + z ⊙ h,      gh = h·W_hhᵀ + b_hh,
// so now, from dh' = dL/dh':
//   dn = dh' ⊙ (1 − z)          dz = dh' ⊙ (h − n)           dh = dh' ⊙ z   (the direct path)
//   dn_pre = dn ⊙ (1 − n²)      → dgi_n = dn_pre,  dgh_n = dn_pre ⊙ r,  dr = dn_pre ⊙ gh_n
//   dgi_r = dgh_r = dr ⊙ r(1 − r)          dgi_z = dgh_z = dz ⊙ z(1 − z)
//   dW_hh += dghᵀ·h,  db_hh += Σ dgh,  dh += dgh·W_hh
// A padding row passes dh' straight through (h' = h there) and gets dgi = 0.
//   dh_next [B, H] in;  dgi [B, 3H] out;  dh_prev [B, H] out
template <class T>
void gru_step_backward(const T* dh_next, const T* h, const T* gates, const T* hn, const T* W_hh, T* dW_hh, T* db_hh,
                       T* dgi, T* dh_prev, int64_t B, int64_t H, const std::vector<char>* active) {
  std::vector<T> dgh(static_cast<size_t>(B * 3 * H));  // [B, 3H]
  for (int64_t b = 0; b < B; ++b) {
    const T* dhn = dh_next + b * H;
    T* dhp = dh_prev + b * H;
    T* dgib = dgi + b * 3 * H;
    if (active && !(*active)[static_cast<size_t>(b)]) {
      for (int64_t j = 0; j < H; ++j) dhp[j] = dhn[j];
      for (int64_t j = 0; j < 3 * H; ++j) dgib[j] = 0;
      continue;
    }
    const T* g = gates + b * 3 * H;
    const T* hb = h + b * H;
    T* dghb = dgh.data() + b * 3 * H;
    for (int64_t j = 0; j < H; ++j) {
      const T r = g[j], z = g[H + j], n = g[2 * H + j];
      const T dn = dhn[j] * (T(1) - z);
      const T dz = dhn[j] * (hb[j] - n);
      const T dn_pre = dn * (T(1) - n * n);
      const T dr = dn_pre * hn[b * H + j];
      const T dr_pre = dr * r * (T(1) - r);
      const T dz_pre = dz * z * (T(1) - z);
      dgib[j] = dr_pre;
      dgib[H + j] = dz_pre;
      dgib[2 * H + j] = dn_pre;
      dghb[j] = dr_pre;
      dghb[H + j] = dz_pre;
      dghb[2 * H + j] = dn_pre * r;
      dhp[j] = dhn[j] * z;
    }
  }
  matmul_tn_add(dgh.data(), h, dW_hh, db_hh, B, 3 * H, H);
  matmul_nn_add(dgh.data(), W_hh, dh_prev, B, 3 * H, H);
}

}  // namespace

// ---- GRU ---------------------------------------------------------------------------

template <class T>
GRU<T>::GRU(int64_t input_size, int64_t hidden_size, bool bias, bool batch_first, Generator& gen)
    : input_size_(detail::positive(input_size, "GRU", "input_size")),
      hidden_size_(detail::positive(hidden_size, "GRU", "hidden_size")),
      has_bias_(bias),
      batch_first_(batch_first) {
  const int64_t gates = detail::size_mul(3, hidden_size, "GRU", "3 x hidden_size");  // r, z, n stacked
  weight_ih_l0 = Parameter<T>({gates, input_size});
  weight_hh_l0 = Parameter<T>({gates, hidden_size});
  bias_ih_l0 = Parameter<T>({bias ? gates : 0});
  bias_hh_l0 = Parameter<T>({bias ? gates : 0});
  init_uniform(named_parameters(), hidden_size, gen);
}

template <class T>
std::vector<NamedParameter<T>> GRU<T>::named_parameters() {
  std::vector<NamedParameter<T>> out{{"weight_ih_l0", &weight_ih_l0}, {"weight_hh_l0", &weight_hh_l0}};
  if (has_bias_) {
    out.push_back({"bias_ih_l0", &bias_ih_l0});
    out.push_back({"bias_hh_l0", &bias_hh_l0});
  }
  return out;
}

template <class T>
GRUOutput<T> GRU<T>::forward(const Tensor<T>& input, const Tensor<T>& h0, const std::vector<int64_t>& lengths) {
  const std::string where = "GRU.forward";
  const char* layout = batch_first_ ? "[batch, seq, input_size]" : "[seq, batch, input_size]";
  detail::check_sequence_input(input, input_size_, where, "input", layout);
  const int64_t I = input_size_, H = hidden_size_;
  // time-major view [L, B, I] of whatever layout came in
  Tensor<T> tm = input.dim() == 2 ? input.reshape({input.size(0), 1, I}) : batch_first_ ? input.transpose(0, 1) : input;
  const int64_t L = tm.size(0), B = tm.size(1);
  const Shape h_shape = input.dim() == 2 ? Shape{1, H} : Shape{1, B, H};
  if (h0.defined() && h0.shape() != h_shape)
    throw ShapeError(where + ": h0 has shape " + shape_str(h0.shape()) + ", expected " + shape_str(h_shape) +
                     (input.dim() == 2 ? " [1, hidden_size] for an unbatched input" : " [1, batch, hidden_size]") +
                     " for input " + shape_str(input.shape()));
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
  x_ = tm.clone();  // [L, B, I], contiguous
  hs_ = Tensor<T>({L + 1, B, H});
  gates_ = Tensor<T>({L, B, 3 * H});
  hn_ = Tensor<T>({L, B, H});
  if (h0.defined()) hs_.select(0, 0).copy_(h0.reshape({B, H}));

  // gi = x·W_ihᵀ + b_ih for all L·B rows at once: the input side has no recurrence.
  Tensor<T> gi({L, B, 3 * H});
  const T* b_ih = has_bias_ ? bias_ih_l0.value.data() : nullptr;
  if (b_ih)
    for (int64_t r = 0; r < L * B; ++r)
      for (int64_t o = 0; o < 3 * H; ++o) gi.data()[r * 3 * H + o] = b_ih[o];
  matmul_nt_add(x_.data(), weight_ih_l0.value.data(), gi.data(), L * B, I, 3 * H);

  // the recurrence, one step at a time
  const T* b_hh = has_bias_ ? bias_hh_l0.value.data() : nullptr;
  std::vector<char> active(static_cast<size_t>(B));
  for (int64_t t = 0; t < L; ++t) {
    for (int64_t b = 0; b < B; ++b) active[static_cast<size_t>(b)] = t < lengths_[static_cast<size_t>(b)];
    gru_step_forward(gi.data() + t * B * 3 * H, hs_.data() + t * B * H, weight_hh_l0.value.data(), b_hh,
                     gates_.data() + t * B * 3 * H, hn_.data() + t * B * H, hs_.data() + (t + 1) * B * H, B, H,
                     &active);
  }
  ran_ = true;

  // output[t] = hs[t + 1], 0 at padding steps; h_n = hs[L] (padding kept each state)
  Tensor<T> out({L, B, H});
  for (int64_t t = 0; t < L; ++t)
    for (int64_t b = 0; b < B; ++b)
      if (t < lengths_[static_cast<size_t>(b)])
        for (int64_t j = 0; j < H; ++j) out(t, b, j) = hs_(t + 1, b, j);
  GRUOutput<T> result;
  result.h_n = hs_.select(0, L).clone().reshape(h_shape);
  if (input_rank_ == 2) result.output = out.reshape({L, H});
  else result.output = batch_first_ ? out.transpose(0, 1).contiguous() : out;
  return result;
}

template <class T>
GRUGradients<T> GRU<T>::backward(const Tensor<T>& grad_output, const Tensor<T>& grad_h_n) {
  const std::string where = "GRU.backward";
  detail::check_forward_ran(ran_, where);
  for (const auto& np : named_parameters()) check_param(*np.param, where, np.name);
  const int64_t L = L_, B = B_, I = input_size_, H = hidden_size_;
  const Shape out_shape = input_rank_ == 2 ? Shape{L, H} : batch_first_ ? Shape{B, L, H} : Shape{L, B, H};
  const Shape h_shape = input_rank_ == 2 ? Shape{1, H} : Shape{1, B, H};
  if (grad_output.defined()) detail::check_grad_shape(grad_output, out_shape, where);
  if (grad_h_n.defined() && grad_h_n.shape() != h_shape)
    throw ShapeError(where + ": grad_h_n has shape " + shape_str(grad_h_n.shape()) + ", expected " +
                     shape_str(h_shape) + " (the shape of h_n)");

  // dout [L, B, H], time-major (0 where not given)
  Tensor<T> dout({L, B, H});
  if (grad_output.defined()) {
    const Tensor<T> g = input_rank_ == 2 ? grad_output.reshape({L, 1, H})
                        : batch_first_  ? grad_output.transpose(0, 1)
                                        : grad_output;
    dout.copy_(g);
  }
  Tensor<T> dh({B, H}), dh_prev({B, H});  // dL/dhs[t + 1] on entry to step t
  if (grad_h_n.defined()) dh.copy_(grad_h_n.reshape({B, H}));
  Tensor<T> dgi({L, B, 3 * H});

  std::vector<char> active(static_cast<size_t>(B));
  for (int64_t t = L; t-- > 0;) {
    // hs[t + 1] was both output[t] (where not padding) and the next step's state
    for (int64_t b = 0; b < B; ++b) {
      active[static_cast<size_t>(b)] = t < lengths_[static_cast<size_t>(b)];
      if (active[static_cast<size_t>(b)])
        for (int64_t j = 0; j < H; ++j) dh(b, j) += dout(t, b, j);
    }
    gru_step_backward(dh.data(), hs_.data() + t * B * H, gates_.data() + t * B * 3 * H, hn_.data() + t * B * H,
                      weight_hh_l0.value.data(), weight_hh_l0.grad.data(),
                      has_bias_ ? bias_hh_l0.grad.data() : nullptr, dgi.data() + t * B * 3 * H, dh_prev.data(), B, H,
                      &active);
    std::swap(dh, dh_prev);
  }

  // in the forward pass this was gi = x·W_ihᵀ + b_ih, so
  //   dW_ih += dgiᵀ·x,  db_ih += Σ dgi,  dx = dgi·W_ih
  matmul_tn_add(dgi.data(), x_.data(), weight_ih_l0.grad.data(), has_bias_ ? bias_ih_l0.grad.data() : nullptr, L * B,
                3 * H, I);
  Tensor<T> dx({L, B, I});
  matmul_nn_add(dgi.data(), weight_ih_l0.value.data(), dx.data(), L * B, 3 * H, I);

  GRUGradients<T> g;
  g.d_input = input_rank_ == 2 ? dx.reshape({L, I}) : batch_first_ ? dx.transpose(0, 1).contiguous() : dx;
  g.d_h0 = dh.reshape(h_shape);
  return g;
}

// ---- GRUCell ------------------------------------------------------------------------

template <class T>
GRUCell<T>::GRUCell(int64_t input_size, int64_t hidden_size, bool bias, Generator& gen)
    : input_size_(detail::positive(input_size, "GRUCell", "input_size")),
      hidden_size_(detail::positive(hidden_size, "GRUCell", "hidden_size")),
      has_bias_(bias) {
  const int64_t gates = detail::size_mul(3, hidden_size, "GRUCell", "3 x hidden_size");  // r, z, n stacked
  weight_ih = Parameter<T>({gates, input_size});
  weight_hh = Parameter<T>({gates, hidden_size});
  bias_ih = Parameter<T>({bias ? gates : 0});
  bias_hh = Parameter<T>({bias ? gates : 0});
  init_uniform(named_parameters(), hidden_size, gen);
}

template <class T>
std::vector<NamedParameter<T>> GRUCell<T>::named_parameters() {
  std::vector<NamedParameter<T>> out{{"weight_ih", &weight_ih}, {"weight_hh", &weight_hh}};
  if (has_bias_) {
    out.push_back({"bias_ih", &bias_ih});
    out.push_back({"bias_hh", &bias_hh});
  }
  return out;
}

template <class T>
Tensor<T> GRUCell<T>::forward(const Tensor<T>& x, const Tensor<T>& h) {
  const std::string where = "GRUCell.forward";
  const int64_t I = input_size_, H = hidden_size_;
  if (!x.defined() || (x.dim() != 1 && x.dim() != 2) || x.size(-1) != I)
    throw ShapeError(where + ": input has shape " + (x.defined() ? shape_str(x.shape()) : "undefined") +
                     ", expected [batch, " + std::to_string(I) + "] or [" + std::to_string(I) + "]");
  const int64_t B = x.dim() == 2 ? x.size(0) : 1;
  const Shape h_shape = x.dim() == 2 ? Shape{B, H} : Shape{H};
  if (h.defined() && h.shape() != h_shape)
    throw ShapeError(where + ": hx has shape " + shape_str(h.shape()) + ", expected " + shape_str(h_shape) +
                     " for input " + shape_str(x.shape()));
  B_ = B;
  input_rank_ = x.dim();
  x_ = x.reshape({B, I}).clone();
  h_ = h.defined() ? h.reshape({B, H}).clone() : Tensor<T>({B, H});
  gates_ = Tensor<T>({B, 3 * H});
  hn_ = Tensor<T>({B, H});
  Tensor<T> gi({B, 3 * H});  // x·W_ihᵀ + b_ih
  if (has_bias_)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t o = 0; o < 3 * H; ++o) gi(b, o) = bias_ih.value(o);
  matmul_nt_add(x_.data(), weight_ih.value.data(), gi.data(), B, I, 3 * H);
  Tensor<T> h_next({B, H});
  gru_step_forward(gi.data(), h_.data(), weight_hh.value.data(), has_bias_ ? bias_hh.value.data() : nullptr,
                   gates_.data(), hn_.data(), h_next.data(), B, H, nullptr);
  ran_ = true;
  return h_next.reshape(h_shape);
}

template <class T>
GRUGradients<T> GRUCell<T>::backward(const Tensor<T>& grad_h_next) {
  const std::string where = "GRUCell.backward";
  detail::check_forward_ran(ran_, where);
  for (const auto& np : named_parameters()) check_param(*np.param, where, np.name);
  const int64_t B = B_, I = input_size_, H = hidden_size_;
  const Shape h_shape = input_rank_ == 2 ? Shape{B, H} : Shape{H};
  detail::check_grad_shape(grad_h_next, h_shape, where);
  const Tensor<T> dh_next = grad_h_next.reshape({B, H}).contiguous();
  Tensor<T> dgi({B, 3 * H}), dh({B, H}), dx({B, I});
  gru_step_backward(dh_next.data(), h_.data(), gates_.data(), hn_.data(), weight_hh.value.data(),
                    weight_hh.grad.data(), has_bias_ ? bias_hh.grad.data() : nullptr, dgi.data(), dh.data(), B, H,
                    nullptr);
  matmul_tn_add(dgi.data(), x_.data(), weight_ih.grad.data(), has_bias_ ? bias_ih.grad.data() : nullptr, B, 3 * H, I);
  matmul_nn_add(dgi.data(), weight_ih.value.data(), dx.data(), B, 3 * H, I);
  GRUGradients<T> g;
  g.d_input = input_rank_ == 2 ? dx : dx.reshape({I});
  g.d_h0 = dh.reshape(h_shape);
  return g;
}

template class GRU<float>;
template class GRU<double>;
template class GRUCell<float>;
template class GRUCell<double>;

}  // namespace attn

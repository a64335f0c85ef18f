// examples/sdpa_basics.cpp — causal scaled dot-product attention, the way a
// transformer layer calls it.
//
// A projection produces queries, keys and values as [batch, seq, heads, dim]
// (one row per token, all heads side by side). SDPA wants [batch, heads, seq,
// dim]; transpose(1, 2) gives that view without copying a byte, and the
// library reads it through its strides.
//
// The same in PyTorch:
//   torch.manual_seed(123)
//   q, k, v = (torch.randn(2, 5, 4, 8).transpose(1, 2) for _ in range(3))
//   out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
//   out[1, 3, 4, :4]  ->  tensor([0.1235, 0.3711, 0.0128, 0.2055])
// and this program prints the same numbers.
#include <attn/attn.hpp>

#include <cstdio>

using attn::Tensor;

static void print_row(const char* label, const Tensor<float>& row) {
  std::printf("%-28s", label);
  for (int64_t j = 0; j < row.numel(); ++j) std::printf(" %8.4f", row.flat(j));
  std::printf("\n");
}

int main() {
  const int64_t batch = 2, seq = 5, heads = 4, head_dim = 8;

  // Deterministic inputs: the same draws as torch.manual_seed(123) + torch.randn.
  attn::manual_seed(123);
  Tensor<float> q_bshd = attn::randn<float>({batch, seq, heads, head_dim});
  Tensor<float> k_bshd = attn::randn<float>({batch, seq, heads, head_dim});
  Tensor<float> v_bshd = attn::randn<float>({batch, seq, heads, head_dim});

  // [B, S, H, D] -> [B, H, S, D]: a view, same storage, swapped strides.
  Tensor<float> q = q_bshd.transpose(1, 2), k = k_bshd.transpose(1, 2), v = v_bshd.transpose(1, 2);
  std::printf("query view %s, strides %s (contiguous: %s)\n", attn::shape_str(q.shape()).c_str(),
              attn::shape_str(q.strides()).c_str(), q.is_contiguous() ? "yes" : "no");

  // Causal: token i may look at tokens 0..i only. Scale defaults to 1/sqrt(8).
  attn::SdpaOptions<float> options;
  options.is_causal = true;
  options.return_weights = true;  // only to print them; real code leaves this off
  attn::SdpaResult<float> r = attn::scaled_dot_product_attention(q, k, v, options);

  std::printf("output %s, lse %s, weights %s\n\n", attn::shape_str(r.output.shape()).c_str(),
              attn::shape_str(r.lse.shape()).c_str(), attn::shape_str(r.weights.shape()).c_str());

  // The attention weights of batch 0, head 0: lower-triangular, rows sum to 1.
  std::printf("weights[0, 0] (causal: zeros above the diagonal)\n");
  for (int64_t i = 0; i < seq; ++i) {
    char label[32];
    std::snprintf(label, sizeof label, "  query %lld", static_cast<long long>(i));
    print_row(label, r.weights.select(0, 0).select(0, 0).select(0, i));
  }

  // Token 0 sees only itself, so its output is exactly its own value vector.
  std::printf("\n");
  print_row("output[0, 0, 0, :4]", r.output.select(0, 0).select(0, 0).select(0, 0).slice(0, 0, 4));
  print_row("value [0, 0, 0, :4]", v.select(0, 0).select(0, 0).select(0, 0).slice(0, 0, 4));
  print_row("output[1, 3, 4, :4]", r.output.select(0, 1).select(0, 3).select(0, 4).slice(0, 0, 4));

  // Back to the [B, S, H, D] layout the next layer expects (again a view).
  Tensor<float> out_bshd = r.output.transpose(1, 2);
  std::printf("\noutput as [batch, seq, heads, dim]: %s\n", attn::shape_str(out_bshd.shape()).c_str());

  // Bad input is a typed error that says what was wrong, never a crash.
  try {
    attn::scaled_dot_product_attention(q, k.slice(3, 0, 4), v, options);
  } catch (const attn::ShapeError& e) {
    std::printf("\nattn::ShapeError: %s\n", e.what());
  }
  return 0;
}

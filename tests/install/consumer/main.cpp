// tests/install/consumer/main.cpp — built against an installed attn by
// scripts/ci-install-test.sh. Computes the lecture notes' context vector z2
// and a small causal SDPA through the installed headers and library, prints
// them, and exits 1 if z2 differs from the notes' printed numbers.
#include <attn/attn.hpp>
#include <attn/simplified_attention.hpp>

#include <cmath>
#include <cstdio>

int main() {
  attn::Tensor<float> inputs({6, 3}, {0.43f, 0.15f, 0.89f, 0.55f, 0.87f, 0.66f, 0.57f, 0.85f, 0.64f,
                                      0.22f, 0.58f, 0.33f, 0.77f, 0.25f, 0.10f, 0.05f, 0.80f, 0.55f});
  const auto r = attn::simplified_self_attention(inputs);
  const float notes_z2[3] = {0.4419f, 0.6515f, 0.5683f};  // printed in the lecture notes
  std::printf("z2 = [%.4f, %.4f, %.4f]\n", r.context(1, 0), r.context(1, 1), r.context(1, 2));
  int bad = 0;
  for (int k = 0; k < 3; ++k) bad += std::fabs(r.context(1, k) - notes_z2[k]) > 5e-5f;

  // Causal SDPA, [batch 1, heads 1, seq 3, dim 2]: the first query sees only
  // the first key, so its output is the first value row.
  attn::Tensor<float> q({1, 1, 3, 2}, {1, 0, 0, 1, 1, 1});
  attn::Tensor<float> v({1, 1, 3, 2}, {1, 2, 3, 4, 5, 6});
  attn::SdpaOptions<float> options;
  options.is_causal = true;
  const auto out = attn::scaled_dot_product_attention(q, q, v, options).output;
  std::printf("causal sdpa output[0, 0, 0] = [%.4f, %.4f]\n", out(0, 0, 0, 0), out(0, 0, 0, 1));
  bad += out(0, 0, 0, 0) != 1.0f || out(0, 0, 0, 1) != 2.0f;

  std::printf(bad ? "consumer: FAILED\n" : "consumer: ok\n");
  return bad ? 1 : 0;
}

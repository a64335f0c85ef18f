// examples/journey.cpp — the lecture notes' "Your journey starts with one
// step" in a few lines: self-attention without trainable weights.
// `attn demo` walks through the same example stage by stage.
#include <attn/attn.hpp>
#include <attn/simplified_attention.hpp>

#include <cstdio>

int main() {
  // One 3-d embedding per word: Your, journey, starts, with, one, step.
  attn::Tensor<float> inputs({6, 3}, {0.43f, 0.15f, 0.89f, 0.55f, 0.87f, 0.66f, 0.57f, 0.85f, 0.64f,
                                      0.22f, 0.58f, 0.33f, 0.77f, 0.25f, 0.10f, 0.05f, 0.80f, 0.55f});

  // scores = X·Xᵀ, weights = softmax(scores) row by row, context = weights·X
  auto r = attn::simplified_self_attention(inputs);

  const char* words[] = {"Your", "journey", "starts", "with", "one", "step"};
  std::printf("word      weight a2j   context vector z(i)\n");
  for (int i = 0; i < 6; ++i)
    std::printf("%-8s  %.4f       [%.4f, %.4f, %.4f]\n", words[i], r.weights(1, i), r.context(i, 0),
                r.context(i, 1), r.context(i, 2));
  std::printf("\nz2, the context vector of \"journey\", is row 2; the notes print [0.4419, 0.6515, 0.5683].\n");
}

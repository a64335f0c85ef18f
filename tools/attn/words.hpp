// tools/attn/words.hpp — the notes' sentence and its 3-d embeddings, and the
// small built-in embedding that `--text` uses for any other words (shared by
// `attn demo` and `attn heatmap`, so the same sentence gives the same numbers).
//
// A word of the notes' sentence (case-insensitive) keeps its notes' vector;
// any other word gets 3 numbers in [0, 1) drawn by a Generator seeded with the
// FNV-1a hash of the lower-cased word: deterministic on every platform, no
// vocabulary needed, and the same word always lands on the same vector.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include <attn/generator.hpp>
#include <attn/tensor.hpp>

namespace attn::cli {

inline const std::vector<std::string> kNotesWords = {"Your", "journey", "starts", "with", "one", "step"};
inline constexpr float kNotesEmbeddings[6][3] = {
    {0.43f, 0.15f, 0.89f},  // Your     (x^1)
    {0.55f, 0.87f, 0.66f},  // journey  (x^2)
    {0.57f, 0.85f, 0.64f},  // starts   (x^3)
    {0.22f, 0.58f, 0.33f},  // with     (x^4)
    {0.77f, 0.25f, 0.10f},  // one      (x^5)
    {0.05f, 0.80f, 0.55f},  // step     (x^6)
};

inline std::string lower_case(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

inline std::vector<std::string> split_words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// FNV-1a: a fixed, platform-independent hash (std::hash is neither).
inline uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

/// X [L, 3]: one row per word, as described at the top of this file.
inline Tensor<float> embed_words(const std::vector<std::string>& words) {
  Tensor<float> x({static_cast<int64_t>(words.size()), 3});
  for (size_t i = 0; i < words.size(); ++i) {
    const auto it = std::find_if(kNotesWords.begin(), kNotesWords.end(),
                                 [&](const std::string& k) { return lower_case(k) == lower_case(words[i]); });
    if (it != kNotesWords.end()) {
      for (int64_t k = 0; k < 3; ++k) x(static_cast<int64_t>(i), k) = kNotesEmbeddings[it - kNotesWords.begin()][k];
    } else {
      Generator gen(fnv1a(lower_case(words[i])));
      const Tensor<float> r = rand<float>({3}, gen);
      for (int64_t k = 0; k < 3; ++k) x(static_cast<int64_t>(i), k) = r(k);
    }
  }
  return x;
}

}  // namespace attn::cli

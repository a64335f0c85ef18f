// tools/attn/demo.hpp — what `attn demo` computes, for other subcommands:
// `attn view` embeds exactly the numbers `attn demo --json` prints, so the
// page and the terminal never disagree.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace attn::cli {

// The book's seeds and sizes (Raschka, ch. 3), shared by demo and view:
// torch.manual_seed(123) before torch.rand and the heads, 789 before
// SelfAttention_v2 (the causal-mask and dropout stages).
inline constexpr uint64_t kSeedPlain = 123, kSeedLinear = 789, kSeedHeads = 123;
inline constexpr int64_t kDOut = 2;          // d_out = 2, as in the book
inline constexpr double kDropoutP = 0.5;     // the book's nn.Dropout(0.5)
inline constexpr uint64_t kDropoutSeed = 123;
inline constexpr int64_t kDemoMaxWords = 64;

/// The object `attn demo --json [--text TEXT] [--query N] [--overflow-factor F]`
/// prints. `text` empty: the notes' sentence; `query` 0-based (-1: the second
/// word, "journey"). Throws attn::ValueError if the text has no words, more than
/// kDemoMaxWords, or `query` is out of range.
nlohmann::ordered_json demo_document(const std::string& text, int64_t query = -1, float overflow_factor = 100.0f);

}  // namespace attn::cli

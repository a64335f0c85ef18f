// tools/attn/heatmap.hpp — `attn heatmap`'s drawing, for other subcommands
// (`attn train` draws its learned attention with it).
#pragma once

#include <string>
#include <vector>

#include <attn/tensor.hpp>

namespace attn::cli {

/// Draws one [L, L] panel per entry of `panels` (rows = queries, columns =
/// keys), token labels on both axes, a shared colour bar, to FILE.png or
/// FILE.svg (by the name's ending); `causal` greys out the masked cells.
/// Throws attn::IOError if the file cannot be written.
void draw_attention_heatmap(const std::vector<std::string>& tokens, const std::vector<Tensor<float>>& panels,
                            const std::vector<std::string>& panel_titles, const std::string& title,
                            const std::string& subtitle, bool causal, const std::string& path);

}  // namespace attn::cli

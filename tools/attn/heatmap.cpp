// tools/attn/heatmap.cpp — `attn heatmap`: attention weights as a picture (the
// notes' "attention pattern" grid), drawn with cairo to PNG or SVG.
//
//   attn heatmap --out FILE.png|FILE.svg [--text "..."] [--causal] [--heads N]
//                [--weights FILE.safetensors] [--seed S]
//   attn heatmap --model DIR [--text "..."] [--layer L] [--head H] [--out FILE.png|svg] [--json]
//
// What is drawn (rows = queries, columns = keys; each row sums to 1):
//   default     the notes' sentence "Your journey starts with one step", 6×3
//               embeddings X, simplified self-attention A = softmax(X·Xᵀ)
//               (the numbers `attn demo` prints in step 6);
//   --causal    the same with the causal mask (future keys −∞ before softmax);
//   --heads N   N heads of attn::MultiHeadAttention(d_in 3, d_out 2N, head_dim 2)
//               initialised from manual_seed(--seed): per head
//               softmax(Q_h·K_hᵀ/√2 [+ causal mask]) from the layer's own W_query/W_key;
//   --text      any sentence: a word of the notes' sentence keeps its notes'
//               embedding, any other word gets 3 numbers drawn by a Generator
//               seeded with a hash of the word (deterministic, no vocabulary);
//   --weights   a [L, L], [H, L, L] or [1, H, L, L] tensor from a safetensors
//               file (named "weights", else the first by name); token labels
//               from --text, else the file's "tokens" metadata, else t0, t1, ...
//   --model     a trained BERT (config.json, model.safetensors, vocab.txt): the
//               text's WordPiece tokens ([CLS] ... [SEP]) through attn::BertModel,
//               the attention weights of layer --layer (0-based, as transformers'
//               output_attentions), head --head (0-based; default every head),
//               from scaled_dot_product_attention's return_weights; --json prints
//               them (tokens, ids, weights [H or 1][L][L]) instead of, or besides, a picture.
//
// Layout (pixels; the PNG and SVG have the same size): each panel is a 360×360
// grid with 110 px for row labels on its left and 80+28 px for column labels
// and the panel title above it; panels sit in a grid of up to 3 columns
// (4 heads: 2×2) 40 px apart; 60 px for the title, a 90 px colour bar on the right.
//   1 panel: 580 × 558     2 panels: 1090 × 558     4 panels: 1090 × 1066
#include <algorithm>
#include <cairo-svg.h>
#include <cairo.h>
#include <cctype>
#include <fontconfig/fontconfig.h>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <attn/atomic_file.hpp>
#include <attn/errors.hpp>
#include <attn/generator.hpp>
#include <attn/multihead_attention.hpp>
#include <attn/safetensors.hpp>
#include <attn/simplified_attention.hpp>
#include <attn/tensor.hpp>

#include "bert_model.hpp"
#include "command.hpp"
#include "draw.hpp"
#include "heatmap.hpp"
#include "print.hpp"
#include "words.hpp"

namespace attn::cli {
namespace {

using draw::text_at;
using draw::viridis;

struct HeatmapOptions {
  std::string out;
  std::string text;
  std::string weights_file;
  bool causal = false;
  int64_t heads = 0;  // 0: simplified self-attention (no trainable weights)
  uint64_t seed = 123;
  std::string model_dir;  // --model: a trained BERT's weights
  int64_t layer = 0;
  int64_t head = -1;      // -1: every head
  bool json = false;
};

// What to draw: one [L, L] matrix per panel, the tokens, a title.
struct Heatmap {
  std::vector<std::string> tokens;
  std::vector<Tensor<float>> panels;       // each [L, L]
  std::vector<std::string> panel_titles;   // "head 1", ...
  std::string title, subtitle;
  bool causal = false;                     // grey out the masked upper triangle
};

// ---- the weights ----------------------------------------------------------------

// The notes' sentence, its embeddings and --text's built-in embedding: words.hpp
// (shared with `attn demo`, so both give the same numbers for the same words).
constexpr int64_t kMaxTokens = 64;
constexpr int64_t kMaxHeads = 16;
const std::vector<std::string>& kWords = kNotesWords;

Tensor<float> embed(const std::vector<std::string>& words) { return embed_words(words); }

// Future keys (j > i) to −∞, so softmax gives them exactly 0.
void mask_future(Tensor<float>& scores) {
  for (int64_t i = 0; i < scores.size(0); ++i)
    for (int64_t j = i + 1; j < scores.size(1); ++j) scores(i, j) = -std::numeric_limits<float>::infinity();
}

Heatmap from_embeddings(const HeatmapOptions& o, const std::vector<std::string>& words) {
  Heatmap h;
  h.tokens = words;
  h.causal = o.causal;
  const Tensor<float> x = embed(words);
  const int64_t L = x.size(0);
  const std::string sentence = o.text.empty() ? "Your journey starts with one step" : o.text;
  if (o.heads == 0) {
    // scores S = X·Xᵀ [L, L] (no weights, no scaling), A = softmax(S) row-wise
    Tensor<float> s = simplified_attention_scores(x);
    if (o.causal) mask_future(s);
    h.panels.push_back(normalize_rows(s, Normalization::Softmax));
    h.panel_titles.push_back(o.causal ? "A = softmax(mask(X X^T))" : "A = softmax(X X^T)");
    h.title = std::string("Attention weights: simplified self-attention") + (o.causal ? ", causal mask" : "");
  } else {
    // Q = X·W_queryᵀ, K = X·W_keyᵀ [L, 2N]; head h uses columns [2h, 2h+2).
    Generator gen(o.seed);
    MultiHeadAttention<float> mha(3, 2 * o.heads, L, 0.0, o.heads, false, gen);
    const Tensor<float> q = mha.W_query.forward(x), k = mha.W_key.forward(x);
    const int64_t hd = mha.head_dim();
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    for (int64_t head = 0; head < o.heads; ++head) {
      Tensor<float> s({L, L});
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j < L; ++j) {
          float dot = 0;
          for (int64_t c = head * hd; c < (head + 1) * hd; ++c) dot += q(i, c) * k(j, c);
          s(i, j) = dot * scale;
        }
      if (o.causal) mask_future(s);
      h.panels.push_back(normalize_rows(s, Normalization::Softmax));
      h.panel_titles.push_back("head " + std::to_string(head + 1));
    }
    h.title = std::string(o.causal ? "Attention weights: causal multi-head attention, " : "Attention weights: multi-head attention, ") +
              std::to_string(o.heads) + (o.heads == 1 ? " head" : " heads");
    h.subtitle = "softmax(Q K^T / sqrt(" + std::to_string(hd) + ")), W_query/W_key from manual_seed(" +
                 std::to_string(o.seed) + "); ";
  }
  h.subtitle += "\"" + sentence + "\"";
  return h;
}

// A bad file is a failure (exit 1, attn::Error), not a usage error.
Heatmap from_file(const HeatmapOptions& o) {
  const auto tensors = load_safetensors<float>(o.weights_file);
  if (tensors.empty()) throw IOError("--weights " + o.weights_file + ": the file holds no tensors");
  const auto it = tensors.count("weights") ? tensors.find("weights") : tensors.begin();
  Tensor<float> w = it->second;
  if (w.dim() == 4 && w.size(0) == 1) w = w.select(0, 0);
  if (w.dim() == 2) w = w.clone().reshape({1, w.size(0), w.size(1)});
  if (w.dim() != 3 || w.size(1) != w.size(2) || w.size(1) < 1 || w.size(0) < 1)
    throw ShapeError("--weights " + o.weights_file + ": tensor '" + it->first + "' has shape " + shape_str(it->second.shape()) +
                     ", expected [L, L], [heads, L, L] or [1, heads, L, L]");
  const int64_t H = w.size(0), L = w.size(1);
  if (H > kMaxHeads || L > kMaxTokens)
    throw ShapeError("--weights " + o.weights_file + ": shape " + shape_str(it->second.shape()) + " has more than " +
                     std::to_string(kMaxHeads) + " heads or " + std::to_string(kMaxTokens) + " tokens");
  Heatmap h;
  for (int64_t head = 0; head < H; ++head) {
    h.panels.push_back(w.select(0, head).clone());
    h.panel_titles.push_back(H == 1 ? it->first : "head " + std::to_string(head + 1));
  }
  if (!o.text.empty()) {
    h.tokens = split_words(o.text);
  } else {
    const auto meta = load_safetensors_metadata(o.weights_file);
    if (meta.count("tokens")) h.tokens = split_words(meta.at("tokens"));
    if (static_cast<int64_t>(h.tokens.size()) != L) {
      h.tokens.clear();
      for (int64_t i = 0; i < L; ++i) h.tokens.push_back("t" + std::to_string(i));
    }
  }
  if (static_cast<int64_t>(h.tokens.size()) != L)
    throw ValueError("--text has " + std::to_string(h.tokens.size()) + " words but the weights are " +
                     std::to_string(L) + "x" + std::to_string(L));
  h.title = "Attention weights from " + o.weights_file.substr(o.weights_file.find_last_of('/') + 1);
  h.subtitle = "tensor '" + it->first + "' " + shape_str(it->second.shape());
  return h;
}

// A trained BERT's attention: layer o.layer, head o.head (or all), for the text's tokens.
// Bad --layer / --head values are usage errors (ValueError here, turned into exit 2 by the caller).
Heatmap from_model(const HeatmapOptions& o, std::vector<int64_t>* ids_out) {
  const LoadedBert bert = load_bert_dir(o.model_dir);
  const BertConfig& c = bert.model.config();
  if (o.layer < 0 || o.layer >= c.num_hidden_layers)
    throw ValueError("--layer " + std::to_string(o.layer) + ": the model has layers 0.." +
                     std::to_string(c.num_hidden_layers - 1));
  if (o.head >= c.num_attention_heads)
    throw ValueError("--head " + std::to_string(o.head) + ": the model has heads 0.." +
                     std::to_string(c.num_attention_heads - 1));
  const std::string text = o.text.empty() ? "Your journey starts with one step" : o.text;
  const auto enc = bert.tokenizer.encode(text, bert.max_length);
  const int64_t L = static_cast<int64_t>(enc.ids.size());
  const Tensor<int64_t> ids({1, L}, enc.ids);
  const auto out = bert.model.forward(ids, {}, /*output_attentions=*/true);
  const Tensor<float> w = out.attentions[static_cast<size_t>(o.layer)].select(0, 0);  // [H, L, L]
  Heatmap h;
  h.tokens = enc.tokens;
  for (int64_t head = 0; head < c.num_attention_heads; ++head) {
    if (o.head >= 0 && head != o.head) continue;
    h.panels.push_back(w.select(0, head).clone());
    h.panel_titles.push_back("layer " + std::to_string(o.layer) + ", head " + std::to_string(head));
  }
  // The directory's name, with its parent's when it is as bland as "model".
  std::filesystem::path dir = std::filesystem::path(o.model_dir).lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();
  std::string name = dir.filename().string();
  if (name == "model" && dir.has_parent_path()) name = dir.parent_path().filename().string() + "/" + name;
  h.title = "Attention weights of " + (name.empty() ? o.model_dir : name) + ", layer " + std::to_string(o.layer) +
            (o.head >= 0 ? ", head " + std::to_string(o.head) : ", all heads");
  h.subtitle = "BERT, " + std::to_string(c.num_hidden_layers) + " layers x " + std::to_string(c.num_attention_heads) +
               " heads; \"" + text + "\"";
  if (ids_out) *ids_out = enc.ids;
  return h;
}

void print_json(const Heatmap& h, const HeatmapOptions& o, const std::vector<int64_t>& ids) {
  nlohmann::ordered_json j;
  j["model"] = o.model_dir;
  j["layer"] = o.layer;
  j["head"] = o.head >= 0 ? nlohmann::ordered_json(o.head) : nlohmann::ordered_json(nullptr);
  j["tokens"] = h.tokens;
  j["ids"] = ids;
  nlohmann::ordered_json panels = nlohmann::ordered_json::array();
  for (const auto& p : h.panels) {
    std::vector<std::vector<float>> rows;
    for (int64_t i = 0; i < p.size(0); ++i) rows.push_back(p.select(0, i).to_vector());
    panels.push_back(rows);
  }
  j["weights"] = panels;  // [heads drawn][L queries][L keys]
  std::cout << dump_json(j, 1) << "\n";
}

// ---- drawing ----------------------------------------------------------------------

constexpr double kGrid = 360, kLabelW = 110, kLabelH = 80, kPanelTitleH = 28, kGap = 40, kTitleH = 60,
                 kBarW = 90, kMargin = 20, kBottom = 30;

int columns_for(size_t panels) {
  if (panels <= 3) return static_cast<int>(panels);
  return static_cast<int>(std::ceil(std::sqrt(static_cast<double>(panels))));
}

struct Size {
  int w, h;
};
Size image_size(size_t panels) {
  const int cols = columns_for(panels);
  const int rows = static_cast<int>((panels + static_cast<size_t>(cols) - 1) / static_cast<size_t>(cols));
  const double pw = kLabelW + kGrid, ph = kPanelTitleH + kLabelH + kGrid;
  return {static_cast<int>(kMargin + cols * pw + (cols - 1) * kGap + kBarW),
          static_cast<int>(kTitleH + rows * ph + (rows - 1) * kGap + kBottom)};
}

std::string shorten(const std::string& s, size_t n = 14) { return s.size() <= n ? s : s.substr(0, n - 1) + "~"; }

void draw_panel(cairo_t* cr, const Heatmap& h, size_t p, double x0, double y0, double vmax) {
  const Tensor<float>& a = h.panels[p];
  const int64_t L = a.size(0);
  const double cell = kGrid / static_cast<double>(L);
  const double gx = x0 + kLabelW, gy = y0 + kPanelTitleH + kLabelH;  // grid's top-left

  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size(cr, 15);
  text_at(cr, h.panel_titles[p], gx + kGrid / 2, y0 + 4, 0.5, 0);

  // Cells: colour by weight / vmax; masked (causal, j > i) cells light grey.
  const bool numbers = L <= 10;
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = 0; j < L; ++j) {
      const double v = a(i, j);
      const bool masked = h.causal && j > i;
      double rgb[3] = {0.93, 0.93, 0.93};
      if (!masked) viridis(v / vmax, rgb);
      cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
      cairo_rectangle(cr, gx + j * cell, gy + i * cell, cell, cell);
      cairo_fill(cr);
      if (numbers && !masked) {
        const double lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
        if (lum > 0.5) cairo_set_source_rgb(cr, 0, 0, 0);
        else cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
        cairo_set_font_size(cr, std::clamp(cell * 0.24, 9.0, 15.0));
        text_at(cr, num(v, 2), gx + (j + 0.5) * cell, gy + (i + 0.5) * cell, 0.5, 0.5);
      }
    }
  // Thin white lines between cells keep the grid readable when neighbours match.
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_set_line_width(cr, L <= 24 ? 1.0 : 0.5);
  for (int64_t i = 1; i < L; ++i) {
    cairo_move_to(cr, gx, gy + i * cell);
    cairo_line_to(cr, gx + kGrid, gy + i * cell);
    cairo_move_to(cr, gx + i * cell, gy);
    cairo_line_to(cr, gx + i * cell, gy + kGrid);
  }
  cairo_stroke(cr);

  // Token labels: queries down the left, keys along the top (horizontal if
  // every label fits its column, else vertical).
  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, std::clamp(cell * 0.55, 7.0, 14.0));
  bool fits = true;
  for (const auto& t : h.tokens) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, shorten(t).c_str(), &e);
    fits = fits && e.x_advance < cell - 4;
  }
  for (int64_t i = 0; i < L; ++i) {
    const std::string t = shorten(h.tokens[static_cast<size_t>(i)]);
    text_at(cr, t, gx - 6, gy + (i + 0.5) * cell, 1.0, 0.5);
    cairo_text_extents_t e;
    cairo_text_extents(cr, t.c_str(), &e);
    if (fits) {  // on a common baseline, so "journey" and "Your" line up
      cairo_move_to(cr, gx + (i + 0.5) * cell - e.x_bearing - e.width / 2, gy - 9);
      cairo_show_text(cr, t.c_str());
    } else {  // vertical, reading upwards, left edges on a common line
      cairo_save(cr);
      cairo_translate(cr, gx + (i + 0.5) * cell, gy - 6);
      cairo_rotate(cr, -M_PI / 2);
      text_at(cr, t, 0, 0, 0.0, 0.5);
      cairo_restore(cr);
    }
  }
  // Axis names in the free corner above the row labels.
  cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_ITALIC, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, 12);
  cairo_text_extents_t e;
  cairo_text_extents(cr, "keys \u2192", &e);
  cairo_move_to(cr, gx - 10 - e.x_advance, gy - 9);
  cairo_show_text(cr, "keys \u2192");
  cairo_text_extents(cr, "queries \u2193", &e);
  cairo_move_to(cr, gx - 10 - e.x_advance, gy - 27);
  cairo_show_text(cr, "queries \u2193");
}

void draw_colour_bar(cairo_t* cr, double x0, double y0, double vmax, bool causal) {
  const double bw = 18, bh = kGrid;
  cairo_pattern_t* grad = cairo_pattern_create_linear(0, y0 + bh, 0, y0);
  for (int s = 0; s <= 32; ++s) {
    double rgb[3];
    viridis(s / 32.0, rgb);
    cairo_pattern_add_color_stop_rgb(grad, s / 32.0, rgb[0], rgb[1], rgb[2]);
  }
  cairo_rectangle(cr, x0, y0, bw, bh);
  cairo_set_source(cr, grad);
  cairo_fill(cr);
  cairo_pattern_destroy(grad);
  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, 11);
  cairo_set_line_width(cr, 1);
  for (int t = 0; t <= 4; ++t) {
    const double y = y0 + bh - bh * t / 4.0;
    cairo_move_to(cr, x0 + bw, y);
    cairo_line_to(cr, x0 + bw + 4, y);
    cairo_stroke(cr);
    text_at(cr, num(vmax * t / 4.0, 2), x0 + bw + 7, y, 0, 0.5);
  }
  text_at(cr, "weight", x0, y0 - 8, 0, 1.0);
  if (causal) {
    cairo_set_source_rgb(cr, 0.93, 0.93, 0.93);
    cairo_rectangle(cr, x0, y0 + bh + 8, bw, 12);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, "masked", x0 + bw + 5, y0 + bh + 14, 0, 0.5);
  }
}

void draw(cairo_t* cr, const Heatmap& h, Size size) {
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  // One colour scale for all panels, so heads compare at a glance; its top is
  // the largest weight (rounded up to 0.05), not 1, or small weights all look alike.
  double vmax = 0;
  for (const auto& p : h.panels)
    for (int64_t i = 0; i < p.numel(); ++i)
      if (std::isfinite(p.flat(i))) vmax = std::max(vmax, static_cast<double>(p.flat(i)));
  vmax = vmax > 0 ? std::ceil(vmax * 20.0 - 1e-9) / 20.0 : 1.0;

  cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size(cr, 17);
  text_at(cr, h.title, kMargin, 12, 0, 0);
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, 12);
  cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
  text_at(cr, h.subtitle, kMargin, 36, 0, 0);

  const int cols = columns_for(h.panels.size());
  for (size_t p = 0; p < h.panels.size(); ++p) {
    const double x0 = kMargin + static_cast<double>(p % static_cast<size_t>(cols)) * (kLabelW + kGrid + kGap);
    const double y0 = kTitleH + static_cast<double>(p / static_cast<size_t>(cols)) * (kPanelTitleH + kLabelH + kGrid + kGap);
    draw_panel(cr, h, p, x0, y0, vmax);
  }
  draw_colour_bar(cr, size.w - kBarW + 12, kTitleH + kPanelTitleH + kLabelH, vmax, h.causal);
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

// cairo's SVG draws text as glyph outlines, which no reader or search finds;
// a <title> and <desc> (SVG's accessibility elements) carry the words as text.
void add_svg_description(std::string& svg, const std::string& path, const Heatmap& h) {
  const size_t open = svg.find("<svg");
  const size_t end = open == std::string::npos ? std::string::npos : svg.find('>', open);
  if (end == std::string::npos) throw IOError("heatmap: cairo wrote no <svg> element for " + path);
  std::string desc = h.subtitle + ". Rows are queries, columns keys. Tokens:";
  for (const auto& t : h.tokens) desc += " " + t;
  svg.insert(end + 1, "\n<title>" + xml_escape(h.title) + "</title>\n<desc>" + xml_escape(desc) + "</desc>");
}

// The picture is drawn in memory (PNG: a surface; SVG: a stream into a
// string) and written through attn::AtomicFileWriter, so a failed write
// keeps any file already at `path`.
void render(const Heatmap& h, const std::string& path, bool svg) {
  const Size size = image_size(h.panels.size());
  std::string svg_text;
  cairo_surface_t* surface =
      svg ? cairo_svg_surface_create_for_stream(
                [](void* closure, const unsigned char* data, unsigned int n) -> cairo_status_t {
                  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), n);
                  return CAIRO_STATUS_SUCCESS;
                },
                &svg_text, size.w, size.h)
          : cairo_image_surface_create(CAIRO_FORMAT_ARGB32, size.w, size.h);
  cairo_t* cr = cairo_create(surface);
  draw(cr, h, size);
  cairo_destroy(cr);
  std::exception_ptr failed;
  try {
    if (svg) {
      cairo_surface_finish(surface);  // the SVG is streamed out here
      const cairo_status_t status = cairo_surface_status(surface);
      if (status != CAIRO_STATUS_SUCCESS)
        throw IOError("heatmap: cannot write " + path + ": " + cairo_status_to_string(status));
      add_svg_description(svg_text, path, h);
      try {
        write_file_atomically(path, svg_text);
      } catch (const Error& e) {
        throw IOError(std::string("heatmap: ") + e.what());
      }
    } else {
      draw::write_png(surface, path, "heatmap");
    }
  } catch (...) {
    failed = std::current_exception();
  }
  cairo_surface_destroy(surface);
  // Free cairo's font caches (and fontconfig's, which it holds): a one-shot
  // command does not need them, and LeakSanitizer would report them.
  cairo_debug_reset_static_data();
  FcFini();
  if (failed) std::rethrow_exception(failed);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && lower_case(s.substr(s.size() - suffix.size())) == suffix;
}

int usage(const std::string& what) {
  std::cerr << "attn heatmap: error: " << what << "\nusage: attn heatmap --out FILE.png|FILE.svg [options]; "
            << "see `attn heatmap --help`\n";
  return kExitUsage;
}

Run setup_heatmap(CLI::App& sub) {
  auto opt = std::make_shared<HeatmapOptions>();
  sub.add_option("--out", opt->out, "the picture to write: FILE.png or FILE.svg (required unless --model ... --json)");
  sub.add_option("--text", opt->text, "the sentence (default: \"Your journey starts with one step\"); one token per word");
  sub.add_flag("--causal", opt->causal, "mask future keys (j > i) before the softmax");
  auto* heads = sub.add_option("--heads", opt->heads,
                               "draw N heads of a seeded MultiHeadAttention (head_dim 2) instead of simplified attention")
                    ->check(CLI::Range(int64_t{1}, kMaxHeads));
  sub.add_option("--seed", opt->seed, "manual_seed for --heads' weights")->capture_default_str();
  sub.add_option("--weights", opt->weights_file,
                 "a safetensors file with a [L, L], [heads, L, L] or [1, heads, L, L] tensor (\"weights\" or the first)")
      ->excludes(heads)
      ->check(CLI::ExistingFile);
  auto* model = sub.add_option("--model", opt->model_dir,
                               "a trained BERT directory (config.json, model.safetensors, vocab.txt): draw its attention")
                    ->excludes(heads)
                    ->excludes("--weights");
  sub.add_option("--layer", opt->layer, "with --model: the layer, 0-based")->needs(model)->capture_default_str();
  sub.add_option("--head", opt->head, "with --model: one head, 0-based (default: every head)")->needs(model);
  sub.add_flag("--json", opt->json, "with --model: print the tokens, ids and weights as JSON")->needs(model);
  return [opt]() {
    if (opt->out.empty() && !opt->json) return usage("--out FILE.png|FILE.svg is required");
    const bool svg = ends_with(opt->out, ".svg");
    if (!opt->out.empty() && !svg && !ends_with(opt->out, ".png"))
      return usage("--out " + opt->out + ": unknown picture type, expected a name ending in .png or .svg");
    if (!opt->weights_file.empty() && opt->causal)
      return usage("--causal applies to computed weights; --weights draws the file's weights as they are");
    if (!opt->model_dir.empty()) {
      if (opt->causal) return usage("--causal applies to computed toy weights; BERT's attention is bidirectional");
      if (opt->layer < 0) return usage("--layer " + std::to_string(opt->layer) + ": expected >= 0");
      if (opt->head < -1) return usage("--head " + std::to_string(opt->head) + ": expected >= 0");
      std::vector<int64_t> ids;
      Heatmap h;
      try {
        h = from_model(*opt, &ids);
      } catch (const ValueError& e) {
        const std::string what = e.what();
        if (what.rfind("--", 0) == 0) return usage(what);  // --layer / --head out of the model's range
        throw;
      }
      if (opt->json) print_json(h, *opt, ids);
      if (opt->out.empty()) return kExitOk;
      if (static_cast<int64_t>(h.tokens.size()) > kMaxTokens)
        return usage("the text has " + std::to_string(h.tokens.size()) + " tokens; at most " +
                     std::to_string(kMaxTokens) + " fit a readable heatmap (--json prints any length)");
      render(h, opt->out, svg);
      const Size s = image_size(h.panels.size());
      (opt->json ? std::cerr : std::cout) << "wrote " << opt->out << " (" << s.w << "x" << s.h << ", " << h.panels.size()
                                          << (h.panels.size() == 1 ? " panel" : " panels") << ", " << h.tokens.size()
                                          << " tokens): " << h.title << "\n";
      return kExitOk;
    }
    const std::vector<std::string> words = opt->text.empty() ? kWords : split_words(opt->text);
    if (words.empty()) return usage("--text has no words");
    if (static_cast<int64_t>(words.size()) > kMaxTokens)
      return usage("--text has " + std::to_string(words.size()) + " words; at most " + std::to_string(kMaxTokens) +
                   " fit a readable heatmap");
    const Heatmap h = opt->weights_file.empty() ? from_embeddings(*opt, words) : from_file(*opt);
    render(h, opt->out, svg);
    const Size s = image_size(h.panels.size());
    std::cout << "wrote " << opt->out << " (" << s.w << "x" << s.h << ", " << h.panels.size()
              << (h.panels.size() == 1 ? " panel" : " panels") << ", " << h.tokens.size() << " tokens): " << h.title
              << "\n";
    return kExitOk;
  };
}

const Register kHeatmap{{"heatmap", "Draw attention weights as a heatmap (PNG or SVG), one panel per head", setup_heatmap}};

}  // namespace

void draw_attention_heatmap(const std::vector<std::string>& tokens, const std::vector<Tensor<float>>& panels,
                            const std::vector<std::string>& panel_titles, const std::string& title,
                            const std::string& subtitle, bool causal, const std::string& path) {
  Heatmap h;
  h.tokens = tokens;
  h.panels = panels;
  h.panel_titles = panel_titles;
  h.title = title;
  h.subtitle = subtitle;
  h.causal = causal;
  render(h, path, ends_with(path, ".svg"));
}

}  // namespace attn::cli

// tools/attn/why.cpp — `attn why`: why attention exists, measured.
//
//   attn why [--out-dir DIR] [--quick] [--seed S] [--steps N] [--json]
//
// Notes 000 and 002 tell the story: an RNN encoder–decoder squeezes the whole
// input into its final hidden state, so it loses the input as sentences get
// longer; Bahdanau, Cho & Bengio (2014) let the decoder look back at every
// encoder state through attention weights and the loss went away. Their paper
// shows it as a curve (quality against sentence length). This command makes
// that curve here, with this library:
//
//  1. The task: "translate" a sequence of source words a..l word by word
//     through a fixed substitution (a → some target word, ...), in order. Every
//     output word depends on exactly one input word, at the same position:
//     the first output needs the first input, which the bottleneck model must
//     carry through the whole sequence. 1 in 5 sequences (by a hash of its
//     tokens) is held out: never trained on, used for the evaluation.
//  2. Two models, attn::Seq2Seq with the same GRU encoder and decoder: the
//     bottleneck one sees only the encoder's final state; the other adds
//     attn::AdditiveAttention (Bahdanau's score) over every encoder state, with
//     a padding mask. Both trained with teacher forcing, cross-entropy and
//     Adam, on the same batches, each in its own thread (the results do not
//     depend on the scheduling: nothing is shared but the read-only task).
//  3. Greedy decoding of held-out sequences of growing length: per length the
//     exact-sequence and per-token accuracy of both models (table, --json), a
//     line chart of them (why_accuracy.png) and the attention weights of the
//     attention model on one long held-out example (why_alignment.png).
// The decoder runs as many steps as the target has (no end token), so
// per-token accuracy compares position by position.
//
// Pictures (pixels, fixed whatever the lengths): why_accuracy.png 880 × 540,
// why_alignment.png 760 × 720.
#include <atomic>
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <attn/errors.hpp>
#include <attn/generator.hpp>
#include <attn/loss.hpp>
#include <attn/optim.hpp>
#include <attn/seq2seq.hpp>
#include <attn/tensor.hpp>

#include "command.hpp"
#include "draw.hpp"
#include "print.hpp"

namespace attn::cli {
namespace {

using draw::text_at;
using draw::font;
using draw::viridis;

// ---- the experiment's sizes -----------------------------------------------------------

struct Setup {
  int64_t vocab = 12;          // source words a..l; target words are 12 others, + BOS
  int64_t embed_dim = 16;
  int64_t hidden_dim = 64;     // the bottleneck: everything must fit in these numbers
  int64_t attention_dim = 32;
  int64_t batch = 32;
  int64_t steps = 1500;
  double lr = 3e-3;
  double clip = 5.0;           // gradient clipping by global norm (RNNs need it early on)
  int64_t min_len = 3, max_len = 24;  // training lengths, uniform
  std::vector<int64_t> eval_lengths = {4, 8, 12, 16, 20, 24};
  int64_t eval_per_length = 200;
};

Setup quick_setup() {
  Setup s;
  s.hidden_dim = 32;
  s.attention_dim = 16;
  s.batch = 16;
  s.steps = 300;
  s.lr = 1e-2;
  s.min_len = 2;
  s.max_len = 12;
  s.eval_lengths = {4, 8, 12};
  s.eval_per_length = 60;
  return s;
}

// --steps' limit, as `attn train` and `attn generate` have it (each step is a
// batch through two recurrent models: a million is hours already).
constexpr int64_t kMaxSteps = 1'000'000;

struct WhyOptions {
  std::string out_dir = ".";
  bool quick = false;
  uint64_t seed = 1;
  int64_t steps = 0;  // 0: the setup's
  bool json = false;
};

// ---- the task ---------------------------------------------------------------------------

// Source word w (0..vocab-1) translates to target word perm[w]; BOS = vocab.
struct Task {
  int64_t vocab;
  std::vector<int64_t> perm;

  Task(int64_t v, uint64_t seed) : vocab(v), perm(static_cast<size_t>(v)) {
    for (int64_t i = 0; i < v; ++i) perm[static_cast<size_t>(i)] = i;
    Generator gen(seed);
    for (int64_t i = v - 1; i > 0; --i)  // Fisher–Yates
      std::swap(perm[static_cast<size_t>(i)], perm[gen.random() % static_cast<uint64_t>(i + 1)]);
  }
  int64_t bos() const { return vocab; }

  // FNV-1a of the tokens: 1 sequence in 5 belongs to the held-out set.
  static bool held_out(const std::vector<int64_t>& s) {
    uint64_t h = 1469598103934665603ULL;
    for (int64_t t : s) h = (h ^ static_cast<uint64_t>(t + 1)) * 1099511628211ULL;
    return h % 5 == 0;
  }
  std::vector<int64_t> sample(Generator& gen, int64_t len, bool test) const {
    std::vector<int64_t> s(static_cast<size_t>(len));
    do {
      for (auto& t : s) t = static_cast<int64_t>(gen.random() % static_cast<uint64_t>(vocab));
    } while (held_out(s) != test);
    return s;
  }
  std::string source_word(int64_t t) const { return std::string(1, static_cast<char>('a' + t)); }
  std::string target_word(int64_t t) const { return t == vocab ? "<s>" : std::string(1, static_cast<char>('A' + t)); }
};

// A padded batch: src [B, Ls], tgt_in [B, Ls] = BOS + target shifted right,
// target [B·Ls] with −100 (ignored) at padding.
struct Batch {
  Tensor<int64_t> src, tgt_in, target;
  std::vector<int64_t> lengths;
};

Batch make_batch(const Task& task, const std::vector<std::vector<int64_t>>& seqs) {
  const int64_t B = static_cast<int64_t>(seqs.size());
  int64_t L = 0;
  for (const auto& s : seqs) L = std::max<int64_t>(L, static_cast<int64_t>(s.size()));
  Batch b{Tensor<int64_t>({B, L}), Tensor<int64_t>({B, L}), Tensor<int64_t>::full({B * L}, -100), {}};
  for (int64_t i = 0; i < B; ++i) {
    const auto& s = seqs[static_cast<size_t>(i)];
    b.lengths.push_back(static_cast<int64_t>(s.size()));
    for (int64_t j = 0; j < static_cast<int64_t>(s.size()); ++j) {
      const int64_t y = task.perm[static_cast<size_t>(s[static_cast<size_t>(j)])];
      b.src(i, j) = s[static_cast<size_t>(j)];
      b.target(i * L + j) = y;
      if (j + 1 < L) b.tgt_in(i, j + 1) = y;
    }
    b.tgt_in(i, 0) = task.bos();
  }
  return b;
}

// ---- training ------------------------------------------------------------------------------

struct Progress {
  std::atomic<int64_t> step{0};
  std::atomic<float> loss{0};
};

// Scales every gradient by clip / ‖g‖ when the global norm ‖g‖ exceeds clip.
void clip_grad_norm(Module<float>& m, double clip) {
  double sq = 0;
  for (auto* p : m.parameters())
    for (int64_t i = 0; i < p->grad.numel(); ++i) sq += static_cast<double>(p->grad.flat(i)) * p->grad.flat(i);
  const double norm = std::sqrt(sq);
  if (norm <= clip) return;
  const float s = static_cast<float>(clip / norm);
  for (auto* p : m.parameters())
    for (int64_t i = 0; i < p->grad.numel(); ++i) p->grad.flat(i) *= s;
}

// Both models draw the same batches: the data generator is seeded alike.
void train(Seq2Seq<float>& model, const Setup& s, const Task& task, uint64_t data_seed, Progress& progress) {
  Adam<float> opt(model.parameters(), {.lr = s.lr});
  Generator data(data_seed);
  CrossEntropyLoss<float> ce;
  for (int64_t step = 0; step < s.steps; ++step) {
    std::vector<std::vector<int64_t>> seqs;
    for (int64_t i = 0; i < s.batch; ++i) {
      const int64_t len = s.min_len + static_cast<int64_t>(data.random() % static_cast<uint64_t>(s.max_len - s.min_len + 1));
      seqs.push_back(task.sample(data, len, /*test=*/false));
    }
    const Batch b = make_batch(task, seqs);
    opt.zero_grad();
    const Tensor<float> logits = model.forward(b.src, b.lengths, b.tgt_in);  // [B, L, V]
    const float loss = ce.forward(logits.reshape({-1, logits.size(2)}), b.target);
    model.backward(ce.backward().reshape(logits.shape()));
    clip_grad_norm(model, s.clip);
    opt.step();
    progress.loss = loss;
    progress.step = step + 1;
  }
}

// One line on stderr: redrawn in place on a terminal, every 10% otherwise (logs).
void show_progress(const Progress& plain, const Progress& with_attn, int64_t steps, int64_t batch, double seconds,
                   bool final_line) {
  static int last_decile = -1;
  const bool tty = isatty(STDERR_FILENO);
  const int64_t a = plain.step, b = with_attn.step;
  const int decile = static_cast<int>(10 * std::min(a, b) / std::max<int64_t>(steps, 1));
  if (!tty && !final_line && decile == last_decile) return;
  last_decile = decile;
  auto bar = [&](int64_t done) {
    const int width = 20, full = static_cast<int>(width * done / std::max<int64_t>(steps, 1));
    return std::string(static_cast<size_t>(full), '#') + std::string(static_cast<size_t>(width - full), '.');
  };
  const double seq_per_s = seconds > 0 ? static_cast<double>((a + b) * batch) / seconds : 0.0;
  std::ostringstream line;
  line << "train  bottleneck [" << bar(a) << "] " << a << "/" << steps << " loss " << num(plain.loss, 3)
       << "  |  attention [" << bar(b) << "] " << b << "/" << steps << " loss " << num(with_attn.loss, 3) << "  |  "
       << num(seq_per_s, 0) << " seq/s";
  std::cerr << (tty ? "\r" : "") << line.str() << (tty && !final_line ? "" : "\n") << std::flush;
}

// ---- evaluation ---------------------------------------------------------------------------

struct LengthResult {
  int64_t length;
  double token_acc[2], seq_acc[2];  // [0] bottleneck, [1] attention
};

struct Example {
  std::vector<int64_t> src, want, got;
  Tensor<float> weights;  // [L_out, L_in]
};

std::vector<LengthResult> evaluate(Seq2Seq<float>* models[2], const Setup& s, const Task& task, uint64_t seed,
                                   Example& example) {
  std::vector<LengthResult> results;
  Generator gen(seed);
  for (int64_t L : s.eval_lengths) {
    std::vector<std::vector<int64_t>> seqs;
    for (int64_t i = 0; i < s.eval_per_length; ++i) seqs.push_back(task.sample(gen, L, /*test=*/true));
    const Batch b = make_batch(task, seqs);
    LengthResult r{L, {0, 0}, {0, 0}};
    for (int m = 0; m < 2; ++m) {
      Tensor<float> w;
      const Tensor<int64_t> got = models[m]->greedy_decode(b.src, b.lengths, task.bos(), L, m == 1 ? &w : nullptr);
      int64_t tokens_right = 0, seqs_right = 0;
      for (int64_t i = 0; i < s.eval_per_length; ++i) {
        bool all = true;
        for (int64_t j = 0; j < L; ++j) {
          const bool ok = got(i, j) == b.target(i * L + j);
          tokens_right += ok;
          all = all && ok;
        }
        seqs_right += all;
      }
      r.token_acc[m] = static_cast<double>(tokens_right) / static_cast<double>(s.eval_per_length * L);
      r.seq_acc[m] = static_cast<double>(seqs_right) / static_cast<double>(s.eval_per_length);
      if (m == 1 && L == s.eval_lengths.back()) {  // the first held-out sequence of the longest length
        example.src = seqs[0];
        for (int64_t j = 0; j < L; ++j) {
          example.want.push_back(b.target(j));
          example.got.push_back(got(0, j));
        }
        example.weights = w.select(0, 0).clone();
      }
    }
    results.push_back(r);
  }
  return results;
}

// ---- pictures ------------------------------------------------------------------------------

constexpr int kAccW = 880, kAccH = 540, kAlignW = 760, kAlignH = 720;

// Colour-blind-safe pair (Okabe–Ito orange and blue).
const double kPlainRGB[3] = {0.90, 0.38, 0.0}, kAttnRGB[3] = {0.0, 0.45, 0.70};

// Through draw::write_png (a temporary file renamed over `path`: a failed
// write keeps the old picture); the surface is destroyed either way.
void write_png(cairo_surface_t* surface, const std::string& path) {
  try {
    draw::write_png(surface, path, "why");
  } catch (...) {
    cairo_surface_destroy(surface);
    cairo_debug_reset_static_data();  // the command ends here: free cairo's and fontconfig's caches (LeakSanitizer)
    FcFini();
    throw;
  }
  cairo_surface_destroy(surface);
}

// Accuracy (%) against input length: solid = exact sequence, dashed = per token.
void draw_accuracy(const std::string& path, const std::vector<LengthResult>& res, const Setup& s) {
  cairo_surface_t* surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, kAccW, kAccH);
  cairo_t* cr = cairo_create(surface);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  const double x0 = 80, x1 = kAccW - 230, y0 = 80, y1 = kAccH - 70;  // plot area
  const double lmin = static_cast<double>(s.eval_lengths.front()), lmax = static_cast<double>(s.eval_lengths.back());
  auto X = [&](double len) { return x0 + (len - lmin) / std::max(lmax - lmin, 1.0) * (x1 - x0); };
  // a little room above 100% and below 0%, so a curve at the limit is not hidden by the frame
  auto Y = [&](double acc) { return y1 - (acc + 0.03) / 1.06 * (y1 - y0); };

  cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
  font(cr, 18, true);
  text_at(cr, "The context bottleneck: accuracy against input length", 20, 14, 0, 0);
  font(cr, 12);
  cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
  std::ostringstream sub;
  sub << "GRU encoder-decoder, hidden " << s.hidden_dim << ", trained " << s.steps << " steps on lengths " << s.min_len
      << "-" << s.max_len << "; " << s.eval_per_length << " held-out sequences per length, greedy decoding";
  text_at(cr, sub.str(), 20, 42, 0, 0);

  // grid and axes
  font(cr, 12);
  cairo_set_line_width(cr, 1);
  for (int p = 0; p <= 100; p += 20) {
    cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
    cairo_move_to(cr, x0, Y(p / 100.0));
    cairo_line_to(cr, x1, Y(p / 100.0));
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    text_at(cr, std::to_string(p) + "%", x0 - 8, Y(p / 100.0), 1.0, 0.5);
  }
  for (int64_t L : s.eval_lengths) {
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    text_at(cr, std::to_string(L), X(static_cast<double>(L)), y1 + 8, 0.5, 0);
  }
  cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
  cairo_rectangle(cr, x0, y0, x1 - x0, y1 - y0);
  cairo_stroke(cr);
  font(cr, 13);
  text_at(cr, "input length (tokens)", (x0 + x1) / 2, y1 + 30, 0.5, 0);
  cairo_save(cr);
  cairo_translate(cr, 22, (y0 + y1) / 2);
  cairo_rotate(cr, -M_PI / 2);
  text_at(cr, "accuracy on held-out sequences", 0, 0, 0.5, 0.5);
  cairo_restore(cr);

  // the four curves
  for (int m = 0; m < 2; ++m)
    for (int kind = 0; kind < 2; ++kind) {  // 0 exact sequence (solid), 1 per token (dashed)
      const double* rgb = m == 0 ? kPlainRGB : kAttnRGB;
      cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
      cairo_set_line_width(cr, 2.5);
      const double dash[] = {7, 5};
      cairo_set_dash(cr, dash, kind == 1 ? 2 : 0, 0);
      for (size_t i = 0; i < res.size(); ++i) {
        const double acc = kind == 0 ? res[i].seq_acc[m] : res[i].token_acc[m];
        const double x = X(static_cast<double>(res[i].length)), y = Y(acc);
        if (i == 0) cairo_move_to(cr, x, y);
        else cairo_line_to(cr, x, y);
      }
      cairo_stroke(cr);
      cairo_set_dash(cr, nullptr, 0, 0);
      for (const auto& r : res) {  // markers: filled = exact sequence, open = per token
        const double acc = kind == 0 ? r.seq_acc[m] : r.token_acc[m];
        cairo_arc(cr, X(static_cast<double>(r.length)), Y(acc), 4.5, 0, 2 * M_PI);
        if (kind == 0) cairo_fill(cr);
        else {
          cairo_set_source_rgb(cr, 1, 1, 1);
          cairo_fill_preserve(cr);
          cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
          cairo_set_line_width(cr, 2);
          cairo_stroke(cr);
        }
      }
    }

  // legend, right of the plot
  const char* names[2] = {"bottleneck (final state only)", "attention (all encoder states)"};
  const char* kinds[2] = {"exact sequence", "per token"};
  double ly = y0 + 10;
  for (int m = 0; m < 2; ++m) {
    const double* rgb = m == 0 ? kPlainRGB : kAttnRGB;
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    font(cr, 12, true);
    std::string name = names[m];
    const size_t cut = name.find(' ');
    text_at(cr, name.substr(0, cut), x1 + 20, ly, 0, 0);
    font(cr, 11, false, true);
    text_at(cr, name.substr(cut + 1), x1 + 20, ly + 17, 0, 0);
    ly += 40;
    for (int kind = 0; kind < 2; ++kind) {
      cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
      cairo_set_line_width(cr, 2.5);
      const double dash[] = {7, 5};
      cairo_set_dash(cr, dash, kind == 1 ? 2 : 0, 0);
      cairo_move_to(cr, x1 + 20, ly + 6);
      cairo_line_to(cr, x1 + 60, ly + 6);
      cairo_stroke(cr);
      cairo_set_dash(cr, nullptr, 0, 0);
      cairo_arc(cr, x1 + 40, ly + 6, 4.5, 0, 2 * M_PI);
      if (kind == 0) cairo_fill(cr);
      else {
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_fill_preserve(cr);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_set_line_width(cr, 2);
        cairo_stroke(cr);
      }
      cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
      font(cr, 12);
      text_at(cr, kinds[kind], x1 + 70, ly + 6, 0, 0.5);
      ly += 24;
    }
    ly += 22;
  }
  // the numbers at the longest length
  const LengthResult& last = res.back();
  cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
  font(cr, 11);
  text_at(cr, "at length " + std::to_string(last.length) + ":", x1 + 20, ly, 0, 0);
  text_at(cr, "bottleneck " + num(100 * last.seq_acc[0], 0) + "% / " + num(100 * last.token_acc[0], 0) + "%", x1 + 20,
          ly + 18, 0, 0);
  text_at(cr, "attention  " + num(100 * last.seq_acc[1], 0) + "% / " + num(100 * last.token_acc[1], 0) + "%", x1 + 20,
          ly + 36, 0, 0);
  text_at(cr, "(exact sequence / per token)", x1 + 20, ly + 54, 0, 0);
  cairo_destroy(cr);
  write_png(surface, path);
}

// The attention weights of one long held-out example: inputs across the top,
// the decoder's outputs down the left (a wrong output in red).
void draw_alignment(const std::string& path, const Example& ex, const Task& task) {
  cairo_surface_t* surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, kAlignW, kAlignH);
  cairo_t* cr = cairo_create(surface);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  const int64_t Lo = ex.weights.size(0), Li = ex.weights.size(1);
  const double grid = 520, gx = 110, gy = 150;
  const double cw = grid / static_cast<double>(Li), ch = grid / static_cast<double>(Lo);

  cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
  font(cr, 18, true);
  text_at(cr, "Dynamic focus: where the attention decoder looks", 20, 14, 0, 0);
  font(cr, 12);
  cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
  int64_t right = 0;
  for (size_t i = 0; i < ex.got.size(); ++i) right += ex.got[i] == ex.want[i];
  text_at(cr, "attention weights (Bahdanau's additive score) on a held-out input of " + std::to_string(Li) +
                  " tokens; " + std::to_string(right) + "/" + std::to_string(Lo) + " outputs right",
          20, 42, 0, 0);
  std::string key = "each row is one output step and sums to 1; the substitution T:";
  for (int64_t w = 0; w < task.vocab; ++w)
    key += " " + task.source_word(w) + "\u2192" + task.target_word(task.perm[static_cast<size_t>(w)]);
  text_at(cr, key, 20, 60, 0, 0);

  for (int64_t i = 0; i < Lo; ++i)
    for (int64_t j = 0; j < Li; ++j) {
      double rgb[3];
      viridis(ex.weights(i, j), rgb);
      cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
      cairo_rectangle(cr, gx + j * cw, gy + i * ch, cw, ch);
      cairo_fill(cr);
    }
  // token labels
  font(cr, std::clamp(std::min(cw, ch) * 0.6, 7.0, 14.0));
  for (int64_t j = 0; j < Li; ++j) {
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, task.source_word(ex.src[static_cast<size_t>(j)]), gx + (j + 0.5) * cw, gy - 6, 0.5, 1.0);
  }
  for (int64_t i = 0; i < Lo; ++i) {
    const bool ok = ex.got[static_cast<size_t>(i)] == ex.want[static_cast<size_t>(i)];
    if (ok) cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    else cairo_set_source_rgb(cr, 0.85, 0.1, 0.1);
    std::string label = task.target_word(ex.got[static_cast<size_t>(i)]);
    if (!ok) label += " (want " + task.target_word(ex.want[static_cast<size_t>(i)]) + ")";
    text_at(cr, label, gx - 8, gy + (i + 0.5) * ch, 1.0, 0.5);
  }
  // axis names in the free corner above the output labels (as `attn heatmap` does)
  cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
  font(cr, 12, false, true);
  text_at(cr, "input \u2192", gx - 8, gy - 24, 1.0, 1.0);
  text_at(cr, "output \u2193", gx - 8, gy - 6, 1.0, 1.0);

  // colour bar 0..1
  const double bx = gx + grid + 30, bw = 18;
  cairo_pattern_t* grad = cairo_pattern_create_linear(0, gy + grid, 0, gy);
  for (int k = 0; k <= 32; ++k) {
    double rgb[3];
    viridis(k / 32.0, rgb);
    cairo_pattern_add_color_stop_rgb(grad, k / 32.0, rgb[0], rgb[1], rgb[2]);
  }
  cairo_rectangle(cr, bx, gy, bw, grid);
  cairo_set_source(cr, grad);
  cairo_fill(cr);
  cairo_pattern_destroy(grad);
  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  font(cr, 11);
  cairo_set_line_width(cr, 1);
  for (int t = 0; t <= 4; ++t) {
    const double y = gy + grid - grid * t / 4.0;
    cairo_move_to(cr, bx + bw, y);
    cairo_line_to(cr, bx + bw + 4, y);
    cairo_stroke(cr);
    text_at(cr, num(t / 4.0, 2), bx + bw + 7, y, 0, 0.5);
  }
  text_at(cr, "weight", bx, gy - 8, 0, 1.0);
  cairo_destroy(cr);
  write_png(surface, path);
}

// ---- the command ----------------------------------------------------------------------------

int usage(const std::string& what) {
  std::cerr << "attn why: error: " << what << "\nusage: attn why [--out-dir DIR] [--quick] [--seed S] [--steps N] [--json]\n";
  return kExitUsage;
}

int run_why(const WhyOptions& o) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec || !fs::is_directory(o.out_dir)) return usage("--out-dir " + o.out_dir + ": cannot create the directory");
  Setup s = o.quick ? quick_setup() : Setup{};
  if (o.steps > 0) s.steps = o.steps;
  const Task task(s.vocab, o.seed);

  // the two models, from the same seed
  Seq2SeqConfig cfg{.src_vocab = s.vocab, .tgt_vocab = s.vocab + 1, .embed_dim = s.embed_dim,
                    .hidden_dim = s.hidden_dim, .attention_dim = s.attention_dim, .attention = false};
  Generator g0(o.seed), g1(o.seed);
  Seq2Seq<float> plain(cfg, g0);
  cfg.attention = true;
  Seq2Seq<float> with_attn(cfg, g1);

  std::cerr << "attn why: training both models (" << s.steps << " steps of " << s.batch << " sequences, lengths "
            << s.min_len << "-" << s.max_len << ", seed " << o.seed << ")\n";
  Progress p0, p1;
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  const uint64_t data_seed = o.seed * 1000003ULL + 17;
  std::exception_ptr err0, err1;
  std::thread t0([&] { try { train(plain, s, task, data_seed, p0); } catch (...) { err0 = std::current_exception(); p0.step = s.steps; } });
  std::thread t1;
  try {
    t1 = std::thread([&] { try { train(with_attn, s, task, data_seed, p1); } catch (...) { err1 = std::current_exception(); p1.step = s.steps; } });
  } catch (const std::system_error&) {
    // The system refused the second thread: train it here, after the first
    // (a joinable t0 must not be destroyed, which would end the process).
    t0.join();
    if (err0) std::rethrow_exception(err0);
    train(with_attn, s, task, data_seed, p1);
  }
  while (p0.step < s.steps || p1.step < s.steps) {
    show_progress(p0, p1, s.steps, s.batch, seconds(), false);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (t0.joinable()) t0.join();
  if (t1.joinable()) t1.join();
  if (err0) std::rethrow_exception(err0);
  if (err1) std::rethrow_exception(err1);
  const double train_s = seconds();
  show_progress(p0, p1, s.steps, s.batch, train_s, true);

  Example ex;
  Seq2Seq<float>* models[2] = {&plain, &with_attn};
  const auto results = evaluate(models, s, task, o.seed * 7919ULL + 3, ex);
  const std::string acc_png = (fs::path(o.out_dir) / "why_accuracy.png").string();
  const std::string align_png = (fs::path(o.out_dir) / "why_alignment.png").string();
  draw_accuracy(acc_png, results, s);
  draw_alignment(align_png, ex, task);
  cairo_debug_reset_static_data();  // free cairo's and fontconfig's caches (LeakSanitizer)
  FcFini();

  const LengthResult& last = results.back();
  if (o.json) {
    nlohmann::ordered_json j;
    j["task"] = {{"vocab", s.vocab}, {"train_lengths", {s.min_len, s.max_len}}, {"seed", o.seed}, {"quick", o.quick}};
    j["model"] = {{"embed_dim", s.embed_dim}, {"hidden_dim", s.hidden_dim}, {"attention_dim", s.attention_dim},
                  {"parameters", {{"bottleneck", plain.num_parameters()}, {"attention", with_attn.num_parameters()}}}};
    j["training"] = {{"steps", s.steps}, {"batch", s.batch}, {"lr", s.lr}, {"seconds", train_s},
                     {"final_loss", {{"bottleneck", p0.loss.load()}, {"attention", p1.loss.load()}}}};
    j["eval_per_length"] = s.eval_per_length;
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (const auto& r : results)
      rows.push_back({{"length", r.length},
                      {"bottleneck", {{"sequence_accuracy", r.seq_acc[0]}, {"token_accuracy", r.token_acc[0]}}},
                      {"attention", {{"sequence_accuracy", r.seq_acc[1]}, {"token_accuracy", r.token_acc[1]}}}});
    j["results"] = rows;
    j["longest"] = {{"length", last.length},
                    {"token_accuracy_gain", last.token_acc[1] - last.token_acc[0]},
                    {"sequence_accuracy_gain", last.seq_acc[1] - last.seq_acc[0]}};
    j["pictures"] = {acc_png, align_png};
    std::cout << pretty_json(j) << "\n";
    return kExitOk;
  }
  std::cout << "Why attention: a GRU encoder-decoder translating word by word (" << s.vocab
            << " words, a fixed substitution), trained " << s.steps << " steps x " << s.batch << " on lengths "
            << s.min_len << "-" << s.max_len << " in " << num(train_s, 1) << " s;\n"
            << "greedy decoding of " << s.eval_per_length << " held-out sequences per length.\n\n";
  std::cout << "           |     exact sequence      |        per token\n"
            << "  length   |  bottleneck   attention |  bottleneck   attention\n";
  for (const auto& r : results)
    std::cout << pad(std::to_string(r.length), 8) << "   |" << pad(num(100 * r.seq_acc[0], 1) + "%", 12)
              << pad(num(100 * r.seq_acc[1], 1) + "%", 12) << " |" << pad(num(100 * r.token_acc[0], 1) + "%", 12)
              << pad(num(100 * r.token_acc[1], 1) + "%", 12) << "\n";
  std::cout << "\nAt length " << last.length << " attention gains " << num(100 * (last.token_acc[1] - last.token_acc[0]), 1)
            << " points per token and " << num(100 * (last.seq_acc[1] - last.seq_acc[0]), 1)
            << " points of exact sequences over the bottleneck model.\n"
            << "wrote " << acc_png << " (" << kAccW << "x" << kAccH << ") and " << align_png << " (" << kAlignW << "x"
            << kAlignH << ")\n";
  return kExitOk;
}

Run setup_why(CLI::App& sub) {
  auto opt = std::make_shared<WhyOptions>();
  sub.add_option("--out-dir", opt->out_dir, "where to write why_accuracy.png and why_alignment.png")->capture_default_str();
  sub.add_flag("--quick", opt->quick, "a small version that runs in seconds (for tests)");
  sub.add_option("--seed", opt->seed, "seeds the task, the weights and the data")->capture_default_str();
  sub.add_option("--steps", opt->steps, "training steps (default: 1500, --quick 300)")
      ->check(CLI::Range(int64_t{1}, kMaxSteps));
  sub.add_flag("--json", opt->json, "print the results as JSON");
  return [opt]() {
    if (opt->out_dir.empty()) return usage("--out-dir is empty");
    return run_why(*opt);
  };
}

const Register kWhy{{"why", "Why attention: train an RNN encoder-decoder with and without attention, plot accuracy vs length",
                     setup_why}};

}  // namespace
}  // namespace attn::cli

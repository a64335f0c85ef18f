// tools/attn/train.cpp — `attn train`: learn, by back-propagation through the
// library's own backward passes, a task that only attention can solve:
// which noun "it" refers to (notes 004: "The cat sat on the mat because it is
// warm" — "it" is the mat because mats are warm; were it "tired", the cat).
//
// The data: two templates, 8 animals × 8 objects × 8 adjectives (4 that fit
// animals, 4 that fit objects), 1024 sentences of 10 tokens:
//   T0  the <animal> sat on the <object> because it was <adjective>
//   T1  the <object> was under the <animal> because it was <adjective>
// After the adjective the model must name the referent: the animal if the
// adjective is an animal's (tired, hungry, ...), else the object. Which
// position holds the answer (1 or 5) depends on both the template and the
// adjective, and the answer is one of 8 words, so neither a fixed position nor
// a bigram can solve it: the last token must attend to the right noun by
// content and copy it. The sentences whose (animal, object) pair has
// (animal + object) % 8 == 0 — 128 of 1024 — are never trained on: the
// accuracy reported on them shows generalisation, not memory.
//
// The model (float32, Adam, cross-entropy on the answer only):
//   ids      [B, L]        L = 10 tokens
//   x        [B, L, D]     token embedding + position embedding (attn::Embedding)
//   a        [B, L, D]     attn::MultiHeadAttention(D, D, L, 0, H): causal, out_proj
//   h        [B, L, D]     x + a (a residual connection)
//   logits   [B, V]        attn::Linear(D, V) on h[:, L-1, :]
//   loss                   attn::cross_entropy(logits, answer)
// Backward runs the same chain in reverse with each layer's own backward().
//
// Deterministic: weights from Generator(--seed), batches from a second
// Generator(--seed + 1); the SDPA results do not depend on the thread count.
#include <cairo.h>
#include <fontconfig/fontconfig.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <attn/embedding.hpp>
#include <attn/errors.hpp>
#include <attn/generator.hpp>
#include <attn/linear.hpp>
#include <attn/loss.hpp>
#include <attn/multihead_attention.hpp>
#include <attn/optim.hpp>
#include <attn/sdpa.hpp>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "draw.hpp"
#include "heatmap.hpp"
#include "print.hpp"
#include "progress.hpp"
#include "train.hpp"

namespace attn::cli {
namespace {

struct TrainOptions {
  int64_t steps = 600;
  uint64_t seed = 0;
  int64_t batch = 64;
  int64_t d_model = 32;
  int64_t heads = 2;
  double lr = 1e-2;
  std::string out_dir = "attn-train";
  bool json = false;
};

// ---- the task ---------------------------------------------------------------------

const std::vector<std::string> kAnimals = {"cat", "dog", "bird", "fox", "horse", "mouse", "rabbit", "goat"};
const std::vector<std::string> kObjects = {"mat", "box", "chair", "rug", "bed", "table", "sofa", "bench"};
const std::vector<std::string> kAnimalAdj = {"tired", "hungry", "sleepy", "scared"};
const std::vector<std::string> kObjectAdj = {"warm", "soft", "dusty", "broken"};
const std::vector<std::string> kFunction = {"the", "sat", "on", "was", "under", "because", "it"};
constexpr int64_t kLen = 10;

struct Vocab {
  std::vector<std::string> words;
  int64_t id(const std::string& w) const {
    return std::find(words.begin(), words.end(), w) - words.begin();
  }
};

Vocab make_vocab() {
  Vocab v;
  for (const auto* list : {&kFunction, &kAnimals, &kObjects, &kAnimalAdj, &kObjectAdj})
    v.words.insert(v.words.end(), list->begin(), list->end());
  return v;
}

struct Example {
  int64_t animal, object, adjective, templ;  // adjective < 4: an animal's, else an object's
};

bool held_out(const Example& e) { return (e.animal + e.object) % 8 == 0; }

std::vector<std::string> sentence(const Example& e) {
  const std::string a = kAnimals[static_cast<size_t>(e.animal)], o = kObjects[static_cast<size_t>(e.object)];
  const std::string adj = e.adjective < 4 ? kAnimalAdj[static_cast<size_t>(e.adjective)]
                                          : kObjectAdj[static_cast<size_t>(e.adjective - 4)];
  if (e.templ == 0) return {"the", a, "sat", "on", "the", o, "because", "it", "was", adj};
  return {"the", o, "was", "under", "the", a, "because", "it", "was", adj};
}

std::string answer(const Example& e) {
  return e.adjective < 4 ? kAnimals[static_cast<size_t>(e.animal)] : kObjects[static_cast<size_t>(e.object)];
}

std::vector<Example> all_examples() {
  std::vector<Example> out;
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t a = 0; a < 8; ++a)
      for (int64_t o = 0; o < 8; ++o)
        for (int64_t j = 0; j < 8; ++j) out.push_back({a, o, j, t});
  return out;
}

// ids [B, L] and answers [B] of a batch of examples.
void encode(const Vocab& v, const std::vector<Example>& batch, Tensor<int64_t>& ids, Tensor<int64_t>& answers) {
  const int64_t B = static_cast<int64_t>(batch.size());
  ids = Tensor<int64_t>({B, kLen});
  answers = Tensor<int64_t>({B});
  for (int64_t b = 0; b < B; ++b) {
    const auto words = sentence(batch[static_cast<size_t>(b)]);
    for (int64_t t = 0; t < kLen; ++t) ids(b, t) = v.id(words[static_cast<size_t>(t)]);
    answers(b) = v.id(answer(batch[static_cast<size_t>(b)]));
  }
}

// ---- the model ----------------------------------------------------------------------

struct Model {
  Embedding<float> tok, pos;      // [V, D], [L, D]
  MultiHeadAttention<float> mha;  // D → D, H heads, causal
  Linear<float> head;             // [V, D] + [V]
  // saved by forward for backward
  Tensor<float> h;                // [B, L, D]

  Model(int64_t V, int64_t D, int64_t H, Generator& gen)
      : tok(V, D, gen), pos(kLen, D, gen), mha(D, D, kLen, 0.0, H, false, gen), head(D, V, true, gen) {}

  std::vector<Parameter<float>*> parameters() {
    std::vector<Parameter<float>*> out;
    for (Module<float>* m : std::initializer_list<Module<float>*>{&tok, &pos, &mha, &head})
      for (auto* p : m->parameters()) out.push_back(p);
    return out;
  }

  // ids [B, L] → logits [B, V] at the last position.
  Tensor<float> forward(const Tensor<int64_t>& ids) {
    const int64_t B = ids.size(0);
    Tensor<int64_t> positions({B, kLen});
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < kLen; ++t) positions(b, t) = t;
    Tensor<float> x = tok.forward(ids);                        // [B, L, D]
    const Tensor<float> p = pos.forward(positions);            // [B, L, D]
    for (int64_t i = 0; i < x.numel(); ++i) x.flat(i) += p.flat(i);
    const Tensor<float> a = mha.forward(x);                    // [B, L, D]
    h = x.clone();
    for (int64_t i = 0; i < h.numel(); ++i) h.flat(i) += a.flat(i);
    return head.forward(h.select(1, kLen - 1));                // [B, V]
  }

  void backward(const Tensor<float>& d_logits) {
    const int64_t B = h.size(0), D = h.size(2);
    const Tensor<float> d_last = head.backward(d_logits);      // [B, D]
    Tensor<float> dh({B, kLen, D});                            // only the last position has a gradient
    dh.select(1, kLen - 1).copy_(d_last);
    // h = x + mha(x): dx = dh + mha.backward(dh)
    Tensor<float> dx = mha.backward(dh);
    for (int64_t i = 0; i < dx.numel(); ++i) dx.flat(i) += dh.flat(i);
    tok.backward(dx);
    pos.backward(dx);
  }

  // The learned attention of one sentence: per head softmax(Q_h K_hᵀ/√hd + causal), [H] × [L, L].
  std::vector<Tensor<float>> attention(const Tensor<int64_t>& ids1) {
    Tensor<int64_t> positions({1, kLen});
    for (int64_t t = 0; t < kLen; ++t) positions(0, t) = t;
    Tensor<float> x = tok.forward(ids1);
    const Tensor<float> p = pos.forward(positions);
    for (int64_t i = 0; i < x.numel(); ++i) x.flat(i) += p.flat(i);
    return causal_head_weights(mha, x);
  }
};

int64_t argmax_row(const Tensor<float>& logits, int64_t b) {
  int64_t best = 0;
  for (int64_t c = 1; c < logits.size(1); ++c)
    if (logits(b, c) > logits(b, best)) best = c;
  return best;
}

struct Accuracy {
  int64_t right = 0, total = 0;
  double value() const { return total ? static_cast<double>(right) / static_cast<double>(total) : 0.0; }
};

void evaluate(Model& m, const Vocab& v, const std::vector<Example>& all, Accuracy& trained, Accuracy& held) {
  Tensor<int64_t> ids, answers;
  encode(v, all, ids, answers);
  const Tensor<float> logits = m.forward(ids);
  for (int64_t b = 0; b < ids.size(0); ++b) {
    Accuracy& acc = held_out(all[static_cast<size_t>(b)]) ? held : trained;
    acc.total += 1;
    acc.right += argmax_row(logits, b) == answers(b) ? 1 : 0;
  }
}

// ---- progress and pictures ------------------------------------------------------------

// The loss per step (light) and its 20-step running mean (dark), PNG 800×480,
// on a logarithmic axis: the loss falls by decades once the task is learned,
// which a linear axis would flatten into a line on zero.
void draw_loss_curve(const std::vector<float>& losses, const std::string& path, const std::string& subtitle) {
  const int W = 800, H = 480;
  const double x0 = 80, x1 = W - 30, y0 = 70, y1 = H - 60;  // plot area
  cairo_surface_t* s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, W, H);
  cairo_t* cr = cairo_create(s);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  double top = 1e-30, bottom = 1e30;
  for (float l : losses)
    if (std::isfinite(l) && l > 0) top = std::max(top, static_cast<double>(l)), bottom = std::min(bottom, static_cast<double>(l));
  // Whole decades, at least 10^-4 .. 10^1, at most 8 decades below the top.
  const int dtop = std::max(1, static_cast<int>(std::ceil(std::log10(top) - 1e-9)));
  const int dbot = std::clamp(static_cast<int>(std::floor(std::log10(bottom))), dtop - 8, -4);
  const size_t n = losses.size();
  auto X = [&](double i) { return x0 + (x1 - x0) * (n > 1 ? i / static_cast<double>(n - 1) : 0.0); };
  auto Y = [&](double l) {
    const double e = std::clamp(std::log10(std::max(l, 1e-30)), static_cast<double>(dbot), static_cast<double>(dtop));
    return y1 - (y1 - y0) * (e - dbot) / (dtop - dbot);
  };
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, 12);
  // grid and y ticks, one per decade
  for (int d = dbot; d <= dtop; ++d) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, x0, Y(std::pow(10.0, d)));
    cairo_line_to(cr, x1, Y(std::pow(10.0, d)));
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    const std::string lab = d >= 0 ? num(std::pow(10.0, d), 0) : d >= -3 ? num(std::pow(10.0, d), -d) : "1e" + std::to_string(d);
    cairo_text_extents_t e;
    cairo_text_extents(cr, lab.c_str(), &e);
    cairo_move_to(cr, x0 - 8 - e.x_advance, Y(std::pow(10.0, d)) + 4);
    cairo_show_text(cr, lab.c_str());
  }
  // x ticks: 5 steps
  for (int k = 0; k <= 4; ++k) {
    const double i = (n > 1 ? static_cast<double>(n - 1) : 0.0) * k / 4.0;
    const std::string lab = std::to_string(static_cast<int64_t>(std::llround(i)) + 1);
    cairo_text_extents_t e;
    cairo_text_extents(cr, lab.c_str(), &e);
    cairo_move_to(cr, X(i) - e.x_advance / 2, y1 + 18);
    cairo_show_text(cr, lab.c_str());
  }
  cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
  cairo_move_to(cr, (x0 + x1) / 2 - 15, y1 + 40);
  cairo_show_text(cr, "step");
  cairo_save(cr);
  cairo_move_to(cr, 22, (y0 + y1) / 2 + 80);
  cairo_rotate(cr, -M_PI / 2);
  cairo_show_text(cr, "cross-entropy loss (log scale)");
  cairo_restore(cr);
  // axes
  cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
  cairo_set_line_width(cr, 1);
  cairo_move_to(cr, x0, y0);
  cairo_line_to(cr, x0, y1);
  cairo_line_to(cr, x1, y1);
  cairo_stroke(cr);
  // ln(8): guessing among the 8 nouns of the right kind
  const double guess = std::log(8.0), dash[] = {4, 4};
  cairo_set_dash(cr, dash, 2, 0);
  cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
  cairo_move_to(cr, x0, Y(guess));
  cairo_line_to(cr, x1, Y(guess));
  cairo_stroke(cr);
  cairo_set_dash(cr, nullptr, 0, 0);
  cairo_move_to(cr, x0 + 330, Y(guess) - 6);
  cairo_show_text(cr, "ln 8: a guess among 8 nouns");
  // the raw loss, then its running mean
  cairo_set_line_width(cr, 1);
  cairo_set_source_rgb(cr, 0.65, 0.75, 0.9);
  for (size_t i = 0; i < n; ++i) (i ? cairo_line_to : cairo_move_to)(cr, X(static_cast<double>(i)), Y(losses[i]));
  cairo_stroke(cr);
  cairo_set_line_width(cr, 2.5);
  cairo_set_source_rgb(cr, 0.05, 0.3, 0.7);
  double sum = 0;
  const size_t win = 20;
  for (size_t i = 0; i < n; ++i) {
    sum += losses[i];
    if (i >= win) sum -= losses[i - win];
    const double mean = sum / static_cast<double>(std::min(i + 1, win));
    (i ? cairo_line_to : cairo_move_to)(cr, X(static_cast<double>(i)), Y(mean));
  }
  cairo_stroke(cr);
  // legend
  cairo_set_font_size(cr, 12);
  cairo_set_source_rgb(cr, 0.65, 0.75, 0.9);
  cairo_rectangle(cr, x0 + 20, y1 - 46, 22, 3);
  cairo_fill(cr);
  cairo_set_source_rgb(cr, 0.05, 0.3, 0.7);
  cairo_rectangle(cr, x0 + 20, y1 - 28, 22, 3);
  cairo_fill(cr);
  cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
  cairo_move_to(cr, x0 + 50, y1 - 40);
  cairo_show_text(cr, "loss of each step's batch");
  cairo_move_to(cr, x0 + 50, y1 - 22);
  cairo_show_text(cr, "mean of the last 20 steps");
  // title
  cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size(cr, 17);
  cairo_move_to(cr, 20, 30);
  cairo_show_text(cr, "attn train: which noun does \"it\" refer to?");
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, 12);
  cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
  cairo_move_to(cr, 20, 52);
  cairo_show_text(cr, subtitle.c_str());
  cairo_destroy(cr);
  try {
    draw::write_png(s, path, "train");  // a failed write keeps any old picture
  } catch (...) {
    cairo_surface_destroy(s);
    // The command ends here: free cairo's and fontconfig's caches, as the
    // attention picture would have (LeakSanitizer reports them otherwise).
    cairo_debug_reset_static_data();
    FcFini();
    throw;
  }
  cairo_surface_destroy(s);
}

// ---- the command ------------------------------------------------------------------------

int usage(const std::string& what) {
  std::cerr << "attn train: error: " << what << "\nusage: attn train [--steps N] [--seed S] [--out-dir DIR] [--json]; "
            << "see `attn train --help`\n";
  return kExitUsage;
}

// A trained model and what training it gave: shared by run_train (which
// prints and draws it) and learned_attention (which `attn view` shows).
struct TrainRun {
  Vocab vocab;
  std::unique_ptr<Model> model;
  int64_t n_params = 0;
  std::vector<float> losses;
  Accuracy trained, held;
  double secs = 0;
};

// `before_loop` runs once the model exists, before the first step (run_train prints its header there).
TrainRun train_model(const TrainOptions& o, bool show_progress, const std::function<void(const TrainRun&, size_t)>& before_loop) {
  TrainRun run;
  run.vocab = make_vocab();
  const Vocab& vocab = run.vocab;
  const int64_t V = static_cast<int64_t>(vocab.words.size());
  const std::vector<Example> all = all_examples();
  std::vector<Example> train_set;
  for (const auto& e : all)
    if (!held_out(e)) train_set.push_back(e);

  Generator init(o.seed), data(o.seed + 1);
  run.model = std::make_unique<Model>(V, o.d_model, o.heads, init);
  Model& model = *run.model;
  for (auto* p : model.parameters()) run.n_params += p->value.numel();
  Adam<float> adam(model.parameters(), {.lr = o.lr});
  if (before_loop) before_loop(run, train_set.size());

  Progress progress(o.steps, o.json || !show_progress);
  std::vector<float>& losses = run.losses;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t step = 1; step <= o.steps; ++step) {
    // A batch drawn with replacement from the training sentences.
    std::vector<Example> batch;
    const Tensor<float> u = rand<float>({o.batch}, data);
    for (int64_t b = 0; b < o.batch; ++b)
      batch.push_back(train_set[std::min(train_set.size() - 1, static_cast<size_t>(u(b) * static_cast<float>(train_set.size())))]);
    Tensor<int64_t> ids, answers;
    encode(vocab, batch, ids, answers);

    adam.zero_grad();
    const Tensor<float> logits = model.forward(ids);          // [B, V]
    const float loss = cross_entropy(logits, answers);
    model.backward(cross_entropy_backward(logits, answers));  // dL/dlogits [B, V]
    adam.step();
    losses.push_back(loss);
    if (!std::isfinite(loss)) throw ValueError("train: the loss became " + num(loss) + " at step " + std::to_string(step) + "; try a smaller --lr");

    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    progress.update(step, loss, static_cast<double>(step * o.batch * kLen) / std::max(secs, 1e-9));
  }
  run.secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  evaluate(model, vocab, all, run.trained, run.held);
  return run;
}

// The notes' kind of sentence, whose learned attention is drawn and shown.
const Example kShown{0, 0, 4, 0};  // the cat sat on the mat because it was warm

int run_train(const TrainOptions& o) {
  if (o.d_model % o.heads != 0)
    return usage("--d-model " + std::to_string(o.d_model) + " is not divisible by --heads " + std::to_string(o.heads));
  std::error_code ec;
  std::filesystem::create_directories(o.out_dir, ec);
  if (ec) throw IOError("--out-dir " + o.out_dir + ": " + ec.message());

  const auto header = [&](const TrainRun& r, size_t n_train) {
    if (o.json) return;
    const size_t n_all = all_examples().size();
    std::cout << "attn train: which noun does \"it\" refer to? e.g. \"the cat sat on the mat because it was warm\" -> mat\n"
              << "  " << n_all << " sentences (" << n_train << " to train on, " << n_all - n_train
              << " held out), vocabulary " << r.vocab.words.size() << ", length " << kLen << "\n"
              << "  model: embeddings + causal MultiHeadAttention(d_model " << o.d_model << ", " << o.heads
              << " heads) + residual + Linear, " << r.n_params << " parameters; Adam lr " << o.lr << ", batch "
              << o.batch << ", seed " << o.seed << "\n";
  };
  TrainRun run = train_model(o, /*show_progress=*/true, header);
  Model& model = *run.model;
  const Vocab& vocab = run.vocab;
  const std::vector<float>& losses = run.losses;
  const Accuracy &trained = run.trained, &held = run.held;
  const double secs = run.secs;
  const int64_t n_params = run.n_params;

  // The learned attention of the notes' kind of sentence.
  const Example shown = kShown;
  const auto words = sentence(shown);
  Tensor<int64_t> ids1, ans1;
  encode(vocab, {shown}, ids1, ans1);
  const Tensor<float> logits1 = model.forward(ids1);
  const std::string predicted = vocab.words[static_cast<size_t>(argmax_row(logits1, 0))];
  const auto panels = model.attention(ids1);
  std::vector<std::string> titles;
  for (size_t hh = 0; hh < panels.size(); ++hh) titles.push_back("head " + std::to_string(hh + 1));
  const std::string loss_png = (std::filesystem::path(o.out_dir) / "loss.png").string();
  const std::string attn_png = (std::filesystem::path(o.out_dir) / "attention.png").string();
  const std::string summary = std::to_string(o.steps) + " steps, seed " + std::to_string(o.seed) +
                              ": held-out accuracy " + num(100 * held.value(), 1) + "% (" +
                              std::to_string(held.right) + "/" + std::to_string(held.total) + ")";
  draw_loss_curve(losses, loss_png, summary);
  draw_attention_heatmap(words, panels, titles, "Learned attention after " + std::to_string(o.steps) + " steps",
                         "\"the cat sat on the mat because it was warm\" -> predicted \"" + predicted +
                             "\"; the last row is the query that names the referent",
                         true, attn_png);  // last: it frees cairo's font caches

  if (o.json) {
    nlohmann::ordered_json j;
    j["task"] = "which noun \"it\" refers to";
    j["steps"] = o.steps;
    j["seed"] = o.seed;
    j["batch"] = o.batch;
    j["d_model"] = o.d_model;
    j["heads"] = o.heads;
    j["lr"] = o.lr;
    j["parameters"] = n_params;
    j["first_loss"] = json_number(losses.front());
    j["final_loss"] = json_number(losses.back());
    j["train_accuracy"] = trained.value();
    j["heldout_accuracy"] = held.value();
    j["heldout_sentences"] = held.total;
    j["example"] = {{"sentence", "the cat sat on the mat because it was warm"}, {"predicted", predicted}};
    j["seconds"] = secs;
    j["tokens_per_second"] = static_cast<double>(o.steps * o.batch * kLen) / std::max(secs, 1e-9);
    nlohmann::ordered_json curve = nlohmann::ordered_json::array();
    for (float l : losses) curve.push_back(json_number(l));
    j["losses"] = curve;
    j["files"] = {loss_png, attn_png};
    std::cout << dump_json(j) << "\n";
  } else {
    std::cout << "  loss " << num(losses.front()) << " -> " << num(losses.back()) << " in " << num(secs, 1) << " s\n"
              << "  accuracy: trained sentences " << num(100 * trained.value(), 1) << "% (" << trained.right << "/"
              << trained.total << "), held-out sentences " << num(100 * held.value(), 1) << "% (" << held.right << "/"
              << held.total << ")\n"
              << "  \"the cat sat on the mat because it was warm\" -> " << predicted << "\n"
              << "wrote " << loss_png << " and " << attn_png << "\n";
  }
  return kExitOk;
}

Run setup_train(CLI::App& sub) {
  auto opt = std::make_shared<TrainOptions>();
  sub.add_option("--steps", opt->steps, "optimizer steps")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  sub.add_option("--seed", opt->seed, "seed of the weights (and, + 1, of the batches)")->capture_default_str();
  sub.add_option("--batch", opt->batch, "sentences per step")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{4096}));
  sub.add_option("--d-model", opt->d_model, "embedding width")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1024}));
  sub.add_option("--heads", opt->heads, "attention heads (must divide --d-model)")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{64}));
  sub.add_option("--lr", opt->lr, "Adam's learning rate")->capture_default_str()->check(finite_range(1e-6, 1.0));
  sub.add_option("--out-dir", opt->out_dir, "where loss.png and attention.png go (created)")->capture_default_str();
  sub.add_flag("--json", opt->json, "print the results as one JSON object (no progress bar)");
  return [opt]() { return run_train(*opt); };
}

const Register kTrain{{"train", "Train a small causal multi-head attention model: which noun does \"it\" refer to?", setup_train}};

}  // namespace

std::vector<Tensor<float>> causal_head_weights(const MultiHeadAttention<float>& mha, const Tensor<float>& x) {
  const int64_t L = x.size(1), H = mha.num_heads(), hd = mha.head_dim();
  auto split = [&](const Tensor<float>& t) { return t.reshape({1, L, H, hd}).transpose(1, 2); };
  SdpaOptions<float> opt;
  opt.is_causal = true;
  opt.return_weights = true;
  const auto r = scaled_dot_product_attention(split(mha.W_query.apply(x)), split(mha.W_key.apply(x)),
                                              split(mha.W_value.apply(x)), opt);
  std::vector<Tensor<float>> heads;
  for (int64_t h = 0; h < H; ++h) heads.push_back(r.weights.select(0, 0).select(0, h).clone());
  return heads;
}

LearnedAttention learned_attention(int64_t steps, uint64_t seed) {
  TrainOptions o;
  o.steps = steps;
  o.seed = seed;
  TrainRun run = train_model(o, /*show_progress=*/false, nullptr);
  Tensor<int64_t> ids1, ans1;
  encode(run.vocab, {kShown}, ids1, ans1);
  const Tensor<float> logits1 = run.model->forward(ids1);
  LearnedAttention out;
  out.tokens = sentence(kShown);
  out.heads = run.model->attention(ids1);
  out.predicted = run.vocab.words[static_cast<size_t>(argmax_row(logits1, 0))];
  out.steps = steps;
  out.seed = seed;
  out.d_model = o.d_model;
  out.heldout_accuracy = run.held.value();
  out.final_loss = run.losses.back();
  return out;
}

}  // namespace attn::cli

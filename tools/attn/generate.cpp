// tools/attn/generate.cpp — `attn generate`: a tiny character-level language
// model, trained here through the library's own backward passes, then run
// token by token the way inference engines run it: a KV cache per layer, each
// step one new query row against every cached key (attention_decode with
// bottom-right causal alignment), RoPE fused into the cache append and the
// decode step, GQA heads reading their shared KV head once.
//
// What it prints: the text as it is generated, then what the cache bought —
//   * tokens/s with the cache vs recomputing the whole prefix for every token;
//   * the largest |logit| difference between the cached steps and one
//     full-sequence forward of the same text (float32 storage: rounding only;
//     bfloat16 / int8 storage: what the smaller cache costs);
//   * cache bytes per token for MHA, GQA, MQA and MLA at this model's width and
//     at DeepSeek-V2's (the reason MLA exists).
//
// The model (float32; parameter names as a Hugging Face Llama state_dict, no
// norms — two layers train well without them at this size):
//   ids      [B, T]                 characters of the training text
//   x        [B, T, D]              embed_tokens
//   per layer:
//     q      [B, H,   T, hd]        q_proj(x) split into heads, RoPE at positions 0..T-1
//     k, v   [B, Hkv, T, hd]        k_proj(x) with RoPE, v_proj(x)
//     ctx    [B, H,   T, hd]        scaled_dot_product_attention(q, k, v), causal, GQA,
//                                   sliding window of --context tokens
//     x1     = x + o_proj(ctx)      (heads merged back to [B, T, D])
//     x      = x1 + down_proj(relu(up_proj(x1)))
//   logits   [B, T, V]              lm_head(x)
//   loss                            cross-entropy against the next character
// Adam with a cosine learning-rate decay; training windows of --context characters.
// Backward runs the chain in reverse with each piece's own backward().
//
// Deterministic: weights from Generator(--seed), training windows from
// Generator(--seed + 1), sampling from Generator(--seed + 2).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <attn/embedding.hpp>
#include <attn/errors.hpp>
#include <attn/generator.hpp>
#include <attn/kv_cache.hpp>
#include <attn/linear.hpp>
#include <attn/loss.hpp>
#include <attn/module.hpp>
#include <attn/optim.hpp>
#include <attn/rope.hpp>
#include <attn/safetensors.hpp>
#include <attn/sdpa.hpp>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "print.hpp"
#include "progress.hpp"

namespace attn::cli {
namespace {

// ---- the training text ------------------------------------------------------------
// Written for this command (lowercase, so the vocabulary stays small): what the
// model learns to continue is the story the lecture notes tell.
const char* const kText =
    "attention lets every token look at every other token. "
    "a query asks what a token needs, a key says what a token holds, and a value is what it gives. "
    "the scores of a query against all keys become weights through the softmax, "
    "and the weights mix the values into a context vector. "
    "a causal mask hides the future, so the model can learn to write one token after another. "
    "when it writes, it keeps the keys and values of the past in a cache and never computes them again. "
    "many query heads can share one key and value head, "
    "and a small latent can hold the keys and values of every head at once. ";

struct CharVocab {
  std::string chars;  // id → character, sorted
  int64_t id(char c) const {
    const auto pos = chars.find(c);
    return pos == std::string::npos ? -1 : static_cast<int64_t>(pos);
  }
};

CharVocab make_vocab(const std::string& text) {
  CharVocab v;
  for (char c : text)
    if (v.chars.find(c) == std::string::npos) v.chars.push_back(c);
  std::sort(v.chars.begin(), v.chars.end());
  return v;
}

struct GenerateOptions {
  std::string prompt = "the model ";
  int64_t tokens = 200;
  int64_t steps = 400;  // training steps (0 with --load)
  int64_t layers = 2;
  int64_t d_model = 64;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  int64_t context = 64;  // training window
  int64_t batch = 16;
  double lr = 6e-3;  // peak; cosine decay to 0
  double temperature = 0.0;  // 0: greedy
  int64_t top_k = 0;         // 0: all characters
  uint64_t seed = 0;
  std::string cache = "float32";
  int64_t page_size = 0;
  std::string load, save;
  bool json = false;
};

// ---- small tensor helpers ---------------------------------------------------------------

// [B, T, n·hd] → [B, n, T, hd]: a view, the heads side by side.
Tensor<float> split_heads(const Tensor<float>& y, int64_t n, int64_t hd) {
  return y.reshape({y.size(0), y.size(1), n, hd}).transpose(1, 2);
}

// [B, n, T, hd] → [B, T, n·hd]: a copy, the heads concatenated per token.
Tensor<float> merge_heads(const Tensor<float>& y) {
  return y.transpose(1, 2).contiguous().reshape({y.size(0), y.size(2), y.size(1) * y.size(3)});
}

// a + b as a new tensor (never in place: Linear::forward keeps a handle on its
// input for backward, so the residual stream must not be overwritten).
Tensor<float> add(const Tensor<float>& a, const Tensor<float>& b) {
  Tensor<float> out = a.clone();  // contiguous
  const Tensor<float> bc = b.contiguous();
  float* o = out.data();
  const float* y = bc.data();
  for (int64_t i = 0; i < out.numel(); ++i) o[i] += y[i];
  return out;
}

Tensor<float> relu(const Tensor<float>& x) {
  Tensor<float> out = x.clone();
  float* o = out.data();
  for (int64_t i = 0; i < out.numel(); ++i) o[i] = std::max(o[i], 0.0f);
  return out;
}

// ---- the model ---------------------------------------------------------------------------

struct Config {
  int64_t vocab = 0, d_model = 0, heads = 0, kv_heads = 0, layers = 0;
  int64_t window = 0;  // each token attends to itself and the window − 1 before it (the training context)
  int64_t head_dim() const { return d_model / heads; }
};

class Block : public Module<float> {
 public:
  Block(const Config& c, Generator& gen)
      : H_(c.heads), Hkv_(c.kv_heads), hd_(c.head_dim()), window_(c.window),
        q_proj(c.d_model, c.heads * c.head_dim(), false, gen),
        k_proj(c.d_model, c.kv_heads * c.head_dim(), false, gen),
        v_proj(c.d_model, c.kv_heads * c.head_dim(), false, gen),
        o_proj(c.heads * c.head_dim(), c.d_model, false, gen),
        up_proj(c.d_model, 4 * c.d_model, false, gen),
        down_proj(4 * c.d_model, c.d_model, false, gen) {}

  std::vector<NamedParameter<float>> named_parameters() override {
    std::vector<NamedParameter<float>> out;
    append_prefixed(out, "self_attn.q_proj.", q_proj);
    append_prefixed(out, "self_attn.k_proj.", k_proj);
    append_prefixed(out, "self_attn.v_proj.", v_proj);
    append_prefixed(out, "self_attn.o_proj.", o_proj);
    append_prefixed(out, "mlp.up_proj.", up_proj);
    append_prefixed(out, "mlp.down_proj.", down_proj);
    return out;
  }

  // Training: x [B, T, D] → [B, T, D], every position at once (top-left causal).
  Tensor<float> forward(const Tensor<float>& x) {
    q_ = apply_rope(split_heads(q_proj.forward(x), H_, hd_));
    k_ = apply_rope(split_heads(k_proj.forward(x), Hkv_, hd_));
    v_ = split_heads(v_proj.forward(x), Hkv_, hd_);
    const SdpaResult<float> r = scaled_dot_product_attention(q_, k_, v_, attention_options(CausalAlignment::TopLeft));
    out_ = r.output;
    lse_ = r.lse;
    const Tensor<float> x1 = add(x, o_proj.forward(merge_heads(out_)));
    up_ = up_proj.forward(x1);
    return add(x1, down_proj.forward(relu(up_)));
  }

  // dy [B, T, D] → dx; parameter gradients accumulate.
  Tensor<float> backward(const Tensor<float>& dy) {
    // y = x1 + down(relu(up(x1)))
    Tensor<float> d_hidden = down_proj.backward(dy).clone();  // contiguous, like up_
    float* dh = d_hidden.data();
    const float* u = up_.data();
    for (int64_t i = 0; i < d_hidden.numel(); ++i)
      if (!(u[i] > 0.0f)) dh[i] = 0.0f;  // relu' = 0 where up_ <= 0
    const Tensor<float> dx1 = add(dy, up_proj.backward(d_hidden));
    // x1 = x + o_proj(merge(ctx))
    const Tensor<float> d_ctx = o_proj.backward(dx1);
    const SdpaGradients<float> g = scaled_dot_product_attention_backward(
        split_heads(d_ctx, H_, hd_), q_, k_, v_, out_, lse_, attention_options(CausalAlignment::TopLeft));
    Tensor<float> dx = add(dx1, q_proj.backward(merge_heads(apply_rope_backward(g.d_query))));
    dx = add(dx, k_proj.backward(merge_heads(apply_rope_backward(g.d_key))));
    return add(dx, v_proj.backward(merge_heads(g.d_value)));
  }

  // Inference: the n newest tokens x [1, n, D] of the sequence in `cache`.
  // Their keys and values are appended (keys rotated as they are written), then
  // their queries attend to everything cached so far — bottom-right causal,
  // because the new rows are the last ones.
  Tensor<float> step(const Tensor<float>& x, KVCache& cache, int64_t layer) const {
    const Tensor<float> q = split_heads(q_proj.apply(x), H_, hd_);  // rotated inside attention_decode
    cache.append(layer, split_heads(k_proj.apply(x), Hkv_, hd_), split_heads(v_proj.apply(x), Hkv_, hd_),
                 RopeOptions{});
    const SdpaResult<float> r =
        attention_decode(q, cache, layer, attention_options(CausalAlignment::BottomRight), RopeOptions{});
    const Tensor<float> x1 = add(x, o_proj.apply(merge_heads(r.output)));
    return add(x1, down_proj.apply(relu(up_proj.apply(x1))));
  }

 private:
  SdpaOptions<float> attention_options(CausalAlignment align) const {
    SdpaOptions<float> o;
    o.is_causal = true;
    o.causal_alignment = align;
    o.enable_gqa = Hkv_ != H_;
    // A sliding window as long as the training context: RoPE makes scores
    // depend on distance only, so with the window every query sees what it saw
    // in training, however long the text grows (without it the model meets
    // distances it never learned and falls apart after `window` characters).
    o.window_left = window_ - 1;
    return o;
  }

  int64_t H_, Hkv_, hd_, window_;

 public:
  Linear<float> q_proj, k_proj, v_proj, o_proj, up_proj, down_proj;

 private:
  // saved by forward for backward
  Tensor<float> q_, k_, v_;    // rotated q, k; v   [B, H|Hkv, T, hd]
  Tensor<float> out_, lse_;    // SDPA output and log-sum-exp
  Tensor<float> up_;           // up_proj(x1) before the ReLU
};

class CharModel : public Module<float> {
 public:
  CharModel(const Config& c, Generator& gen) : config(c), embed_tokens(c.vocab, c.d_model, gen), lm_head(c.d_model, c.vocab, false, gen) {
    for (int64_t l = 0; l < c.layers; ++l) layers.push_back(std::make_unique<Block>(c, gen));
  }

  std::vector<NamedParameter<float>> named_parameters() override {
    std::vector<NamedParameter<float>> out;
    append_prefixed(out, "embed_tokens.", embed_tokens);
    for (size_t l = 0; l < layers.size(); ++l) append_prefixed(out, "layers." + std::to_string(l) + ".", *layers[l]);
    append_prefixed(out, "lm_head.", lm_head);
    return out;
  }

  // ids [B, T] → logits [B, T, V]
  Tensor<float> forward(const Tensor<int64_t>& ids) {
    Tensor<float> x = embed_tokens.forward(ids);
    for (auto& block : layers) x = block->forward(x);
    return lm_head.forward(x);
  }

  void backward(const Tensor<float>& d_logits) {
    Tensor<float> dx = lm_head.backward(d_logits);
    for (size_t l = layers.size(); l-- > 0;) dx = layers[l]->backward(dx);
    embed_tokens.backward(dx);
  }

  // The n newest tokens of the sequence in `cache` → their logits [n, V].
  Tensor<float> step(const std::vector<int64_t>& new_ids, KVCache& cache) {
    const int64_t n = static_cast<int64_t>(new_ids.size());
    Tensor<int64_t> ids({1, n});
    for (int64_t t = 0; t < n; ++t) ids(0, t) = new_ids[static_cast<size_t>(t)];
    Tensor<float> x = embed_tokens.forward(ids);
    for (size_t l = 0; l < layers.size(); ++l) x = layers[l]->step(x, cache, static_cast<int64_t>(l));
    return lm_head.apply(x).select(0, 0);
  }

  Config config;
  Embedding<float> embed_tokens;
  std::vector<std::unique_ptr<Block>> layers;
  Linear<float> lm_head;
};

// ---- training ---------------------------------------------------------------------------

struct TrainResult {
  float first_loss = 0, final_loss = 0;
  double seconds = 0;
};

TrainResult train(CharModel& model, const std::vector<int64_t>& text, const GenerateOptions& o) {
  const int64_t T = std::min<int64_t>(o.context, static_cast<int64_t>(text.size()) - 1), B = o.batch;
  Generator windows(o.seed + 1);
  Adam<float> adam(model.parameters(), {.lr = o.lr});
  Progress progress(o.steps, o.json);
  TrainResult res;
  float recent = 0;  // mean loss of the last 20 steps: one batch's loss is noisy
  const auto start = std::chrono::steady_clock::now();
  for (int64_t step = 1; step <= o.steps; ++step) {
    // B windows of T + 1 characters at random offsets: inputs and next characters.
    const Tensor<float> u = rand<float>({B}, windows);
    Tensor<int64_t> ids({B, T}), next({B * T});
    const int64_t offsets = static_cast<int64_t>(text.size()) - T;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t off = std::min<int64_t>(offsets - 1, static_cast<int64_t>(u(b) * static_cast<float>(offsets)));
      for (int64_t t = 0; t < T; ++t) {
        ids(b, t) = text[static_cast<size_t>(off + t)];
        next(b * T + t) = text[static_cast<size_t>(off + t + 1)];
      }
    }
    // Cosine decay from --lr to 0 over the run (as torch's CosineAnnealingLR):
    // large steps early, small ones to settle into the text at the end.
    adam.set_lr(0.5 * o.lr * (1.0 + std::cos(M_PI * static_cast<double>(step - 1) / static_cast<double>(o.steps))));
    adam.zero_grad();
    const Tensor<float> logits = model.forward(ids).reshape({B * T, model.config.vocab});
    const float loss = cross_entropy(logits, next);
    if (!std::isfinite(loss))
      throw ValueError("generate: the training loss became " + num(loss) + " at step " + std::to_string(step) +
                       "; try a smaller --lr");
    model.backward(cross_entropy_backward(logits, next).reshape({B, T, model.config.vocab}));
    adam.step();
    if (step == 1) res.first_loss = loss;
    recent = step == 1 ? loss : recent + (loss - recent) / static_cast<float>(std::min<int64_t>(step, 20));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    progress.update(step, recent, static_cast<double>(step * B * T) / std::max(secs, 1e-9));
  }
  res.final_loss = recent;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return res;
}

// ---- sampling ----------------------------------------------------------------------------

// Greedy (temperature 0) or a draw from softmax(logits / temperature) over the
// top_k largest (0: all), as Hugging Face's generate() does.
int64_t sample(const Tensor<float>& logits, double temperature, int64_t top_k, Generator& gen) {
  const int64_t V = logits.size(0);
  std::vector<int64_t> order(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; ++i) order[static_cast<size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits(a) > logits(b); });
  if (temperature <= 0.0) return order[0];
  const size_t k = top_k > 0 ? static_cast<size_t>(std::min(top_k, V)) : order.size();
  std::vector<double> p(k);
  double sum = 0;
  for (size_t i = 0; i < k; ++i)
    sum += p[i] = std::exp((static_cast<double>(logits(order[i])) - logits(order[0])) / temperature);
  double u = static_cast<double>(rand<float>({1}, gen)(0)) * sum;
  for (size_t i = 0; i < k; ++i)
    if ((u -= p[i]) < 0) return order[i];
  return order[k - 1];
}

// ---- the cache arithmetic ---------------------------------------------------------------

struct CacheRow {
  std::string name;
  int64_t here, deepseek;  // bytes per token per layer, float32: this model's width, DeepSeek-V2's
};

// Numbers a decoder keeps per token and layer: MHA/GQA/MQA 2·Hkv·hd (K and V
// of each KV head), MLA d_c + d_R (the KV latent and the one RoPE key all heads
// share), with DeepSeek-V2's proportions d_c = 4·hd, d_R = hd/2 (512 and 64 at
// hd = 128). DeepSeek-V2's width: 128 heads of dim 128; its GQA row uses 8 KV heads.
std::vector<CacheRow> cache_table(int64_t heads, int64_t hd, int64_t gqa_kv_heads) {
  const auto kv = [](int64_t hkv, int64_t d) { return 2 * hkv * d * static_cast<int64_t>(sizeof(float)); };
  const auto mla = [](int64_t d) { return (4 * d + d / 2) * static_cast<int64_t>(sizeof(float)); };
  return {{"MHA (every head its own K, V)", kv(heads, hd), kv(128, 128)},
          {"GQA (" + std::to_string(gqa_kv_heads) + " / 8 KV heads)", kv(gqa_kv_heads, hd), kv(8, 128)},
          {"MQA (1 KV head)", kv(1, hd), kv(1, 128)},
          {"MLA (latent + shared RoPE key)", mla(hd), mla(128)}};
}

// ---- the command --------------------------------------------------------------------------

// ---- --load: the file's metadata, checked against its tensors ---------------------------

// The largest model --load accepts: the ranges of the options that build one.
constexpr int64_t kMaxLayers = 64, kMaxDModel = 4096, kMaxHeads = 256, kMaxWindow = 4096;
// And of their products (a model trained here; the run's work). The defaults
// use 1e5 parameters, 1.3e5 activations and 4e9 flops of comparison.
constexpr double kMaxParameters = 2e8, kMaxActivations = 1e8, kMaxComparisonFlops = 1e13;

// Each parameter's shape for config `c`, by the names of CharModel's state_dict
// (Linear weights [out, in], as torch stores them).
std::map<std::string, Shape> expected_parameters(const Config& c) {
  const int64_t D = c.d_model, hd = c.head_dim();
  std::map<std::string, Shape> out{{"embed_tokens.weight", {c.vocab, D}}, {"lm_head.weight", {c.vocab, D}}};
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    out[p + "self_attn.q_proj.weight"] = {c.heads * hd, D};
    out[p + "self_attn.k_proj.weight"] = {c.kv_heads * hd, D};
    out[p + "self_attn.v_proj.weight"] = {c.kv_heads * hd, D};
    out[p + "self_attn.o_proj.weight"] = {D, c.heads * hd};
    out[p + "mlp.up_proj.weight"] = {4 * D, D};
    out[p + "mlp.down_proj.weight"] = {D, 4 * D};
  }
  return out;
}

struct LoadedModel {
  Config config;
  CharVocab vocab;
};

// The configuration of a file written by --save: its metadata parsed and
// bounded, then every tensor the configuration implies compared (name and
// shape; the reader has already matched each shape to its bytes) with the
// tensors the header lists. Reads the header only. Throws ValueError naming
// the file and what does not fit.
LoadedModel read_model(const std::string& path) {
  const SafetensorsHeader header = read_safetensors_header(path);
  const auto fail = [&](const std::string& what) { return ValueError("--load " + path + ": " + what); };
  const auto& meta = header.metadata;
  for (const char* key : {"attn.vocab", "attn.d_model", "attn.heads", "attn.kv_heads", "attn.layers", "attn.window"})
    if (!meta.count(key))
      throw fail(std::string("no \"") + key + "\" in the file's metadata (not written by attn generate --save)");
  const auto size = [&](const char* key, int64_t max) -> int64_t {
    const std::string& v = meta.at(key);
    if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos || std::stoll(v) < 1 ||
        std::stoll(v) > max)
      throw fail("metadata \"" + std::string(key) + "\" = \"" + v + "\", expected an integer from 1 to " +
                 std::to_string(max));
    return std::stoll(v);
  };
  LoadedModel m;
  m.vocab.chars = meta.at("attn.vocab");
  std::string sorted = m.vocab.chars;
  std::sort(sorted.begin(), sorted.end());
  if (sorted.empty() || std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    throw fail("metadata \"attn.vocab\" must list each character once (" + std::to_string(m.vocab.chars.size()) +
               " characters)");
  m.config = {static_cast<int64_t>(m.vocab.chars.size()), size("attn.d_model", kMaxDModel), size("attn.heads", kMaxHeads),
              size("attn.kv_heads", kMaxHeads), size("attn.layers", kMaxLayers), size("attn.window", kMaxWindow)};
  const Config& c = m.config;
  if (c.d_model % c.heads != 0 || c.heads % c.kv_heads != 0 || c.head_dim() % 2 != 0)
    throw fail("inconsistent model sizes in the metadata: d_model " + std::to_string(c.d_model) + ", heads " +
               std::to_string(c.heads) + ", kv_heads " + std::to_string(c.kv_heads) +
               " (heads must divide d_model, kv_heads divide heads, and the head dim be even)");
  const std::map<std::string, Shape> want = expected_parameters(c);
  for (const auto& [name, shape] : want) {
    const auto it = header.tensors.find(name);
    if (it == header.tensors.end())
      throw fail("the metadata describes a model with tensor '" + name + "' " + shape_str(shape) +
                 ", which the file does not have");
    if (it->second.shape != shape)
      throw fail("tensor '" + name + "' has shape " + shape_str(it->second.shape) + ", but the metadata implies " +
                 shape_str(shape));
  }
  for (const auto& [name, info] : header.tensors)
    if (!want.count(name)) throw fail("tensor '" + name + "' is not part of the model the metadata describes");
  return m;
}

int usage(const std::string& what) {
  std::cerr << "attn generate: error: " << what << "\nusage: attn generate [--prompt TEXT] [--tokens N] [--steps N] "
            << "[--cache float32|bfloat16|int8] [--json]; see `attn generate --help`\n";
  return kExitUsage;
}

KVStorage storage_of(const std::string& s) {
  if (s == "float32") return KVStorage::Float32;
  if (s == "bfloat16") return KVStorage::BFloat16;
  return KVStorage::Int8;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1e", v);
  return buf;
}

int run_generate(const GenerateOptions& o) {
  // The model: trained here, or loaded with its configuration and vocabulary.
  Config config;
  CharVocab vocab;
  std::map<std::string, Tensor<float>> loaded;
  if (!o.load.empty()) {
    // Everything the file says is checked against the file before anything
    // is allocated: a few hundred bytes of metadata must not ask for a model
    // of tens of GB.
    const LoadedModel m = read_model(o.load);
    config = m.config;
    vocab = m.vocab;
    loaded = load_safetensors<float>(o.load);
  } else {
    if (o.d_model % o.heads != 0)
      return usage("--d-model " + std::to_string(o.d_model) + " is not divisible by --heads " + std::to_string(o.heads));
    if ((o.d_model / o.heads) % 2 != 0)
      return usage("the head dim --d-model / --heads = " + std::to_string(o.d_model / o.heads) + " must be even (RoPE rotates pairs)");
    if (o.heads % o.kv_heads != 0)
      return usage("--kv-heads " + std::to_string(o.kv_heads) + " does not divide --heads " + std::to_string(o.heads));
    vocab = make_vocab(kText);
    config = {static_cast<int64_t>(vocab.chars.size()), o.d_model, o.heads, o.kv_heads, o.layers, o.context};
    // Each option is bounded; their products must be too (64 layers of
    // width 4096 is 13 G parameters).
    const double params = static_cast<double>(o.layers) * 12.0 * static_cast<double>(o.d_model) * static_cast<double>(o.d_model);
    if (params > kMaxParameters)
      return usage("--layers " + std::to_string(o.layers) + " and --d-model " + std::to_string(o.d_model) +
                   " make about " + sci(params) + " parameters (12 x layers x d_model^2); at most " + sci(kMaxParameters));
    const double activations = static_cast<double>(o.batch) * static_cast<double>(o.context) *
                               static_cast<double>(o.d_model) * static_cast<double>(o.layers);
    if (activations > kMaxActivations)
      return usage("--batch x --context x --d-model x --layers = " + sci(activations) +
                   " (the activations a training step keeps); at most " + sci(kMaxActivations));
  }
  {
    // Generating N tokens also runs the model without the cache over every
    // prefix, for the comparison: about N^2 / 2 token passes.
    const double n = static_cast<double>(o.prompt.size() + static_cast<size_t>(o.tokens));
    const double flops = n * n * static_cast<double>(config.layers) * 12.0 * static_cast<double>(config.d_model) *
                         static_cast<double>(config.d_model);
    if (flops > kMaxComparisonFlops)
      return usage("--tokens " + std::to_string(o.tokens) + " with this model: the comparison without the cache "
                   "recomputes every prefix, about " + sci(flops) + " flops; at most " + sci(kMaxComparisonFlops) +
                   ": ask for fewer tokens");
  }
  std::vector<int64_t> prompt;
  for (char c : o.prompt) {
    if (vocab.id(c) < 0)
      return usage("--prompt: the character '" + std::string(1, c) + "' is not in the model's vocabulary \"" + vocab.chars + "\"");
    prompt.push_back(vocab.id(c));
  }
  if (prompt.empty()) return usage("--prompt is empty: give at least one character");

  Generator init(o.seed);
  CharModel model(config, init);
  TrainResult trained;
  if (!loaded.empty()) {
    model.load_state_dict(loaded);
  }
  const int64_t n_params = model.num_parameters();
  const std::string text = kText;
  if (!o.json) {
    std::cout << "attn generate: a character-level model, then decoding token by token with a KV cache\n"
              << "  model: " << config.layers << " layers, d_model " << config.d_model << ", " << config.heads
              << " query heads over " << config.kv_heads << " KV heads of dim " << config.head_dim() << ", RoPE, window " << config.window << ", "
              << "vocabulary " << config.vocab << ", " << n_params << " parameters\n";
    if (loaded.empty())
      std::cout << "  training: " << text.size() << " characters of text, windows of " << o.context << ", batch "
                << o.batch << ", Adam lr " << o.lr << " (cosine decay), " << o.steps << " steps, seed " << o.seed << "\n";
    else
      std::cout << "  weights: " << o.load << "\n";
  }
  if (loaded.empty()) {
    std::vector<int64_t> ids;
    for (char c : text) ids.push_back(vocab.id(c));
    trained = train(model, ids, o);
    if (!o.json)
      std::cout << "  loss " << num(trained.first_loss) << " -> " << num(trained.final_loss) << " (mean of the last 20 steps) in "
                << num(trained.seconds, 1) << " s\n";
  }
  if (!o.save.empty()) {
    save_safetensors<float>(o.save, model.state_dict(),
                            {{"attn.vocab", vocab.chars}, {"attn.d_model", std::to_string(config.d_model)},
                             {"attn.heads", std::to_string(config.heads)},
                             {"attn.kv_heads", std::to_string(config.kv_heads)},
                             {"attn.layers", std::to_string(config.layers)},
                             {"attn.window", std::to_string(config.window)}});
    if (!o.json) std::cout << "  saved the weights to " << o.save << "\n";
  }

  // ---- decoding with the cache -------------------------------------------------------
  const int64_t total = static_cast<int64_t>(prompt.size()) + o.tokens;
  KVCacheConfig cc;
  cc.num_layers = config.layers;
  cc.num_kv_heads = config.kv_heads;
  cc.capacity = total;
  cc.head_dim = config.head_dim();
  cc.storage = storage_of(o.cache);
  cc.page_size = o.page_size;
  if (cc.page_size > 0) cc.window_tokens = config.window;  // paged: pages the window has left are given back
  if (cc.storage == KVStorage::Int8 && cc.page_size > 0) cc.quant_group = std::gcd(cc.page_size, int64_t{32});
  KVCache cache(cc);

  if (!o.json) std::cout << "\n" << o.prompt << std::flush;
  Generator sampler(o.seed + 2);
  std::vector<int64_t> seq = prompt;
  std::vector<Tensor<float>> step_logits;  // the logits row each step sampled from
  const auto t0 = std::chrono::steady_clock::now();
  Tensor<float> logits = model.step(prompt, cache);  // prefill: the whole prompt in one call
  const double prefill_s = seconds_since(t0);
  Tensor<float> last = logits.select(0, logits.size(0) - 1).clone();
  const auto t1 = std::chrono::steady_clock::now();
  for (int64_t t = 0; t < o.tokens; ++t) {
    const int64_t next = sample(last, o.temperature, o.top_k, sampler);
    step_logits.push_back(last);
    seq.push_back(next);
    if (!o.json) std::cout << vocab.chars[static_cast<size_t>(next)] << std::flush;
    if (t + 1 < o.tokens) last = model.step({next}, cache).select(0, 0).clone();
  }
  const double decode_s = seconds_since(t1);
  const int64_t decode_steps = std::max<int64_t>(o.tokens - 1, 0);
  // Bytes the cache holds now: every token (contiguous), or the pages still
  // held (paged with the window: the older ones were given back).
  int64_t held_tokens = cache.length(0, 0);
  if (cache.paged()) {
    held_tokens = 0;
    for (int64_t page : cache.page_table(0, 0)) held_tokens += page >= 0 ? cc.page_size : 0;
  }
  const int64_t held_bytes = cache.bytes_per_token() * config.layers * held_tokens;
  if (!o.json) std::cout << "\n\n";

  // ---- the same tokens without a cache: the whole prefix again for every token ------
  // (also the check: its logits must equal the cached steps')
  double max_diff = 0, max_logit = 0;
  const auto t2 = std::chrono::steady_clock::now();
  for (int64_t t = 0; t < o.tokens; ++t) {
    const int64_t n = static_cast<int64_t>(prompt.size()) + t;
    Tensor<int64_t> ids({1, n});
    for (int64_t i = 0; i < n; ++i) ids(0, i) = seq[static_cast<size_t>(i)];
    const Tensor<float> full = model.forward(ids);  // [1, n, V]
    for (int64_t v = 0; v < config.vocab; ++v) {
      max_diff = std::max(max_diff, static_cast<double>(std::fabs(full(0, n - 1, v) - step_logits[static_cast<size_t>(t)](v))));
      max_logit = std::max(max_logit, static_cast<double>(std::fabs(full(0, n - 1, v))));
    }
  }
  const double uncached_s = seconds_since(t2);
  const double rel_diff = max_diff / std::max(max_logit, 1e-30);
  const double cached_tps = decode_steps / std::max(decode_s, 1e-9);
  const double uncached_tps = o.tokens / std::max(uncached_s, 1e-9);

  std::string generated;
  for (size_t i = prompt.size(); i < seq.size(); ++i) generated.push_back(vocab.chars[static_cast<size_t>(seq[i])]);
  // The GQA row: this model's KV heads when it is GQA, else a quarter of the heads.
  const int64_t gqa_kv = config.kv_heads > 1 && config.kv_heads < config.heads ? config.kv_heads
                                                                                : std::max<int64_t>(config.heads / 4, 1);
  const std::vector<CacheRow> table = cache_table(config.heads, config.head_dim(), gqa_kv);

  if (o.json) {
    nlohmann::ordered_json j;
    j["prompt"] = o.prompt;
    j["text"] = generated;
    j["tokens"] = o.tokens;
    j["model"] = {{"layers", config.layers}, {"d_model", config.d_model}, {"heads", config.heads},
                  {"kv_heads", config.kv_heads}, {"head_dim", config.head_dim()}, {"window", config.window},
                  {"vocab", vocab.chars},
                  {"parameters", n_params}};
    if (loaded.empty())
      j["training"] = {{"steps", o.steps}, {"seed", o.seed}, {"first_loss", json_number(trained.first_loss)},
                       {"final_loss", json_number(trained.final_loss)}, {"seconds", trained.seconds}};
    j["cache"] = {{"storage", to_string(cc.storage)}, {"page_size", cc.page_size},
                  {"bytes_per_token", cache.bytes_per_token() * config.layers},
                  {"bytes_held", held_bytes}};
    j["prefill_ms"] = 1e3 * prefill_s;
    j["cached_tokens_per_s"] = cached_tps;
    j["uncached_tokens_per_s"] = uncached_tps;
    j["max_logit_diff"] = max_diff;
    j["max_logit_diff_relative"] = rel_diff;  // / the largest |logit|
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (const auto& r : table)
      rows.push_back({{"attention", r.name}, {"this_model", r.here}, {"deepseek_v2_width", r.deepseek}});
    j["cache_bytes_per_token_per_layer"] = rows;
    std::cout << dump_json(j) << "\n";
    return kExitOk;
  }

  std::cout << "decoding: prompt of " << prompt.size() << " tokens in " << num(1e3 * prefill_s, 2) << " ms (one call), then "
            << o.tokens << " tokens one at a time\n"
            << "  with the KV cache                  " << pad(num(cached_tps, 0), 8) << " tokens/s   (" << to_string(cc.storage)
            << (cc.page_size > 0 ? ", paged by " + std::to_string(cc.page_size) : std::string(", contiguous")) << ", "
            << cache.bytes_per_token() * config.layers << " B/token over " << config.layers << " layers, "
            << held_bytes << " B held)\n"
            << "  without (the whole prefix again)   " << pad(num(uncached_tps, 0), 8) << " tokens/s   -> the cache is "
            << num(cached_tps / std::max(uncached_tps, 1e-9), 1) << "x faster here\n"
            << "  cached steps vs one full-sequence forward: max |logit difference| " << sci(max_diff) << " ("
            << sci(rel_diff) << " of the largest |logit|)"
            << (cc.storage == KVStorage::Float32 ? ": float rounding, the cache is exact\n"
                                                 : ": what the smaller cache storage costs\n");
  std::cout << "\ncache bytes per token per layer, float32 (MLA: DeepSeek-V2's d_c = 4*hd, d_R = hd/2)\n";
  std::cout << "  " << pad("", 34) << pad("this model", 12) << pad("DeepSeek-V2 width", 20) << "\n";
  std::cout << "  " << pad("", 34) << pad("(" + std::to_string(config.heads) + " x " + std::to_string(config.head_dim()) + ")", 12)
            << pad("(128 x 128)", 20) << "\n";
  for (const auto& r : table) {
    std::string left = r.name;
    left.resize(34, ' ');
    std::cout << "  " << left << pad(std::to_string(r.here), 12) << pad(std::to_string(r.deepseek), 20) << "\n";
  }
  return kExitOk;
}

Run setup_generate(CLI::App& sub) {
  auto opt = std::make_shared<GenerateOptions>();
  sub.add_option("--prompt", opt->prompt, "text to continue (characters of the training text)")->capture_default_str();
  sub.add_option("--tokens", opt->tokens, "characters to generate")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{100000}));
  sub.add_option("--steps", opt->steps, "training steps")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  sub.add_option("--layers", opt->layers, "transformer blocks")->capture_default_str()->check(CLI::Range(int64_t{1}, kMaxLayers));
  sub.add_option("--d-model", opt->d_model, "model width")->capture_default_str()->check(CLI::Range(int64_t{2}, kMaxDModel));
  sub.add_option("--heads", opt->heads, "query heads (must divide --d-model)")->capture_default_str()->check(CLI::Range(int64_t{1}, kMaxHeads));
  sub.add_option("--kv-heads", opt->kv_heads, "key/value heads: = --heads for MHA, 1 for MQA, between for GQA")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, kMaxHeads));
  sub.add_option("--context", opt->context, "training window in characters")->capture_default_str()->check(CLI::Range(int64_t{2}, kMaxWindow));
  sub.add_option("--batch", opt->batch, "training windows per step")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{4096}));
  sub.add_option("--lr", opt->lr, "Adam's learning rate")->capture_default_str()->check(finite_range(1e-6, 1.0));
  sub.add_option("--temperature", opt->temperature, "sampling temperature; 0 = greedy")->capture_default_str()->check(finite_range(0.0, 100.0));
  sub.add_option("--top-k", opt->top_k, "sample among the k likeliest characters; 0 = all")->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{100000}));
  sub.add_option("--seed", opt->seed, "seed of the weights (+1: training windows, +2: sampling)")->capture_default_str();
  sub.add_option("--cache", opt->cache, "KV cache storage")->capture_default_str()->check(CLI::IsMember({"float32", "bfloat16", "int8"}));
  sub.add_option("--page-size", opt->page_size, "tokens per page of a paged cache; 0 = contiguous")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{65536}));
  sub.add_option("--save", opt->save, "write the trained weights (safetensors) to this file");
  sub.add_option("--load", opt->load, "use these weights (written by --save) instead of training");
  sub.add_flag("--json", opt->json, "print the results as one JSON object (no progress bar, no streaming)");
  return [opt]() { return run_generate(*opt); };
}

const Register kGenerate{{"generate", "Train a tiny character-level model, then generate text token by token with a KV cache", setup_generate}};

}  // namespace
}  // namespace attn::cli

// bert.cpp — BertModel's forward pass on the library's layers (inference), its
// config.json / model.safetensors loader, and sentence-embedding pooling.
// Shapes of every buffer are in include/attn/bert.hpp.
#include "attn/bert.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "attn/detail/size_math.hpp"
#include "attn/safetensors.hpp"
#include "attn/sdpa.hpp"

namespace attn {

// ---- config -----------------------------------------------------------------------

void BertConfig::validate(const std::string& source) const {
  auto positive = [&](int64_t v, const char* name) {
    if (v <= 0) throw ValueError(source + ": " + name + " = " + std::to_string(v) + ", expected > 0");
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_attention_heads, "num_attention_heads");
  positive(intermediate_size, "intermediate_size");
  positive(max_position_embeddings, "max_position_embeddings");
  positive(type_vocab_size, "type_vocab_size");
  if (hidden_size % num_attention_heads != 0)
    throw ValueError(source + ": hidden_size = " + std::to_string(hidden_size) + " is not a multiple of " +
                     "num_attention_heads = " + std::to_string(num_attention_heads));
  if (!(layer_norm_eps >= 0) || !std::isfinite(layer_norm_eps))
    throw ValueError(source + ": layer_norm_eps = " + std::to_string(layer_norm_eps) + ", expected >= 0");
  // The layers are built one by one: their count is a loop, bounded (BERT
  // models have up to 48). The parameter count is the sizes' products: it
  // must fit, or a size would wrap before any tensor could refuse it.
  constexpr int64_t kMaxLayers = 1024;
  if (num_hidden_layers > kMaxLayers)
    throw ValueError(source + ": num_hidden_layers = " + std::to_string(num_hidden_layers) + ", expected at most " +
                     std::to_string(kMaxLayers));
  using detail::checked_add, detail::checked_mul;
  int64_t embeddings = 0, attention = 0, ffn = 0, total = 0;
  const bool fits = checked_add(vocab_size, max_position_embeddings, embeddings) &&
                    checked_add(embeddings, type_vocab_size, embeddings) &&
                    checked_mul(embeddings, hidden_size, embeddings) && checked_mul(hidden_size, hidden_size, attention) &&
                    checked_mul(attention, 4, attention) && checked_mul(hidden_size, intermediate_size, ffn) &&
                    checked_mul(ffn, 2, ffn) && checked_add(attention, ffn, total) &&
                    checked_mul(total, num_hidden_layers, total) && checked_add(total, embeddings, total);
  if (!fits)
    throw ValueError(source + ": the sizes (vocab_size " + std::to_string(vocab_size) + ", hidden_size " +
                     std::to_string(hidden_size) + ", intermediate_size " + std::to_string(intermediate_size) +
                     ", num_hidden_layers " + std::to_string(num_hidden_layers) +
                     ") make more than 2^63 - 1 parameters");
}

BertConfig BertConfig::from_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IOError(path + ": cannot open the model's config (no such file?)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw IOError(path + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw IOError(path + ": expected a JSON object");

  auto string_field = [&](const char* name, const char* fallback) -> std::string {
    if (!j.contains(name)) {
      if (fallback) return fallback;
      throw ValueError(path + ": no \"" + name + "\"");
    }
    if (!j[name].is_string()) throw ValueError(path + ": \"" + name + "\" is not a string");
    return j[name].get<std::string>();
  };
  const std::string model_type = string_field("model_type", nullptr);
  if (model_type != "bert")
    throw ValueError(path + ": model_type is \"" + model_type + "\"; only \"bert\" models are supported");
  const std::string act = string_field("hidden_act", "gelu");  // BertConfig's default
  if (act != "gelu")
    throw ValueError(path + ": hidden_act is \"" + act + "\"; only \"gelu\" (erf form) is supported");
  const std::string pos = string_field("position_embedding_type", "absolute");
  if (pos != "absolute")
    throw ValueError(path + ": position_embedding_type is \"" + pos + "\"; only \"absolute\" is supported");

  BertConfig c;
  auto int_field = [&](const char* name, int64_t& out, bool required) {
    if (!j.contains(name)) {
      if (required) throw ValueError(path + ": no \"" + name + "\"");
      return;
    }
    if (!j[name].is_number_integer()) throw ValueError(path + ": \"" + name + "\" is not an integer");
    out = j[name].get<int64_t>();
  };
  int_field("vocab_size", c.vocab_size, true);
  int_field("hidden_size", c.hidden_size, true);
  int_field("num_hidden_layers", c.num_hidden_layers, true);
  int_field("num_attention_heads", c.num_attention_heads, true);
  int_field("intermediate_size", c.intermediate_size, true);
  int_field("max_position_embeddings", c.max_position_embeddings, true);
  int_field("type_vocab_size", c.type_vocab_size, false);
  if (j.contains("layer_norm_eps")) {
    if (!j["layer_norm_eps"].is_number()) throw ValueError(path + ": \"layer_norm_eps\" is not a number");
    c.layer_norm_eps = j["layer_norm_eps"].get<double>();
  }
  c.validate(path);
  return c;
}

// ---- one layer --------------------------------------------------------------------

namespace {

template <class T>
void add_inplace(Tensor<T>& a, const Tensor<T>& b) {  // both contiguous, same shape
  T* p = a.data();
  const T* q = b.data();
  for (int64_t i = 0; i < a.numel(); ++i) p[i] += q[i];
}
}  // namespace

template <class T>
BertLayer<T>::BertLayer(const BertConfig& c)
    : query(c.hidden_size, c.hidden_size, true, skip_init),
      key(c.hidden_size, c.hidden_size, true, skip_init),
      value(c.hidden_size, c.hidden_size, true, skip_init),
      attention_dense(c.hidden_size, c.hidden_size, true, skip_init),
      attention_norm(c.hidden_size, c.layer_norm_eps),
      intermediate(c.hidden_size, c.intermediate_size, true, skip_init),
      output_dense(c.intermediate_size, c.hidden_size, true, skip_init),
      output_norm(c.hidden_size, c.layer_norm_eps),
      heads_(c.num_attention_heads),
      head_dim_(c.hidden_size / c.num_attention_heads) {}

template <class T>
std::vector<NamedParameter<T>> BertLayer<T>::named_parameters() {
  std::vector<NamedParameter<T>> out;
  append_prefixed(out, "attention.self.query.", query);
  append_prefixed(out, "attention.self.key.", key);
  append_prefixed(out, "attention.self.value.", value);
  append_prefixed(out, "attention.output.dense.", attention_dense);
  append_prefixed(out, "attention.output.LayerNorm.", attention_norm);
  append_prefixed(out, "intermediate.dense.", intermediate);
  append_prefixed(out, "output.dense.", output_dense);
  append_prefixed(out, "output.LayerNorm.", output_norm);
  return out;
}

template <class T>
Tensor<T> BertLayer<T>::forward(const Tensor<T>& x, const Tensor<bool>& attention_mask, Tensor<T>* weights) const {
  const int64_t B = x.size(0), L = x.size(1), E = heads_ * head_dim_;
  // [B, L, E] -> [B, L, H, D] (a view of Linear's contiguous output) -> [B, H, L, D] (strides only)
  auto heads_view = [&](const Tensor<T>& t) { return t.reshape({B, L, heads_, head_dim_}).transpose(1, 2); };
  const Tensor<T> q = heads_view(query.apply(x)), k = heads_view(key.apply(x)), v = heads_view(value.apply(x));
  SdpaOptions<T> opt;
  if (attention_mask.defined()) opt.bool_mask = attention_mask.reshape({B, 1, 1, L});  // True = attend
  opt.return_lse = false;
  opt.return_weights = weights != nullptr;
  SdpaResult<T> r = scaled_dot_product_attention(q, k, v, opt);
  if (weights) *weights = r.weights;
  const Tensor<T> ctx = r.output.transpose(1, 2).reshape({B, L, E});  // [B, L, H, D] -> [B, L, E]

  Tensor<T> h = attention_dense.apply(ctx);
  add_inplace(h, x.contiguous());
  h = attention_norm.apply(h);
  Tensor<T> out = output_dense.apply(gelu(intermediate.apply(h)));
  add_inplace(out, h);
  return output_norm.apply(out);
}

// ---- the model ----------------------------------------------------------------------

template <class T>
BertModel<T>::BertModel(const BertConfig& c)
    : word_embeddings((c.validate(), c.vocab_size), c.hidden_size, skip_init),
      position_embeddings(c.max_position_embeddings, c.hidden_size, skip_init),
      token_type_embeddings(c.type_vocab_size, c.hidden_size, skip_init),
      embeddings_norm(c.hidden_size, c.layer_norm_eps),
      config_(c) {
  layers.reserve(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers.emplace_back(c);
}

template <class T>
std::vector<NamedParameter<T>> BertModel<T>::named_parameters() {
  std::vector<NamedParameter<T>> out;
  append_prefixed(out, "embeddings.word_embeddings.", word_embeddings);
  append_prefixed(out, "embeddings.position_embeddings.", position_embeddings);
  append_prefixed(out, "embeddings.token_type_embeddings.", token_type_embeddings);
  append_prefixed(out, "embeddings.LayerNorm.", embeddings_norm);
  for (size_t i = 0; i < layers.size(); ++i)
    append_prefixed(out, "encoder.layer." + std::to_string(i) + ".", layers[i]);
  return out;
}

template <class T>
typename BertModel<T>::Output BertModel<T>::forward(const Tensor<int64_t>& ids, const Tensor<bool>& mask,
                                                    bool output_attentions) const {
  if (!ids.defined() || ids.dim() != 2)
    throw ShapeError("BertModel::forward: input_ids has shape " +
                     (ids.defined() ? shape_str(ids.shape()) : std::string("undefined")) + ", expected [B, L]");
  const int64_t B = ids.size(0), L = ids.size(1), E = config_.hidden_size;
  if (L < 1 || L > config_.max_position_embeddings)
    throw ShapeError("BertModel::forward: input_ids has shape " + shape_str(ids.shape()) + ", expected 1 <= L <= " +
                     std::to_string(config_.max_position_embeddings) + " (max_position_embeddings)");
  if (mask.defined() && mask.shape() != ids.shape())
    throw ShapeError("BertModel::forward: attention_mask has shape " + shape_str(mask.shape()) + ", expected " +
                     shape_str(ids.shape()) + " (input_ids' shape)");
  // Embeddings: word[id] + position[i] + token_type[0] (one segment), then LayerNorm.
  Tensor<T> x({B, L, E});
  const Tensor<T>& W = word_embeddings.weight.value;
  const Tensor<T>& P = position_embeddings.weight.value;
  const Tensor<T>& S = token_type_embeddings.weight.value;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < L; ++i) {
      const int64_t id = ids(b, i);
      if (id < 0 || id >= config_.vocab_size)
        throw ValueError("BertModel::forward: input_ids[" + std::to_string(b) + ", " + std::to_string(i) + "] = " +
                         std::to_string(id) + ", outside [0, " + std::to_string(config_.vocab_size) + ") (vocab_size)");
      T* row = &x(b, i, 0);
      for (int64_t e = 0; e < E; ++e) row[e] = W(id, e) + P(i, e) + S(0, e);
    }
  Output out;
  x = embeddings_norm.apply(x);
  const Tensor<bool> m = mask.defined() ? mask.contiguous() : Tensor<bool>();
  for (const auto& layer : layers) {
    Tensor<T> w;
    x = layer.forward(x, m, output_attentions ? &w : nullptr);
    if (output_attentions) out.attentions.push_back(w);
  }
  out.last_hidden_state = x;
  return out;
}

template <class T>
void load_bert_weights(BertModel<T>& model, const std::map<std::string, Tensor<T>>& tensors,
                       const std::string& source) {
  const BertConfig& c = model.config();
  const std::string from_config = " (config.json: hidden_size " + std::to_string(c.hidden_size) + ", vocab_size " +
                                  std::to_string(c.vocab_size) + ", intermediate_size " +
                                  std::to_string(c.intermediate_size) + ", max_position_embeddings " +
                                  std::to_string(c.max_position_embeddings) + ")";
  for (auto& np : model.named_parameters()) {
    auto it = tensors.find(np.name);
    if (it == tensors.end()) it = tensors.find("bert." + np.name);
    if (it == tensors.end())
      throw ValueError(source + ": tensor '" + np.name + "' is missing (a BertModel with " +
                       std::to_string(c.num_hidden_layers) + " layers needs it)");
    if (it->second.shape() != np.param->value.shape())
      throw ShapeError(source + ": tensor '" + it->first + "' has shape " + shape_str(it->second.shape()) +
                       ", expected " + shape_str(np.param->value.shape()) + from_config);
    np.param->value = it->second.clone();  // a memcpy; copy_ walks any strides element by element
  }
}

namespace {

// config.json's sizes decide how much BertModel allocates; a config of a few
// hundred bytes could ask for terabytes. Before the model is built, the
// tensors that carry every size (each embedding table, each layer's
// intermediate projection) are looked up in the weights file's header and
// their shapes compared with the config: when they match, the model is as
// large as the file's own tensors, which the reader has checked against the
// file's size.
void check_config_against_weights(const BertConfig& c, const SafetensorsHeader& header, const std::string& config_path,
                                  const std::string& weights_path) {
  if (c.num_hidden_layers > static_cast<int64_t>(header.tensors.size()))
    throw ValueError(config_path + ": num_hidden_layers = " + std::to_string(c.num_hidden_layers) + ", but " +
                     weights_path + " holds only " + std::to_string(header.tensors.size()) + " tensors");
  const auto expect = [&](const std::string& name, const Shape& shape, const std::string& sizes) {
    auto it = header.tensors.find(name);
    if (it == header.tensors.end()) it = header.tensors.find("bert." + name);
    if (it == header.tensors.end())
      throw ValueError(weights_path + ": tensor '" + name + "' is missing (a BertModel with " +
                       std::to_string(c.num_hidden_layers) + " layers needs it)");
    if (it->second.shape != shape)
      throw ShapeError(weights_path + ": tensor '" + it->first + "' has shape " + shape_str(it->second.shape) +
                       ", expected " + shape_str(shape) + " (" + config_path + ": " + sizes + ")");
  };
  const std::string H = "hidden_size " + std::to_string(c.hidden_size);
  expect("embeddings.word_embeddings.weight", {c.vocab_size, c.hidden_size},
         "vocab_size " + std::to_string(c.vocab_size) + ", " + H);
  expect("embeddings.position_embeddings.weight", {c.max_position_embeddings, c.hidden_size},
         "max_position_embeddings " + std::to_string(c.max_position_embeddings) + ", " + H);
  expect("embeddings.token_type_embeddings.weight", {c.type_vocab_size, c.hidden_size},
         "type_vocab_size " + std::to_string(c.type_vocab_size) + ", " + H);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    expect("encoder.layer." + std::to_string(l) + ".intermediate.dense.weight", {c.intermediate_size, c.hidden_size},
           "intermediate_size " + std::to_string(c.intermediate_size) + ", " + H);
}

}  // namespace

template <class T>
BertModel<T> BertModel<T>::from_pretrained(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw IOError("model directory '" + dir + "': " + (fs::exists(dir, ec) ? "not a directory" : "does not exist"));
  const std::string config_path = (fs::path(dir) / "config.json").string();
  const std::string weights_path = (fs::path(dir) / "model.safetensors").string();
  const BertConfig config = BertConfig::from_json_file(config_path);
  if (!fs::is_regular_file(weights_path, ec))
    throw IOError(weights_path + ": no such file (the model's weights, safetensors format)");
  check_config_against_weights(config, read_safetensors_header(weights_path), config_path, weights_path);
  BertModel<T> model(config);  // now no larger than the weights file implies
  load_bert_weights(model, load_safetensors<T>(weights_path), weights_path);
  return model;
}

// ---- pooling ----------------------------------------------------------------------

template <class T>
Tensor<T> mean_pooling(const Tensor<T>& hidden, const Tensor<bool>& mask) {
  if (!hidden.defined() || hidden.dim() != 3)
    throw ShapeError("mean_pooling: hidden has shape " +
                     (hidden.defined() ? shape_str(hidden.shape()) : std::string("undefined")) + ", expected [B, L, D]");
  const int64_t B = hidden.size(0), L = hidden.size(1), D = hidden.size(2);
  if (mask.defined() && mask.shape() != Shape{B, L})
    throw ShapeError("mean_pooling: attention_mask has shape " + shape_str(mask.shape()) + ", expected " +
                     shape_str({B, L}));
  Tensor<T> out({B, D});
  std::vector<double> sum(static_cast<size_t>(D));
  for (int64_t b = 0; b < B; ++b) {
    std::fill(sum.begin(), sum.end(), 0.0);
    int64_t n = 0;
    for (int64_t i = 0; i < L; ++i) {
      if (mask.defined() && !mask(b, i)) continue;
      ++n;
      for (int64_t d = 0; d < D; ++d) sum[static_cast<size_t>(d)] += hidden(b, i, d);
    }
    // sentence-transformers divides by clamp(count, min=1e-9): no token gives 0, not NaN
    for (int64_t d = 0; d < D; ++d) out(b, d) = static_cast<T>(n ? sum[static_cast<size_t>(d)] / n : 0.0);
  }
  return out;
}

template <class T>
Tensor<T> l2_normalize(const Tensor<T>& x) {
  if (!x.defined() || x.dim() != 2)
    throw ShapeError("l2_normalize: x has shape " + (x.defined() ? shape_str(x.shape()) : std::string("undefined")) +
                     ", expected [B, D]");
  Tensor<T> out(x.shape());
  for (int64_t b = 0; b < x.size(0); ++b) {
    double ss = 0;
    for (int64_t d = 0; d < x.size(1); ++d) ss += static_cast<double>(x(b, d)) * x(b, d);
    const double norm = std::max(std::sqrt(ss), 1e-12);
    for (int64_t d = 0; d < x.size(1); ++d) out(b, d) = static_cast<T>(x(b, d) / norm);
  }
  return out;
}

template class BertLayer<float>;
template class BertLayer<double>;
template class BertModel<float>;
template class BertModel<double>;
template void load_bert_weights(BertModel<float>&, const std::map<std::string, Tensor<float>>&, const std::string&);
template void load_bert_weights(BertModel<double>&, const std::map<std::string, Tensor<double>>&, const std::string&);
template Tensor<float> mean_pooling(const Tensor<float>&, const Tensor<bool>&);
template Tensor<double> mean_pooling(const Tensor<double>&, const Tensor<bool>&);
template Tensor<float> l2_normalize(const Tensor<float>&);
template Tensor<double> l2_normalize(const Tensor<double>&);

}  // namespace attn

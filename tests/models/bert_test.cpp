// BertModel: a tiny random BERT (tests/golden/bert_tiny, written by
// transformers' save_pretrained from a seeded BertConfig) must reproduce
// transformers' last_hidden_state, attention weights and pooled embeddings
// (tests/golden/bert_golden.json, tests/golden/make_bert_golden.py); padding
// must not change a text's result; and a broken model directory — missing,
// truncated, another architecture, a missing or mis-shaped tensor — must give
// a typed error that names the file or tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "attn/bert.hpp"
#include "attn/safetensors.hpp"

namespace {

using namespace attn;
using nlohmann::json;
namespace fs = std::filesystem;

const std::string kTiny = std::string(ATTN_GOLDEN_DIR) + "/bert_tiny";

json golden() {
  std::ifstream f(std::string(ATTN_GOLDEN_DIR) + "/bert_golden.json");
  return json::parse(f).at("model");
}

Tensor<int64_t> ids_of(const json& rows) {
  const auto v = rows.get<std::vector<std::vector<int64_t>>>();
  Tensor<int64_t> t({static_cast<int64_t>(v.size()), static_cast<int64_t>(v[0].size())});
  for (size_t b = 0; b < v.size(); ++b)
    for (size_t i = 0; i < v[b].size(); ++i) t(static_cast<int64_t>(b), static_cast<int64_t>(i)) = v[b][i];
  return t;
}

Tensor<bool> mask_of(const json& rows) {
  const auto v = rows.get<std::vector<std::vector<int>>>();
  Tensor<bool> t({static_cast<int64_t>(v.size()), static_cast<int64_t>(v[0].size())});
  for (size_t b = 0; b < v.size(); ++b)
    for (size_t i = 0; i < v[b].size(); ++i) t(static_cast<int64_t>(b), static_cast<int64_t>(i)) = v[b][i] != 0;
  return t;
}

// max |got − want| over the positions `keep` selects (padded query rows of
// transformers' output are not compared: they are not part of any result).
template <class T>
double max_err(const Tensor<T>& got, const json& want, const std::function<bool(int64_t)>& keep = {}) {
  const auto data = want.at("data").get<std::vector<double>>();
  EXPECT_EQ(got.shape(), want.at("shape").get<Shape>());
  double err = 0;
  for (int64_t i = 0; i < got.numel(); ++i)
    if (!keep || keep(i)) err = std::max(err, std::abs(static_cast<double>(got.flat(i)) - data[static_cast<size_t>(i)]));
  return err;
}

template <class T>
void check_golden(double tol) {
  const json g = golden();
  const auto model = BertModel<T>::from_pretrained(kTiny);
  EXPECT_EQ(model.config().hidden_size, 16);
  EXPECT_EQ(model.config().num_hidden_layers, 2);
  const Tensor<int64_t> ids = ids_of(g.at("input_ids"));
  const Tensor<bool> mask = mask_of(g.at("attention_mask"));
  const auto out = model.forward(ids, mask, true);
  const int64_t L = ids.size(1), E = 16;
  auto real_row = [&](int64_t i) { return mask.flat(i / E); };  // [B, L, E] element -> its token
  EXPECT_LT(max_err(out.last_hidden_state, g.at("last_hidden_state"), real_row), tol);
  ASSERT_EQ(out.attentions.size(), 2u);
  for (size_t l = 0; l < 2; ++l) {
    // [B, H, L, L]: compare rows of real query tokens.
    const int64_t H = 4;
    auto real_query = [&](int64_t i) { return mask(i / (H * L * L), (i / L) % L); };
    EXPECT_LT(max_err(out.attentions[l], g.at("attentions")[l], real_query), tol) << "layer " << l;
  }
  const auto emb = l2_normalize(mean_pooling(out.last_hidden_state, mask));
  EXPECT_LT(max_err(emb, g.at("embeddings")), tol);
}

TEST(Bert, TinyModelMatchesTransformersFloat) { check_golden<float>(1e-5); }
TEST(Bert, TinyModelMatchesTransformersDouble) { check_golden<double>(1e-6); }

TEST(Bert, PaddingDoesNotChangeATextsResult) {
  const json g = golden();
  const auto model = BertModel<float>::from_pretrained(kTiny);
  const Tensor<int64_t> ids = ids_of(g.at("input_ids"));
  const Tensor<bool> mask = mask_of(g.at("attention_mask"));
  const auto batch = l2_normalize(mean_pooling(model.forward(ids, mask).last_hidden_state, mask));
  for (int64_t b = 0; b < ids.size(0); ++b) {
    int64_t len = 0;
    while (len < ids.size(1) && mask(b, len)) ++len;
    const Tensor<int64_t> one = ids.select(0, b).slice(0, 0, len).clone().reshape({1, len});
    const auto alone = l2_normalize(mean_pooling(model.forward(one).last_hidden_state));
    for (int64_t d = 0; d < 16; ++d) EXPECT_NEAR(alone(0, d), batch(b, d), 1e-6) << "text " << b;
  }
}

TEST(Bert, PoolingByHand) {
  // hidden [1, 3, 2], mask [1, 1, 0]: mean of rows 0 and 1 = (2, 4), norm √20.
  const Tensor<float> h({1, 3, 2}, {1, 3, 3, 5, 100, 100});
  const Tensor<bool> m({1, 3}, {true, true, false});
  const auto p = mean_pooling(h, m);
  EXPECT_FLOAT_EQ(p(0, 0), 2.0f);
  EXPECT_FLOAT_EQ(p(0, 1), 4.0f);
  const auto n = l2_normalize(p);
  EXPECT_FLOAT_EQ(n(0, 0), 2.0f / std::sqrt(20.0f));
  EXPECT_FLOAT_EQ(n(0, 1), 4.0f / std::sqrt(20.0f));
  const auto none = mean_pooling(h, Tensor<bool>({1, 3}));  // no token: 0, not NaN
  EXPECT_EQ(none(0, 0), 0.0f);
  EXPECT_EQ(l2_normalize(none)(0, 0), 0.0f);
}

// ---- broken model directories ----------------------------------------------------

struct TempModelDir {
  fs::path path;
  explicit TempModelDir(const std::string& tag) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = fs::temp_directory_path() / ("attn_bert_" + std::string(info->name()) + "_" + tag);
    fs::remove_all(path);
    fs::create_directories(path);
    for (const char* f : {"config.json", "model.safetensors", "vocab.txt"}) fs::copy_file(fs::path(kTiny) / f, path / f);
  }
  ~TempModelDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
  std::string file(const char* f) const { return (path / f).string(); }
  void edit_config(const std::function<void(json&)>& edit) const {
    std::ifstream in(file("config.json"));
    json j = json::parse(in);
    in.close();
    edit(j);
    std::ofstream(file("config.json")) << j.dump();
  }
  void edit_weights(const std::function<void(std::map<std::string, Tensor<float>>&)>& edit) const {
    auto t = load_safetensors<float>(file("model.safetensors"));
    edit(t);
    save_safetensors(file("model.safetensors"), t);
  }
};

// Runs from_pretrained, expects exception E whose message matches `pattern`.
template <class E>
void expect_error(const std::string& dir, const std::string& pattern) {
  try {
    (void)BertModel<float>::from_pretrained(dir);
    ADD_FAILURE() << "no exception; expected one matching " << pattern;
  } catch (const E& e) {
    EXPECT_TRUE(std::regex_search(e.what(), std::regex(pattern))) << e.what() << "\n  does not match " << pattern;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

TEST(BertErrors, MissingDirectoryOrFiles) {
  expect_error<IOError>("/nonexistent/model", "model directory '/nonexistent/model': does not exist");
  TempModelDir d("files");
  expect_error<IOError>(d.file("vocab.txt"), "not a directory");
  fs::remove(d.file("model.safetensors"));
  expect_error<IOError>(d.str(), "model\\.safetensors: no such file");
  fs::remove(d.file("config.json"));
  expect_error<IOError>(d.str(), "config\\.json: cannot open");
}

TEST(BertErrors, TruncatedSafetensors) {
  TempModelDir d("trunc");
  const auto size = fs::file_size(d.file("model.safetensors"));
  fs::resize_file(d.file("model.safetensors"), size - 100);
  expect_error<IOError>(d.str(), "model\\.safetensors");
  fs::resize_file(d.file("model.safetensors"), 5);  // not even the 8-byte header length
  expect_error<IOError>(d.str(), "model\\.safetensors");
}

TEST(BertErrors, OtherArchitectureOrActivation) {
  TempModelDir d("arch");
  d.edit_config([](json& j) { j["model_type"] = "gpt2"; });
  expect_error<ValueError>(d.str(), "config\\.json: model_type is \"gpt2\"; only \"bert\"");
  d.edit_config([](json& j) { j["model_type"] = "bert"; j["hidden_act"] = "gelu_new"; });
  expect_error<ValueError>(d.str(), "hidden_act is \"gelu_new\"");
  d.edit_config([](json& j) { j["hidden_act"] = "gelu"; j.erase("model_type"); });
  expect_error<ValueError>(d.str(), "no \"model_type\"");
  d.edit_config([](json& j) { j["model_type"] = "bert"; j["num_attention_heads"] = 5; });
  expect_error<ValueError>(d.str(), "not a multiple of num_attention_heads");
  d.edit_config([](json& j) { j["num_attention_heads"] = 4; j.erase("hidden_size"); });
  expect_error<ValueError>(d.str(), "no \"hidden_size\"");
  std::ofstream(d.file("config.json")) << "{ not json";
  expect_error<IOError>(d.str(), "config\\.json: not valid JSON");
}

TEST(BertErrors, MissingTensor) {
  TempModelDir d("missing");
  d.edit_weights([](auto& t) { t.erase("encoder.layer.1.attention.self.key.weight"); });
  expect_error<ValueError>(d.str(), "model\\.safetensors: tensor 'encoder\\.layer\\.1\\.attention\\.self\\.key\\.weight' is missing");
}

TEST(BertErrors, WrongShape) {
  TempModelDir d("shape");
  d.edit_weights([](auto& t) { t["encoder.layer.0.intermediate.dense.weight"] = Tensor<float>({16, 32}); });
  expect_error<ShapeError>(d.str(),
                           "tensor 'encoder\\.layer\\.0\\.intermediate\\.dense\\.weight' has shape \\[16, 32\\], "
                           "expected \\[32, 16\\]");
  TempModelDir e("vocab");
  e.edit_config([](json& j) { j["vocab_size"] = 99; });  // the file's word embeddings have fewer rows
  expect_error<ShapeError>(e.str(), "word_embeddings\\.weight' has shape");
}

TEST(BertErrors, AConfigAskingForMoreThanTheWeightsHoldIsRefusedBeforeAllocating) {
  // config.json decides how much BertModel allocates. A few hundred bytes of
  // config used to build (and zero-fill) the whole model before the weights
  // were read. Now its sizes are bounded, then checked against the weights
  // file's header before anything is allocated.
  TempModelDir d("vocab");  // 2^31 x 16 word embeddings: 128 GiB; the file has 82 x 16
  d.edit_config([](json& j) { j["vocab_size"] = int64_t{1} << 31; });
  expect_error<ShapeError>(d.str(), "word_embeddings\\.weight' has shape \\[[0-9]+, 16\\], expected "
                                    "\\[2147483648, 16\\] \\(.*config\\.json: vocab_size 2147483648");
  TempModelDir f("intermediate");
  f.edit_config([](json& j) { j["intermediate_size"] = int64_t{1} << 40; });
  expect_error<ShapeError>(f.str(), "intermediate\\.dense\\.weight' has shape \\[32, 16\\], expected \\[1099511627776, 16\\]");
  TempModelDir e("layers");
  e.edit_config([](json& j) { j["num_hidden_layers"] = 1000; });
  expect_error<ValueError>(e.str(), "num_hidden_layers = 1000, but .*model\\.safetensors holds only [0-9]+ tensors");
  // Sizes past any file: refused from the config alone.
  e.edit_config([](json& j) { j["num_hidden_layers"] = int64_t{1} << 40; });
  expect_error<ValueError>(e.str(), "num_hidden_layers = 1099511627776, expected at most 1024");
  e.edit_config([](json& j) { j["num_hidden_layers"] = 2; j["vocab_size"] = int64_t{1} << 31; j["hidden_size"] = int64_t{1} << 31; });
  expect_error<ValueError>(e.str(), "make more than 2\\^63 - 1 parameters");
}

TEST(BertErrors, PrefixedNamesLoadAndRoundTrip) {
  // BertFor* checkpoints save "bert."-prefixed names; the library's own
  // state_dict, written with save_safetensors, loads back to the same outputs.
  TempModelDir d("prefix");
  d.edit_weights([](auto& t) {
    std::map<std::string, Tensor<float>> p;
    for (auto& [k, v] : t) p["bert." + k] = v;
    t = p;
  });
  const auto a = BertModel<float>::from_pretrained(d.str());
  auto b = BertModel<float>::from_pretrained(kTiny);
  save_safetensors(d.file("model.safetensors"), b.state_dict());
  const auto c = BertModel<float>::from_pretrained(d.str());
  const Tensor<int64_t> ids({1, 4}, {2, 22, 23, 3});
  const auto ya = a.forward(ids).last_hidden_state, yb = b.forward(ids).last_hidden_state,
             yc = c.forward(ids).last_hidden_state;
  for (int64_t i = 0; i < ya.numel(); ++i) {
    EXPECT_EQ(ya.flat(i), yb.flat(i));
    EXPECT_EQ(yc.flat(i), yb.flat(i));
  }
}

TEST(BertErrors, BadInputs) {
  const auto m = BertModel<float>::from_pretrained(kTiny);
  EXPECT_THROW(m.forward(Tensor<int64_t>({1, 2}, {2, 1000})), ValueError);  // id >= vocab_size
  EXPECT_THROW(m.forward(Tensor<int64_t>({1, 25})), ShapeError);           // > 24 positions
  EXPECT_THROW(m.forward(Tensor<int64_t>({1, 0})), ShapeError);
  EXPECT_THROW(m.forward(Tensor<int64_t>({3})), ShapeError);
  EXPECT_THROW(m.forward(Tensor<int64_t>({1, 3}), Tensor<bool>({1, 4})), ShapeError);
}

}  // namespace

namespace {

TEST(SkipInit, LinearAndEmbeddingStartAtZeroWithTheirShapes) {
  attn::Linear<float> lin(3, 2, true, attn::skip_init);
  EXPECT_EQ(lin.weight.value.shape(), (attn::Shape{2, 3}));
  EXPECT_EQ(lin.bias.value.shape(), (attn::Shape{2}));
  EXPECT_EQ(lin.weight.grad.shape(), (attn::Shape{2, 3}));
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(lin.weight.value.flat(i), 0.0f);
  // It is a working layer: y = x·Wᵀ + b with the loaded weights.
  lin.load_state_dict({{"weight", attn::Tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6})},
                       {"bias", attn::Tensor<float>({2}, {0.5f, -1})}});
  const auto y = lin.apply(attn::Tensor<float>({1, 3}, {1, 1, 1}));
  EXPECT_EQ(y(0, 0), 6.5f);
  EXPECT_EQ(y(0, 1), 14.0f);
  EXPECT_THROW(attn::Linear<float>(-1, 2, true, attn::skip_init), attn::ValueError);
  attn::Embedding<float> emb(5, 4, attn::skip_init);
  EXPECT_EQ(emb.weight.value.shape(), (attn::Shape{5, 4}));
  for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(emb.weight.value.flat(i), 0.0f);
  EXPECT_THROW(attn::Embedding<float>(0, 4, attn::skip_init), attn::ValueError);
}

}  // namespace

// tests/tools/params_calc_test.cpp — the arithmetic of `attn params`
// (tools/attn/params_calc.hpp). Expected values are written out by hand from
// the published configurations and the notes' own numbers ("6.3 M" per head,
// "58 billion" for GPT-3), never computed by the code under test.
#include <gtest/gtest.h>

#include "../../tools/attn/params_calc.hpp"

namespace pc = attn::cli::params;

TEST(ParamsCalc, Gpt3PerHeadIsTheNotes63Million) {
  const pc::HeadParams h = pc::head_params(pc::gpt3());
  // 12288 x 128 = 1,572,864 for each of query, key, value-down, value-up.
  EXPECT_EQ(h.query, 1572864);
  EXPECT_EQ(h.key, 1572864);
  EXPECT_EQ(h.value_down, 1572864);
  EXPECT_EQ(h.value_up, 1572864);
  EXPECT_EQ(h.total(), 6291456);  // the notes: "almost 6.3 Mil params"
  EXPECT_NEAR(h.total() / 1e6, 6.3, 0.05);
}

TEST(ParamsCalc, Gpt3LayerAndTotalAreTheNotes58Billion) {
  const pc::Config c = pc::gpt3();
  // One layer: 96 heads x 6,291,456 = 603,979,776 = 4 x 12288^2 (W_Q, W_K, W_V, W_O).
  EXPECT_EQ(pc::layer_params(c).total(), 603979776);
  EXPECT_EQ(pc::layer_params(c).total(), 4LL * 12288 * 12288);
  EXPECT_EQ(pc::layer_params(c).output, 12288LL * 12288);  // the value-ups side by side = W_O
  // 96 layers: 57,982,058,496, the notes' "around 58 Billion".
  EXPECT_EQ(pc::total_params(c), 57982058496LL);
  EXPECT_NEAR(pc::total_params(c) / 1e9, 58.0, 0.05);
}

TEST(ParamsCalc, Gpt2Small) {
  const pc::Config c = pc::gpt2();
  EXPECT_EQ(pc::head_params(c).total(), 196608);  // 4 x 768 x 64
  // GPT-2's c_attn [768, 2304] + c_proj [768, 768] weights = 1,769,472 + 589,824.
  EXPECT_EQ(pc::layer_params(c).total(), 1769472 + 589824);
  EXPECT_EQ(pc::total_params(c), 12LL * 2359296);  // 28,311,552
}

TEST(ParamsCalc, GqaSharesKeyAndValueWeights) {
  const pc::Config c = pc::deepseek_67b();  // d 8192, 64 heads of 128, 8 K/V heads, 95 layers
  const pc::LayerParams p = pc::layer_params(c);
  EXPECT_EQ(p.query, 8192LL * 8192);
  EXPECT_EQ(p.key, 8192LL * 1024);
  EXPECT_EQ(p.value, 8192LL * 1024);
  EXPECT_EQ(p.output, 8192LL * 8192);
  EXPECT_EQ(pc::total_params(c), 95LL * 150994944);
}

TEST(ParamsCalc, MlaLayerOfDeepSeekV2) {
  const pc::LayerParams p = pc::layer_params(pc::deepseek_v2());
  // W_DQ 5120x1536 + W_UQ 1536x(128*128) + W_QR 1536x(128*64)
  EXPECT_EQ(p.query, 7864320 + 25165824 + 12582912);
  EXPECT_EQ(p.kv_down, 2621440);        // W_DKV 5120 x 512
  EXPECT_EQ(p.key, 8388608 + 327680);   // W_UK 512 x 16384 + W_KR 5120 x 64
  EXPECT_EQ(p.value, 8388608);          // W_UV 512 x 16384
  EXPECT_EQ(p.output, 83886080);        // W_O 16384 x 5120
}

TEST(ParamsCalc, KvCacheElementsPerToken) {
  // DeepSeek-V2's paper, table 1: MHA 2 n_h d_h l, GQA 2 n_g d_h l, MQA 2 d_h l,
  // MLA (d_c + d_R) l = 4.5 d_h l.
  EXPECT_EQ(pc::kv_elements_gqa(128, 128), 32768);  // MHA, 128 heads of 128
  EXPECT_EQ(pc::kv_elements_gqa(8, 128), 2048);     // GQA, DeepSeek 67B
  EXPECT_EQ(pc::kv_elements_gqa(1, 128), 256);      // MQA
  EXPECT_EQ(pc::kv_elements_mla(512, 64), 576);     // MLA = 4.5 x 128
  // bf16, all layers: MLA 60 layers vs DeepSeek 67B's 95.
  const int64_t mla = 576LL * 60 * 2, b67 = 2048LL * 95 * 2, mha = 32768LL * 60 * 2;
  EXPECT_EQ(mla, 69120);
  EXPECT_EQ(b67, 389120);
  EXPECT_EQ(mha, 3932160);
  EXPECT_NEAR(1.0 - double(mla) / double(b67), 0.8224, 1e-4);  // not the claimed 93.3%
  EXPECT_NEAR(1.0 - (576.0 * 60 * 6 / 8) / double(b67), 0.933, 5e-4);  // 6-bit MLA cache: 93.3%
}

TEST(ParamsCalc, OverflowIsAnErrorNotAWrongNumber) {
  pc::Config c = pc::gpt3();
  c.d_model = c.head_dim = c.layers = int64_t{1} << 24;
  EXPECT_THROW(pc::total_params(c), std::overflow_error);
}

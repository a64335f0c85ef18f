// cache_bytes — how much a decoder must remember per token: MHA, GQA, MQA and
// MLA on the same model width, each run token by token with its cache.
//
// A tiny model (d_model 64, 8 query heads of dim 8, one layer, float32)
// generates 32 steps greedily-free (the inputs are random token embeddings;
// the point is the cache). MHA/GQA/MQA keep K and V for each KV head
// (2 · H_kv · head_dim numbers per token); MLA keeps the KV latent c_KV and
// the one shared RoPE key (d_c + d_R numbers per token), DeepSeek-V2's trick.
// The MLA decoder's output is also checked against the full-sequence forward.
//
//   build/release/examples/example_cache_bytes
#include <attn/attn.hpp>

#include <cmath>
#include <cstdio>
#include <random>

using attn::Tensor;

namespace {

constexpr int64_t kModel = 64, kHeads = 8, kHeadDim = 8, kSteps = 32;

Tensor<float> random_tokens(int64_t n, uint32_t seed) {
  Tensor<float> t({1, n, kModel});
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist;
  for (int64_t i = 0; i < t.numel(); ++i) t.flat(i) = dist(gen);
  return t;
}

// A causal attention layer with H_kv key/value heads (MHA: H_kv = H; GQA:
// 1 < H_kv < H; MQA: H_kv = 1), RoPE on queries and keys, and a KV cache
// [1, H_kv, max_len, head_dim] for K and for V.
struct KVCachedAttention {
  int64_t kv_heads;
  attn::Generator gen{1};
  attn::Linear<float> Wq{kModel, kHeads * kHeadDim, false, gen};
  attn::Linear<float> Wk{kModel, kv_heads * kHeadDim, false, gen};
  attn::Linear<float> Wv{kModel, kv_heads * kHeadDim, false, gen};
  attn::Linear<float> Wo{kHeads * kHeadDim, kModel, false, gen};
  Tensor<float> k_cache{{1, kv_heads, kSteps, kHeadDim}}, v_cache{{1, kv_heads, kSteps, kHeadDim}};
  int64_t length = 0;

  explicit KVCachedAttention(int64_t hkv) : kv_heads(hkv) {}

  static Tensor<float> heads(const Tensor<float>& y, int64_t h) {  // [1, n, h·d] → [1, h, n, d]
    return y.reshape({1, y.size(1), h, kHeadDim}).transpose(1, 2);
  }

  Tensor<float> step(const Tensor<float>& x) {  // x [1, 1, d_model]
    const Tensor<float> q = attn::apply_rope(heads(Wq.apply(x), kHeads), length);
    const Tensor<float> k = attn::apply_rope(heads(Wk.apply(x), kv_heads), length);
    k_cache.slice(2, length, length + 1).copy_(k);
    v_cache.slice(2, length, length + 1).copy_(heads(Wv.apply(x), kv_heads));
    ++length;
    attn::SdpaOptions<float> o;
    o.enable_gqa = kv_heads != kHeads;
    const auto r = attn::scaled_dot_product_attention(q, k_cache.slice(2, 0, length), v_cache.slice(2, 0, length), o);
    return Wo.apply(r.output.transpose(1, 2).contiguous().reshape({1, 1, kHeads * kHeadDim}));
  }
  int64_t cache_bytes_per_token() const { return 2 * kv_heads * kHeadDim * static_cast<int64_t>(sizeof(float)); }
};

}  // namespace

int main() {
  const Tensor<float> tokens = random_tokens(kSteps, 7);
  std::printf("one layer, d_model %lld, %lld query heads of dim %lld, float32, %lld tokens decoded one by one\n\n",
              static_cast<long long>(kModel), static_cast<long long>(kHeads), static_cast<long long>(kHeadDim),
              static_cast<long long>(kSteps));
  std::printf("%-28s %16s %18s %10s\n", "attention", "cache B/token", "cache B, all steps", "vs MHA");

  double mha_bytes = 0;
  for (int64_t hkv : {kHeads, int64_t{2}, int64_t{1}}) {
    KVCachedAttention layer(hkv);
    for (int64_t t = 0; t < kSteps; ++t) layer.step(tokens.slice(1, t, t + 1).contiguous());
    const double b = static_cast<double>(layer.cache_bytes_per_token());
    if (hkv == kHeads) mha_bytes = b;
    const char* name = hkv == kHeads ? "MHA (8 KV heads)" : hkv == 1 ? "MQA (1 KV head)" : "GQA (2 KV heads)";
    std::printf("%-28s %16.0f %18.0f %9.1fx\n", name, b, b * kSteps, mha_bytes / b);
  }

  attn::MLAConfig c;
  c.d_model = kModel;
  c.num_heads = kHeads;
  c.head_dim = kHeadDim;
  c.rope_dim = 4;
  c.kv_latent_dim = 16;
  c.q_latent_dim = 24;
  attn::Generator gen(1);
  attn::MultiHeadLatentAttention<float> mla(c, gen);
  for (attn::MLACacheForm form : {attn::MLACacheForm::Naive, attn::MLACacheForm::Absorbed}) {
    attn::MLADecoder<float> dec(mla, 1, kSteps, form);
    Tensor<float> out({1, kSteps, kModel});
    for (int64_t t = 0; t < kSteps; ++t) out.slice(1, t, t + 1).copy_(dec.step(tokens.slice(1, t, t + 1).contiguous()));
    const Tensor<float> full = mla.forward(tokens);
    double err = 0;
    for (int64_t i = 0; i < full.numel(); ++i) err = std::max(err, static_cast<double>(std::abs(out.flat(i) - full.flat(i))));
    const double b = static_cast<double>(dec.cache_bytes_per_token());
    std::printf("%-28s %16.0f %18.0f %9.1fx   (max |decode - full forward| = %.1e)\n",
                form == attn::MLACacheForm::Absorbed ? "MLA absorbed (c_KV ; k_R)" : "MLA naive (expanded K, V)", b,
                b * kSteps, mha_bytes / b, err);
  }
  std::printf("\nDeepSeek-V2 sizes (128 heads x 128, latent 512, RoPE 64), per token per layer, float32:\n");
  std::printf("  MHA %d B, GQA-8 %d B, MQA %d B, MLA %d B\n", 2 * 128 * 128 * 4, 2 * 8 * 128 * 4, 2 * 128 * 4,
              (512 + 64) * 4);
  return 0;
}

// The split-KV decode kernel's plumbing: from a described decode step
// (src/sdpa_problem.hpp) to the kernel's raw parameters, chunk choice, reused
// buffers, the dispatch to the SIMD target chosen for the call
// (cpu/simd_target.hpp) and the merge of the chunks. The kernel
// itself is in decode-inl.h (one copy per target, as flash_attention.cpp).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/decode.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"

#include "cpu/decode-inl.h"

#if HWY_ONCE

#include <algorithm>
#include <string>

#include "attn/detail/size_math.hpp"
#include "attn/errors.hpp"
#include "attn/threading.hpp"
#include "cpu/buffer.hpp"
#include "cpu/decode.hpp"
#include "cpu/decode_params.hpp"
#include "cpu/parallel.hpp"
#include "cpu/simd_target.hpp"

namespace attn::cpu {

HWY_EXPORT(DecodeScratchFloats);
HWY_EXPORT(SplitKVDecode);

namespace {

// Partial results and the kernel's scratch, one buffer each per calling thread.
thread_local AlignedBuffer t_partials, t_scratch;

struct MergeCtx {
  const DecodeParams* p;
  float* weights;  // [threads][nsplit]
};

// Row (b, h, i) of the output: its nsplit chunks merged in chunk order.
void MergeRow(void* ctx_ptr, int64_t row, int thread) {
  const MergeCtx& c = *static_cast<const MergeCtx*>(ctx_ptr);
  const DecodeParams& p = *c.p;
  const int64_t i = row % p.Lq, h = (row / p.Lq) % p.Hq, b = row / p.Lq / p.Hq;
  merge_partial_row<float>(p.nsplit, p.Dv, p.part_out + row * p.nsplit * p.Dv, p.Dv, 1, p.part_lse + row * p.nsplit,
                           1, c.weights + thread * p.nsplit,
                           p.out + b * p.out_stride[0] + h * p.out_stride[1] + i * p.out_stride[2], p.out_stride[3],
                           p.lse + b * p.lse_stride[0] + h * p.lse_stride[1] + i * p.lse_stride[2]);
}

}  // namespace

int64_t auto_split_keys(int64_t batch, int64_t kv_heads, int64_t max_length) {
  // Aim at >= 64 items in all (plenty for dynamic scheduling over a few
  // threads, whatever their number), chunks of 256..1024 keys: long enough
  // that the merge (S·Dv per row) stays far below the chunk's reads,
  // short enough that a late thread finds work left.
  const int64_t heads = std::max<int64_t>(1, batch * kv_heads);
  const int64_t want_splits = std::max<int64_t>(1, (64 + heads - 1) / heads);
  const int64_t per_split = (max_length + want_splits - 1) / want_splits;
  return std::clamp<int64_t>((per_split + 63) / 64 * 64, 256, 1024);
}

std::string decode_simd_target() { return current_simd_target(); }

SplitKVResult split_kv_decode(const Tensor<float>& query, const Tensor<float>& key_storage,
                              const Tensor<float>& value_storage, const std::vector<int64_t>& lengths,
                              const SdpaOptions<float>& o, int64_t split_keys, bool keep_partials,
                              int64_t page_size, const int64_t* page_table, int64_t page_table_stride) {
  const char* fn = "split_kv_decode";
  if (query.dim() != 4 || key_storage.dim() != 4 || value_storage.dim() != 4 || key_storage.stride(3) != 1 ||
      value_storage.stride(3) != 1 || (page_size == 0 && key_storage.size(0) != query.size(0)) ||
      key_storage.size(3) != query.size(3))
    throw ShapeError(std::string(fn) + ": query " + shape_str(query.shape()) + ", key storage " +
                     shape_str(key_storage.shape()) + " and value storage " + shape_str(value_storage.shape()) +
                     " do not fit [B, Hq, Lq, Dk], [B, Hkv, capacity, Dk] (unit stride along Dk), "
                     "[B, Hkv, capacity, Dv]");
  SdpaProblem<float> pb;
  pb.B = query.size(0), pb.Hq = query.size(1), pb.Lq = query.size(2), pb.Dk = query.size(3);
  pb.Hkv = key_storage.size(1), pb.Dv = value_storage.size(3);
  if (static_cast<int64_t>(lengths.size()) != pb.B || pb.Hkv == 0 || pb.Hq % pb.Hkv)
    throw ShapeError(std::string(fn) + ": query " + shape_str(query.shape()) + " and " + std::to_string(pb.Hkv) +
                     " KV heads with " + std::to_string(lengths.size()) +
                     " lengths do not fit: Hq must be a multiple of Hkv, one length per sequence");
  pb.group = pb.Hq / pb.Hkv;
  describe_options(fn, o, pb);
  KVCache::RawLayer raw{};
  raw.storage = KVStorage::Float32;
  raw.k = key_storage.data(), raw.v = value_storage.data();
  copy_strides(key_storage.strides(), raw.k_stride);
  copy_strides(value_storage.strides(), raw.v_stride);
  raw.quant_group = 1;
  return split_kv_decode(pb, query, raw, lengths, split_keys, keep_partials, page_size, page_table,
                         page_table_stride);
}

SplitKVResult split_kv_decode(const SdpaProblem<float>& pb, const Tensor<float>& query, const KVCache::RawLayer& raw,
                              const std::vector<int64_t>& lengths, int64_t split_keys, bool keep_partials,
                              int64_t page_size, const int64_t* page_table, int64_t page_table_stride) {
  const SdpaOptions<float>& o = *pb.options;
  DecodeParams p;
  p.B = pb.B, p.Hq = pb.Hq, p.Lq = pb.Lq, p.Dk = pb.Dk;
  p.Hkv = pb.Hkv, p.Dv = pb.Dv;
  p.group = pb.group;
  SplitKVResult r;
  r.output = Tensor<float>({p.B, p.Hq, p.Lq, p.Dv});
  r.lse = Tensor<float>({p.B, p.Hq, p.Lq});
  const int64_t max_length = lengths.empty() ? 0 : *std::max_element(lengths.begin(), lengths.end());
  p.chunk = split_keys > 0 ? split_keys : auto_split_keys(p.B, p.Hkv, max_length);
  p.nsplit = std::max<int64_t>(1, (max_length + p.chunk - 1) / p.chunk);
  if (keep_partials) {
    r.partial_output = Tensor<float>({p.nsplit, p.B, p.Hq, p.Lq, p.Dv});
    r.partial_lse = Tensor<float>({p.nsplit, p.B, p.Hq, p.Lq});
  }
  if (p.B == 0 || p.Hq == 0 || p.Lq == 0) return r;

  p.q = query.data();
  copy_strides(query.strides(), p.q_stride);
  p.kv_type = raw.storage == KVStorage::Float32 ? 0 : raw.storage == KVStorage::BFloat16 ? 1 : 2;
  p.k = raw.k, p.v = raw.v;
  std::copy(raw.k_stride, raw.k_stride + 3, p.k_stride);
  std::copy(raw.v_stride, raw.v_stride + 3, p.v_stride);
  p.k_scale = raw.k_scale, p.v_scale = raw.v_scale;
  std::copy(raw.k_scale_stride, raw.k_scale_stride + 3, p.k_scale_stride);
  std::copy(raw.v_scale_stride, raw.v_scale_stride + 3, p.v_scale_stride);
  p.quant_group = raw.quant_group;
  p.lengths = lengths.data();
  p.page_size = page_size, p.page_table = page_table, p.page_table_stride = page_table_stride;
  p.out = r.output.data(), p.lse = r.lse.data();
  copy_strides(r.output.strides(), p.out_stride);
  copy_strides(r.lse.strides(), p.lse_stride);

  // The score's ingredients, converted exactly as the reference converts them.
  p.scale = static_cast<float>(pb.scale);
  p.softcap = static_cast<float>(o.softcap);
  if (pb.alibi.defined()) {
    p.alibi = pb.alibi.data();
    copy_strides(pb.alibi.strides(), p.alibi_stride);
  }
  if (o.sinks.defined()) p.sinks = o.sinks.data(), p.sinks_stride = o.sinks.stride(0);
  p.causal = o.is_causal;
  p.bottom_right = o.causal_alignment == CausalAlignment::BottomRight;
  p.window_left = o.window_left, p.window_right = o.window_right;

  // Below ~256 KiB of cache to read, waking a second thread costs more than it saves.
  const double element_bytes = p.kv_type == 0 ? 4.0 : p.kv_type == 1 ? 2.0 : 1.0;
  const double bytes = element_bytes * static_cast<double>(p.B * p.Hkv) * static_cast<double>(max_length) *
                       static_cast<double>(p.Dk + p.Dv);
  p.threads = bytes < 262144.0 ? 1 : get_num_threads();

  // Partials [B, Hq, Lq, nsplit, Dv] and [B, Hq, Lq, nsplit]: a row's chunks side by side for the merge.
  // (rows·Dv is the output's element count; the chunks multiply it, so the
  // sums saturate and an impossible size becomes floats()'s ResourceError.)
  using detail::saturating_add, detail::saturating_mul;
  const int64_t rows = p.B * p.Hq * p.Lq;
  const int64_t part_floats = saturating_mul(saturating_mul(rows, p.nsplit), p.Dv);
  float* parts = t_partials.floats(saturating_add(saturating_add(part_floats, saturating_mul(rows, p.nsplit)),
                                                  saturating_mul(p.threads, p.nsplit)),
                                   "attention_decode");
  p.part_out = parts;
  p.part_lse = parts + part_floats;
  float* weights = p.part_lse + rows * p.nsplit;

  const size_t target = chosen_target_index();
  const int64_t per_thread = (HWY_DISPATCH_TABLE(DecodeScratchFloats)[target](p) + 15) / 16 * 16;
  float* scratch = t_scratch.floats(saturating_mul(per_thread, p.threads), "attention_decode");
  HWY_DISPATCH_TABLE(SplitKVDecode)[target](p, scratch);

  MergeCtx mc{&p, weights};
  parallel_for(rows, p.threads, &MergeRow, &mc);

  if (keep_partials)
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t i = row % p.Lq, h = (row / p.Lq) % p.Hq, b = row / p.Lq / p.Hq;
      for (int64_t c = 0; c < p.nsplit; ++c) {
        r.partial_lse(c, b, h, i) = p.part_lse[row * p.nsplit + c];
        for (int64_t x = 0; x < p.Dv; ++x) r.partial_output(c, b, h, i, x) = p.part_out[(row * p.nsplit + c) * p.Dv + x];
      }
    }
  return r;
}

}  // namespace attn::cpu

#endif  // HWY_ONCE

// The fast CPU forward of scaled dot-product attention: argument plumbing,
// the reused workspace and the run-time choice of SIMD target. The kernels
// themselves are in flash_attention-inl.h (one copy per target).
//
// Highway's foreach_target.h re-includes this file once per SIMD target with
// HWY_TARGET set; the -inl.h kernels land in namespaces attn::cpu::N_AVX2,
// N_SSE4, N_EMU128, ... and the code under HWY_ONCE (compiled once) picks one
// per call with the dispatch tables HWY_EXPORT builds.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/flash_attention.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"

#include "cpu/flash_attention-inl.h"

#if HWY_ONCE

#include <cmath>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <new>
#include <string>

#include "attn/detail/size_math.hpp"
#include "attn/errors.hpp"
#include "attn/threading.hpp"
#include "cpu/flash_attention.hpp"
#include "cpu/flash_attention_params.hpp"

namespace attn::cpu {

HWY_EXPORT(FlashForwardWorkspaceFloats);
HWY_EXPORT(FlashForward);
HWY_EXPORT(FlashBackwardWorkspaceFloats);
HWY_EXPORT(FlashBackward);
HWY_EXPORT(TargetName);

namespace {

// ---- workspace -------------------------------------------------------------------
// One growing buffer per calling thread, kept for the life of the thread: on
// this machine the first touch of a fresh page costs microseconds, so a
// buffer that is freed and reallocated on every call would cost more than
// the packing it holds. Sized by the largest call so far.
// (2^62: the headroom added below must not overflow size_t.)
constexpr int64_t kMaxBufferBytes = int64_t{1} << 62;

class Workspace {
 public:
  // `what` names the call in the ResourceError thrown when the system
  // refuses the memory (the buffer is then empty, and later calls work).
  float* floats(int64_t n, const char* what) {
    int64_t checked;
    if (!detail::checked_bytes(std::max<int64_t>(n, 1), sizeof(float), checked) || checked > kMaxBufferBytes)
      throw ResourceError(std::string(what) + ": cannot allocate a workspace of " + std::to_string(n) +
                          " floats (more than 2^62 bytes)");
    const size_t bytes = static_cast<size_t>(checked);
    if (bytes > capacity_) {
      std::free(data_);
      // A little headroom so a slightly larger call does not reallocate.
      capacity_ = (bytes + bytes / 8 + 4095) / 4096 * 4096;
      data_ = std::aligned_alloc(64, capacity_);
      if (!data_) {
        capacity_ = 0;
        throw ResourceError(std::string(what) + ": cannot allocate a workspace of " + std::to_string(bytes) +
                            " bytes: out of memory");
      }
    }
    return static_cast<float*>(data_);
  }
  ~Workspace() { std::free(data_); }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

thread_local Workspace t_workspace;

void copy_strides(const Shape& from, int64_t* to) {
  for (size_t i = 0; i < from.size(); ++i) to[i] = from[i];
}

// ---- SIMD target choice ------------------------------------------------------------

int64_t target_bit(const std::string& name) {
  for (int64_t t : hwy::SupportedAndGeneratedTargets())
    if (name == hwy::TargetName(t)) return t;
  return 0;
}

// ATTN_SIMD_TARGET, read once, before the first choice of target.
void apply_environment_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const char* env = std::getenv("ATTN_SIMD_TARGET"); env && *env) force_simd_target(env);
  });
}

// The dispatch-table index of the target this call uses: fixed once at the
// top of the call, so every kernel of the call runs the same target.
size_t chosen_index() {
  apply_environment_once();
  hwy::ChosenTarget& chosen = hwy::GetChosenTarget();
  if (!chosen.IsInitialized()) chosen.Update(hwy::SupportedTargets());
  return chosen.GetIndex();
}

}  // namespace

std::vector<std::string> available_simd_targets() {
  std::vector<std::string> names;
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) names.emplace_back(hwy::TargetName(t));
  return names;
}

bool force_simd_target(const std::string& name) {
  if (name.empty()) {
    hwy::SetSupportedTargetsForTest(0);  // back to what the CPU supports
    return true;
  }
  hwy::SetSupportedTargetsForTest(0);
  const int64_t bit = target_bit(name);
  if (bit == 0) return false;
  hwy::SetSupportedTargetsForTest(bit);  // also re-chooses the target
  return true;
}

std::string current_simd_target() { return HWY_DISPATCH_TABLE(TargetName)[chosen_index()](); }

// ---- the internal API ---------------------------------------------------------------

bool flash_supports(const Tensor<float>& query, const Tensor<float>& key, const Tensor<float>& value,
                    const SdpaOptions<float>& /*options: every option is supported*/) {
  if (!query.defined() || !key.defined() || !value.defined()) return false;
  if (query.dim() != 4 || key.dim() != 4 || value.dim() != 4) return false;
  // Key and row indices, and ALiBi distances, are int32 inside the kernels.
  constexpr int64_t kMaxLength = int64_t{1} << 30;
  return query.size(2) < kMaxLength && key.size(2) < kMaxLength;
}

namespace {

// The parameters shared by forward and backward, and the broadcast views
// they point into (kept alive for the duration of the call).
struct Prepared {
  FlashForwardParams p;
  Tensor<float> alibi, float_mask;
  Tensor<bool> bool_mask;
};

Prepared prepare(const char* fn, const Tensor<float>& query, const Tensor<float>& key, const Tensor<float>& value,
                 const SdpaOptions<float>& o) {
  if (!flash_supports(query, key, value, o))
    throw ValueError(std::string(fn) + ": arguments not supported by the fast path (see flash_supports)");
  Prepared prep;
  FlashForwardParams& p = prep.p;
  p.B = query.size(0), p.Hq = query.size(1), p.Lq = query.size(2), p.Dk = query.size(3);
  p.Hkv = key.size(1), p.Lk = key.size(2), p.Dv = value.size(3);
  if (key.size(0) != p.B || key.size(3) != p.Dk || value.size(0) != p.B || value.size(1) != p.Hkv ||
      value.size(2) != p.Lk || (p.Hkv == 0 ? p.Hq != 0 : p.Hq % p.Hkv != 0))
    throw ShapeError(std::string(fn) + ": query " + shape_str(query.shape()) + ", key " + shape_str(key.shape()) +
                     " and value " + shape_str(value.shape()) +
                     " do not fit [B, Hq, Lq, Dk], [B, Hkv, Lk, Dk], [B, Hkv, Lk, Dv] with Hq a multiple of Hkv");
  p.group = p.Hkv > 0 ? p.Hq / p.Hkv : 1;
  p.q = query.data(), p.k = key.data(), p.v = value.data();
  copy_strides(query.strides(), p.q_stride);
  copy_strides(key.strides(), p.k_stride);
  copy_strides(value.strides(), p.v_stride);

  // The score's ingredients, converted exactly as the reference converts them.
  const double scale = o.scale ? *o.scale : (p.Dk > 0 ? 1.0 / std::sqrt(static_cast<double>(p.Dk)) : 1.0);
  p.scale = static_cast<float>(scale);
  p.softcap = static_cast<float>(o.softcap);
  const Shape scores_shape{p.B, p.Hq, p.Lq, p.Lk};
  if (o.alibi_slopes.defined()) {
    prep.alibi = o.alibi_slopes.expand({p.B, p.Hq}, "alibi_slopes");
    p.alibi = prep.alibi.data();
    copy_strides(prep.alibi.strides(), p.alibi_stride);
  }
  if (o.float_mask.defined()) {
    prep.float_mask = o.float_mask.expand(scores_shape, "float_mask");
    p.float_mask = prep.float_mask.data();
    copy_strides(prep.float_mask.strides(), p.float_mask_stride);
  }
  if (o.bool_mask.defined()) {
    prep.bool_mask = o.bool_mask.expand(scores_shape, "bool_mask");
    p.bool_mask = prep.bool_mask.data();
    copy_strides(prep.bool_mask.strides(), p.bool_mask_stride);
  }
  if (o.sinks.defined()) {
    p.sinks = o.sinks.data();
    p.sinks_stride = o.sinks.stride(0);
  }
  p.causal = o.is_causal;
  p.diag = o.causal_alignment == CausalAlignment::BottomRight ? p.Lk - p.Lq : 0;
  p.window_left = o.window_left;
  p.window_right = o.window_right;
  p.dropout_p = o.dropout_p;
  p.dropout_seed = o.dropout_seed;
  p.dropout_scale = static_cast<float>(1.0 / (1.0 - o.dropout_p));
  // Below ~1 MFLOP waking a second thread costs more than it saves.
  const double flops = 2.0 * static_cast<double>(p.B * p.Hq) * static_cast<double>(p.Lq) *
                       static_cast<double>(p.Lk) * static_cast<double>(p.Dk + p.Dv);
  p.threads = flops < 1e6 ? 1 : get_num_threads();
  return prep;
}

// The kernels' layouts (MakeLayout, MakeBwdLayout) add up their buffers in
// int64_t. Inputs can be views of stride 0, whose shapes cost no memory, so
// the sizes are bounded first, in double, by more than every buffer of
// either layout: when the bound fits, none of that arithmetic can overflow;
// when it does not, the workspace could never be allocated anyway.
void check_workspace_bound(const char* fn, const FlashForwardParams& p, const Tensor<float>& query,
                           const Tensor<float>& key, const Tensor<float>& value) {
  const double width = static_cast<double>(p.Dk) + static_cast<double>(p.Dv) + 128.0;  // padded to tiles
  const double rows = static_cast<double>(p.Lq) + static_cast<double>(p.Lk) + 1024.0;  // padded to blocks
  const double heads = static_cast<double>(p.B) * (static_cast<double>(p.Hq) + static_cast<double>(p.Hkv));
  const double floats = 8.0 * heads * rows * width + static_cast<double>(p.threads) * (1024.0 * width + 65536.0);
  if (floats > 0x1p59)
    throw ResourceError(std::string(fn) + ": query " + shape_str(query.shape()) + ", key " + shape_str(key.shape()) +
                        " and value " + shape_str(value.shape()) + " need a workspace of about " +
                        std::to_string(4.0 * floats) + " bytes, more than can be allocated");
}

void require_shape(const char* fn, const char* arg, const Tensor<float>& t, const Shape& want) {
  if (!t.defined() || t.shape() != want)
    throw ShapeError(std::string(fn) + ": " + arg + " has shape " +
                     (t.defined() ? shape_str(t.shape()) : std::string("(undefined)")) + ", expected " +
                     shape_str(want));
}

}  // namespace

void flash_attention_forward(const Tensor<float>& query, const Tensor<float>& key, const Tensor<float>& value,
                             const SdpaOptions<float>& o, Tensor<float>& out, Tensor<float>& lse,
                             Tensor<float>* weights) {
  const char* fn = "flash_attention_forward";
  Prepared prep = prepare(fn, query, key, value, o);
  FlashForwardParams& p = prep.p;
  const Shape out_shape{p.B, p.Hq, p.Lq, p.Dv}, lse_shape{p.B, p.Hq, p.Lq};
  // Every element of out and lse is written below (FinishRow), so they need no zero-fill.
  if (!out.defined()) out = Tensor<float>::uninitialized(out_shape);
  if (!lse.defined()) lse = Tensor<float>::uninitialized(lse_shape);
  require_shape(fn, "out", out, out_shape);
  require_shape(fn, "lse", lse, lse_shape);
  p.out = out.data(), p.lse = lse.data();
  copy_strides(out.strides(), p.out_stride);
  copy_strides(lse.strides(), p.lse_stride);
  if (o.return_weights) {
    if (!weights)
      throw ValueError(std::string(fn) + ": options.return_weights is set but no weights tensor was passed");
    const Shape weights_shape{p.B, p.Hq, p.Lq, p.Lk};
    if (!weights->defined()) *weights = Tensor<float>(weights_shape);
    require_shape(fn, "weights", *weights, weights_shape);
    p.weights = weights->data();
    copy_strides(weights->strides(), p.weights_stride);
  }

  if (p.B == 0 || p.Hq == 0 || p.Lq == 0) return;
  check_workspace_bound(fn, p, query, key, value);
  const size_t target = chosen_index();
  p.workspace = t_workspace.floats(HWY_DISPATCH_TABLE(FlashForwardWorkspaceFloats)[target](p), fn);
  HWY_DISPATCH_TABLE(FlashForward)[target](p);
}

namespace {
// Does the float mask broadcast over batch, heads or query rows (a size-1 or
// missing dim where the scores have more)? Its gradient is then a sum over
// those dims, across work items.
bool mask_broadcasts_over_rows(const Shape& scores, const Shape& m) {
  for (size_t d = 0; d < 3; ++d) {
    const int64_t k = static_cast<int64_t>(d) - 4 + static_cast<int64_t>(m.size());  // mask dim aligned with d
    const int64_t size = k >= 0 ? m[static_cast<size_t>(k)] : 1;
    if (scores[d] > 1 && size == 1) return true;
  }
  return false;
}
}  // namespace

bool flash_supports_backward(const Tensor<float>& query, const Tensor<float>& key, const Tensor<float>& value,
                             const SdpaOptions<float>& options, bool /*need_float_mask_grad*/) {
  // Every float-mask gradient: one broadcast over batch, heads or rows is
  // summed after the kernel, in a fixed order (flash_attention_backward).
  return flash_supports(query, key, value, options);
}

SdpaGradients<float> flash_attention_backward(const Tensor<float>& grad_output, const Tensor<float>& query,
                                              const Tensor<float>& key, const Tensor<float>& value,
                                              const Tensor<float>& output, const Tensor<float>& lse,
                                              const SdpaOptions<float>& o, bool need_float_mask_grad) {
  const char* fn = "flash_attention_backward";
  if (!flash_supports_backward(query, key, value, o, need_float_mask_grad))
    throw ValueError(std::string(fn) + ": arguments not supported by the fast path (see flash_supports_backward)");
  if (need_float_mask_grad && !o.float_mask.defined())
    throw ValueError(std::string(fn) + ": need_float_mask_grad is true but options.float_mask is not given");
  Prepared prep = prepare(fn, query, key, value, o);
  FlashBackwardParams bp;
  bp.f = prep.p;
  const FlashForwardParams& p = bp.f;
  require_shape(fn, "grad_output", grad_output, {p.B, p.Hq, p.Lq, p.Dv});
  require_shape(fn, "output", output, {p.B, p.Hq, p.Lq, p.Dv});
  require_shape(fn, "lse", lse, {p.B, p.Hq, p.Lq});

  SdpaGradients<float> g;
  // Every element of dQ (FinishQueryBlock), dK and dV (KeyGroupItem, every
  // key block of every key/value head) is written by the kernel: no zero-fill.
  g.d_query = Tensor<float>::uninitialized(query.shape());
  g.d_key = Tensor<float>::uninitialized(key.shape());
  g.d_value = Tensor<float>::uninitialized(value.shape());
  // The float mask's gradient is ds itself, summed over the dims the mask
  // is broadcast along. Along keys the kernel sums it (in order, within a
  // row). Over batch, heads or query rows the sum would cross work items, so
  // the kernel writes the full ds [B, Hq, Lq, Lk] and it is summed here, one
  // thread, in (b, h, i) order: deterministic, no atomics, at the cost of a
  // buffer of the scores' size (as the reference path holds).
  const Shape scores{p.B, p.Hq, p.Lq, p.Lk};
  Tensor<float> d_mask_view, d_mask_full;
  if (need_float_mask_grad) {
    g.d_float_mask = Tensor<float>(o.float_mask.shape());
    d_mask_view = g.d_float_mask.expand(scores);
    if (mask_broadcasts_over_rows(scores, o.float_mask.shape())) {
      Shape rows_full = scores;  // full over (b, h, i), broadcast along j as the mask is
      rows_full[3] = d_mask_view.stride(3) == 0 ? 1 : p.Lk;
      d_mask_full = Tensor<float>(rows_full).expand(scores);
      bp.d_mask = d_mask_full.data();
      copy_strides(d_mask_full.strides(), bp.d_mask_stride);
    } else {
      bp.d_mask = d_mask_view.data();
      copy_strides(d_mask_view.strides(), bp.d_mask_stride);
    }
  }
  if (o.sinks.defined()) {
    g.d_sinks = Tensor<float>({p.Hq});
    bp.d_sinks = g.d_sinks.data();
    bp.d_sinks_stride = 1;
  }
  bp.dout = grad_output.data(), bp.out = output.data(), bp.lse = lse.data();
  copy_strides(grad_output.strides(), bp.dout_stride);
  copy_strides(output.strides(), bp.out_stride);
  copy_strides(lse.strides(), bp.lse_stride);
  bp.dq = g.d_query.data(), bp.dk = g.d_key.data(), bp.dv = g.d_value.data();
  copy_strides(g.d_query.strides(), bp.dq_stride);
  copy_strides(g.d_key.strides(), bp.dk_stride);
  copy_strides(g.d_value.strides(), bp.dv_stride);

  if (p.B == 0 || p.Hkv == 0) return g;
  check_workspace_bound(fn, p, query, key, value);
  const size_t target = chosen_index();
  bp.f.workspace = t_workspace.floats(HWY_DISPATCH_TABLE(FlashBackwardWorkspaceFloats)[target](bp), fn);
  HWY_DISPATCH_TABLE(FlashBackward)[target](bp);
  if (d_mask_full.defined()) {
    const int64_t J = d_mask_view.stride(3) == 0 ? 1 : p.Lk;
    for (int64_t b = 0; b < p.B; ++b)
      for (int64_t h = 0; h < p.Hq; ++h)
        for (int64_t i = 0; i < p.Lq; ++i)
          for (int64_t j = 0; j < J; ++j) d_mask_view(b, h, i, j) += d_mask_full(b, h, i, j);
  }
  return g;
}

}  // namespace attn::cpu

#endif  // HWY_ONCE

// The fast CPU forward and backward of scaled dot-product attention: from a
// described call (src/sdpa_problem.hpp) to the kernels' raw parameters, the
// reused workspace, the dispatch to the SIMD target chosen for the call
// (cpu/simd_target.hpp). The kernels themselves are in flash_attention-inl.h
// (one copy per target).
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

#include <algorithm>
#include <string>

#include "attn/detail/size_math.hpp"
#include "attn/errors.hpp"
#include "attn/threading.hpp"
#include "cpu/buffer.hpp"
#include "cpu/flash_attention.hpp"
#include "cpu/flash_attention_params.hpp"
#include "cpu/simd_target.hpp"
#include "sdpa_problem.hpp"

namespace attn::cpu {

HWY_EXPORT(FlashForwardWorkspaceFloats);
HWY_EXPORT(FlashForward);
HWY_EXPORT(FlashBackwardWorkspaceFloats);
HWY_EXPORT(FlashBackward);

namespace {
// The workspace: one per calling thread (see AlignedBuffer).
thread_local AlignedBuffer t_workspace;
// Key and row indices, and ALiBi distances, are int32 inside the kernels.
constexpr int64_t kMaxLength = int64_t{1} << 30;
}  // namespace

// ---- the internal API ---------------------------------------------------------------

bool flash_supports(const Tensor<float>& query, const Tensor<float>& key, const Tensor<float>& value,
                    const SdpaOptions<float>& /*options: every option is supported*/) {
  if (!query.defined() || !key.defined() || !value.defined()) return false;
  if (query.dim() != 4 || key.dim() != 4 || value.dim() != 4) return false;
  return query.size(2) < kMaxLength && key.size(2) < kMaxLength;
}

bool flash_supports(const SdpaProblem<float>& problem) {
  return problem.Lq < kMaxLength && problem.Lk < kMaxLength;
}

namespace {

// The parameters shared by forward and backward, from a described call (its
// views of masks and slopes stay alive in `problem` for the call).
FlashForwardParams prepare(const char* fn, const SdpaProblem<float>& pb, const Tensor<float>& query,
                           const Tensor<float>& key, const Tensor<float>& value) {
  if (!flash_supports(pb))
    throw ValueError(std::string(fn) + ": arguments not supported by the fast path (see flash_supports)");
  const SdpaOptions<float>& o = *pb.options;
  FlashForwardParams p;
  p.B = pb.B, p.Hq = pb.Hq, p.Lq = pb.Lq, p.Dk = pb.Dk;
  p.Hkv = pb.Hkv, p.Lk = pb.Lk, p.Dv = pb.Dv;
  p.group = pb.group;
  p.q = query.data(), p.k = key.data(), p.v = value.data();
  copy_strides(query.strides(), p.q_stride);
  copy_strides(key.strides(), p.k_stride);
  copy_strides(value.strides(), p.v_stride);

  // The score's ingredients, converted exactly as the reference converts them.
  p.scale = static_cast<float>(pb.scale);
  p.softcap = static_cast<float>(o.softcap);
  if (pb.alibi.defined()) {
    p.alibi = pb.alibi.data();
    copy_strides(pb.alibi.strides(), p.alibi_stride);
  }
  if (pb.float_mask.defined()) {
    p.float_mask = pb.float_mask.data();
    copy_strides(pb.float_mask.strides(), p.float_mask_stride);
  }
  if (pb.bool_mask.defined()) {
    p.bool_mask = pb.bool_mask.data();
    copy_strides(pb.bool_mask.strides(), p.bool_mask_stride);
  }
  if (o.sinks.defined()) {
    p.sinks = o.sinks.data();
    p.sinks_stride = o.sinks.stride(0);
  }
  p.causal = o.is_causal;
  p.diag = pb.diag;
  p.window_left = o.window_left;
  p.window_right = o.window_right;
  p.dropout_p = o.dropout_p;
  p.dropout_seed = o.dropout_seed;
  p.dropout_batch_offset = pb.dropout_batch_offset;
  p.dropout_scale = static_cast<float>(pb.dropout_scale);
  // Below ~1 MFLOP waking a second thread costs more than it saves.
  const double flops = 2.0 * static_cast<double>(p.B * p.Hq) * static_cast<double>(p.Lq) *
                       static_cast<double>(p.Lk) * static_cast<double>(p.Dk + p.Dv);
  p.threads = flops < 1e6 ? 1 : get_num_threads();
  return p;
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
  const SdpaProblem<float> pb = describe_sdpa("flash_attention_forward", query, key, value, o);
  flash_attention_forward(pb, query, key, value, out, lse, weights);
}

void flash_attention_forward(const SdpaProblem<float>& pb, const Tensor<float>& query, const Tensor<float>& key,
                             const Tensor<float>& value, Tensor<float>& out, Tensor<float>& lse,
                             Tensor<float>* weights) {
  const char* fn = "flash_attention_forward";
  FlashForwardParams p = prepare(fn, pb, query, key, value);
  const Shape out_shape{p.B, p.Hq, p.Lq, p.Dv}, lse_shape{p.B, p.Hq, p.Lq};
  // Every element of out and lse is written below (FinishRow), so they need no zero-fill.
  if (!out.defined()) out = Tensor<float>::uninitialized(out_shape);
  if (!lse.defined()) lse = Tensor<float>::uninitialized(lse_shape);
  require_shape(fn, "out", out, out_shape);
  require_shape(fn, "lse", lse, lse_shape);
  p.out = out.data(), p.lse = lse.data();
  copy_strides(out.strides(), p.out_stride);
  copy_strides(lse.strides(), p.lse_stride);
  if (pb.options->return_weights) {
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
  const size_t target = chosen_target_index();
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
  const SdpaProblem<float> pb = describe_sdpa(fn, query, key, value, o);
  check_sdpa_backward(fn, pb, grad_output, output, lse, need_float_mask_grad);
  return flash_attention_backward(pb, grad_output, query, key, value, output, lse, need_float_mask_grad);
}

SdpaGradients<float> flash_attention_backward(const SdpaProblem<float>& pb, const Tensor<float>& grad_output,
                                              const Tensor<float>& query, const Tensor<float>& key,
                                              const Tensor<float>& value, const Tensor<float>& output,
                                              const Tensor<float>& lse, bool need_float_mask_grad) {
  const char* fn = "flash_attention_backward";
  const SdpaOptions<float>& o = *pb.options;
  FlashBackwardParams bp;
  bp.f = prepare(fn, pb, query, key, value);
  const FlashForwardParams& p = bp.f;

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
  const size_t target = chosen_target_index();
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

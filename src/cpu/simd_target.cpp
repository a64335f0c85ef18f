// The run-time choice of SIMD target for every fast kernel (cpu/simd_target.hpp).
//
// Highway's foreach_target.h re-includes this file once per SIMD target with
// HWY_TARGET set, so TargetName below exists once per target; the code under
// HWY_ONCE (compiled once) picks one with the dispatch table HWY_EXPORT builds.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/simd_target.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace attn::cpu::HWY_NAMESPACE {
const char* TargetName() { return hwy::TargetName(HWY_TARGET); }
}  // namespace attn::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE

#include <cstdint>
#include <cstdlib>
#include <mutex>

#include "cpu/simd_target.hpp"

namespace attn::cpu {

HWY_EXPORT(TargetName);

namespace {

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

}  // namespace

size_t chosen_target_index() {
  apply_environment_once();
  hwy::ChosenTarget& chosen = hwy::GetChosenTarget();
  if (!chosen.IsInitialized()) chosen.Update(hwy::SupportedTargets());
  return chosen.GetIndex();
}

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

std::string current_simd_target() { return HWY_DISPATCH_TABLE(TargetName)[chosen_target_index()](); }

}  // namespace attn::cpu

#endif  // HWY_ONCE

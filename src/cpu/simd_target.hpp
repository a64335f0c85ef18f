// cpu/simd_target.hpp — the run-time choice of SIMD target, one for every
// fast kernel (internal). The kernels are compiled once per SIMD target
// (Highway: AVX3, AVX2, SSE4, SSSE3 and the portable EMU128 on x86) and the
// best one the CPU supports is chosen once at the top of each call. The
// environment variable ATTN_SIMD_TARGET=<name> (read on the first call) or
// force_simd_target() restricts the choice, e.g. to "EMU128", the portable
// fallback; it acts on the flash and the decode kernels alike.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace attn::cpu {

/// The targets compiled in and supported by this CPU, best first.
std::vector<std::string> available_simd_targets();
/// Use only `name` (one of available_simd_targets()); "" restores the default.
/// Returns false (and changes nothing) for an unknown or unsupported name.
bool force_simd_target(const std::string& name);
/// The target the next call will use.
std::string current_simd_target();

/// The index into every HWY_EXPORT dispatch table of the target this call
/// uses: taken once at the top of a call, so every kernel of the call runs
/// the same target. (Every kernel file is compiled for the same targets, so
/// the tables line up.)
size_t chosen_target_index();

}  // namespace attn::cpu

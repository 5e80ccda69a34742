// The CUDA backend, as seen from user code. Present in every build: without CUDA (or without a
// usable GPU) is_available() is false and device_count() is 0.
//
//   if (lethe::cuda::is_available()) {
//     lethe::cuda::set_allow_tf32(true);                        // f32 GEMMs on TF32 tensor cores
//     lethe::Session s({.device = lethe::Device::cuda(0), .memory_budget = "8GiB"});
//     ...
//   }
#pragma once

#include <string>

namespace lethe::cuda {

// True when this build has the CUDA backend and at least one device answers. A missing driver, an
// insufficient driver or no device all mean "not available" (never an error), as in PyTorch.
bool is_available();
// Number of usable CUDA devices (0 in a build without CUDA).
int device_count();
// Why no device is usable, with the CUDA runtime's own message ("cudaGetDeviceCount failed: CUDA
// driver version is insufficient for CUDA runtime version (...)"); empty when one is.
std::string unavailable_reason();
// Whether a missing device is an error for tests and benchmarks rather than a reason to skip: the
// environment variable LETHE_REQUIRE_CUDA set to anything but "" or "0" (tests/gpu/check.sh sets
// it, so a GPU check cannot pass without running). required_by() applies the rule to a value
// (null: unset).
bool device_required();
bool required_by(const char* value);
// Lets f32 GEMMs use TF32 tensor cores (off by default: f32 results then match the CPU closely).
void set_allow_tf32(bool allow);
bool allow_tf32();
// Installs the backend (copy/move/alloc hooks, kernels) once; called when a CUDA session is made.
// Throws lethe::Error when no device is available.
void init();

}  // namespace lethe::cuda

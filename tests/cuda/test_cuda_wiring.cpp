// The wiring between the framework and the CUDA backend (issue: what a review found before the
// first GPU run). The parts a CPU can show run everywhere; the rest skip without a device, or fail
// under LETHE_REQUIRE_CUDA=1 (tests/gpu/check.sh).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "ops/gemm.h"
#include "scheduler/graph_io.h"
#include "tests/cuda/cuda_checks.h"

using namespace lethe;

TEST_CASE("cuda: a missing device skips a CUDA test, or fails it when LETHE_REQUIRE_CUDA is set") {
  using cuda_checks::Verdict;
  using cuda_checks::without_device;
  CHECK(without_device(true, nullptr) == Verdict::run);
  CHECK(without_device(true, "1") == Verdict::run);
  CHECK(without_device(false, nullptr) == Verdict::skip);
  CHECK(without_device(false, "") == Verdict::skip);
  CHECK(without_device(false, "0") == Verdict::skip);
  CHECK(without_device(false, "1") == Verdict::fail);
  CHECK(without_device(false, "yes") == Verdict::fail);
}

TEST_CASE("cuda: without a device, the error says why in the runtime's own words") {
  if (cuda::is_available()) {
    CHECK(cuda::unavailable_reason().empty());
    return;
  }
  const std::string why = cuda::unavailable_reason();
  CHECK(!why.empty());
  MESSAGE("no CUDA device here: " << why);
  std::string msg;
  try {
    Session s({.device = Device::cuda(0)});
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("no CUDA device is available") != std::string::npos);
  CHECK(msg.find(why) != std::string::npos);
}

TEST_CASE(
    "cuda: cuBLAS gets a 256-byte aligned workspace whose size does not depend on its placement") {
  for (size_t out :
       {size_t(0), size_t(1000), size_t(300) << 10, size_t(5) << 20, size_t(64) << 20}) {
    const size_t wb = lethe::detail::cuda_gemm_workspace_bytes(out);
    CAPTURE(out);
    std::vector<unsigned char> buf(wb + 512);
    // Arena buffers are 64-byte aligned: try every 64-byte placement relative to 256.
    auto base = reinterpret_cast<uintptr_t>(buf.data());
    base = (base + 255) / 256 * 256;
    size_t first = 0;
    for (uintptr_t shift : {0, 64, 128, 192}) {
      void* ws = reinterpret_cast<void*>(base + shift);
      const auto w = lethe::detail::cublas_workspace_window(ws, wb);
      CHECK(reinterpret_cast<uintptr_t>(w.data) % 256 == 0);
      CHECK(reinterpret_cast<uintptr_t>(w.data) >= base + shift);
      CHECK(reinterpret_cast<uintptr_t>(w.data) + w.bytes <=
            base + shift + wb);  // inside the buffer
      CHECK(w.bytes % 256 == 0);
      CHECK(w.bytes >= (size_t(256) << 10));  // at least the smallest size the op asks for
      if (shift == 0) first = w.bytes;
      CHECK(w.bytes == first);  // the same size wherever the buffer sits
    }
  }
  CHECK(lethe::detail::cublas_workspace_window(nullptr, 0).bytes == 0);
}

TEST_CASE("cuda: a GEMM with an empty inner dimension writes zeros, as the CPU does") {
  LETHE_SKIP_WITHOUT_CUDA();
  cuda_checks::same([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                    {{Shape{3, 0}}, {Shape{0, 4}}}, 0.0, false);
  cuda_checks::same([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                    {{Shape{2, 3, 0}}, {Shape{2, 0, 5}}}, 0.0, false);
}

TEST_CASE("cuda: a value is read correctly while another session, or none, is current") {
  LETHE_SKIP_WITHOUT_CUDA();
  std::vector<float> host(4096);
  for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(i % 97) * 0.5f;
  Tensor y;
  {
    Session a({.device = Device::cuda(0), .seed = 1});
    Tensor x = from_vector(host, {4096});
    y = x * 2.0 + 1.0;
    (void)y.to_vector<float>();                         // ends a's step; y is kept
    y = y * 2.0;                                        // a's next step, queued on a's stream
    Session b({.device = Device::cuda(0), .seed = 2});  // now the current session
    Tensor z = randn({1 << 20}) * 3.0;
    (void)z.to_vector<float>();  // b's stream has its own work
    const std::vector<float> got = y.to_vector<float>();
    REQUIRE(got.size() == host.size());
    for (size_t i = 0; i < host.size(); ++i) CHECK(got[i] == (host[i] * 2.0f + 1.0f) * 2.0f);
  }
  // No session current at all: the value is still there, read in its own stream's order.
  const std::vector<float> again = y.to_vector<float>();
  REQUIRE(again.size() == host.size());
  for (size_t i = 0; i < host.size(); ++i) CHECK(again[i] == (host[i] * 2.0f + 1.0f) * 2.0f);
}

TEST_CASE("cuda: op times are GPU times, not launch times") {
  LETHE_SKIP_WITHOUT_CUDA();
  cuda::set_allow_tf32(false);
  const int64_t n = 4096;
  Session s({.device = Device::cuda(0), .seed = 3});
  Tensor a = randn({n, n}), b = randn({n, n});
  Tensor c = matmul(a, b).sum();
  (void)c.item<float>();
  const std::string path = "cuda_op_times_" + std::to_string(::getpid()) + ".graph.json";
  s.export_graph(path);
  const sched::Problem p = sched::read_problem_file(path);
  std::remove(path.c_str());
  double matmul_s = -1;
  for (const sched::Node& node : p.nodes)
    if (node.op == "matmul") matmul_s = node.cost;
  REQUIRE(matmul_s > 0);
  // 2 n^3 flops of f32 without TF32 (~60 TFLOP/s on an H100/H200): a time measured at the launch
  // (microseconds) would mean more than a PFLOP/s, which no GPU does in f32.
  const double flops = 2.0 * static_cast<double>(n) * n * n;
  MESSAGE("matmul " << n << "^3: " << matmul_s * 1e3 << " ms, " << flops / matmul_s / 1e12
                    << " TFLOP/s; step " << s.last_report().seconds * 1e3 << " ms");
  CHECK(flops / matmul_s < 1e15);
  CHECK(s.last_report().seconds >= matmul_s);
}

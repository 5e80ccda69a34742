// The backend interface (framework/backend.h): the CPU backend, the CUDA backend's refusal without
// a device, and a session on a device whose backend is registered at run time. That last one is a
// backend of host memory standing in for a GPU, registered under DeviceKind::cuda: it proves that
// a session on a device other than the CPU takes its context, allocator, timer, arena, kernels,
// workspaces and copies from its Backend and from nowhere else, so that a training run through it
// (unlimited and under a budget) is bitwise the CPU's. Skipped where a real GPU is present (the
// slot is the real backend's there; tests/cuda covers it).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "framework/backend.h"
#include "framework/cuda.h"
#include "framework/executor.h"
#include "framework/step_timer.h"
#include "framework/tier.h"
#include "lethe.h"

using namespace lethe;

namespace {

struct Counts {
  std::atomic<int> kernels{0}, workspaces{0}, allocations{0}, frees{0}, moves{0}, copies{0},
      contexts{0}, allocators{0}, timers{0}, stream_sets{0}, waits{0}, stream_steps{0};
};
Counts g_counts;

void counted_cpu_kernel(const Op& op, const KernelCall& call) {
  ++g_counts.kernels;
  op.cpu(call);
}

// A device's streams on the host: the executor issues every step in plan order and each runs to
// completion when issued, so the order is the plan's; what is checked is that the executor only
// waits for steps it has issued, and gives each stream its own context.
class HostStreams final : public DeviceStreams {
 public:
  explicit HostStreams(int n) : contexts_(static_cast<size_t>(n)) {}
  void* context(int s) override {
    REQUIRE(s >= 0);
    REQUIRE(static_cast<size_t>(s) < contexts_.size());
    ++g_counts.stream_steps;
    return &contexts_[static_cast<size_t>(s)];
  }
  void wait(int s, size_t step) override {
    CHECK_MESSAGE(issued_.count(step) == 1, "stream ", s, " waits for step ", step,
                  ", which was not issued yet");
    ++g_counts.waits;
  }
  void done(int, size_t step) override { issued_.insert(step); }
  int mark(int) override {
    marks_.push_back(std::chrono::steady_clock::now());
    return static_cast<int>(marks_.size()) - 1;
  }
  void join() override { issued_.clear(); }  // the end of a training step's plan
  void synchronize() override {}
  double seconds(int from, int to) override {
    return std::chrono::duration<double>(marks_[static_cast<size_t>(to)] -
                                         marks_[static_cast<size_t>(from)])
        .count();
  }

 private:
  std::vector<int> contexts_;
  std::set<size_t> issued_;
  std::vector<std::chrono::steady_clock::time_point> marks_;
};

// Host memory behind DeviceKind::cuda; every call counted.
class HostAsDevice final : public Backend {
 public:
  DeviceKind kind() const override { return DeviceKind::cuda; }
  DeviceKernel kernel(OpKind) const override { return counted_cpu_kernel; }
  size_t workspace_bytes(const Op& op, const std::vector<TensorMeta>& in,
                         const TensorMeta& out) const override {
    ++g_counts.workspaces;
    return op.workspace_bytes(in, out);
  }
  void* allocate(size_t bytes) override {
    ++g_counts.allocations;
    return std::aligned_alloc(kAlignment, align_up(bytes));
  }
  void deallocate(void* p) override {
    ++g_counts.frees;
    std::free(p);
  }
  void move(void* dst, const void* src, size_t bytes, void*) override {
    ++g_counts.moves;
    std::memmove(dst, src, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes, bool, void* context) override {
    REQUIRE(context != nullptr);  // every storage of the device records its session's context
    ++g_counts.copies;
    std::memcpy(dst, src, bytes);
  }
  std::shared_ptr<void> create_context(int index) override {
    ++g_counts.contexts;
    return std::make_shared<int>(index);
  }
  std::unique_ptr<Allocator> make_allocator(std::shared_ptr<void>) override {
    ++g_counts.allocators;
    return make_heap_allocator();
  }
  std::unique_ptr<StepTimer> make_timer(std::shared_ptr<void>) override {
    ++g_counts.timers;
    return make_host_timer();
  }
  std::unique_ptr<DeviceStreams> make_streams(std::shared_ptr<void>, int n) override {
    ++g_counts.stream_sets;
    return std::make_unique<HostStreams>(n);
  }
  std::unique_ptr<OffloadTier> make_tier(int, size_t bytes, const std::string& path,
                                         int io_threads) override {
    return make_file_tier(bytes, path, io_threads);
  }
};

// Registers a HostAsDevice for the scope and puts back what was there.
class HostAsDeviceScope {
 public:
  HostAsDeviceScope() : previous_(set_backend(DeviceKind::cuda, &backend_)) {}
  ~HostAsDeviceScope() { set_backend(DeviceKind::cuda, previous_); }

 private:
  static inline HostAsDevice backend_;
  Backend* previous_;
};

struct Run {
  std::vector<float> losses;
  std::vector<std::vector<float>> params;
  StepReport report;
};

// `host`: the second tier's size (a file tier on both devices), with offload-only plans.
// `data_parallel`: one rank, small buckets (their all-reduces run on a communication stream).
Run train(Device d, const std::string& budget, int streams = 1, const std::string& host = "",
          bool data_parallel = false) {
  SessionOptions o{.device = d, .seed = 13, .memory_budget = budget, .streams = streams};
  o.data_parallel = data_parallel;
  o.bucket_bytes = 4096;
  if (!host.empty()) {
    o.host_budget = host;
    o.offload_path = std::filesystem::temp_directory_path().string();
    o.tier_plan = "offload";
    o.tier_bandwidth = "1GB/s";  // plans alike whatever a probe would measure here
  }
  Session s(o);
  auto net = std::make_shared<nn::Sequential>();
  net->push_back(std::make_shared<nn::Linear>(24, 64));
  net->push_back(std::make_shared<nn::GELU>());
  net->push_back(std::make_shared<nn::LayerNorm>(nn::LayerNormOptions({64})));
  net->push_back(std::make_shared<nn::Linear>(64, 64));
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::Linear>(64, 5));
  optim::AdamW opt(net->parameters(), optim::AdamWOptions(1e-2).weight_decay(0.01));
  Tensor x = randn({32, 24});
  std::vector<int64_t> labels(32);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>((i * 3) % 5);
  Tensor y = from_vector(labels, {32});
  Run r;
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    Tensor loss = cross_entropy(net->forward(x), y);
    loss.backward();
    opt.step();
    r.losses.push_back(loss.item<float>());
    r.report = s.last_report();
    if (!budget.empty())
      CHECK_MESSAGE(r.report.peak_bytes <= r.report.budget_bytes, r.report.str());
  }
  for (const Tensor& p : net->parameters()) r.params.push_back(p.to_vector<float>());
  return r;
}

// Where a real GPU is, the CUDA slot is its backend's (tests/cuda covers it).
bool gpu_present() {
  if (!cuda::is_available()) return false;
  MESSAGE("a real GPU is present: the CUDA slot is its backend's; skipped");
  return true;
}

// The reference: the same training on the CPU, unlimited.
const Run& cpu_run() {
  static const Run r = train(Device::cpu(), "");
  return r;
}

void check_bitwise(const Run& r, const Run& cpu) {
  CHECK(r.losses == cpu.losses);
  CHECK(r.params == cpu.params);
}

}  // namespace

TEST_CASE("backend: the CPU backend is always registered and runs each op's CPU kernel") {
  Backend& b = backend(DeviceKind::cpu);
  CHECK(b.kind() == DeviceKind::cpu);
  CHECK(find_backend(DeviceKind::cpu) == &b);
  for (OpKind k : all_op_kinds()) CHECK(bool(b.kernel(k)));
  CHECK(b.create_context(0) == nullptr);
  CHECK_THROWS_WITH_AS(b.create_context(1), doctest::Contains("there is one CPU device"), Error);
  CHECK(b.make_streams(nullptr, 2) == nullptr);  // the executor's worker threads
}

TEST_CASE("backend: without a device, asking for the CUDA backend says why, as cuda::init() does") {
  if (cuda::is_available() || find_backend(DeviceKind::cuda) != nullptr) {
    MESSAGE("a CUDA backend is registered here: skipped");
    return;
  }
  std::string why;
  try {
    backend(DeviceKind::cuda);
  } catch (const Error& e) {
    why = e.what();
  }
  CHECK(why.find("no CUDA device is available") != std::string::npos);
  CHECK(why.find(cuda::unavailable_reason()) != std::string::npos);
  CHECK(find_backend(DeviceKind::cuda) == nullptr);
  CHECK_THROWS_WITH_AS(Session{SessionOptions{.device = Device::cuda(0)}},
                       doctest::Contains("no CUDA device is available"), Error);
}

TEST_CASE("backend: set_backend refuses a backend of another kind") {
  Backend& cpu = backend(DeviceKind::cpu);
  CHECK_THROWS_WITH_AS(set_backend(DeviceKind::cuda, &cpu),
                       doctest::Contains("a backend of another device kind"), Error);
}

TEST_CASE(
    "backend: a session on a registered device backend takes everything from it and trains "
    "bitwise as the CPU, unlimited and under a budget" *
    doctest::test_suite("executor")) {
  if (gpu_present()) return;
  const Run& cpu = cpu_run();
  HostAsDeviceScope scope;
  const int kernels0 = g_counts.kernels, allocations0 = g_counts.allocations;
  const int contexts0 = g_counts.contexts, timers0 = g_counts.timers;
  const int allocators0 = g_counts.allocators, copies0 = g_counts.copies;
  const int workspaces0 = g_counts.workspaces;
  const Run full = train(Device::cuda(0), "");
  CHECK(g_counts.contexts == contexts0 + 1);
  CHECK(g_counts.allocators == allocators0 + 1);
  CHECK(g_counts.timers == timers0 + 1);
  CHECK(g_counts.kernels > kernels0);
  CHECK(g_counts.copies > copies0);  // loss.item() and to_vector() read through the backend
  check_bitwise(full, cpu);

  const int kernels1 = g_counts.kernels, frees1 = g_counts.frees;
  const Run half = train(Device::cuda(0), "0.8");
  CHECK(half.report.budget_bytes > 0);
  CHECK(g_counts.allocations > allocations0);  // the arena's one block
  CHECK(g_counts.frees > frees1);              // given back when the session ended
  CHECK(g_counts.workspaces > workspaces0);    // the plan sized every kernel's workspace here
  CHECK(g_counts.kernels > kernels1);
  CHECK(half.report.recomputed > 0);
  check_bitwise(half, cpu);
}

TEST_CASE(
    "backend: a plan on two streams runs on the device backend's streams, bitwise as the CPU" *
    doctest::test_suite("executor")) {
  if (gpu_present()) return;
  const Run& cpu = cpu_run();
  HostAsDeviceScope scope;
  const int sets0 = g_counts.stream_sets, steps0 = g_counts.stream_steps, waits0 = g_counts.waits;
  const Run two = train(Device::cuda(0), "0.8", 2);
  CHECK(two.report.streams == 2);
  CHECK(g_counts.stream_sets > sets0);
  CHECK(g_counts.stream_steps > steps0);
  CHECK(g_counts.waits > waits0);  // every one for a step issued before it (HostStreams::wait)
  check_bitwise(two, cpu);
}

TEST_CASE(
    "backend: a plan with copies to a second tier runs through the device backend, bitwise as the "
    "CPU" *
    doctest::test_suite("executor")) {
  if (gpu_present()) return;
  const Run& cpu = cpu_run();
  HostAsDeviceScope scope;
  const Run copied = train(Device::cuda(0), "0.8", 1, "16MiB");
  CHECK(copied.report.tier_plan == "offload");
  CHECK(copied.report.copy_out_bytes > 0);
  CHECK(copied.report.copy_in_bytes > 0);
  check_bitwise(copied, cpu);
}

TEST_CASE(
    "backend: data parallel (one rank) runs its all-reduces on the device backend's communication "
    "stream, bitwise as the CPU" *
    doctest::test_suite("executor")) {
  if (gpu_present()) return;
  const Run& cpu = cpu_run();
  HostAsDeviceScope scope;
  for (const char* budget : {"", "0.8"}) {
    CAPTURE(budget);
    const int sets0 = g_counts.stream_sets, steps0 = g_counts.stream_steps;
    const Run dp = train(Device::cuda(0), budget, 1, "", true);
    CHECK(dp.report.buckets > 1);
    CHECK(dp.report.streams >= 2);  // the compute stream and the communication stream
    CHECK(g_counts.stream_sets + g_counts.stream_steps > sets0 + steps0);
    check_bitwise(dp, cpu);
  }
}

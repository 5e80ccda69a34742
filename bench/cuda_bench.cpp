// CUDA backend benchmark (run by tests/gpu/check.sh on a GPU machine):
//  1. matmul through the framework against the same cuBLAS call made directly (throughput ratio);
//  2. a Transformer training step (d 1024, 12 layers, 16 heads, seq 1024, batch 8, TF32, AdamW),
//     optionally against PyTorch eager (--torch "python3 bench/cuda_step_torch.py");
//  3. the same step under a budget of a quarter of its activation memory: peak <= budget, time;
//  4. a ResNet-18 training step (width 64, 32x32 images, batch 128, TF32, AdamW): cuDNN
//  convolutions,
//     batch norm and pooling, unlimited and under a quarter of its no-remat peak.
// Op times are the session's own (CUDA events on its stream, the costs the planner plans with): the
// costliest op kinds of each step are printed with their share of the step.
// Without a device it prints why and exits 0, or 1 when LETHE_REQUIRE_CUDA=1 (tests/gpu/check.sh).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "examples/resnet/model.h"
#include "framework/cuda.h"
#include "lethe.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "scheduler/graph_io.h"

using namespace lethe;
using clk = std::chrono::steady_clock;

namespace {

double secs(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

void bench_matmul(int n, int reps) {
  cuda::set_allow_tf32(true);
  double t_lethe = 0;
  {
    Session s({.device = Device::cuda(0), .seed = 1});
    Tensor a = randn({n, n}), b = randn({n, n});
    for (int it = 0; it < 2; ++it) {
      auto t0 = clk::now();
      Tensor c = a;
      for (int r = 0; r < reps; ++r) c = matmul(c, b);
      (void)c.slice(0, 0, 1).slice(1, 0, 1).item<float>();
      t_lethe = secs(t0);
    }
  }
  float *a, *b, *c;
  const size_t bytes = size_t(n) * n * 4;
  cudaMalloc(&a, bytes);
  cudaMalloc(&b, bytes);
  cudaMalloc(&c, bytes);
  cudaMemset(a, 0, bytes);
  cudaMemset(b, 0, bytes);
  cublasHandle_t h;
  cublasCreate(&h);
  cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH);
  const float one = 1, zero = 0;
  double t_direct = 0;
  for (int it = 0; it < 2; ++it) {
    cudaDeviceSynchronize();
    auto t0 = clk::now();
    for (int r = 0; r < reps; ++r)
      cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, b, n, r % 2 ? c : a, n, &zero,
                  r % 2 ? a : c, n);
    cudaDeviceSynchronize();
    t_direct = secs(t0);
  }
  cublasDestroy(h);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  const double tflop = 2.0 * n * double(n) * n * reps / 1e12;
  std::printf(
      "matmul %dx%d f32/TF32 x%d: lethe %.2f TFLOP/s, cuBLAS direct %.2f TFLOP/s, ratio %.3f\n", n,
      n, reps, tflop / t_lethe, tflop / t_direct, t_direct / t_lethe);
}

struct StepTimes {
  double ms = 0;
  StepReport report;
  std::vector<std::pair<double, std::string>> op_ms;  // event-timed ms per op kind, costliest first
  double ops_ms = 0;                                  // their sum (one computation of every node)
};

// The session's measured op times of its last step (exported with the graph), summed per op kind.
void read_op_times(Session& s, StepTimes& st) {
  const std::string path = "/tmp/lethe_cuda_bench_" + std::to_string(::getpid()) + ".graph.json";
  s.export_graph(path);
  const sched::Problem p = sched::read_problem_file(path);
  std::remove(path.c_str());
  std::map<std::string, double> by_op;
  for (const sched::Node& n : p.nodes)
    if (!n.resident) by_op[n.op] += n.cost * 1e3;
  for (const auto& [op, ms] : by_op) {
    st.op_ms.emplace_back(ms, op);
    st.ops_ms += ms;
  }
  std::sort(st.op_ms.rbegin(), st.op_ms.rend());
}

void print_op_times(const StepTimes& st) {
  std::printf("  op times (CUDA events): %.1f ms summed over one computation of every node;",
              st.ops_ms);
  for (size_t i = 0; i < st.op_ms.size() && i < 6; ++i)
    std::printf("%s %s %.1f ms (%.0f%%)", i ? "," : "", st.op_ms[i].second.c_str(),
                st.op_ms[i].first, 100.0 * st.op_ms[i].first / std::max(st.ops_ms, 1e-9));
  std::printf("\n");
}

// Mean time of `iters` training steps of loss() after four untimed ones (a budgeted session plans
// at steps 0, 1 and 3; warm-up).
template <typename LossFn>
StepTimes time_steps(Session& s, optim::Optimizer& opt, int iters, LossFn loss_fn, int warm = 4) {
  StepTimes st;
  double total = 0;
  for (int it = 0; it < iters + warm; ++it) {
    auto t0 = clk::now();
    opt.zero_grad();
    Tensor loss = loss_fn();
    loss.backward();
    opt.step();
    (void)loss.item<float>();
    if (it >= warm) total += secs(t0);
    st.report = s.last_report();
  }
  st.ms = total / iters * 1e3;
  read_op_times(s, st);
  return st;
}

StepTimes bench_transformer(const std::string& budget, int iters, int streams = 1) {
  cuda::set_allow_tf32(true);
  Session s({.device = Device::cuda(0), .seed = 7, .memory_budget = budget, .streams = streams});
  const int d = 1024, layers = 12, heads = 16, seq = 1024, batch = 8;
  auto model = std::make_shared<nn::Sequential>();
  for (int i = 0; i < layers; ++i)
    model->push_back(
        std::make_shared<nn::TransformerBlock>(nn::TransformerBlockOptions(d, heads).causal(true)));
  Tensor x = randn({batch, seq, d}), y = randn({batch, seq, d});
  optim::AdamW opt(model->parameters(), optim::AdamWOptions(1e-4));
  // kAutoStreams measures three serial and four parallel steps before it chooses.
  return time_steps(
      s, opt, iters, [&] { return mse_loss(model->forward(x), y); }, streams == 1 ? 4 : 8);
}

StepTimes bench_resnet(const std::string& budget, int iters) {
  cuda::set_allow_tf32(true);
  Session s({.device = Device::cuda(0), .seed = 9, .memory_budget = budget});
  auto model = std::make_shared<examples::ResNet>(
      examples::ResNetConfig{.depth = 18, .width = 64, .classes = 10});
  model->train();
  const int batch = 128;
  Tensor x = randn({batch, 3, 32, 32});
  std::vector<int64_t> labels(batch);
  for (int i = 0; i < batch; ++i) labels[static_cast<size_t>(i)] = i % 10;
  Tensor y = from_vector(labels, {batch});
  optim::AdamW opt(model->parameters(), optim::AdamWOptions(1e-3));
  return time_steps(s, opt, iters, [&] { return cross_entropy(model->forward(x), y); });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Lethe CUDA benchmark");
  std::string torch_cmd;
  int iters = 5;
  app.add_option("--torch", torch_cmd,
                 "command printing PyTorch's step time in ms (cuda_step_torch.py)");
  app.add_option("--iters", iters, "timed steps per configuration");
  CLI11_PARSE(app, argc, argv);
  if (!cuda::is_available()) {
    const bool required = cuda::device_required();
    std::printf("no CUDA device (%s): nothing to benchmark%s\n", cuda::unavailable_reason().c_str(),
                required ? "; LETHE_REQUIRE_CUDA is set: failing" : "");
    return required ? 1 : 0;
  }
  bench_matmul(8192, 10);
  StepTimes full = bench_transformer("", iters);
  std::printf(
      "transformer d1024 x12 seq1024 b8 (TF32): unlimited %.1f ms/step, peak %.2f GiB\n  %s\n",
      full.ms, full.report.peak_bytes / 1073741824.0, full.report.str().c_str());
  print_op_times(full);
  if (!torch_cmd.empty()) {
    std::fflush(stdout);
    int rc = std::system(torch_cmd.c_str());
    if (rc != 0) std::printf("PyTorch comparison failed (exit %d)\n", rc);
  }
  StepTimes q = bench_transformer("0.25", iters);
  std::printf(
      "transformer under a quarter of its activation memory: %.1f ms/step (%.2fx unlimited), "
      "budget %.2f "
      "GiB, peak %.2f GiB, peak <= budget: %s\n  %s\n",
      q.ms, q.ms / full.ms, q.report.budget_bytes / 1073741824.0,
      q.report.peak_bytes / 1073741824.0,
      q.report.peak_bytes <= q.report.budget_bytes ? "yes" : "NO", q.report.str().c_str());
  print_op_times(q);
  bool ok = q.report.peak_bytes <= q.report.budget_bytes;
  // The same budget with the planner choosing streams: how much recomputation hides behind other
  // work.
  StepTimes qa = bench_transformer("0.25", iters, kAutoStreams);
  std::printf(
      "transformer at 0.25 with auto streams: %.1f ms/step (%.2fx serial at 0.25), streams %d, "
      "recompute "
      "%.1f ms of which %.1f ms overlapped other work (%.0f%%), peak <= budget: %s\n  %s\n",
      qa.ms, qa.ms / q.ms, qa.report.streams, qa.report.recompute_seconds * 1e3,
      qa.report.overlapped_recompute_seconds * 1e3,
      100.0 * qa.report.overlapped_recompute_seconds / std::max(qa.report.recompute_seconds, 1e-12),
      qa.report.peak_bytes <= qa.report.budget_bytes ? "yes" : "NO", qa.report.str().c_str());
  ok = ok && qa.report.peak_bytes <= qa.report.budget_bytes;
  StepTimes rn = bench_resnet("", iters);
  std::printf("resnet-18 w64 32x32 b128 (TF32): unlimited %.1f ms/step, peak %.2f GiB\n  %s\n",
              rn.ms, rn.report.peak_bytes / 1073741824.0, rn.report.str().c_str());
  print_op_times(rn);
  try {
    StepTimes rq = bench_resnet("0.25", iters);
    std::printf(
        "resnet-18 under a quarter of its no-remat peak: %.1f ms/step (%.2fx unlimited), budget "
        "%.2f GiB, "
        "peak %.2f GiB, peak <= budget: %s\n  %s\n",
        rq.ms, rq.ms / rn.ms, rq.report.budget_bytes / 1073741824.0,
        rq.report.peak_bytes / 1073741824.0,
        rq.report.peak_bytes <= rq.report.budget_bytes ? "yes" : "NO", rq.report.str().c_str());
    ok = ok && rq.report.peak_bytes <= rq.report.budget_bytes;
  } catch (const InfeasibleBudget& e) {
    std::printf("resnet-18 under a quarter of its no-remat peak: infeasible: %s\n", e.what());
  }
  return ok ? 0 : 1;
}

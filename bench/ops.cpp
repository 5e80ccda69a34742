// Throughput of the CPU kernels: GFLOP/s of matmul and conv2d (forward, and forward+backward), GB/s
// of large elementwise ops. Each measurement runs one step graph and times its execution.
//
//   build/bench/ops                  # default threads
//   build/bench/ops --threads 1 --reps 5
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "lethe.h"

using namespace lethe;

namespace {

// Median wall time (seconds) of `reps` runs of: record with fn, then execute the step.
double time_step(int reps, const std::function<std::vector<Tensor>()>& fn) {
  std::vector<double> t;
  for (int r = 0; r < reps + 1; ++r) {
    auto keep = fn();
    auto t0 = std::chrono::steady_clock::now();
    current_session()->flush();
    auto t1 = std::chrono::steady_clock::now();
    if (r > 0) t.push_back(std::chrono::duration<double>(t1 - t0).count());  // first run warms up
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"GFLOP/s and GB/s of Lethe's CPU kernels"};
  int threads = 0, reps = 5;
  app.add_option("--threads", threads, "threads (0: OpenMP's default)");
  app.add_option("--reps", reps, "timed repetitions (median)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (threads <= 0) threads = omp_get_max_threads();
  Session session({.seed = 0, .num_threads = threads});
  std::printf("CPU kernels, %d threads, median of %d runs\n\n%-40s %12s %12s\n", threads, reps,
              "op", "ms", "rate");

  for (int64_t n : {256, 512, 1024, 2048}) {
    Tensor a = randn({n, n}), b = randn({n, n});
    const double flops = 2.0 * static_cast<double>(n * n * n);
    double s = time_step(reps, [&] { return std::vector<Tensor>{matmul(a, b)}; });
    std::printf("%-40s %12.2f %9.1f GFLOP/s\n",
                ("matmul " + std::to_string(n) + "^3 forward").c_str(), s * 1e3, flops / s * 1e-9);
    Tensor aw = randn({n, n}).set_requires_grad(true), bw = randn({n, n}).set_requires_grad(true);
    s = time_step(reps, [&] {
      aw.zero_grad();
      bw.zero_grad();
      matmul(aw, bw).sum().backward();
      return std::vector<Tensor>{aw.grad(), bw.grad()};
    });
    std::printf("%-40s %12.2f %9.1f GFLOP/s\n",
                ("matmul " + std::to_string(n) + "^3 forward+backward").c_str(), s * 1e3,
                3 * flops / s * 1e-9);
  }

  struct ConvCase {
    int64_t n, c, h, k, r;
  };
  for (ConvCase cc :
       {ConvCase{32, 64, 32, 64, 3}, ConvCase{16, 128, 16, 128, 3}, ConvCase{64, 3, 32, 32, 3}}) {
    Tensor x = randn({cc.n, cc.c, cc.h, cc.h}), w = randn({cc.k, cc.c, cc.r, cc.r});
    Conv2dParams p;
    p.padding = {cc.r / 2, cc.r / 2};
    const double flops = 2.0 * static_cast<double>(cc.n * cc.k * cc.h * cc.h * cc.c * cc.r * cc.r);
    char label[96];
    std::snprintf(label, sizeof label, "conv2d N%lld C%lld %lldx%lld K%lld %lldx%lld",
                  (long long)cc.n, (long long)cc.c, (long long)cc.h, (long long)cc.h,
                  (long long)cc.k, (long long)cc.r, (long long)cc.r);
    double s = time_step(reps, [&] { return std::vector<Tensor>{conv2d(x, w, Tensor(), p)}; });
    std::printf("%-40s %12.2f %9.1f GFLOP/s\n", (std::string(label) + " fwd").c_str(), s * 1e3,
                flops / s * 1e-9);
    Tensor xg = randn(x.shape()).set_requires_grad(true),
           wg = randn(w.shape()).set_requires_grad(true);
    s = time_step(reps, [&] {
      xg.zero_grad();
      wg.zero_grad();
      conv2d(xg, wg, Tensor(), p).sum().backward();
      return std::vector<Tensor>{xg.grad(), wg.grad()};
    });
    std::printf("%-40s %12.2f %9.1f GFLOP/s\n", (std::string(label) + " fwd+bwd").c_str(), s * 1e3,
                3 * flops / s * 1e-9);
  }

  const int64_t big = int64_t(1) << 24;  // 16M f32: 64 MiB per tensor, beyond the caches
  Tensor u = randn({big}), v = randn({big});
  const double b = static_cast<double>(big) * 4;
  auto elementwise = [&](const char* name, double bytes, const std::function<Tensor()>& f) {
    double s = time_step(reps, [&] { return std::vector<Tensor>{f()}; });
    std::printf("%-40s %12.2f %9.1f GB/s\n", name, s * 1e3, bytes / s * 1e-9);
  };
  elementwise("add 16M f32 (a + b)", 3 * b, [&] { return u + v; });
  elementwise("mul 16M f32 (a * b)", 3 * b, [&] { return u * v; });
  elementwise("mul_scalar 16M f32 (a * 2)", 2 * b, [&] { return u * 2.0; });
  elementwise("relu 16M f32", 2 * b, [&] { return relu(u); });
  elementwise("exp 16M f32", 2 * b, [&] { return exp(u); });
  elementwise("sum 16M f32", b, [&] { return sum(u); });
  return 0;
}

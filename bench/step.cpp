// Time of one training step (zero_grad, forward, loss, backward, SGD momentum step, read the loss)
// of three models, Lethe against PyTorch on the CPU with the same thread count, measured in one
// run. PyTorch's side is bench/step_torch.py, run through Debian's /usr/bin/python3.
//
//   build/bench/step                    # all threads OpenMP would use, 10 timed steps per model
//   build/bench/step --threads 2 --iters 5 --only mlp,cnn --csv step.csv
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lethe.h"
#include "nn/nn.h"
#include "optim/optim.h"

#ifndef LETHE_BENCH_DIR
#define LETHE_BENCH_DIR "bench"
#endif

using namespace lethe;

namespace {

struct Case {
  std::string name, what;
  std::shared_ptr<nn::UnaryModule> model;
  Tensor x, y;
  bool classification;
};

std::vector<Case> make_cases() {
  std::vector<Case> cs;
  cs.push_back({"mlp", "MLP 784-1024-1024-10, batch 256",
                std::make_shared<nn::Sequential>(
                    std::make_shared<nn::Linear>(784, 1024), std::make_shared<nn::ReLU>(),
                    std::make_shared<nn::Linear>(1024, 1024), std::make_shared<nn::ReLU>(),
                    std::make_shared<nn::Linear>(1024, 10)),
                randn({256, 784}), from_vector<int64_t>(std::vector<int64_t>(256, 3)), true});
  cs.push_back({"cnn", "CNN 2x(conv3x3+relu+pool), batch 64, 3x32x32",
                std::make_shared<nn::Sequential>(
                    std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 32, 3).padding(1)),
                    std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2),
                    std::make_shared<nn::Conv2d>(nn::Conv2dOptions(32, 64, 3).padding(1)),
                    std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2),
                    std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(64 * 8 * 8, 10)),
                randn({64, 3, 32, 32}), from_vector<int64_t>(std::vector<int64_t>(64, 7)), true});
  auto tr = std::make_shared<nn::Sequential>();
  for (int i = 0; i < 4; ++i)
    tr->push_back(std::make_shared<nn::TransformerBlock>(nn::TransformerBlockOptions(256, 4)));
  cs.push_back({"transformer", "Transformer 4 blocks, d 256, 4 heads, seq 128, batch 16", tr,
                randn({16, 128, 256}), randn({16, 128, 256}), false});
  return cs;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double time_lethe(Case& c, int warmup, int iters) {
  optim::SGD opt(c.model->parameters(), optim::SGDOptions(0.01).momentum(0.9));
  std::vector<double> times;
  for (int i = 0; i < warmup + iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    opt.zero_grad();
    Tensor out = c.model->forward(c.x);
    Tensor loss = c.classification ? cross_entropy(out, c.y) : mse_loss(out, c.y);
    loss.backward();
    opt.step();
    (void)loss.item<float>();
    auto t1 = std::chrono::steady_clock::now();
    if (i >= warmup) times.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return median(times);
}

// {"model": "mlp", "ms": 12.3} lines from the PyTorch script.
std::map<std::string, double> time_torch(int threads, int warmup, int iters,
                                         const std::string& only, std::string& error) {
  std::map<std::string, double> out;
  std::string cmd = "/usr/bin/python3 " LETHE_BENCH_DIR "/step_torch.py --threads " +
                    std::to_string(threads) + " --iters " + std::to_string(iters) + " --warmup " +
                    std::to_string(warmup) + (only.empty() ? "" : " --only " + only) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    error = "cannot run " + cmd;
    return out;
  }
  char line[4096];
  std::string all;
  while (std::fgets(line, sizeof line, p)) {
    all += line;
    char name[64];
    double ms;
    if (std::sscanf(line, "{\"model\": \"%63[^\"]\", \"ms\": %lf}", name, &ms) == 2) out[name] = ms;
  }
  int rc = pclose(p);
  if (rc != 0 || out.empty())
    error = "PyTorch side failed (is python3-torch installed? apt-get install python3-torch): " +
            all.substr(0, 400);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Training-step time of three models, Lethe versus PyTorch on the CPU"};
  int threads = 0, iters = 10, warmup = 2;
  std::string only, csv;
  bool no_torch = false;
  app.add_option("--threads", threads, "threads for both (0: OpenMP's default)");
  app.add_option("--iters", iters, "timed steps per model (median reported)")
      ->capture_default_str();
  app.add_option("--warmup", warmup, "untimed steps first")->capture_default_str();
  app.add_option("--only", only, "comma-separated subset of mlp,cnn,transformer");
  app.add_option("--csv", csv, "also write the table as CSV");
  app.add_flag("--no-torch", no_torch, "skip PyTorch");
  CLI11_PARSE(app, argc, argv);
  if (threads <= 0) threads = omp_get_max_threads();

  std::map<std::string, double> torch_ms;
  std::string torch_error;
  // PyTorch first, while Lethe's threads are idle.
  if (!no_torch) torch_ms = time_torch(threads, warmup, iters, only, torch_error);

  Session session({.seed = 0, .num_threads = threads});
  auto cases = make_cases();
  std::printf("one training step (SGD momentum), CPU, %d threads, median of %d steps\n\n", threads,
              iters);
  std::printf("%-12s %-55s %12s %12s %14s\n", "model", "", "Lethe ms", "PyTorch ms",
              "Lethe/PyTorch");
  std::ofstream csv_out;
  if (!csv.empty()) {
    csv_out.open(csv);
    csv_out << "model,threads,lethe_ms,torch_ms,ratio\n";
  }
  for (auto& c : cases) {
    if (!only.empty() && ("," + only + ",").find("," + c.name + ",") == std::string::npos) continue;
    double ms = 0;
    std::string err;
    try {
      ms = time_lethe(c, warmup, iters);
    } catch (const Error& e) {
      err = e.what();
    }
    auto it = torch_ms.find(c.name);
    if (!err.empty()) {
      std::printf("%-12s %-55s failed: %s\n", c.name.c_str(), c.what.c_str(), err.c_str());
      continue;
    }
    if (it == torch_ms.end()) {
      std::printf("%-12s %-55s %12.2f %12s %14s\n", c.name.c_str(), c.what.c_str(), ms, "-", "-");
    } else {
      std::printf("%-12s %-55s %12.2f %12.2f %14.2f\n", c.name.c_str(), c.what.c_str(), ms,
                  it->second, ms / it->second);
    }
    if (csv_out) {
      csv_out << c.name << "," << threads << "," << ms << ",";
      if (it != torch_ms.end())
        csv_out << it->second << "," << ms / it->second;
      else
        csv_out << ",";
      csv_out << "\n";
    }
  }
  if (!torch_error.empty()) std::printf("\n%s\n", torch_error.c_str());
  return 0;
}

// Issue "budgeted execution", reach: a 16-block residual MLP whose no-remat peak is at least 4x the
// budget trains under it, bitwise equal to the unlimited run, and its step time is compared with
// the unlimited run's in the same process (steps alternate so load changes hit both alike).
//
//   build/bench/budget_reach [--blocks 16] [--batch 2048] [--width 128] [--steps 6] [--ratio 4]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "lethe.h"

using namespace lethe;

namespace {

struct ResidualMlp {
  std::vector<std::shared_ptr<nn::LayerNorm>> norms;
  std::vector<std::shared_ptr<nn::Linear>> up, down;
  std::shared_ptr<nn::Linear> head;
  std::vector<Tensor> params;

  ResidualMlp(int blocks, int64_t width, int64_t classes) {
    for (int i = 0; i < blocks; ++i) {
      norms.push_back(std::make_shared<nn::LayerNorm>(nn::LayerNormOptions({width})));
      up.push_back(std::make_shared<nn::Linear>(width, width));
      down.push_back(std::make_shared<nn::Linear>(width, width));
      for (auto* m :
           {static_cast<nn::Module*>(norms.back().get()), static_cast<nn::Module*>(up.back().get()),
            static_cast<nn::Module*>(down.back().get())})
        for (auto& p : m->parameters()) params.push_back(p);
    }
    head = std::make_shared<nn::Linear>(width, classes);
    for (auto& p : head->parameters()) params.push_back(p);
  }
  Tensor forward(Tensor x) {
    for (size_t i = 0; i < up.size(); ++i)
      x = x + down[i]->forward(up[i]->forward(norms[i]->forward(x)).relu());
    return head->forward(x);
  }
};

struct Run {
  std::unique_ptr<Session> session;
  std::unique_ptr<ResidualMlp> model;
  std::unique_ptr<optim::SGD> opt;
  Tensor x, y;
  std::vector<float> losses;
  std::vector<double> seconds;

  Run(const std::string& budget, int blocks, int64_t batch, int64_t width) {
    session = std::make_unique<Session>(SessionOptions{.seed = 5, .memory_budget = budget});
    model = std::make_unique<ResidualMlp>(blocks, width, 10);
    opt = std::make_unique<optim::SGD>(model->params, optim::SGDOptions(0.05));
    x = randn({batch, width});
    std::vector<int64_t> labels(static_cast<size_t>(batch));
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>((i * 7) % 10);
    y = from_vector(labels, {batch});
  }
  void step() {
    Tensor loss = cross_entropy(model->forward(x), y);
    opt->zero_grad();
    loss.backward();
    opt->step();
    losses.push_back(loss.item<float>());
    seconds.push_back(session->last_report().seconds);
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a deep residual MLP under a budget 4x below its no-remat peak"};
  int blocks = 16, steps = 6;
  int64_t batch = 2048, width = 128;
  double ratio = 4.0;
  app.add_option("--blocks", blocks)->capture_default_str();
  app.add_option("--batch", batch)->capture_default_str();
  app.add_option("--width", width)->capture_default_str();
  app.add_option("--steps", steps)->capture_default_str();
  app.add_option("--ratio", ratio, "no-remat peak / budget")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    // The unlimited run first, to learn the no-remat peak of the step.
    Run unlimited("", blocks, batch, width);
    unlimited.step();
    const size_t no_remat = unlimited.session->last_report().peak_bytes;
    const size_t budget = static_cast<size_t>(static_cast<double>(no_remat) / ratio);
    Run budgeted(std::to_string(budget), blocks, batch, width);
    for (int i = 0; i < steps; ++i) {
      budgeted.step();
      if (i > 0) unlimited.step();  // alternate, so both see the same machine load
    }
    const StepReport& r = budgeted.session->last_report();
    bool equal = true;
    for (size_t i = 0; i < std::min(unlimited.losses.size(), budgeted.losses.size()); ++i)
      equal = equal && unlimited.losses[i] == budgeted.losses[i];
    auto mib = [](size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
    // Step 0 plans from estimated costs and step 1 from measured ones: time the rest.
    std::vector<double> tb(budgeted.seconds.begin() + std::min<size_t>(2, budgeted.seconds.size()),
                           budgeted.seconds.end());
    std::vector<double> tu(
        unlimited.seconds.begin() + std::min<size_t>(2, unlimited.seconds.size()),
        unlimited.seconds.end());
    std::printf("residual MLP: %d blocks, width %lld, batch %lld, SGD\n", blocks,
                static_cast<long long>(width), static_cast<long long>(batch));
    std::printf("%-28s %12s\n", "", "value");
    std::printf("%-28s %9.2f MiB\n", "no-remat peak (unlimited)", mib(no_remat));
    std::printf("%-28s %9.2f MiB\n", "budget (arena)", mib(r.budget_bytes));
    std::printf("%-28s %9.2f MiB\n", "measured arena peak", mib(r.peak_bytes));
    std::printf("%-28s %9.2fx\n", "no-remat peak / budget",
                static_cast<double>(no_remat) / r.budget_bytes);
    std::printf("%-28s %9s\n", "planner", r.planner.c_str());
    std::printf("%-28s %9zu\n", "recomputed ops per step", r.recomputed);
    std::printf("%-28s %9.1f ms\n", "unlimited step (median)", 1e3 * median(tu));
    std::printf("%-28s %9.1f ms\n", "budgeted step (median)", 1e3 * median(tb));
    std::printf("%-28s %9.3fx (predicted %.3fx)\n", "budgeted / unlimited", median(tb) / median(tu),
                r.predicted_overhead);
    std::printf("%-28s %9s\n", "losses bitwise equal", equal ? "yes" : "NO");
    return equal ? 0 : 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

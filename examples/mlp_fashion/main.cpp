// An MLP (784-256-128-10, ReLU) trained on Fashion-MNIST with AdamW and a cosine schedule; reports
// test accuracy.
//
//   build/examples/mlp_fashion/mlp_fashion --epochs 2 --batch 64 --lr 2e-3
//   build/examples/mlp_fashion/mlp_fashion --steps 50 --memory-budget 0.25 --planner auto
//   build/examples/mlp_fashion/mlp_fashion --steps 1 --export-graph mlp.graph.json
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "data/data.h"
#include "lethe.h"
#include "nn/nn.h"
#include "optim/optim.h"

namespace {

using Clock = std::chrono::steady_clock;

// One status line: a tqdm-style bar rewritten in place on a terminal, plain periodic lines otherwise.
class Progress {
 public:
  explicit Progress(bool tty) : tty_(tty) {}
  void update(int epoch, int64_t step_in_epoch, int64_t steps_per_epoch, double loss, double samples_per_s,
              size_t peak_bytes, bool last) {
    if (tty_) {
      const int width = 30;
      const double frac = static_cast<double>(step_in_epoch) / static_cast<double>(steps_per_epoch);
      const int fill = static_cast<int>(frac * width);
      std::string bar(static_cast<size_t>(fill), '#');
      bar.resize(width, '.');
      std::printf("\repoch %d [%s] %5lld/%lld  loss %.4f  %8.0f samples/s  peak %.1f MiB", epoch,
                  bar.c_str(), static_cast<long long>(step_in_epoch), static_cast<long long>(steps_per_epoch),
                  loss, samples_per_s, static_cast<double>(peak_bytes) / (1024.0 * 1024.0));
      if (last) std::printf("\n");
      std::fflush(stdout);
    }
  }
  // Not a terminal: one line per step with its loss and the step report (arena peak, plan, time).
  void step_line(int64_t step, double loss, const lethe::StepReport& r) {
    if (tty_) return;
    std::printf("step %lld loss %.6f | %s\n", static_cast<long long>(step), loss, r.str().c_str());
    std::fflush(stdout);
  }

 private:
  bool tty_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a 784-256-128-10 MLP on Fashion-MNIST with Lethe"};
  std::string data_dir = lethe::data::FashionMNIST::kDefaultDir;
  int epochs = 2;
  int64_t batch = 64;
  double lr = 2e-3;
  uint64_t seed = 0;
  int64_t max_steps = 0;
  std::string budget, device = "cpu", planner = "auto", export_graph;
  int threads = 0;
  app.add_option("--data", data_dir, "folder with the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--epochs", epochs, "epochs")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "batch size")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--lr", lr, "AdamW learning rate")->capture_default_str();
  app.add_option("--seed", seed, "seed of initialisation and shuffling")->capture_default_str();
  app.add_option("--steps", max_steps, "stop after this many steps (0: no limit)")->capture_default_str();
  app.add_option("--memory-budget", budget, "memory budget (\"512MiB\", or a fraction of activations)");
  app.add_option("--planner", planner, "planner: auto, lethe, keep-all, sqrt, chain, treewidth, dtr, checkmate")
      ->capture_default_str();
  app.add_option("--export-graph", export_graph, "write the training step as a remat-graph/1 file");
  app.add_option("--device", device, "cpu or cuda[:i]")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0: default)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    lethe::Session session({.device = lethe::Device::parse(device),
                            .seed = seed,
                            .memory_budget = budget,
                            .planner = planner,
                            .num_threads = threads});
    auto train_set = std::make_shared<lethe::data::FashionMNIST>(data_dir, true);
    auto test_set = std::make_shared<lethe::data::FashionMNIST>(data_dir, false);
    lethe::data::DataLoader train(
        train_set, lethe::data::DataLoaderOptions().batch_size(batch).shuffle(true).drop_last(true).seed(seed));
    // Evaluation batches as large as training ones, so that the step fits the same memory budget.
    lethe::data::DataLoader test(test_set, lethe::data::DataLoaderOptions().batch_size(batch));

    using namespace lethe::nn;
    auto model = std::make_shared<Sequential>(
        std::make_shared<Flatten>(), std::make_shared<Linear>(784, 256), std::make_shared<ReLU>(),
        std::make_shared<Linear>(256, 128), std::make_shared<ReLU>(), std::make_shared<Linear>(128, 10));
    lethe::optim::AdamW opt(model->parameters(), lethe::optim::AdamWOptions(lr).weight_decay(1e-4));
    // Short linear warmup, then cosine decay to 5% of the rate over the run.
    const int64_t total_steps = max_steps > 0 ? std::min<int64_t>(max_steps, epochs * train.size())
                                              : epochs * train.size();
    lethe::optim::CosineWarmupLR schedule(opt, std::min<int64_t>(100, total_steps), total_steps, 0.05 * lr);
    std::cout << *model << "\n"
              << model->num_parameters() << " parameters, " << train_set->size() << " training images\n";

    Progress progress(isatty(STDOUT_FILENO) == 1);
    int64_t step = 0;
    const auto t_start = Clock::now();
    bool stop = false;
    for (int epoch = 1; epoch <= epochs && !stop; ++epoch) {
      model->train();
      auto t_epoch = Clock::now();
      int64_t i = 0, seen = 0;
      double smooth = 0;
      for (const auto& b : train) {
        auto loss = lethe::cross_entropy(model->forward(b.data), b.target);
        opt.zero_grad();
        loss.backward();
        opt.step();
        schedule.step();
        const double l = loss.item<double>();
        smooth = i == 0 ? l : 0.95 * smooth + 0.05 * l;
        ++i;
        ++step;
        seen += b.data.size(0);
        progress.step_line(step, l, session.last_report());
        if (step == 1 && !export_graph.empty()) {
          session.export_graph(export_graph);
          std::printf("wrote the training step graph to %s\n", export_graph.c_str());
        }
        stop = max_steps > 0 && step >= max_steps;
        const double secs = std::chrono::duration<double>(Clock::now() - t_epoch).count();
        progress.update(epoch, i, train.size(), smooth, static_cast<double>(seen) / secs,
                        session.last_report().peak_bytes,
                        stop || i == train.size());
        if (stop) break;
      }
    }
    const double train_s = std::chrono::duration<double>(Clock::now() - t_start).count();
    const lethe::StepReport last = session.last_report();
    std::printf("last step: %s\n", last.str().c_str());

    model->eval();
    lethe::NoGradGuard no_grad;
    int64_t correct = 0, total = 0;
    for (const auto& b : test) {
      auto pred = lethe::argmax(model->forward(b.data), 1).to_vector<int64_t>();
      auto target = b.target.to_vector<int64_t>();
      for (size_t k = 0; k < pred.size(); ++k) correct += pred[k] == target[k];
      total += static_cast<int64_t>(pred.size());
    }
    std::printf("trained %lld steps in %.1f s (%.1f ms/step)\n", static_cast<long long>(step), train_s,
                step ? 1000.0 * train_s / static_cast<double>(step) : 0.0);
    std::printf("test accuracy: %.1f%%\n", 100.0 * static_cast<double>(correct) / static_cast<double>(total));
    return 0;
  } catch (const lethe::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

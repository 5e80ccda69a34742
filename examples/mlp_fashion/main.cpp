// An MLP (784-256-128-10, ReLU) trained on Fashion-MNIST with AdamW and a cosine schedule; reports
// test accuracy and, under a budget, the cost of rematerialisation.
//
//   build/examples/mlp_fashion/mlp_fashion --epochs 2 --batch 64 --lr 2e-3
//   build/examples/mlp_fashion/mlp_fashion --steps 50 --memory-budget 0.25 --planner lethe
//   --compare-unlimited 50 build/examples/mlp_fashion/mlp_fashion --steps 1 --export-graph
//   mlp.graph.json --trace mlp.trace.json
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>

#include "common/example.h"
#include "mlp_fashion/model.h"

int main(int argc, char** argv) {
  using namespace lethe;
  using namespace lethe::examples;
  CLI::App app{"Train a 784-256-128-10 MLP on Fashion-MNIST with Lethe"};
  CommonFlags flags;
  flags.steps = 0;
  flags.batch = 64;
  flags.add(app);
  std::string data_dir = data::FashionMNIST::kDefaultDir;
  int epochs = 2;
  double lr = 2e-3;
  app.add_option("--data", data_dir, "folder with the Fashion-MNIST IDX files")
      ->capture_default_str();
  app.add_option("--epochs", epochs, "epochs (when --steps is 0)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--lr", lr, "AdamW learning rate")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::shared_ptr<data::FashionMNIST> train_set, test_set;
  try {
    train_set = std::make_shared<data::FashionMNIST>(data_dir, true);
    test_set = std::make_shared<data::FashionMNIST>(data_dir, false);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  const int64_t per_epoch = train_set->size() / flags.batch;
  if (flags.steps == 0) flags.steps = epochs * per_epoch;

  auto make = [&]() -> Job {
    auto model = make_mlp();
    auto opt = std::make_shared<optim::AdamW>(model->parameters(),
                                              optim::AdamWOptions(lr).weight_decay(1e-4));
    // Short linear warmup, then cosine decay to 5% of the rate over the run.
    auto schedule = std::make_shared<optim::CosineWarmupLR>(
        *opt, std::min<int64_t>(100, flags.steps), flags.steps, 0.05 * lr);
    static bool printed = false;
    if (!printed) {
      std::cout << *model << "\n"
                << model->num_parameters() << " parameters, " << train_set->size()
                << " training images\n";
      printed = true;
    }
    auto loader = std::make_shared<data::DataLoader>(train_set, data::DataLoaderOptions()
                                                                    .batch_size(flags.batch)
                                                                    .shuffle(true)
                                                                    .drop_last(true)
                                                                    .seed(flags.seed));
    Job job = cross_entropy_job(model, loader, opt, schedule);
    job.finish = [=]() {
      // Evaluation batches as large as training ones, so that the step fits the same memory budget.
      data::DataLoader test(test_set, data::DataLoaderOptions().batch_size(flags.batch));
      model->eval();
      NoGradGuard no_grad;
      int64_t correct = 0, total = 0;
      for (const auto& b : test) {
        auto pred = argmax(model->forward(b.data), 1).to_vector<int64_t>();
        auto target = b.target.to_vector<int64_t>();
        for (size_t k = 0; k < pred.size(); ++k) correct += pred[k] == target[k];
        total += static_cast<int64_t>(pred.size());
      }
      char line[96];
      std::snprintf(line, sizeof line, "test accuracy %.1f%% (%lld images)",
                    100.0 * static_cast<double>(correct) / static_cast<double>(total),
                    static_cast<long long>(total));
      return std::string(line);
    };
    return job;
  };
  return main_loop("MLP (Fashion-MNIST)", flags, make);
}

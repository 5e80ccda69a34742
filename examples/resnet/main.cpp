// ResNet-18/34/50 trained with SGD (momentum, cosine schedule) on CIFAR-10 (--data DIR) or on a
// built-in synthetic image set; reports held-out accuracy and, under a budget, the cost of
// rematerialisation.
//
//   build/examples/resnet/resnet --depth 18 --width 16 --steps 150            # synthetic, ~1 min
//   on 2 cores
//   build/examples/resnet/resnet --depth 50 --image-size 64 --batch 32 --steps 6 \
//       --memory-budget 0.25 --planner lethe --compare-unlimited 6 --trace resnet50.trace.json
//   build/examples/resnet/resnet --data cifar-10-batches-bin --depth 18 --steps 2000
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "common/example.h"
#include "resnet/model.h"

int main(int argc, char** argv) {
  using namespace lethe;
  using namespace lethe::examples;
  CLI::App app{"Train a ResNet with Lethe, under a memory budget if asked"};
  CommonFlags flags;
  flags.steps = 150;
  flags.batch = 32;
  flags.add(app);
  ResNetConfig rc;
  rc.width = 64;
  int64_t image_size = 32, train_size = 4096, eval_size = 512;
  std::string data_dir, stem = "auto";
  double lr = 0.05;
  app.add_option("--depth", rc.depth, "18, 34 or 50")
      ->capture_default_str()
      ->check(CLI::IsMember({18, 34, 50}));
  app.add_option("--width", rc.width, "channels of the first stage")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--image-size", image_size, "image side in pixels")
      ->capture_default_str()
      ->check(CLI::Range(8, 1024));
  app.add_option("--stem", stem,
                 "auto (ImageNet stem above 32 px), imagenet (7x7/2 + max pool) or cifar (3x3/1)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "imagenet", "cifar"}));
  app.add_option("--data", data_dir,
                 "folder with CIFAR-10 binary files (data_batch_*.bin); default: synthetic");
  app.add_option("--train-size", train_size, "synthetic training images")->capture_default_str();
  app.add_option("--eval-size", eval_size, "held-out images for the final accuracy (0: none)")
      ->capture_default_str();
  app.add_option("--lr", lr, "SGD learning rate")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  rc.imagenet_stem = stem == "imagenet" || (stem == "auto" && image_size > 32);

  auto make = [&]() -> Job {
    std::shared_ptr<data::Dataset> train_set, eval_set;
    if (!data_dir.empty()) {
      train_set = std::make_shared<Cifar10>(data_dir, true, image_size);
      eval_set = std::make_shared<Cifar10>(data_dir, false, image_size);
    } else {
      train_set = std::make_shared<SyntheticImages>(train_size, image_size, rc.classes, flags.seed);
      eval_set =
          std::make_shared<SyntheticImages>(eval_size, image_size, rc.classes, flags.seed, 1 << 30);
    }
    auto net = std::make_shared<ResNet>(rc);
    auto opt = std::make_shared<optim::SGD>(net->parameters(),
                                            optim::SGDOptions(lr).momentum(0.9).weight_decay(5e-4));
    auto sched =
        std::make_shared<optim::CosineWarmupLR>(*opt, std::min<int64_t>(20, flags.steps / 5 + 1),
                                                std::max<int64_t>(flags.steps, 1), 0.02 * lr);
    // Data parallel: each rank iterates its share of every epoch's shuffled order.
    auto loader = std::make_shared<data::DataLoader>(
        train_set,
        flags.data_parallel
            ? data::DataLoaderOptions()
                  .batch_size(flags.batch)
                  .drop_last(true)
                  .sampler(std::make_shared<data::DistributedSampler>(
                      train_set->size(),
                      data::DistributedSamplerOptions().seed(flags.seed).drop_last(true)))
            : data::DataLoaderOptions()
                  .batch_size(flags.batch)
                  .shuffle(true)
                  .drop_last(true)
                  .seed(flags.seed));
    static bool printed = false;
    if (!printed) {
      std::cout << *net << ": " << net->num_parameters() << " parameters, " << image_size << "x"
                << image_size << " images, " << (data_dir.empty() ? "synthetic" : "CIFAR-10")
                << " (" << train_set->size() << " training images)\n";
      printed = true;
    }
    Job job = cross_entropy_job(net, loader, opt, sched);
    job.finish = [=]() -> std::string {
      if (eval_set->size() == 0) return "";
      // Batches of the training size, so evaluation fits the same memory budget.
      data::DataLoader ev(eval_set,
                          data::DataLoaderOptions().batch_size(flags.batch).drop_last(true));
      net->eval();
      NoGradGuard no_grad;
      int64_t correct = 0, total = 0;
      for (const auto& b : ev) {
        auto pred = argmax(net->forward(b.data), 1).to_vector<int64_t>();
        auto target = b.target.to_vector<int64_t>();
        for (size_t k = 0; k < pred.size(); ++k) correct += pred[k] == target[k];
        total += static_cast<int64_t>(pred.size());
      }
      if (total == 0) return "";
      char line[128];
      std::snprintf(line, sizeof line, "held-out accuracy %.1f%% on %lld images (chance %.1f%%)",
                    100.0 * static_cast<double>(correct) / static_cast<double>(total),
                    static_cast<long long>(total), 100.0 / static_cast<double>(rc.classes));
      return std::string(line);
    };
    return job;
  };
  return main_loop("ResNet-" + std::to_string(rc.depth), flags, make);
}

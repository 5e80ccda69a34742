// A small U-Net trained with AdamW (cosine schedule) to segment a built-in synthetic image set
// (coloured rectangles and discs on noise); reports held-out pixel accuracy and, under a budget,
// the cost of rematerialisation. Its long skip connections keep every encoder level's output alive
// until the decoder, which is what makes the step's memory hard to plan.
//
//   build/examples/unet/unet --steps 100                                         # depth 3, width
//   16, 64 px
//   build/examples/unet/unet --steps 12 --batch 8 --threads 1 \
//       --memory-budget 0.25 --compare-unlimited 12 --trace unet.trace.json
//   build/examples/unet/unet --steps 3 --batch 8 --export-graph unet-w16.graph.json --quiet
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "common/example.h"
#include "unet/model.h"

int main(int argc, char** argv) {
  using namespace lethe;
  using namespace lethe::examples;
  CLI::App app{"Train a U-Net for segmentation with Lethe, under a memory budget if asked"};
  CommonFlags flags;
  flags.steps = 100;
  flags.batch = 8;
  flags.add(app);
  UNetConfig uc;
  int64_t image_size = 64, train_size = 2048, eval_size = 32;
  double lr = 3e-3;
  app.add_option("--depth", uc.depth, "encoder levels (each halves the resolution)")
      ->capture_default_str()
      ->check(CLI::Range(1, 8));
  app.add_option("--width", uc.width, "channels of the first level (doubled at each level below)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--image-size", image_size, "image side in pixels (a multiple of 2^depth)")
      ->capture_default_str()
      ->check(CLI::Range(2, 1024));
  app.add_option("--classes", uc.classes, "pixel classes (class 0 is the background)")
      ->capture_default_str()
      ->check(CLI::Range(2, 64));
  app.add_option("--train-size", train_size, "synthetic training images")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--eval-size", eval_size, "held-out images for the final pixel accuracy (0: none)")
      ->capture_default_str();
  app.add_option("--lr", lr, "AdamW learning rate")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (image_size % (int64_t{1} << uc.depth) != 0) {
    std::fprintf(stderr, "error: --image-size %lld is not a multiple of 2^depth = %lld\n",
                 static_cast<long long>(image_size),
                 static_cast<long long>(int64_t{1} << uc.depth));
    return 1;
  }

  auto make = [&]() -> Job {
    auto train_set =
        std::make_shared<SyntheticSegmentation>(train_size, image_size, uc.classes, flags.seed);
    auto eval_set = std::make_shared<SyntheticSegmentation>(eval_size, image_size, uc.classes,
                                                            flags.seed, 1 << 30);
    auto net = std::make_shared<UNet>(uc);
    auto opt = std::make_shared<optim::AdamW>(net->parameters(),
                                              optim::AdamWOptions(lr).weight_decay(1e-4));
    auto sched =
        std::make_shared<optim::CosineWarmupLR>(*opt, std::min<int64_t>(20, flags.steps / 5 + 1),
                                                std::max<int64_t>(flags.steps, 1), 0.05 * lr);
    auto loader = std::make_shared<data::DataLoader>(train_set, data::DataLoaderOptions()
                                                                    .batch_size(flags.batch)
                                                                    .shuffle(true)
                                                                    .drop_last(true)
                                                                    .seed(flags.seed));
    static bool printed = false;
    if (!printed) {
      std::cout << *net << ": " << net->num_parameters() << " parameters, " << image_size << "x"
                << image_size << " images, synthetic segmentation (" << train_set->size()
                << " training images)\n";
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
      int64_t correct = 0, total = 0, background = 0;
      for (const auto& b : ev) {
        auto pred = argmax(net->forward(b.data), 1).to_vector<int64_t>();
        auto target = b.target.to_vector<int64_t>();
        for (size_t k = 0; k < pred.size(); ++k) {
          correct += pred[k] == target[k];
          background += target[k] == 0;
        }
        total += static_cast<int64_t>(pred.size());
      }
      if (total == 0) return "";
      char line[160];
      std::snprintf(line, sizeof line,
                    "held-out pixel accuracy %.1f%% on %lld images (%lld pixels; all-background "
                    "guess %.1f%%)",
                    100.0 * static_cast<double>(correct) / static_cast<double>(total),
                    static_cast<long long>(total / (image_size * image_size)),
                    static_cast<long long>(total),
                    100.0 * static_cast<double>(background) / static_cast<double>(total));
      return std::string(line);
    };
    return job;
  };
  return main_loop("UNet", flags, make);
}

// A character-level GPT (decoder-only, pre-norm Transformer) trained with AdamW on text files;
// samples text at the end and, under a budget, reports the cost of rematerialisation.
//
//   build/examples/gpt/gpt --steps 300                                 # all of
//   /usr/share/common-licenses
//   build/examples/gpt/gpt --layers 6 --d-model 256 --context 256 --batch 8 --steps 6 \
//       --memory-budget 0.25 --planner lethe --compare-unlimited 6 --trace gpt.trace.json
//   build/examples/gpt/gpt --text book.txt --sample 500 --temperature 0.8
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "common/example.h"
#include "gpt/model.h"

int main(int argc, char** argv) {
  using namespace lethe;
  using namespace lethe::examples;
  CLI::App app{"Train a character-level GPT with Lethe, under a memory budget if asked"};
  CommonFlags flags;
  flags.steps = 300;
  flags.batch = 16;
  flags.add(app);
  GPTConfig gc;
  std::vector<std::string> text_paths{"/usr/share/common-licenses"};
  int64_t sample = 200;
  double temperature = 0.8, lr = 3e-3, dropout = 0.0;
  std::string prompt = "The ";
  app.add_option("--text", text_paths, "text file(s) or folder(s) to train on")
      ->capture_default_str();
  app.add_option("--layers", gc.layers, "Transformer blocks")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--d-model", gc.d_model, "embedding width")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--heads", gc.heads, "attention heads")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--context", gc.context, "context length (characters)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--dropout", dropout, "dropout probability")->capture_default_str();
  app.add_option("--lr", lr, "AdamW learning rate")->capture_default_str();
  app.add_option("--sample", sample, "characters to sample at the end (0: none)")
      ->capture_default_str();
  app.add_option("--temperature", temperature, "sampling temperature (0: greedy)")
      ->capture_default_str();
  app.add_option("--prompt", prompt, "text the sample starts from")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  gc.dropout = dropout;

  std::shared_ptr<CharText> text;
  try {
    text = std::make_shared<CharText>(text_paths);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  gc.vocab = text->vocab_size();
  if (gc.d_model % gc.heads != 0) {
    std::fprintf(stderr, "error: --d-model %lld is not a multiple of --heads %lld\n",
                 static_cast<long long>(gc.d_model), static_cast<long long>(gc.heads));
    return 1;
  }
  std::printf("text: %zu characters from %zu file(s), vocabulary %lld\n", text->size(),
              text->files(), static_cast<long long>(gc.vocab));

  auto make = [&]() -> Job {
    auto gpt = std::make_shared<GPT>(gc);
    auto opt = std::make_shared<optim::AdamW>(gpt->parameters(),
                                              optim::AdamWOptions(lr).weight_decay(0.01));
    auto sched =
        std::make_shared<optim::CosineWarmupLR>(*opt, std::min<int64_t>(30, flags.steps / 5 + 1),
                                                std::max<int64_t>(flags.steps, 1), 0.1 * lr);
    static bool printed = false;
    if (!printed) {
      std::cout << *gpt << ": " << gpt->num_parameters() << " parameters\n";
      printed = true;
    }
    Job job;
    job.samples_per_step = flags.batch;
    const uint64_t seed = flags.seed;
    const int64_t batch = flags.batch;
    // Data parallel: each rank its own batches (rank r of N takes the batches N * step + r).
    const int64_t rank = dist::rank(), ranks = dist::world_size();
    job.step = [=](int64_t step) {
      auto [x, y] = text->batch(batch, gc.context, step * ranks + rank, seed);
      Tensor loss = gpt->loss(x, y);
      opt->zero_grad();
      loss.backward();
      opt->step();
      sched->step();
      return read_loss(loss);
    };
    // Batches are a function of the step: the step count and the schedule are the whole progress.
    checkpoint_by_step(job, gpt, opt, sched);
    job.finish = [=]() -> std::string {
      if (sample <= 0) return "";
      std::string s = sample_text(*gpt, *text, prompt, sample, temperature, seed);
      std::printf("\n--- sample (temperature %.2f) ---\n%s%s\n---\n", temperature, prompt.c_str(),
                  s.c_str());
      return "";
    };
    return job;
  };
  return main_loop("GPT", flags, make);
}

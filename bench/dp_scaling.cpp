// Data-parallel scaling on this machine: 1 rank against 2 ranks (1 thread each), unlimited and at
// half of the activations, for a GPT and a ResNet-18; samples per second and the share of the
// all-reduce time hidden behind the backward pass. Run under `mpirun -np 2` (one job: the 1-rank
// figures come from rank 0 training alone while rank 1 waits, so the ratios are of one run):
//
//   OMP_NUM_THREADS=1 mpirun -np 2 --oversubscribe --bind-to none build/bench/dp_scaling --csv
//   docs/dp_scaling.csv
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "gpt/model.h"
#include "lethe.h"
#include "resnet/model.h"

using namespace lethe;

namespace {

struct Model {
  std::shared_ptr<nn::Module> module;
  // The loss of step `step` on this rank's batch `part` (0 when alone).
  std::function<Tensor(int64_t step, int64_t part)> loss;
  int64_t batch = 0;
};

Model gpt(int64_t batch) {
  examples::GPTConfig c{.vocab = 96, .context = 128, .layers = 4, .d_model = 128, .heads = 4};
  auto m = std::make_shared<examples::GPT>(c);
  return {m,
          [m, c, batch](int64_t step, int64_t part) {
            std::vector<int64_t> x(static_cast<size_t>(batch * c.context)), y(x.size());
            for (size_t i = 0; i < x.size(); ++i) {
              const uint64_t h =
                  (static_cast<uint64_t>(step * 7919 + part * 104729) + i) * 0x9e3779b97f4a7c15ull;
              x[i] = static_cast<int64_t>((h >> 33) % static_cast<uint64_t>(c.vocab));
              y[i] = static_cast<int64_t>((h >> 17) % static_cast<uint64_t>(c.vocab));
            }
            return m->loss(from_vector(x, {batch, c.context}), from_vector(y, {batch, c.context}));
          },
          batch};
}

Model resnet(int64_t batch) {
  auto m = std::make_shared<examples::ResNet>(
      examples::ResNetConfig{.depth = 18, .width = 16, .classes = 10});
  auto data = std::make_shared<examples::SyntheticImages>(1 << 20, 32, 10, 1);
  return {m,
          [m, data, batch](int64_t step, int64_t part) {
            std::vector<int64_t> idx(static_cast<size_t>(batch));
            for (int64_t i = 0; i < batch; ++i)
              idx[static_cast<size_t>(i)] = (step * 2 + part) * batch + i;
            data::Batch b = data->get_batch(idx);
            return cross_entropy(m->forward(b.data), b.target);
          },
          batch};
}

struct Measure {
  double samples_per_s = 0, step_s = 0, allreduce_s = 0, hidden_s = 0;
};

Measure train(const std::function<Model()>& make, const std::string& budget, bool data_parallel,
              int warmup, int steps, double bucket_mib, const std::string& trace = "") {
  Session s({.memory_budget = budget,
             .num_threads = 1,
             .trace_path = trace,
             .data_parallel = data_parallel,
             .bucket_bytes = static_cast<size_t>(bucket_mib * (1 << 20))});
  Model m = make();
  optim::AdamW opt(m.module->parameters(), optim::AdamWOptions(1e-3));
  std::vector<double> times;
  Measure r;
  for (int i = 0; i < warmup + steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    Tensor loss = m.loss(i, data_parallel ? dist::rank() : 0);
    loss.backward();
    opt.step();
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i < warmup) continue;
    times.push_back(t);
    if (std::getenv("LETHE_DP_VERBOSE") && dist::rank() == 0)
      std::printf("  %s\n", s.last_report().str().c_str());
    r.allreduce_s += s.last_report().allreduce_seconds;
    r.hidden_s += s.last_report().allreduce_overlap_seconds;
  }
  std::sort(times.begin(), times.end());
  r.step_s = times[times.size() / 2];
  const int ranks = data_parallel ? dist::world_size() : 1;
  r.samples_per_s = static_cast<double>(m.batch * ranks) / r.step_s;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Data-parallel scaling: 1 rank vs the ranks of mpirun, unlimited and at 0.5 of the "
      "activations"};
  std::string csv;
  int warmup = 3, steps = 12;
  int64_t gpt_batch = 8, resnet_batch = 16;
  // These models hold 1-3 MiB of gradients: DDP's 25 MiB buckets would make one bucket, all-reduced
  // after the whole backward pass. 1 MiB buckets let the all-reduces overlap it.
  double bucket_mib = 1;
  app.add_option("--csv", csv, "write the table as CSV here");
  app.add_option("--warmup", warmup)->capture_default_str();
  app.add_option("--steps", steps, "measured steps (median)")->capture_default_str();
  app.add_option("--gpt-batch", gpt_batch, "per-rank batch of the GPT")->capture_default_str();
  app.add_option("--resnet-batch", resnet_batch, "per-rank batch of the ResNet-18")
      ->capture_default_str();
  app.add_option("--bucket-mib", bucket_mib, "gradient bucket size (SessionOptions::bucket_bytes)")
      ->capture_default_str();
  std::string trace_dir;
  app.add_option("--trace", trace_dir,
                 "write each data-parallel run's trace (Chrome JSON) into this directory, one file "
                 "per model, budget and rank");
  std::vector<std::string> budgets{"", "0.5"};
  app.add_option("--budgets", budgets, "memory budgets (\"\" or unlimited: none)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  dist::init();
  const int rank = dist::rank(), world = dist::world_size();
  if (world < 2) {
    std::fprintf(stderr, "dp_scaling: run it under mpirun -np 2 (got %d rank)\n", world);
    return 1;
  }
  struct Row {
    std::string model, budget;
    Measure one, many;
  };
  std::vector<Row> rows;
  const std::vector<std::pair<std::string, std::function<Model()>>> models = {
      {"gpt 4x128 ctx128", [&] { return gpt(gpt_batch); }},
      {"resnet18 w16 32px", [&] { return resnet(resnet_batch); }}};
  for (const auto& [name, make] : models)
    for (std::string budget : budgets) {
      if (budget == "unlimited") budget.clear();
      Row row{name, budget.empty() ? "unlimited" : budget, {}, {}};
      // Rank 0 alone first (the others wait at the barrier), then every rank together.
      if (rank == 0) row.one = train(make, budget, false, warmup, steps, bucket_mib);
      dist::barrier();
      std::string trace;
      if (!trace_dir.empty())
        trace = trace_dir + "/dp_" + name.substr(0, name.find(' ')) + "_" + row.budget + "_rank" +
                std::to_string(rank) + ".json";
      row.many = train(make, budget, true, warmup, steps, bucket_mib, trace);
      rows.push_back(row);
      if (rank == 0)
        std::printf(
            "%-18s %-9s 1 rank %7.1f samples/s | %d ranks %7.1f samples/s (%.2fx) | all-reduce "
            "%.1f ms/step, "
            "%.0f%% hidden\n",
            name.c_str(), row.budget.c_str(), row.one.samples_per_s, world, row.many.samples_per_s,
            row.many.samples_per_s / row.one.samples_per_s, row.many.allreduce_s / steps * 1e3,
            row.many.allreduce_s > 0 ? 100 * row.many.hidden_s / row.many.allreduce_s : 0.0);
    }
  if (rank == 0 && !csv.empty()) {
    std::ofstream f(csv);
    f << "model,budget,ranks,samples_per_s_1rank,samples_per_s_ranks,speedup,allreduce_ms_per_step,"
         "hidden_fraction\n";
    for (const Row& r : rows)
      f << r.model << "," << r.budget << "," << world << "," << r.one.samples_per_s << ","
        << r.many.samples_per_s << "," << r.many.samples_per_s / r.one.samples_per_s << ","
        << r.many.allreduce_s / steps * 1e3 << ","
        << (r.many.allreduce_s > 0 ? r.many.hidden_s / r.many.allreduce_s : 0.0) << "\n";
    std::printf("wrote %s\n", csv.c_str());
  }
  dist::finalize();
  return 0;
}

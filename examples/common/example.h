// What every Lethe example shares: the common flags, the progress display, a training loop run in a
// fresh session, and the end-of-run report that compares the budgeted run with an unlimited run of the
// same model made in the same process.
//
//   lethe::examples::CommonFlags flags;
//   flags.add(app);                                    // --device --memory-budget --planner --steps ...
//   auto make = [&]() { /* build model + optimizer in the current session */ return Job{step, finish}; };
//   return lethe::examples::main_loop("resnet-18", flags, make);
#pragma once

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "lethe.h"

namespace lethe::examples {

using Clock = std::chrono::steady_clock;

struct CommonFlags {
  std::string device = "cpu";
  std::string budget;            // "" = unlimited
  std::string planner = "auto";
  int64_t steps = 100;
  int64_t batch = 32;
  uint64_t seed = 0;
  std::string export_graph;
  std::string trace;
  int64_t compare_unlimited = 0;  // steps of an unlimited run made first (0: none)
  int threads = 0;
  bool quiet = false;             // no per-step lines (reports only)

  void add(CLI::App& app) {
    app.add_option("--device", device, "cpu or cuda[:i]")->capture_default_str();
    app.add_option("--memory-budget", budget,
                   "memory budget: bytes (\"512MiB\") or a fraction of the activations (\"0.25\"); "
                   "empty = unlimited");
    app.add_option("--planner", planner, "planner: auto, lethe, dtr, treewidth, chain, sqrt, checkmate, keep-all")
        ->capture_default_str();
    app.add_option("--steps", steps, "training steps")->capture_default_str()->check(CLI::NonNegativeNumber);
    app.add_option("--batch", batch, "batch size")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--seed", seed, "seed of initialisation, data and dropout")->capture_default_str();
    app.add_option("--export-graph", export_graph,
                   "write the last training step as a remat-graph/1 file (op costs: its measured times)");
    app.add_option("--trace", trace, "write a Chrome trace (ui.perfetto.dev) of the budgeted run");
    app.add_option("--compare-unlimited", compare_unlimited,
                   "first run this many steps without a budget (same model, same batches) to measure the "
                   "overhead and check the losses bitwise")
        ->capture_default_str();
    app.add_option("--threads", threads, "CPU threads (0: default)")->capture_default_str();
    app.add_flag("--quiet", quiet, "no per-step lines");
  }
  SessionOptions session(bool with_budget, bool with_trace) const {
    SessionOptions o;
    o.device = Device::parse(device);
    o.seed = seed;
    o.memory_budget = with_budget ? budget : "";
    o.planner = planner;
    o.num_threads = threads;
    if (with_trace) o.trace_path = trace;
    return o;
  }
  bool budgeted() const { return !budget.empty() && budget != "unlimited" && budget != "inf"; }
};

inline double mib(size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

// A progress bar rewritten in place on a terminal; one line per step otherwise.
class Progress {
 public:
  Progress(bool tty, bool quiet) : tty_(tty), quiet_(quiet) {}
  void update(const std::string& label, int64_t step, int64_t steps, double loss, double samples_per_s,
              const StepReport& r) {
    if (tty_) {
      const int width = 24;
      const int fill = steps > 0 ? static_cast<int>(width * static_cast<double>(step) / static_cast<double>(steps)) : width;
      std::string bar(static_cast<size_t>(std::clamp(fill, 0, width)), '#');
      bar.resize(width, '.');
      std::printf("\r%-9s [%s] %5lld/%lld  loss %.4f  %7.1f samples/s  peak %.1f MiB%s", label.c_str(), bar.c_str(),
                  static_cast<long long>(step), static_cast<long long>(steps), loss, samples_per_s,
                  mib(r.peak_bytes), r.recomputed ? " (remat)" : "");
      if (step == steps) std::printf("\n");
      std::fflush(stdout);
    } else if (!quiet_) {
      std::printf("%s step %lld loss %.6f %.1f samples/s | %s\n", label.c_str(), static_cast<long long>(step), loss,
                  samples_per_s, r.str().c_str());
      std::fflush(stdout);
    }
  }

 private:
  bool tty_, quiet_;
};

// One model's training, built inside the current session: step(i) records and runs step i and returns
// its loss; finish() (optional) evaluates or samples at the end of the main run.
struct Job {
  std::function<double(int64_t step)> step;
  std::function<void()> finish;
  int64_t samples_per_step = 1;
};

// One training step per call, over a loader that starts again when it runs out (a new epoch):
// cross_entropy of net(batch.data) against batch.target, backward, optimizer step, LR schedule.
// (For segmentation the logits are [N, classes, H, W] and the targets [N, H, W].)
template <typename Net, typename Opt>
std::function<double(int64_t)> cross_entropy_step(std::shared_ptr<Net> net, std::shared_ptr<data::DataLoader> loader,
                                                  std::shared_ptr<Opt> opt,
                                                  std::shared_ptr<optim::CosineWarmupLR> sched) {
  auto it = std::make_shared<data::DataLoader::Iterator>(loader->begin());
  return [=](int64_t) {
    if (*it == loader->end()) *it = loader->begin();
    const data::Batch& b = **it;
    net->train();
    Tensor loss = cross_entropy(net->forward(b.data), b.target);
    opt->zero_grad();
    loss.backward();
    opt->step();
    sched->step();
    ++*it;
    return loss.item<double>();
  };
}

struct RunResult {
  std::vector<double> losses;
  std::vector<double> wall_s;  // whole iteration: record, backward, plan (when not cached), execute
  std::vector<double> exec_s;  // StepReport::seconds: execution of the step graph only
  size_t max_peak = 0, budget = 0, no_remat_peak = 0;
  double predicted_overhead = 1.0, first_planning_s = 0.0, planning_s = 0.0;
  size_t recomputed = 0;
  std::string planner;
};

// Median of v[from..]; the first steps plan (twice: estimated, then measured costs) and warm caches.
inline double median_from(std::vector<double> v, size_t from) {
  if (v.size() > from) v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(from));
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
inline size_t timing_skip(size_t n) { return n > 4 ? 2 : (n > 2 ? 1 : 0); }

// Runs `steps` steps of make() in a fresh session with options `o`. Throws what the session throws
// (lethe::InfeasibleBudget when the budget cannot be met).
inline RunResult run_session(const SessionOptions& o, int64_t steps, const std::function<Job()>& make,
                             const std::string& label, bool tty, bool quiet, bool run_finish,
                             const std::string& export_graph = "") {
  RunResult r;
  Session session(o);
  Job job = make();
  Progress progress(tty, quiet);
  double smooth = 0;
  int64_t seen = 0;
  auto t_start = Clock::now();
  for (int64_t i = 0; i < steps; ++i) {
    auto t0 = Clock::now();
    const double loss = job.step(i);
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    const StepReport& rep = session.last_report();
    r.losses.push_back(loss);
    r.wall_s.push_back(wall);
    r.exec_s.push_back(rep.seconds);
    r.max_peak = std::max(r.max_peak, rep.peak_bytes);
    r.budget = rep.budget_bytes;
    r.no_remat_peak = rep.no_remat_peak_bytes;
    r.predicted_overhead = rep.predicted_overhead;
    r.recomputed = rep.recomputed;
    r.planner = rep.planner;
    r.planning_s += rep.planning_seconds;
    if (i == 0) r.first_planning_s = rep.planning_seconds;
    if (i == steps - 1 && !export_graph.empty()) {
      session.export_graph(export_graph);
      std::printf("wrote the training step graph to %s\n", export_graph.c_str());
    }
    seen += job.samples_per_step;
    smooth = i == 0 ? loss : 0.9 * smooth + 0.1 * loss;
    const double secs = std::chrono::duration<double>(Clock::now() - t_start).count();
    progress.update(label, i + 1, steps, tty ? smooth : loss, static_cast<double>(seen) / secs, rep);
  }
  if (run_finish && job.finish) job.finish();
  return r;
}

// Bitwise comparison of two loss sequences over their common prefix: (steps compared, first mismatch
// or -1).
inline std::pair<size_t, int64_t> compare_bits(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(double)) != 0) return {n, static_cast<int64_t>(i)};
  return {n, -1};
}

// The whole program: optional unlimited comparison run, the main run (budgeted when --memory-budget is
// given), then the report. Returns the exit code.
inline int main_loop(const std::string& model_name, const CommonFlags& f, const std::function<Job()>& make) {
  const bool tty = isatty(STDOUT_FILENO) == 1;
  try {
    RunResult unl;
    const bool compare = f.budgeted() && f.compare_unlimited > 0;
    if (compare) {
      std::printf("unlimited-memory run of %lld steps (for the comparison)...\n",
                  static_cast<long long>(f.compare_unlimited));
      unl = run_session(f.session(false, false), f.compare_unlimited, make, "unlimited", tty, f.quiet, false);
    }
    RunResult run = run_session(f.session(true, true), f.steps, make, f.budgeted() ? "budgeted" : "train", tty,
                                f.quiet, true, f.export_graph);
    if (!f.trace.empty()) std::printf("wrote the execution trace to %s (open in ui.perfetto.dev)\n", f.trace.c_str());

    const size_t skip = timing_skip(run.wall_s.size());
    const double step_s = median_from(run.wall_s, skip), exec_s = median_from(run.exec_s, skip);
    std::printf("\n== %s: report ==\n", model_name.c_str());
    if (!f.budgeted()) {
      std::printf("memory:    unlimited; measured peak %.2f MiB (no rematerialisation)\n", mib(run.max_peak));
      std::printf("step time: %.1f ms (median; %.1f ms executing the graph)\n", step_s * 1e3, exec_s * 1e3);
      return 0;
    }
    std::printf("budget:        %.2f MiB (--memory-budget %s), planner %s\n", mib(run.budget), f.budget.c_str(),
                run.planner.c_str());
    std::printf("no-remat peak: %.2f MiB\n", mib(run.no_remat_peak));
    std::printf("measured peak: %.2f MiB (%.0f%% of the no-remat peak), %zu recomputations per step\n",
                mib(run.max_peak), 100.0 * static_cast<double>(run.max_peak) / static_cast<double>(std::max<size_t>(run.no_remat_peak, 1)),
                run.recomputed);
    std::printf("planning:      %.2f s for the first step, %.2f s in all\n", run.first_planning_s, run.planning_s);
    std::printf("step time:     %.1f ms budgeted (median of steps %zu..%zu; %.1f ms executing the graph)\n",
                step_s * 1e3, skip + 1, run.wall_s.size(), exec_s * 1e3);
    if (compare) {
      const size_t uskip = timing_skip(unl.wall_s.size());
      const double ustep = median_from(unl.wall_s, uskip), uexec = median_from(unl.exec_s, uskip);
      std::printf("unlimited:     %.1f ms (measured in this process, median of steps %zu..%zu; %.1f ms executing; "
                  "peak %.2f MiB)\n",
                  ustep * 1e3, uskip + 1, unl.wall_s.size(), uexec * 1e3, mib(unl.max_peak));
      std::printf("overhead:      %.3fx measured step time (%.3fx graph execution), %.3fx predicted by the planner\n",
                  ustep > 0 ? step_s / ustep : 0.0, uexec > 0 ? exec_s / uexec : 0.0, run.predicted_overhead);
      auto [n, bad] = compare_bits(run.losses, unl.losses);
      if (bad < 0)
        std::printf("losses:        bitwise equal to the unlimited run for all %zu compared steps\n", n);
      else
        std::printf("losses:        DIFFER from the unlimited run at step %lld (%.9g vs %.9g)\n",
                    static_cast<long long>(bad + 1), run.losses[static_cast<size_t>(bad)], unl.losses[static_cast<size_t>(bad)]);
      if (bad >= 0) return 2;
    } else {
      const double pred = run.predicted_overhead > 0 ? step_s / run.predicted_overhead : 0.0;
      std::printf("unlimited:     %.1f ms PREDICTED (not measured: pass --compare-unlimited N to measure)\n",
                  pred * 1e3);
      std::printf("overhead:      %.3fx PREDICTED by the planner\n", run.predicted_overhead);
    }
    return 0;
  } catch (const InfeasibleBudget& e) {
    std::fprintf(stderr, "\nerror: %s\n", e.what());
    if (e.smallest_feasible_bytes)
      std::fprintf(stderr, "hint: --memory-budget %zuB (%.2f MiB) is the smallest budget that fits\n",
                   e.smallest_feasible_bytes, mib(e.smallest_feasible_bytes));
    return 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "\nerror: %s\n", e.what());
    return 1;
  }
}

}  // namespace lethe::examples

// What every Lethe example shares: the common flags, the progress display, a training loop run in a
// fresh session, checkpoints (--save, --save-every, --resume), the largest batch for a budget
// (--max-batch), and the end-of-run report that compares the budgeted run with an unlimited run of
// the same model made in the same process.
//
//   lethe::examples::CommonFlags flags;
//   flags.add(app);                                    // --device --memory-budget --planner
//   --steps ... auto make = [&]() { /* build model + optimizer in the current session, batch
//   flags.batch */
//                       return cross_entropy_job(net, loader, opt, sched); };
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

#include "framework/cuda.h"
#include "lethe.h"
#include "scheduler/budget.h"
#include "scheduler/offload.h"
#include "scheduler/planner.h"

namespace lethe::examples {

using Clock = std::chrono::steady_clock;

// The library's default SessionOptions::streams, as --streams spells it.
inline std::string default_streams() {
  const int n = SessionOptions{}.streams;
  return n == kAutoStreams ? "auto" : std::to_string(n);
}

struct CommonFlags {
  std::string device = "cpu";
  std::string budget;  // "" = unlimited
  std::string planner = "auto";
  int64_t steps = 100;
  int64_t batch = 32;
  uint64_t seed = 0;
  std::string export_graph;
  std::string trace;
  int64_t compare_unlimited = 0;  // steps of an unlimited run made first (0: none)
  bool compare = false;           // an unlimited run of as many steps as the main run
  int threads = 0;
  std::string streams = default_streams();  // --streams: N or "auto" (parse_streams)
  bool quiet = false;                       // no progress lines (reports only)
  std::string save, resume;                 // checkpoint files
  int64_t save_every = 0;                   // steps between checkpoints (0: only at the end)
  bool max_batch = false;      // find the largest batch for the budget instead of training
  double max_overhead = 0;     // with max_batch: the largest predicted overhead allowed (0: any)
  bool data_parallel = false;  // --data-parallel: one rank of `mpirun -np N` (dist/dist.h)
  double bucket_mib = 25;      // --bucket-mib: gradient bucket size of the all-reduce
  // --host-budget, --offload-path, --tier-bandwidth: a second memory tier (SessionOptions).
  std::string host_budget, offload_path, tier_bandwidth;
  // --offload-state: where parameters and optimizer state live with a tier (auto, always, never).
  std::string offload_state = "auto";

  void add(CLI::App& app) {
    app.add_option("--device", device, "cpu or cuda[:i]")->capture_default_str();
    app.add_option("--memory-budget", budget,
                   "memory budget: bytes (\"512MiB\") or a fraction of the activations (\"0.25\"); "
                   "empty = unlimited");
    app.add_option("--planner", planner,
                   "planner: auto, lethe, dtr, treewidth, chain, sqrt, checkmate, keep-all")
        ->capture_default_str();
    app.add_option("--steps", steps, "training steps")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--batch", batch, "batch size")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--seed", seed, "seed of initialisation, data and dropout")
        ->capture_default_str();
    app.add_option(
        "--export-graph", export_graph,
        "write the last training step as a remat-graph/1 file (op costs: its measured times)");
    app.add_option("--trace", trace, "write a Chrome trace (ui.perfetto.dev) of the budgeted run");
    app.add_option("--compare-unlimited", compare_unlimited,
                   "after the budgeted run, run this many steps without a budget (same model, same "
                   "batches) to measure the "
                   "overhead and check the losses bitwise")
        ->capture_default_str();
    app.add_flag("--compare", compare,
                 "with --memory-budget: then train as many steps with unlimited memory, to "
                 "measure the overhead and check the losses bitwise");
    app.add_option("--threads", threads, "CPU threads (0: default)")->capture_default_str();
    app.add_option("--streams", streams,
                   "streams a step runs on: N (1: serial, every op in order; N >= 2: N "
                   "streams sharing --threads) or auto (the planner chooses per step from measured "
                   "op times)")
        ->capture_default_str();
    app.add_flag("--quiet", quiet, "no progress lines (the report only)");
    app.add_option("--save", save,
                   "write a training checkpoint (safetensors) here at the end, and every "
                   "--save-every steps ({step} in the name is replaced by the step count)");
    app.add_option("--save-every", save_every, "steps between checkpoints (0: only at the end)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--resume", resume,
                   "continue the run saved in this checkpoint (same flags): the steps after "
                   "it give bitwise what an uninterrupted run gives");
    app.add_flag("--max-batch", max_batch,
                 "instead of training, find the largest batch whose step fits "
                 "--memory-budget (bytes), by planning candidate batches, and print the table");
    app.add_flag("--data-parallel", data_parallel,
                 "train data-parallel over the ranks of `mpirun -np N`: each rank "
                 "its own batches (--batch per rank) and its own --memory-budget, gradients "
                 "averaged over the ranks; "
                 "rank 0 prints");
    app.add_option("--bucket-mib", bucket_mib,
                   "with --data-parallel: MiB of gradients per all-reduce bucket")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--host-budget", host_budget,
                   "with --memory-budget: a second memory tier of this size (e.g. 4GiB): a file "
                   "in --offload-path on the CPU, pinned host memory on CUDA; plans may copy "
                   "values out to it and back");
    app.add_option("--offload-path", offload_path,
                   "with --host-budget on the CPU: the directory of the tier's file (default: "
                   "the system's temporary directory)");
    app.add_option("--tier-bandwidth", tier_bandwidth,
                   "with --host-budget: OUT[,IN] bytes/s of the copies (e.g. 2GB/s) the plans "
                   "assume; default: measured by a short probe");
    app.add_option("--offload-state", offload_state,
                   "with --host-budget: parameters and optimizer state move to the tier when the "
                   "budget cannot hold them (auto), from the first step (always), or stay in the "
                   "budget (never)")
        ->capture_default_str();
    app.add_option("--max-overhead", max_overhead,
                   "with --max-batch: the largest predicted overhead allowed "
                   "(e.g. 1.2; 0: any)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
  }
  // Flag values the library would refuse, said in terms of the flags (the library's own messages
  // name its C++ API: SessionOptions::planner, Device::cpu()).
  void validate() const {
    try {
      (void)Device::parse(device);
    } catch (Error& e) {
      e.add_context("--device: ");
      throw;
    }
    if (planner != "auto") {
      try {
        sched::find_planner(planner);
      } catch (Error& e) {
        e.add_context("--planner: ");
        throw;
      }
    }
    (void)parse_streams(streams, "--streams");
    if (!host_budget.empty()) {
      LETHE_CHECK(budgeted(), "--host-budget ", host_budget,
                  ": needs --memory-budget (nothing is copied out of an unlimited run)");
      try {
        LETHE_CHECK(!sched::parse_budget_spec(host_budget).fraction,
                    "expected bytes with a unit (e.g. 4GiB), not a fraction");
      } catch (Error& e) {
        e.add_context("--host-budget: ");
        throw;
      }
    }
    LETHE_CHECK(offload_state == "auto" || offload_state == "always" || offload_state == "never",
                "--offload-state ", offload_state, ": expected auto, always or never");
    LETHE_CHECK(offload_state != "always" || !host_budget.empty(),
                "--offload-state always needs --host-budget (the tier they move to)");
    LETHE_CHECK(offload_path.empty() || !host_budget.empty(),
                "--offload-path needs --host-budget (the tier it is the directory of)");
    if (!tier_bandwidth.empty()) {
      LETHE_CHECK(!host_budget.empty(), "--tier-bandwidth needs --host-budget");
      try {
        (void)sched::parse_bandwidth(tier_bandwidth);
      } catch (Error& e) {
        e.add_context("--tier-bandwidth: ");
        throw;
      }
    }
    if (Device::parse(device).is_cuda() && !cuda::is_available())
      throw Error("--device " + device + ": no CUDA device is available (" +
                  cuda::unavailable_reason() + "); use --device cpu");
  }
  SessionOptions session(bool with_budget, bool with_trace) const {
    SessionOptions o;
    o.device = Device::parse(device);
    o.seed = seed;
    o.memory_budget = with_budget ? budget : "";
    o.planner = planner;
    o.num_threads = threads;
    o.streams = parse_streams(streams, "--streams");
    o.data_parallel = data_parallel;
    o.bucket_bytes = static_cast<size_t>(bucket_mib * 1024 * 1024);
    if (with_trace) o.trace_path = trace;
    if (with_budget) {
      o.host_budget = host_budget;
      o.offload_path = offload_path;
      o.tier_bandwidth = tier_bandwidth;
      if (!host_budget.empty()) o.offload_state = offload_state;
    }
    return o;
  }
  bool budgeted() const { return !budget.empty() && budget != "unlimited" && budget != "inf"; }
  int64_t compare_steps() const { return compare ? steps : compare_unlimited; }
};

inline double mib(size_t b) {
  return static_cast<double>(b) / (1024.0 * 1024.0);
}

inline std::string clock_str(double secs) {
  const auto t = static_cast<long long>(secs + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", t / 60, t % 60);
  return buf;
}

// Progress of a run. On a terminal: one line per epoch, rewritten in place while the epoch runs
// (epoch, step, loss, samples/s, ETA) and kept when it ends. Otherwise (a log, a pipe): one plain
// line per epoch, or ten lines in all when epochs are many or there are none.
class Progress {
 public:
  // show_streams: the session was asked for streams other than 1 (say how many each step ran on).
  Progress(bool tty, bool quiet, int64_t steps_per_epoch, int64_t steps, bool show_streams = false)
      : tty_(tty),
        quiet_(quiet),
        show_streams_(show_streams),
        per_epoch_(steps_per_epoch),
        steps_(steps) {
    const bool few_epochs = per_epoch_ > 0 && steps_ / per_epoch_ <= 20;
    every_ = few_epochs ? per_epoch_ : std::max<int64_t>(1, steps_ / 10);
  }
  // After `step` steps of the run (the step just run is step `step - 1`), which started at step
  // `first` (a resumed run), `elapsed` seconds after the run began. Lines name a step as
  // StepReport::step does (0 is the first step); "N/M" forms are counts of steps done.
  void update(const std::string& label, int64_t step, int64_t first, double loss, double elapsed,
              int64_t samples, const StepReport& r) {
    if (quiet_) return;
    const double samples_per_s = elapsed > 0 ? static_cast<double>(samples) / elapsed : 0.0;
    const double eta = step > first ? static_cast<double>(steps_ - step) *
                                          (elapsed / static_cast<double>(step - first))
                                    : 0.0;
    const bool boundary = step % every_ == 0 || step == steps_;
    char where[64];
    if (per_epoch_ > 0)
      std::snprintf(where, sizeof where, "epoch %lld/%lld step %lld, %lld/%lld done",
                    static_cast<long long>((step - 1) / per_epoch_ + 1),
                    static_cast<long long>((steps_ + per_epoch_ - 1) / per_epoch_),
                    static_cast<long long>(step - 1), static_cast<long long>(step),
                    static_cast<long long>(steps_));
    else
      std::snprintf(where, sizeof where, "step %lld, %lld/%lld done",
                    static_cast<long long>(step - 1), static_cast<long long>(step),
                    static_cast<long long>(steps_));
    if (tty_) {
      char streams[32] = "";
      if (show_streams_)
        std::snprintf(streams, sizeof streams, "  %d stream%s", r.streams,
                      r.streams == 1 ? "" : "s");
      std::printf("\r%-9s %s  loss %.4f  %.0f samples/s  ETA %s  peak %.1f MiB%s%s\033[K",
                  label.c_str(), where, loss, samples_per_s, clock_str(eta).c_str(),
                  mib(r.peak_bytes), r.recomputed ? " (remat)" : "", streams);
      if (boundary) std::printf("\n");
      std::fflush(stdout);
    } else if (boundary) {
      // StepReport::str() describes the streams of a step that ran on more than one; a step the
      // planner kept serial under --streams auto is said here.
      std::printf("%s %s loss %.6f %.0f samples/s ETA %s | %s%s\n", label.c_str(), where, loss,
                  samples_per_s, clock_str(eta).c_str(), r.str().c_str(),
                  show_streams_ && r.streams == 1 ? ", 1 stream (serial)" : "");
      std::fflush(stdout);
    }
  }

 private:
  bool tty_, quiet_, show_streams_;
  int64_t per_epoch_, steps_, every_ = 1;
};

// One model's training, built inside the current session: step(i) records and runs step i and
// returns its loss (NaN in a plan-only session, see --max-batch); finish() (optional) evaluates or
// samples at the end of the main run and returns a line for the report. save(path, steps) writes a
// checkpoint after `steps` steps; resume(path) loads one and returns the steps it had taken.
struct Job {
  std::function<double(int64_t step)> step;
  std::function<std::string()> finish;
  std::function<void(const std::string& path, int64_t steps)> save;
  std::function<int64_t(const std::string& path)> resume;
  int64_t samples_per_step = 1;
  int64_t steps_per_epoch = 0;  // 0: no epochs (a stream of batches)
  int64_t max_batch = 0;        // the largest batch the data allows (0: any)
};

// A step's loss, or NaN where nothing runs (a plan-only session: --max-batch).
inline double read_loss(const Tensor& loss) {
  return current_session()->options().plan_only ? std::nan("") : loss.item<double>();
}

// save/resume of a job whose only progress beside model and optimizer is the step count and the
// schedule (batches that are a function of the step).
template <typename Net, typename Opt>
void checkpoint_by_step(Job& job, std::shared_ptr<Net> net, std::shared_ptr<Opt> opt,
                        std::shared_ptr<optim::CosineWarmupLR> sched) {
  job.save = [=](const std::string& path, int64_t steps) {
    save_checkpoint(path, *net, *opt, {.step = steps, .scheduler_step = sched->last_step()});
  };
  job.resume = [=](const std::string& path) {
    const TrainingProgress p = load_checkpoint(path, *net, *opt);
    sched->set_step(p.scheduler_step);
    return p.step;
  };
}

// Training by cross entropy over a loader that starts again when it runs out (a new epoch):
// cross_entropy of net(batch.data) against batch.target, backward, optimizer step, LR schedule;
// with checkpoints that restore the data position too. (For segmentation the logits are [N,
// classes, H, W] and the targets [N, H, W].)
template <typename Net, typename Opt>
Job cross_entropy_job(std::shared_ptr<Net> net, std::shared_ptr<data::DataLoader> loader,
                      std::shared_ptr<Opt> opt, std::shared_ptr<optim::CosineWarmupLR> sched) {
  auto it = std::make_shared<data::DataLoader::Iterator>(loader->begin());
  Job job;
  job.samples_per_step = loader->options().batch_size();
  job.steps_per_epoch = loader->size();
  job.max_batch = loader->dataset().size();
  job.step = [=](int64_t) {
    if (*it == loader->end()) *it = loader->begin();
    const data::Batch& b = **it;
    net->train();
    Tensor loss = cross_entropy(net->forward(b.data), b.target);
    opt->zero_grad();
    loss.backward();
    opt->step();
    sched->step();
    ++*it;
    return read_loss(loss);
  };
  job.save = [=](const std::string& path, int64_t steps) {
    // The position of the next batch: the loader's current epoch, or the next one's start.
    const bool done = *it == loader->end();
    save_checkpoint(path, *net, *opt,
                    {.step = steps,
                     .loader_epoch = done ? loader->epoch() : loader->epoch() - 1,
                     .loader_batch = done ? 0 : it->index(),
                     .scheduler_step = sched->last_step()});
  };
  job.resume = [=](const std::string& path) {
    const TrainingProgress p = load_checkpoint(path, *net, *opt);
    sched->set_step(p.scheduler_step);
    *it = data::DataLoader::Iterator();  // free the current batch first: a tight budget has room
                                         // for one
    *it = loader->begin_at(p.loader_epoch, p.loader_batch);
    return p.step;
  };
  return job;
}

struct RunResult {
  std::vector<double> losses;
  std::vector<double> wall_s;  // whole iteration: record, backward, plan (when not cached), execute
  std::vector<double> exec_s;  // StepReport::seconds: execution of the step graph only
  size_t max_peak = 0, budget = 0, no_remat_peak = 0;
  double predicted_overhead = 1.0, first_planning_s = 0.0, planning_s = 0.0;
  size_t recomputed = 0;
  std::string planner;
  // Streams per step (StepReport::streams) and their times: predicted makespan, two or more streams
  // busy, recomputation overlapped with other work.
  std::vector<int> streams;
  std::vector<double> predicted_s, parallel_s, overlapped_recompute_s;
  // Second tier (--host-budget): the last step's plan kind, the largest tier peak, and per step
  // the bytes copied each way, the copy time and its part hidden behind compute.
  std::string tier_plan;
  size_t tier_peak = 0;
  size_t tier_homes = 0;  // parameters and optimizer state living in the tier (last step)
  std::vector<double> copied_out, copied_in, copy_s, copy_hidden_s;
  std::string finish;      // the job's line for the report (an accuracy)
  int64_t first_step = 0;  // StepReport::step of losses[0] (a resumed run starts past 0)
};

// Median of v[from..]; the first steps plan (twice: estimated, then measured costs) and warm
// caches.
inline double median_from(std::vector<double> v, size_t from) {
  if (v.size() > from) v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(from));
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
inline size_t timing_skip(size_t n) {
  return n > 4 ? 2 : (n > 2 ? 1 : 0);
}

// `pattern` with "{step}" replaced by `step` (checkpoints of several steps side by side).
inline std::string checkpoint_path(const std::string& pattern, int64_t step) {
  std::string p = pattern;
  for (size_t at = p.find("{step}"); at != std::string::npos; at = p.find("{step}", at))
    p.replace(at, 6, std::to_string(step));
  return p;
}

// Runs make() in a fresh session with options `o` up to step `steps`: from step 0, or from the
// steps a checkpoint `resume` had taken. Saves a checkpoint to `save` every `save_every` steps and
// at the end (when given). Throws what the session throws (lethe::InfeasibleBudget when the budget
// cannot be met).
struct RunSpec {
  SessionOptions options;
  int64_t steps = 0;
  std::string label;
  bool tty = false, quiet = false, run_finish = false;
  std::string export_graph, save, resume;
  int64_t save_every = 0;
};

inline RunResult run_session(const RunSpec& spec, const std::function<Job()>& make) {
  RunResult r;
  Session session(spec.options);
  Job job = make();
  int64_t first = 0;
  if (!spec.resume.empty()) {
    LETHE_CHECK(job.resume, "--resume: this example cannot resume from a checkpoint");
    first = job.resume(spec.resume);
    LETHE_CHECK(first <= spec.steps, "--resume: ", spec.resume, " is at step ", first,
                ", past --steps ", spec.steps);
    if (!spec.quiet)
      std::printf("%s: resumed from %s at step %lld\n", spec.label.c_str(), spec.resume.c_str(),
                  static_cast<long long>(first));
  }
  Progress progress(spec.tty, spec.quiet, job.steps_per_epoch, spec.steps,
                    spec.options.streams != 1);
  r.first_step = first;
  double smooth = 0;
  int64_t seen = 0;
  auto t_start = Clock::now();
  for (int64_t i = first; i < spec.steps; ++i) {
    auto t0 = Clock::now();
    const double loss = job.step(i);
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    const StepReport& rep = session.last_report();
    r.losses.push_back(loss);
    r.wall_s.push_back(wall);
    r.exec_s.push_back(rep.seconds);
    r.streams.push_back(rep.streams);
    r.predicted_s.push_back(rep.predicted_seconds);
    r.parallel_s.push_back(rep.parallel_seconds);
    r.overlapped_recompute_s.push_back(rep.overlapped_recompute_seconds);
    r.max_peak = std::max(r.max_peak, rep.peak_bytes);
    r.budget = rep.budget_bytes;
    r.no_remat_peak = rep.no_remat_peak_bytes;
    r.predicted_overhead = rep.predicted_overhead;
    r.recomputed = rep.recomputed;
    r.planner = rep.planner;
    r.planning_s += rep.planning_seconds;
    r.tier_plan = rep.tier_plan;
    r.tier_peak = std::max(r.tier_peak, rep.tier_peak_bytes);
    r.tier_homes = rep.tier_home_bytes;
    r.copied_out.push_back(static_cast<double>(rep.copy_out_bytes));
    r.copied_in.push_back(static_cast<double>(rep.copy_in_bytes));
    r.copy_s.push_back(rep.copy_seconds);
    r.copy_hidden_s.push_back(rep.copy_hidden_seconds);
    if (i == first) r.first_planning_s = rep.planning_seconds;
    if (i == spec.steps - 1 && !spec.export_graph.empty()) {
      session.export_graph(spec.export_graph);
      std::printf("wrote the training step graph to %s\n", spec.export_graph.c_str());
    }
    const bool last = i == spec.steps - 1;
    if (!spec.save.empty() && (last || (spec.save_every > 0 && (i + 1) % spec.save_every == 0))) {
      LETHE_CHECK(job.save, "--save: this example cannot write checkpoints");
      job.save(checkpoint_path(spec.save, i + 1), i + 1);
    }
    seen += job.samples_per_step;
    smooth = i == first ? loss : 0.9 * smooth + 0.1 * loss;
    const double secs = std::chrono::duration<double>(Clock::now() - t_start).count();
    progress.update(spec.label, i + 1, first, spec.tty ? smooth : loss, secs, seen, rep);
  }
  if (!spec.save.empty() && first == spec.steps) {
    LETHE_CHECK(job.save, "--save: this example cannot write checkpoints");
    job.save(checkpoint_path(spec.save, first), first);
  }
  if (spec.run_finish && job.finish) r.finish = job.finish();
  return r;
}

// The report's streams line (--streams other than 1): how many streams the steps ran on, and the
// medians of the measured and predicted makespans, of the time two or more streams were busy and of
// the recomputation hidden behind other work, over the steps from `skip` on.
inline void print_streams_line(const std::string& flag, const RunResult& r, size_t skip) {
  std::vector<int> used(
      r.streams.begin() + static_cast<std::ptrdiff_t>(std::min(skip, r.streams.size())),
      r.streams.end());
  if (used.empty()) return;
  const int most = *std::max_element(used.begin(), used.end());
  const auto parallel_steps = std::count_if(used.begin(), used.end(), [](int n) { return n > 1; });
  std::printf(
      "streams:       --streams %s: %d stream%s at most, more than one in %lld of %zu steps; "
      "makespan "
      "%.1f ms measured, %.1f ms predicted; 2+ streams busy %.1f ms; recompute overlapped %.1f ms "
      "(medians of steps %zu..%zu)\n",
      flag.c_str(), most, most == 1 ? "" : "s", static_cast<long long>(parallel_steps), used.size(),
      median_from(r.exec_s, skip) * 1e3, median_from(r.predicted_s, skip) * 1e3,
      median_from(r.parallel_s, skip) * 1e3, median_from(r.overlapped_recompute_s, skip) * 1e3,
      static_cast<size_t>(r.first_step) + skip,
      static_cast<size_t>(r.first_step) + r.streams.size() - 1);
}

// Bitwise comparison of two loss sequences over their common prefix: (steps compared, first
// mismatch or -1).
inline std::pair<size_t, int64_t> compare_bits(const std::vector<double>& a,
                                               const std::vector<double>& b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(double)) != 0) return {n, static_cast<int64_t>(i)};
  return {n, -1};
}

// --max-batch: the largest batch whose step fits the budget (and --max-overhead), found by planning
// candidate batches in plan-only sessions; prints the table. Returns the exit code.
inline int max_batch_main(const std::string& model_name, CommonFlags& f,
                          const std::function<Job()>& make) {
  LETHE_CHECK(f.budgeted(), "--max-batch needs --memory-budget in bytes (e.g. 512MiB)");
  MaxBatchOptions mb;
  mb.max_overhead = f.max_overhead;
  {
    // The data's own limit (a batch cannot hold more samples than the data set), from a job built
    // in a throwaway unlimited CPU session.
    const int64_t batch = f.batch;
    f.batch = 1;
    Session probe(SessionOptions{.seed = f.seed});
    const Job j = make();
    f.batch = batch;
    if (j.max_batch > 0) mb.max_batch = j.max_batch;
  }
  std::printf("finding the largest batch of %s whose training step fits --memory-budget %s%s...\n",
              model_name.c_str(), f.budget.c_str(),
              f.max_overhead > 0
                  ? (" with a predicted overhead <= " + std::to_string(f.max_overhead)).c_str()
                  : "");
  const MaxBatchResult r = find_max_batch(
      f.session(true, false),
      [&](int64_t b) {
        f.batch = b;
        Job job = make();
        job.step(0);
      },
      mb);
  std::printf("%s", r.table().c_str());
  if (r.batch == 0) {
    std::printf("no batch fits: raise --memory-budget%s\n",
                f.max_overhead > 0 ? " or --max-overhead" : "");
    return 1;
  }
  for (const BatchCandidate& c : r.tried)
    if (c.batch == r.batch)
      std::printf(
          "largest batch: %lld (planner %s, predicted overhead %.3fx, no-remat peak %.2f MiB, "
          "budget %.2f MiB)\n",
          static_cast<long long>(r.batch), c.planner.c_str(), c.predicted_overhead,
          mib(c.no_remat_peak_bytes), mib(c.budget_bytes));
  return 0;
}

// The whole program: the main run (budgeted when --memory-budget is given), an optional unlimited
// comparison run, then the report; or --max-batch. Returns the exit code.
// The ranks of a data-parallel run (`mpirun -np N example --data-parallel`): joined before training
// and left at the end, however main_loop ends; ranks other than 0 print nothing but errors.
struct DataParallelRun {
  explicit DataParallelRun(bool on) {
    if (!on) return;
    dist::init();
    if (dist::rank() != 0 && std::freopen("/dev/null", "w", stdout) == nullptr)
      std::perror("freopen");
    std::printf("data parallel: %d rank%s (%s), all-reduce bandwidth %.2f GB/s\n",
                dist::world_size(), dist::world_size() == 1 ? "" : "s",
                dist::built_with_mpi() ? "MPI" : "built without MPI",
                dist::allreduce_bandwidth() / 1e9);
  }
  ~DataParallelRun() { dist::finalize(); }
};

inline int main_loop(const std::string& model_name, CommonFlags& f,
                     const std::function<Job()>& make) {
  const bool tty = isatty(STDOUT_FILENO) == 1;
  try {
    const DataParallelRun ranks(f.data_parallel);
    f.validate();
    if (f.max_batch) return max_batch_main(model_name, f, make);
    // The budgeted run first: an infeasible budget is said at once, not after an unlimited run.
    RunSpec m{.options = f.session(true, true),
              .steps = f.steps,
              .label = f.budgeted() ? "budgeted" : "train",
              .tty = tty,
              .quiet = f.quiet,
              .run_finish = true,
              .export_graph = f.export_graph,
              .save = f.save,
              .resume = f.resume,
              .save_every = f.save_every};
    RunResult run = run_session(m, make);
    RunResult unl;
    const int64_t compare_steps = f.budgeted() ? f.compare_steps() : 0;
    const bool compare = compare_steps > 0;
    if (compare) {
      if (!f.quiet)
        std::printf("unlimited-memory run of %lld steps (for the comparison)...\n",
                    static_cast<long long>(compare_steps));
      RunSpec u{.options = f.session(false, false),
                .steps = compare_steps,
                .label = "unlimited",
                .tty = tty,
                .quiet = f.quiet,
                .resume = f.resume};
      unl = run_session(u, make);
    }
    if (!f.trace.empty())
      std::printf("wrote the execution trace to %s (open in ui.perfetto.dev)\n", f.trace.c_str());
    if (!f.save.empty()) {
      const std::string last = checkpoint_path(f.save, f.steps);
      std::printf("wrote the checkpoint %s (continue with --resume %s and a larger --steps)\n",
                  last.c_str(), last.c_str());
    }

    const size_t skip = timing_skip(run.wall_s.size());
    const double step_s = median_from(run.wall_s, skip), exec_s = median_from(run.exec_s, skip);
    std::printf("\n== %s: report ==\n", model_name.c_str());
    if (!run.finish.empty()) std::printf("result:        %s\n", run.finish.c_str());
    if (!f.budgeted()) {
      std::printf("memory:        unlimited; measured peak %.2f MiB (no rematerialisation)\n",
                  mib(run.max_peak));
      std::printf("step time:     %.1f ms (median; %.1f ms executing the graph)\n", step_s * 1e3,
                  exec_s * 1e3);
      if (f.streams != "1") print_streams_line(f.streams, run, skip);
      return 0;
    }
    std::printf(
        "memory:        budget %.2f MiB (--memory-budget %s), measured peak %.2f MiB, no-remat "
        "peak %.2f MiB\n",
        mib(run.budget), f.budget.c_str(), mib(run.max_peak), mib(run.no_remat_peak));
    std::printf(
        "plan:          planner %s, %zu recomputations per step; planning %.2f s for the first "
        "step, "
        "%.2f s in all\n",
        run.planner.c_str(), run.recomputed, run.first_planning_s, run.planning_s);
    // Steps are named as StepReport::step names them: 0 is the first.
    const auto step_at = [](const RunResult& x, size_t k) {
      return static_cast<long long>(x.first_step) + static_cast<long long>(k);
    };
    std::printf(
        "step time:     %.1f ms budgeted (median of steps %lld..%lld; %.1f ms executing the "
        "graph)\n",
        step_s * 1e3, step_at(run, skip), step_at(run, run.wall_s.size() - 1), exec_s * 1e3);
    if (f.streams != "1") print_streams_line(f.streams, run, skip);
    if (!run.tier_plan.empty())
      std::printf(
          "second tier:   --host-budget %s: %s plan, tier peak %.2f MiB; per step %.2f MiB out "
          "and %.2f MiB in, copies %.1f ms of which %.1f ms hidden behind compute (medians of "
          "steps %lld..%lld)\n",
          f.host_budget.c_str(), run.tier_plan.c_str(), mib(run.tier_peak),
          median_from(run.copied_out, skip) / (1024.0 * 1024.0),
          median_from(run.copied_in, skip) / (1024.0 * 1024.0), median_from(run.copy_s, skip) * 1e3,
          median_from(run.copy_hidden_s, skip) * 1e3, step_at(run, skip),
          step_at(run, run.wall_s.size() - 1));
    if (run.tier_homes > 0)
      std::printf(
          "               parameters and optimizer state live in the tier (%.2f MiB), read in "
          "where the plan needs them (--offload-state %s)\n",
          mib(run.tier_homes), f.offload_state.c_str());
    if (compare) {
      const size_t uskip = timing_skip(unl.wall_s.size());
      const double ustep = median_from(unl.wall_s, uskip), uexec = median_from(unl.exec_s, uskip);
      std::printf(
          "unlimited:     %.1f ms (measured in this process%s, median of steps %lld..%lld; %.1f ms "
          "executing; "
          "peak %.2f MiB)\n",
          ustep * 1e3, f.streams != "1" ? (", --streams " + f.streams).c_str() : "",
          step_at(unl, uskip), step_at(unl, unl.wall_s.size() - 1), uexec * 1e3, mib(unl.max_peak));
      std::printf(
          "overhead:      %.3fx measured step time (%.3fx graph execution), %.3fx predicted by the "
          "planner\n",
          ustep > 0 ? step_s / ustep : 0.0, uexec > 0 ? exec_s / uexec : 0.0,
          run.predicted_overhead);
      auto [n, bad] = compare_bits(run.losses, unl.losses);
      if (bad < 0)
        std::printf(
            "losses:        bitwise equal to the unlimited run for all %zu compared steps\n", n);
      else
        std::printf("losses:        DIFFER from the unlimited run at step %lld (%.9g vs %.9g)\n",
                    step_at(run, static_cast<size_t>(bad)), run.losses[static_cast<size_t>(bad)],
                    unl.losses[static_cast<size_t>(bad)]);
      if (bad >= 0) return 2;
    } else {
      const double pred = run.predicted_overhead > 0 ? step_s / run.predicted_overhead : 0.0;
      std::printf("unlimited:     %.1f ms PREDICTED (not measured: pass --compare to measure)\n",
                  pred * 1e3);
      std::printf("overhead:      %.3fx PREDICTED by the planner\n", run.predicted_overhead);
    }
    return 0;
  } catch (const InfeasibleBudget& e) {
    std::fprintf(stderr, "\nerror: %s\n", e.what());
    if (e.smallest_feasible_bytes)
      std::fprintf(stderr,
                   "hint: --memory-budget %zuB (%.2f MiB) is the smallest budget that fits\n",
                   e.smallest_feasible_bytes, mib(e.smallest_feasible_bytes));
    return 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "\nerror: %s\n", e.what());
    return 1;
  }
}

}  // namespace lethe::examples

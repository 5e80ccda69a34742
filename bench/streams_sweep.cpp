// Streams against rematerialisation, measured (issue 15): GPT-small, ResNet-18, U-Net and the
// Inception-style CNN, each at budgets {1, 0.5, 0.33, 0.25} of its activations, in three
// configurations on the same threads: serial (1 stream x all threads), 2x1 (2 streams x half the
// threads each) and auto (the planner chooses per step). Each cell's step time (median of the timed
// steps, after warm-up steps in which the session measures op times and plans again) is divided by
// the step time of the serial unlimited run of the same model made in this process. Losses are
// compared bitwise with that run. Prints a table per model and the reach criteria; writes a
// CSV that bench/streams_sweep_plot.py turns into an SVG.
//
//   build/bench/streams_sweep --out bench/results                     # all of it, a few minutes on
//   2 cores build/bench/streams_sweep --models inception --budgets 1,0.25 --warmup 3 --steps 3
//   python3 bench/streams_sweep_plot.py bench/results/streams_sweep.csv docs/streams_sweep.svg
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gpt/model.h"
#include "inception/model.h"
#include "lethe.h"
#include "resnet/model.h"
#include "unet/model.h"

using namespace lethe;
using namespace lethe::examples;
using Clock = std::chrono::steady_clock;

namespace {

// One model, built inside the current session: its parameters and a function that records step i's
// loss. Every step trains on the same batch (made once, outside the timed steps).
struct Built {
  std::vector<Tensor> params;
  std::function<Tensor(int64_t)> loss;
};

struct Model {
  std::string name, what;
  std::function<Built()> make;
};

template <typename Net, typename Data>
Built image_classifier(std::shared_ptr<Net> net, const Data& data, int64_t batch) {
  std::vector<int64_t> idx(static_cast<size_t>(batch));
  for (int64_t k = 0; k < batch; ++k) idx[static_cast<size_t>(k)] = k;
  const data::Batch b = data.get_batch(idx);
  return {net->parameters(),
          [net, b](int64_t) { return cross_entropy(net->forward(b.data), b.target); }};
}

// Sizes chosen so that one step takes roughly 50-300 ms on 2 cores.
std::vector<Model> models(const std::string& text_path) {
  std::vector<Model> out;
  auto text = std::make_shared<CharText>(std::vector<std::string>{text_path});
  out.push_back(
      {"gpt-small", "GPT 4 layers, d_model 128, 4 heads, context 128, batch 8", [text] {
         auto g = std::make_shared<GPT>(GPTConfig{
             .vocab = text->vocab_size(), .context = 128, .layers = 4, .d_model = 128, .heads = 4});
         auto [x, y] = text->batch(8, 128, 0, 1);
         return Built{g->parameters(), [g, x, y](int64_t) { return g->loss(x, y); }};
       }});
  out.push_back({"resnet18", "ResNet-18 width 16, 32x32 images, batch 16", [] {
                   auto net = std::make_shared<ResNet>(
                       ResNetConfig{.depth = 18, .width = 16, .classes = 10});
                   return image_classifier(net, SyntheticImages(16, 32, 10, 1), 16);
                 }});
  out.push_back({"unet", "U-Net depth 3, width 16, 64x64 images, batch 4", [] {
                   auto net =
                       std::make_shared<UNet>(UNetConfig{.depth = 3, .width = 16, .classes = 3});
                   return image_classifier(net, SyntheticSegmentation(4, 64, 3, 1), 4);
                 }});
  out.push_back(
      {"inception", "Inception-style CNN width 12, blocks 2-2-2, 32x32 images, batch 8", [] {
         auto net = std::make_shared<Inception>(InceptionConfig{.width = 12, .blocks = {2, 2, 2}});
         return image_classifier(net, SyntheticImages(8, 32, 10, 1), 8);
       }});
  return out;
}

struct Config {
  std::string name;
  int streams;  // SessionOptions::streams
};

// serial, auto, or NxM: N streams of M threads each, N * M being --threads (the session splits its
// threads evenly between its streams).
Config parse_config(const std::string& s, int threads) {
  if (s == "serial") return {s, 1};
  if (s == "auto") return {s, kAutoStreams};
  const size_t x = s.find('x');
  if (x != std::string::npos && x > 0 && x + 1 < s.size()) {
    const int n = parse_streams(s.substr(0, x), "--configs " + s);
    const int m = parse_streams(s.substr(x + 1), "--configs " + s);
    if (n * m != threads)
      throw Error("--configs " + s + ": " + std::to_string(n) + " streams of " + std::to_string(m) +
                  " threads need --threads " + std::to_string(n * m) + ", got " +
                  std::to_string(threads));
    return {s, n};
  }
  throw Error("--configs: expected serial, auto or NxM (N streams of M threads), got '" + s + "'");
}

struct Run {
  std::vector<float> losses;
  std::vector<double> wall, exec, predicted, parallel, overlapped;
  std::vector<int> streams;
  StepReport last;
  size_t peak = 0;
};

Run train(const Model& m, const std::string& budget, int streams, int threads, int steps) {
  Session s({.seed = 5, .memory_budget = budget, .num_threads = threads, .streams = streams});
  Built b = m.make();
  optim::AdamW opt(b.params, optim::AdamWOptions(1e-3));
  Run r;
  for (int i = 0; i < steps; ++i) {
    auto t0 = Clock::now();
    Tensor loss = b.loss(i);
    opt.zero_grad();
    loss.backward();
    opt.step();
    r.losses.push_back(loss.item<float>());
    r.wall.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    const StepReport& rep = s.last_report();
    r.exec.push_back(rep.seconds);
    r.predicted.push_back(rep.predicted_seconds);
    r.parallel.push_back(rep.parallel_seconds);
    r.overlapped.push_back(rep.overlapped_recompute_seconds);
    r.streams.push_back(rep.streams);
    r.last = rep;
    r.peak = std::max(r.peak, rep.peak_bytes);
  }
  return r;
}

// Median of v[skip..] in milliseconds.
double median_ms(std::vector<double> v, size_t skip) {
  v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(std::min(skip, v.size())));
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return 1e3 * v[v.size() / 2];
}

struct Cell {
  std::string model, config, budget, status = "ok";
  int threads = 0, streams_option = 1, streams_max = 1;
  size_t budget_bytes = 0, no_remat = 0, peak = 0, recomputed = 0;
  double step_ms = 0, exec_ms = 0, unlimited_ms = 0, predicted_ms = 0, parallel_ms = 0,
         overlapped_ms = 0;
  bool bitwise = false;
  double ratio() const { return unlimited_ms > 0 ? step_ms / unlimited_ms : 0; }
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) out.push_back(t);
  return out;
}

const Cell* find(const std::vector<Cell>& cells, const std::string& model,
                 const std::string& config, const std::string& budget) {
  for (const Cell& c : cells)
    if (c.model == model && c.config == config && c.budget == budget && c.status == "ok") return &c;
  return nullptr;
}

// The reach criteria, on what was measured (a criterion whose cells were not run says so).
void print_reach(const std::vector<Cell>& cells, const std::vector<std::string>& model_names,
                 const std::vector<std::string>& budgets) {
  std::printf("\nreach (issue 15), from this run:\n");
  double worst = 0;
  std::string worst_at;
  for (const std::string& m : model_names)
    for (const std::string& b : budgets) {
      const Cell *a = find(cells, m, "auto", b), *s = find(cells, m, "serial", b);
      if (!a || !s) continue;
      const double slower = a->step_ms / s->step_ms;
      if (slower > worst) worst = slower, worst_at = m + " at " + b;
    }
  if (worst > 0)
    std::printf("  auto at most 3%% slower than serial at the same budget: %s (worst %.3fx, %s)\n",
                worst <= 1.03 ? "yes" : "NO", worst, worst_at.c_str());
  for (const char* b : {"0.5", "0.25"}) {
    if (std::find(budgets.begin(), budgets.end(), b) == budgets.end()) continue;
    int fast = 0;
    std::string list;
    for (const std::string& m : model_names) {
      const Cell *a = find(cells, m, "auto", b), *s = find(cells, m, "serial", b);
      if (!a || !s) continue;
      const double speedup = s->step_ms / a->step_ms;
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%s %.2fx", list.empty() ? "" : ", ", m.c_str(), speedup);
      list += buf;
      fast += speedup >= 1.2;
    }
    std::printf("  auto >= 1.2x faster than serial at %s on >= 2 models: %s (%s)\n", b,
                fast >= 2 ? "yes" : "NO", list.c_str());
  }
  if (std::find(budgets.begin(), budgets.end(), "0.5") != budgets.end()) {
    std::string best;
    double best_ratio = 0;
    for (const std::string& m : model_names)
      if (const Cell* a = find(cells, m, "auto", "0.5");
          a && (best.empty() || a->ratio() < best_ratio))
        best = m, best_ratio = a->ratio();
    if (!best.empty())
      std::printf("  a model at 0.5 with auto faster than serial unlimited: %s (best %s, %.3fx)\n",
                  best_ratio < 1.0 ? "yes" : "NO", best.c_str(), best_ratio);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Step time with streams against serial, under memory budgets, relative to serial unlimited"};
  std::string out_dir = "streams_sweep", models_s = "gpt-small,resnet18,unet,inception",
              budgets_s = "1,0.5,0.33,0.25", configs_s = "serial,2x1,auto",
              text = "/usr/share/common-licenses/GPL-3";
  int warmup = 7, steps = 9, threads = 2;
  app.add_option("--out", out_dir, "folder for streams_sweep.csv")->capture_default_str();
  app.add_option("--models", models_s, "comma-separated: gpt-small, resnet18, unet, inception")
      ->capture_default_str();
  app.add_option("--budgets", budgets_s,
                 "comma-separated activation fractions (or byte sizes such as 64MiB)")
      ->capture_default_str();
  app.add_option("--configs", configs_s,
                 "comma-separated: serial (1 stream), NxM (N streams; 2x1 = 2 streams of "
                 "1 thread with --threads 2), auto (the planner chooses)")
      ->capture_default_str();
  app.add_option("--threads", threads, "CPU threads of every session (split between streams)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup,
                 "untimed steps per cell first (the session measures op times and plans "
                 "again in them; auto runs three serial and four parallel steps before it chooses)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--steps", steps, "timed steps per cell (median)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--text", text, "text for the GPT")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::vector<Config> configs;
  std::vector<Model> all;
  try {
    for (const std::string& c : split(configs_s)) configs.push_back(parse_config(c, threads));
    all = models(text);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  const auto budgets = split(budgets_s), wanted = split(models_s);
  for (const std::string& w : wanted)
    if (std::none_of(all.begin(), all.end(), [&](const Model& m) { return m.name == w; })) {
      std::fprintf(stderr,
                   "error: --models: unknown model '%s' (gpt-small, resnet18, unet, inception)\n",
                   w.c_str());
      return 1;
    }
  std::filesystem::create_directories(out_dir);
  const std::string csv_path = out_dir + "/streams_sweep.csv";
  std::FILE* csv = std::fopen(csv_path.c_str(), "w");
  if (!csv) {
    std::fprintf(stderr, "error: cannot write %s: %s\n", csv_path.c_str(), std::strerror(errno));
    return 1;
  }
  std::fprintf(csv,
               "model,config,streams_option,threads,budget,budget_bytes,no_remat_peak_bytes,peak_"
               "bytes,step_ms,"
               "exec_ms,unlimited_serial_ms,ratio,vs_serial_same_budget,streams_max,predicted_ms,"
               "parallel_ms,"
               "overlapped_recompute_ms,recomputed,losses_bitwise_equal,status\n");
  const int total = warmup + steps;
  const auto skip = static_cast<size_t>(warmup);
  std::vector<Cell> cells;
  std::vector<std::string> model_names;
  auto t_all = Clock::now();
  for (const Model& m : all) {
    if (std::find(wanted.begin(), wanted.end(), m.name) == wanted.end()) continue;
    model_names.push_back(m.name);
    const Run ref = train(m, "", 1, threads, total);
    const double ref_ms = median_ms(ref.wall, skip);
    std::printf("\n%s (%s): serial unlimited %.1f ms/step (%d threads), peak %.2f MiB\n",
                m.name.c_str(), m.what.c_str(), ref_ms, threads, ref.peak / 1048576.0);
    std::printf("%-7s %-7s %9s %9s %9s %8s %9s %7s %9s %9s %9s %6s %s\n", "budget", "config",
                "budget MiB", "peak MiB", "ms/step", "/unl.ser", "/ser.same", "streams", "pred. ms",
                "2+busy ms", "ovl.rec ms", "remat", "bitwise");
    for (const std::string& b : budgets) {
      for (const Config& cf : configs) {
        Cell c;
        c.model = m.name;
        c.config = cf.name;
        c.budget = b;
        c.threads = threads;
        c.streams_option = cf.streams;
        c.unlimited_ms = ref_ms;
        try {
          const Run r = train(m, b, cf.streams, threads, total);
          c.budget_bytes = r.last.budget_bytes;
          c.no_remat = r.last.no_remat_peak_bytes;
          c.peak = r.peak;
          c.recomputed = r.last.recomputed;
          c.step_ms = median_ms(r.wall, skip);
          c.exec_ms = median_ms(r.exec, skip);
          c.predicted_ms = median_ms(r.predicted, skip);
          c.parallel_ms = median_ms(r.parallel, skip);
          c.overlapped_ms = median_ms(r.overlapped, skip);
          c.streams_max = *std::max_element(r.streams.begin() + static_cast<std::ptrdiff_t>(skip),
                                            r.streams.end());
          c.bitwise =
              r.losses.size() == ref.losses.size() &&
              std::memcmp(r.losses.data(), ref.losses.data(), r.losses.size() * sizeof(float)) == 0;
        } catch (const InfeasibleBudget&) {
          c.status = "infeasible";
        } catch (const Error& e) {
          c.status = std::string("error: ") + e.what();
          for (char& ch : c.status)
            if (ch == ',' || ch == '\n') ch = ';';
        }
        cells.push_back(c);
        const Cell* serial = find(cells, m.name, "serial", b);
        const double vs_serial = serial && c.status == "ok" ? c.step_ms / serial->step_ms : 0;
        if (c.status == "ok")
          std::printf("%-7s %-7s %9.2f %9.2f %9.1f %7.3fx %8.3fx %7d %9.1f %9.1f %9.1f %6zu %s\n",
                      b.c_str(), cf.name.c_str(), c.budget_bytes / 1048576.0, c.peak / 1048576.0,
                      c.step_ms, c.ratio(), vs_serial, c.streams_max, c.predicted_ms, c.parallel_ms,
                      c.overlapped_ms, c.recomputed, c.bitwise ? "yes" : "NO");
        else
          std::printf("%-7s %-7s %s\n", b.c_str(), cf.name.c_str(),
                      c.status.substr(0, 100).c_str());
        std::fflush(stdout);
        std::fprintf(
            csv,
            "%s,%s,%d,%d,%s,%zu,%zu,%zu,%.3f,%.3f,%.3f,%.4f,%.4f,%d,%.3f,%.3f,%.3f,%zu,%s,%s\n",
            c.model.c_str(), c.config.c_str(), c.streams_option, c.threads, b.c_str(),
            c.budget_bytes, c.no_remat, c.peak, c.step_ms, c.exec_ms, c.unlimited_ms, c.ratio(),
            vs_serial, c.streams_max, c.predicted_ms, c.parallel_ms, c.overlapped_ms, c.recomputed,
            c.status == "ok" ? (c.bitwise ? "yes" : "no") : "", c.status.c_str());
        std::fflush(csv);
      }
    }
  }
  std::fclose(csv);
  print_reach(cells, model_names, budgets);
  std::printf(
      "\nwrote %s (%.0f s); plot: python3 bench/streams_sweep_plot.py %s docs/streams_sweep.svg\n",
      csv_path.c_str(), std::chrono::duration<double>(Clock::now() - t_all).count(),
      csv_path.c_str());
  return 0;
}

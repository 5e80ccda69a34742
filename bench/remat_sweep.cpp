// The "actual training time after rematerialisation" table: each example model (small sizes)
// trained for a few steps at budgets {1, 0.5, 0.35, 0.25, 0.15 of the activations, the smallest
// feasible} with each planner; measured arena peak, measured step time relative to an unlimited run
// made in this process, the planner's predicted ratio, and whether the losses match the unlimited
// run bitwise. Writes a CSV and an SVG plot (overhead against budget, one line per planner, one
// panel per model).
//
//   build/bench/remat_sweep --out bench/results                 # a few minutes on 2 cores
//   build/bench/remat_sweep --models gpt --planners lethe,dtr --steps 6
//   build/bench/remat_sweep --floor --planners lethe --out docs   # smallest budgets, early updates
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gpt/model.h"
#include "lethe.h"
#include "mlp_fashion/model.h"
#include "resnet/model.h"
#include "unet/model.h"

using namespace lethe;
using namespace lethe::examples;
using Clock = std::chrono::steady_clock;

namespace {

using StepFn = std::function<Tensor(int64_t)>;
using MakeFn = std::function<std::pair<StepFn, std::vector<Tensor>>()>;

struct Model {
  std::string name;
  MakeFn make;
};

std::vector<Model> models(const std::string& text_path) {
  std::vector<Model> out;
  out.push_back({"mlp", [] {
                   auto m = make_mlp(784, 256, 128, 10);
                   auto x = randn({1024, 1, 28, 28});
                   std::vector<int64_t> labels(1024);
                   for (size_t i = 0; i < labels.size(); ++i)
                     labels[i] = static_cast<int64_t>(i * 7 % 10);
                   auto y = from_vector(labels, {1024});
                   return std::make_pair(
                       StepFn([m, x, y](int64_t) { return cross_entropy(m->forward(x), y); }),
                       m->parameters());
                 }});
  out.push_back({"resnet18-w16", [] {
                   auto net = std::make_shared<ResNet>(
                       ResNetConfig{.depth = 18, .width = 16, .classes = 10});
                   auto data = std::make_shared<SyntheticImages>(512, 32, 10, 1);
                   return std::make_pair(StepFn([net, data](int64_t step) {
                                           std::vector<int64_t> idx;
                                           for (int64_t k = 0; k < 16; ++k)
                                             idx.push_back((step * 16 + k) % 512);
                                           auto b = data->get_batch(idx);
                                           return cross_entropy(net->forward(b.data), b.target);
                                         }),
                                         net->parameters());
                 }});
  // U-Net depth 3, width 16, 64 px, batch 4: about 100 ms a step with one thread.
  out.push_back({"unet-w16", [] {
                   auto net =
                       std::make_shared<UNet>(UNetConfig{.depth = 3, .width = 16, .classes = 3});
                   auto data = std::make_shared<SyntheticSegmentation>(256, 64, 3, 1);
                   return std::make_pair(StepFn([net, data](int64_t step) {
                                           std::vector<int64_t> idx;
                                           for (int64_t k = 0; k < 4; ++k)
                                             idx.push_back((step * 4 + k) % 256);
                                           auto b = data->get_batch(idx);
                                           return cross_entropy(net->forward(b.data), b.target);
                                         }),
                                         net->parameters());
                 }});
  auto text = std::make_shared<CharText>(std::vector<std::string>{text_path});
  out.push_back(
      {"gpt-small", [text] {
         auto g = std::make_shared<GPT>(GPTConfig{
             .vocab = text->vocab_size(), .context = 128, .layers = 4, .d_model = 128, .heads = 4});
         return std::make_pair(StepFn([g, text](int64_t step) {
                                 auto [x, y] = text->batch(8, 128, step, 1);
                                 return g->loss(x, y);
                               }),
                               g->parameters());
       }});
  return out;
}

struct Cell {
  std::string model, planner, budget_label, status = "ok";
  size_t budget = 0, no_remat = 0, peak = 0, recomputed = 0;
  double step_ms = 0, unlimited_ms = 0, predicted = 0, planning_s = 0;
  bool bitwise = false;
};

struct Trained {
  std::vector<float> losses;
  std::vector<double> wall;
  StepReport last;
  size_t peak = 0;
  double planning = 0;
};

Trained train(const MakeFn& make, int steps, const std::string& budget, const std::string& planner,
              bool early_updates = true) {
  Trained t;
  Session s(
      {.seed = 5, .memory_budget = budget, .planner = planner, .early_updates = early_updates});
  auto [step, params] = make();
  optim::AdamW opt(params, optim::AdamWOptions(1e-3));
  for (int i = 0; i < steps; ++i) {
    auto t0 = Clock::now();
    Tensor loss = step(i);
    opt.zero_grad();
    loss.backward();
    opt.step();
    t.losses.push_back(loss.item<float>());
    t.wall.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    t.last = s.last_report();
    t.peak = std::max(t.peak, t.last.peak_bytes);
    t.planning += t.last.planning_seconds;
  }
  return t;
}

// Median of the steps after the first four (a budgeted session plans at steps 0, 1 and 3: from
// estimates, from step 0's times, from the warm times of steps 0-2).
double timed_ms(std::vector<double> w) {
  const size_t skip = w.size() > 5 ? 4 : 0;
  w.erase(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(skip));
  std::sort(w.begin(), w.end());
  return w.empty() ? 0 : 1e3 * w[w.size() / 2];
}

std::string svg_plot(const std::vector<Cell>& cells, const std::vector<std::string>& model_names,
                     const std::vector<std::string>& planners) {
  const int pw = 360, ph = 280, ml = 55, mt = 40, mb = 45, gap = 30;
  const int W = ml + static_cast<int>(model_names.size()) * (pw + gap) + 120, H = mt + ph + mb;
  static const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                  "#9467bd", "#8c564b", "#e377c2"};
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" "
       "fill=\"white\"/>\n";
  s << "<text x=\"" << ml
    << "\" y=\"16\" font-size=\"13\">Measured step time under a budget / unlimited step time "
       "(same process), against budget / no-remat peak</text>\n";
  for (size_t mi = 0; mi < model_names.size(); ++mi) {
    const int x0 = ml + static_cast<int>(mi) * (pw + gap), y0 = mt;
    double ymax = 1.5;
    for (const Cell& c : cells)
      if (c.model == model_names[mi] && c.status == "ok")
        ymax = std::max(ymax, c.step_ms / c.unlimited_ms);
    ymax = std::ceil(ymax * 2) / 2;
    auto X = [&](double f) { return x0 + f * pw; };
    auto Y = [&](double r) { return y0 + ph - (r - 0.5) / (ymax - 0.5) * ph; };
    s << "<rect x=\"" << x0 << "\" y=\"" << y0 << "\" width=\"" << pw << "\" height=\"" << ph
      << "\" fill=\"none\" stroke=\"#888\"/>\n";
    s << "<text x=\"" << x0 + pw / 2 << "\" y=\"" << y0 - 6
      << "\" text-anchor=\"middle\" font-size=\"12\">" << model_names[mi] << "</text>\n";
    for (double f = 0; f <= 1.001; f += 0.25)
      s << "<text x=\"" << X(f) << "\" y=\"" << y0 + ph + 14 << "\" text-anchor=\"middle\">" << f
        << "</text>\n";
    s << "<text x=\"" << x0 + pw / 2 << "\" y=\"" << y0 + ph + 32
      << "\" text-anchor=\"middle\">budget / no-remat peak</text>\n";
    for (double r = 0.5; r <= ymax + 1e-9; r += 0.5) {
      s << "<line x1=\"" << x0 << "\" x2=\"" << x0 + pw << "\" y1=\"" << Y(r) << "\" y2=\"" << Y(r)
        << "\" stroke=\"" << (r == 1.0 ? "#444" : "#ddd") << "\"/>\n";
      s << "<text x=\"" << x0 - 4 << "\" y=\"" << Y(r) + 4 << "\" text-anchor=\"end\">" << r
        << "x</text>\n";
    }
    for (size_t pi = 0; pi < planners.size(); ++pi) {
      std::vector<std::pair<double, double>> pts;
      for (const Cell& c : cells)
        if (c.model == model_names[mi] && c.planner == planners[pi] && c.status == "ok" &&
            c.no_remat)
          pts.push_back({static_cast<double>(c.budget) / static_cast<double>(c.no_remat),
                         c.step_ms / c.unlimited_ms});
      std::sort(pts.begin(), pts.end());
      if (pts.empty()) continue;
      s << "<polyline fill=\"none\" stroke-width=\"1.8\" stroke=\"" << colours[pi % 7]
        << "\" points=\"";
      for (auto [f, r] : pts) s << X(std::min(f, 1.0)) << "," << Y(std::min(r, ymax)) << " ";
      s << "\"/>\n";
      for (auto [f, r] : pts)
        s << "<circle r=\"2.5\" fill=\"" << colours[pi % 7] << "\" cx=\"" << X(std::min(f, 1.0))
          << "\" cy=\"" << Y(std::min(r, ymax)) << "\"/>\n";
    }
  }
  const int lx = ml + static_cast<int>(model_names.size()) * (pw + gap);
  for (size_t pi = 0; pi < planners.size(); ++pi) {
    const int ly = mt + 10 + static_cast<int>(pi) * 18;
    s << "<line x1=\"" << lx << "\" x2=\"" << lx + 20 << "\" y1=\"" << ly << "\" y2=\"" << ly
      << "\" stroke=\"" << colours[pi % 7] << "\" stroke-width=\"2\"/><text x=\"" << lx + 25
      << "\" y=\"" << ly + 4 << "\">" << planners[pi] << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) out.push_back(t);
  return out;
}

// The smallest budget `planner` fits the model's step at, as the framework reports it when
// refusing.
size_t smallest_budget(const MakeFn& make, const std::string& planner, bool early_updates) {
  try {
    train(make, 1, "0.000001", planner, early_updates);
  } catch (const InfeasibleBudget& e) {
    return e.smallest_feasible_bytes;
  }
  return 0;
}

// --floor: per model, the smallest budget with the optimizer updates after the plan and with early
// updates (SessionOptions::early_updates), against the gradients' bytes; two steps at the smaller
// budget are checked bitwise against unlimited memory.
int floor_table(const std::vector<Model>& all, const std::vector<std::string>& wanted,
                const std::string& planner, const std::string& out_dir) {
  const std::string path = out_dir + "/floor.csv";
  std::FILE* csv = std::fopen(path.c_str(), "w");
  if (!csv) {
    std::fprintf(stderr, "error: cannot write %s\n", path.c_str());
    return 1;
  }
  std::fprintf(csv,
               "model,planner,gradient_bytes,smallest_late_bytes,smallest_early_bytes,drop_bytes,"
               "drop_over_gradients,bitwise_equal\n");
  std::printf("%-14s %12s %14s %14s %12s %10s %s\n", "model", "grads MiB", "late min MiB",
              "early min MiB", "drop MiB", "drop/grads", "bitwise");
  int status = 0;
  for (const Model& m : all) {
    if (std::find(wanted.begin(), wanted.end(), m.name) == wanted.end()) continue;
    size_t grads = 0;
    for (const Tensor& p : m.make().second) grads += p.meta().bytes();
    const size_t late = smallest_budget(m.make, planner, false);
    const size_t early = smallest_budget(m.make, planner, true);
    const Trained ref = train(m.make, 2, "", "auto");
    const Trained t = train(m.make, 2, std::to_string(early), planner, true);
    const bool bitwise = t.losses == ref.losses;
    if (!bitwise) status = 1;
    const double drop = static_cast<double>(late) - static_cast<double>(early);
    std::printf("%-14s %12.3f %14.3f %14.3f %12.3f %10.2f %s\n", m.name.c_str(), grads / 1048576.0,
                late / 1048576.0, early / 1048576.0, drop / 1048576.0,
                grads ? drop / static_cast<double>(grads) : 0.0, bitwise ? "yes" : "NO");
    std::fflush(stdout);
    std::fprintf(csv, "%s,%s,%zu,%zu,%zu,%.0f,%.4f,%s\n", m.name.c_str(), planner.c_str(), grads,
                 late, early, drop, grads ? drop / static_cast<double>(grads) : 0.0,
                 bitwise ? "yes" : "no");
  }
  std::fclose(csv);
  std::printf("wrote %s\n", path.c_str());
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Measured training-step overhead of rematerialisation across budgets and planners"};
  std::string out_dir = "remat_sweep", planners_s = "lethe,auto,dtr,treewidth,chain,sqrt",
              models_s = "mlp,resnet18-w16,unet-w16,gpt-small",
              budgets_s = "1,0.5,0.35,0.25,0.15,min", text = "/usr/share/common-licenses/GPL-3";
  int steps = 10, threads = 0;
  app.add_option("--out", out_dir, "folder for remat_sweep.csv and remat_sweep.svg")
      ->capture_default_str();
  app.add_option("--planners", planners_s, "comma-separated planners")->capture_default_str();
  app.add_option("--models", models_s,
                 "comma-separated models: mlp, resnet18-w16, unet-w16, gpt-small")
      ->capture_default_str();
  app.add_option("--budgets", budgets_s,
                 "activation fractions, and 'min' for the smallest feasible budget")
      ->capture_default_str();
  app.add_option("--steps", steps, "steps per cell (the first four are not timed)")
      ->capture_default_str();
  app.add_option("--text", text, "text for the GPT")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0: default)")->capture_default_str();
  bool floor = false;
  app.add_flag("--floor", floor,
               "instead: each model's smallest budget with updates after the plan and with early "
               "updates (the first planner), against its gradient bytes (floor.csv)");
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) Session({.num_threads = threads});
  if (floor) {
    std::filesystem::create_directories(out_dir);
    return floor_table(models(text), split(models_s), split(planners_s).front(), out_dir);
  }

  const auto planners = split(planners_s), budgets = split(budgets_s), wanted = split(models_s);
  std::filesystem::create_directories(out_dir);
  std::vector<Cell> cells;
  std::vector<std::string> model_names;
  std::FILE* csv = std::fopen((out_dir + "/remat_sweep.csv").c_str(), "w");
  if (!csv) {
    std::fprintf(stderr, "error: cannot write %s/remat_sweep.csv\n", out_dir.c_str());
    return 1;
  }
  std::fprintf(
      csv,
      "model,planner,budget,budget_bytes,no_remat_peak_bytes,measured_peak_bytes,step_ms,unlimited_"
      "ms,"
      "measured_ratio,predicted_ratio,recomputed,planning_s,losses_bitwise_equal,status\n");
  auto t_all = Clock::now();
  for (const Model& m : models(text)) {
    if (std::find(wanted.begin(), wanted.end(), m.name) == wanted.end()) continue;
    model_names.push_back(m.name);
    train(m.make, 2, "", "auto");  // warm-up: allocator caches, cost-model calibration, page faults
    Trained unl = train(m.make, steps, "", "auto");
    std::printf(
        "\n%s: unlimited %.1f ms/step, peak %.2f MiB (each cell below is timed against an "
        "unlimited run "
        "made just before it)\n",
        m.name.c_str(), timed_ms(unl.wall), unl.peak / 1048576.0);
    std::printf("%-10s %-8s %10s %10s %10s %10s %9s %9s %6s %9s %s\n", "planner", "budget",
                "budget MiB", "peak MiB", "ms/step", "unl. ms", "measured", "predicted", "remat",
                "plan s", "bitwise");
    for (const std::string& planner : planners) {
      for (const std::string& b : budgets) {
        Cell c;
        c.model = m.name;
        c.planner = planner;
        c.budget_label = b;
        std::string budget = b;
        try {
          if (b == "min") {
            // The smallest budget this planner fits, as the framework reports it when refusing.
            try {
              train(m.make, 1, "0.000001", planner);
              budget = "0.000001";
            } catch (const InfeasibleBudget& e) {
              if (!e.smallest_feasible_bytes) throw;
              budget = std::to_string(e.smallest_feasible_bytes);
            }
          }
          // The unlimited reference is measured right before each cell: the machine's load drifts.
          Trained ref = train(m.make, steps, "", "auto");
          c.unlimited_ms = timed_ms(ref.wall);
          Trained t = train(m.make, steps, budget, planner);
          c.budget = t.last.budget_bytes;
          c.no_remat = t.last.no_remat_peak_bytes;
          c.peak = t.peak;
          c.recomputed = t.last.recomputed;
          c.step_ms = timed_ms(t.wall);
          c.predicted = t.last.predicted_overhead;
          c.planning_s = t.planning;
          c.bitwise =
              t.losses.size() == unl.losses.size() &&
              std::memcmp(t.losses.data(), unl.losses.data(), t.losses.size() * sizeof(float)) == 0;
        } catch (const InfeasibleBudget& e) {
          c.status = "infeasible";
        } catch (const Error& e) {
          c.status = std::string("error: ") + e.what();
          for (char& ch : c.status)
            if (ch == ',' || ch == '\n') ch = ';';
        }
        cells.push_back(c);
        if (c.status == "ok")
          std::printf("%-10s %-8s %10.2f %10.2f %10.1f %10.1f %8.3fx %8.3fx %6zu %9.2f %s\n",
                      planner.c_str(), b.c_str(), c.budget / 1048576.0, c.peak / 1048576.0,
                      c.step_ms, c.unlimited_ms, c.step_ms / c.unlimited_ms, c.predicted,
                      c.recomputed, c.planning_s, c.bitwise ? "yes" : "NO");
        else
          std::printf("%-10s %-8s %s\n", planner.c_str(), b.c_str(),
                      c.status.substr(0, 100).c_str());
        std::fflush(stdout);
        std::fprintf(csv, "%s,%s,%s,%zu,%zu,%zu,%.3f,%.3f,%.4f,%.4f,%zu,%.3f,%s,%s\n",
                     c.model.c_str(), c.planner.c_str(), b.c_str(), c.budget, c.no_remat, c.peak,
                     c.step_ms, c.unlimited_ms, c.status == "ok" ? c.step_ms / c.unlimited_ms : 0.0,
                     c.predicted, c.recomputed, c.planning_s,
                     c.status == "ok" ? (c.bitwise ? "yes" : "no") : "", c.status.c_str());
        std::fflush(csv);
      }
    }
  }
  std::fclose(csv);
  std::ofstream(out_dir + "/remat_sweep.svg") << svg_plot(cells, model_names, planners);
  std::printf("\nwrote %s/remat_sweep.csv and %s/remat_sweep.svg (%.0f s)\n", out_dir.c_str(),
              out_dir.c_str(), std::chrono::duration<double>(Clock::now() - t_all).count());
  return 0;
}

// Recompute-only, offload-only and joint plans against device budgets, with a second memory tier
// (SessionOptions::host_budget: a file in --dir on the CPU). Per model and budget: the plan each
// mode takes, its measured step time over an unlimited step of the same process, the bytes copied
// and the part of the copy time hidden behind compute, the arena and tier peaks, and whether the
// losses equal the unlimited run's bitwise. Budgets: activation fractions, then bytes at the
// smallest budget recomputation alone fits (its first step, find_min_budget) and below it, then
// fractions of the parameters + gradients + AdamW state (--state), where the parameters and the
// optimizer state live in the tier (SessionOptions::offload_state) and are read in as needed.
//
//   build/bench/tier_sweep --out docs                       # GPT 6x256 and ResNet-50 (64 px)
//   build/bench/tier_sweep --models gpt6-d256 --timed 3 --below 0.9,0.8
//
// Joint planning ("joint", tier_plan "auto" in a session) measures its candidate plans and keeps
// the fastest: per budget, the bench prints joint's time over the better of recompute-only and
// offload-only (the target: at most 1.03). The three sessions of a budget run side by side, a step
// of each in turn, so that the machine's drifts fall on all three alike.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gpt/model.h"
#include "lethe.h"
#include "resnet/model.h"

using namespace lethe;
using namespace lethe::examples;
using Clock = std::chrono::steady_clock;

namespace {

using StepFn = std::function<Tensor(int64_t)>;
struct Model {
  std::string name;
  std::function<std::pair<StepFn, std::vector<Tensor>>()> make;
};

std::vector<Model> models(const std::string& text_path) {
  std::vector<Model> out;
  auto text = std::make_shared<CharText>(std::vector<std::string>{text_path});
  out.push_back(
      {"gpt6-d256", [text] {
         auto g = std::make_shared<GPT>(GPTConfig{
             .vocab = text->vocab_size(), .context = 128, .layers = 6, .d_model = 256, .heads = 4});
         return std::make_pair(StepFn([g, text](int64_t step) {
                                 auto [x, y] = text->batch(8, 128, step, 1);
                                 return g->loss(x, y);
                               }),
                               g->parameters());
       }});
  out.push_back({"resnet50-64px", [] {
                   auto net = std::make_shared<ResNet>(
                       ResNetConfig{.depth = 50, .width = 16, .classes = 10});
                   auto data = std::make_shared<SyntheticImages>(64, 64, 10, 1);
                   return std::make_pair(StepFn([net, data](int64_t step) {
                                           std::vector<int64_t> idx;
                                           for (int64_t k = 0; k < 8; ++k)
                                             idx.push_back((step * 8 + k) % 64);
                                           auto b = data->get_batch(idx);
                                           return cross_entropy(net->forward(b.data), b.target);
                                         }),
                                         net->parameters());
                 }});
  return out;
}

struct Trained {
  std::vector<float> losses;
  std::vector<double> wall;
  std::vector<char> trial;  // per step: it measured one of the tier's candidate plans
  StepReport last;
  size_t peak = 0;
};

void train_step(Session& s, const StepFn& step, optim::AdamW& opt, int64_t i, Trained& t) {
  const auto t0 = Clock::now();
  Tensor loss = step(i);
  loss.backward();
  opt.step();
  t.losses.push_back(loss.item<float>());
  t.wall.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  t.last = s.last_report();
  t.trial.push_back(t.last.tier_trial ? 1 : 0);
  t.peak = std::max(t.peak, t.last.peak_bytes);
}

Trained train(const Model& m, const SessionOptions& o, int steps) {
  Session s(o);
  auto [step, params] = m.make();
  optim::AdamW opt(params, optim::AdamWOptions(1e-3));
  Trained t;
  for (int i = 0; i < steps; ++i) train_step(s, step, opt, i, t);
  return t;
}

// The sessions of one budget, one per mode, run side by side: each on its own thread, one step at a
// time in turn, the order rotating every step, so that a slow minute of the machine falls on every
// mode alike rather than on whichever cell ran then. Only one thread runs at a time.
class Lanes {
 public:
  struct Outcome {
    Trained t;
    std::string status = "ok";
  };

  Lanes(const Model& m, const std::vector<SessionOptions>& opts) : lanes_(opts.size()) {
    for (size_t k = 0; k < opts.size(); ++k)
      lanes_[k].thread = std::thread([this, &m, k, o = opts[k]] { work(m, o, lanes_[k]); });
  }
  Lanes(const Lanes&) = delete;
  Lanes& operator=(const Lanes&) = delete;
  ~Lanes() {
    for (Lane& l : lanes_) {
      {
        std::lock_guard g(mu_);
        l.order = -1;
      }
      cv_.notify_all();
      l.thread.join();
    }
  }

  // At least `warm` steps, more while a session still measures its candidate plans (up to
  // `warm_max`), then `timed` steps.
  std::vector<Outcome> run(int warm, int warm_max, int timed) {
    int i = 0;
    while (i < warm || (i < warm_max && measuring())) round(i++);
    for (int k = 0; k < timed; ++k) round(i++);
    std::vector<Outcome> out;
    std::lock_guard g(mu_);
    for (const Lane& l : lanes_) out.push_back(l.out);
    return out;
  }

 private:
  // Step `i` of every lane that has not failed, one lane at a time, the first rotating with `i`.
  void round(int i) {
    for (size_t j = 0; j < lanes_.size(); ++j) {
      Lane& l = lanes_[(j + static_cast<size_t>(i)) % lanes_.size()];
      std::unique_lock g(mu_);
      if (l.out.status != "ok") continue;  // it failed: the others go on
      l.order = 1;
      cv_.notify_all();
      cv_.wait(g, [&] { return l.order == 0; });
    }
  }
  bool measuring() {
    std::lock_guard g(mu_);
    for (const Lane& l : lanes_)
      if (l.out.status == "ok" && !l.out.t.trial.empty() && l.out.t.trial.back()) return true;
    return false;
  }

  struct Lane {
    std::thread thread;
    int order = 0;  // 1: run a step; 0: done; -1: close
    Outcome out;
  };

  // Waits for an order on the lane's own thread; true for a step, false to close.
  bool next(Lane& l) {
    std::unique_lock g(mu_);
    cv_.wait(g, [&] { return l.order != 0; });
    return l.order == 1;
  }
  void done(Lane& l, std::string status = "ok") {
    {
      std::lock_guard g(mu_);
      l.out.status = std::move(status);
      l.order = 0;
    }
    cv_.notify_all();
  }

  void work(const Model& m, const SessionOptions& o, Lane& l) {
    try {
      Session s(o);
      auto [step, params] = m.make();
      optim::AdamW opt(params, optim::AdamWOptions(1e-3));
      for (int64_t i = 0; next(l); ++i) {
        train_step(s, step, opt, i, l.out.t);
        done(l);
      }
      return;
    } catch (const InfeasibleBudget& e) {
      std::string status = "infeasible";
      if (e.smallest_feasible_bytes > 0) {
        char buf[96];
        std::snprintf(buf, sizeof buf, " (a plan was found at %.2f MiB)",
                      static_cast<double>(e.smallest_feasible_bytes) / 1048576.0);
        status += buf;
      }
      fail(l, status);
    } catch (const Error& e) {
      std::string status = std::string("error: ") + e.what();
      std::replace(status.begin(), status.end(), ',', ';');
      std::replace(status.begin(), status.end(), '\n', ' ');
      fail(l, status);
    }
  }
  // A lane that failed answers its pending order and every later one until it is closed.
  void fail(Lane& l, const std::string& status) {
    done(l, status);
    while (next(l)) done(l, status);
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Lane> lanes_;
};

// A budgeted session plans at steps 0, 1 and 3; then, under tier_plan "joint", it measures its
// candidate plans (up to three, in three to six rounds of a step each) and keeps the fastest. Each
// cell is timed by the fastest of its last `timed` steps, after all that: the same number of steps
// in every cell of a budget.
constexpr int kWarmSteps = 3 + 9, kWarmStepsMax = 3 + 18;
double warm_seconds(const Trained& t, int timed) {
  double best = 0;
  for (size_t i = t.wall.size() - static_cast<size_t>(timed); i < t.wall.size(); ++i) {
    if (t.trial[i])
      throw Error("tier_sweep: step " + std::to_string(i) +
                  " still measured a candidate plan: the warm-up is too short");
    if (best == 0 || t.wall[i] < best) best = t.wall[i];
  }
  return best;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}

struct Cell {
  std::string model, budget, mode, plan, status = "ok";
  size_t budget_bytes = 0, peak = 0, tier = 0, out = 0, in = 0, homes = 0;
  double ratio = 0, copy_s = 0, hidden_s = 0;
  bool bitwise = false;
  std::vector<std::pair<std::string, double>> measured;  // joint: its candidates' best step times
  std::vector<double> wall;                              // per step (TIER_SWEEP_WALL)
  std::vector<char> trial;
};

// One panel per model: measured time over unlimited (y) per budget (x, in order), a line per mode.
std::string svg(const std::vector<Cell>& cells, const std::vector<std::string>& names,
                const std::vector<std::string>& modes) {
  const int pw = 420, ph = 260, left = 60, top = 40, gap = 40;
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='"
    << left + static_cast<int>(names.size()) * (pw + gap) + 110 << "' height='" << top + ph + 70
    << "' font-family='sans-serif' font-size='11'>\n";
  const char* colour[] = {"#1f77b4", "#2ca02c", "#d62728"};
  for (size_t k = 0; k < names.size(); ++k) {
    const int x0 = left + static_cast<int>(k) * (pw + gap);
    std::vector<std::string> budgets;
    double ymax = 1.0;
    for (const Cell& c : cells) {
      if (c.model != names[k]) continue;
      if (std::find(budgets.begin(), budgets.end(), c.budget) == budgets.end())
        budgets.push_back(c.budget);
      if (c.status == "ok") ymax = std::max(ymax, c.ratio);
    }
    ymax *= 1.1;
    o << "<text x='" << x0 << "' y='" << top - 15 << "' font-size='13'>" << names[k]
      << ": step time / unlimited</text>\n";
    o << "<rect x='" << x0 << "' y='" << top << "' width='" << pw << "' height='" << ph
      << "' fill='none' stroke='#888'/>\n";
    auto px = [&](size_t i) {
      return x0 + 20 +
             static_cast<int>(i) * (pw - 40) /
                 static_cast<int>(std::max<size_t>(1, budgets.size() - 1));
    };
    auto py = [&](double r) { return top + ph - static_cast<int>(r / ymax * ph); };
    for (size_t i = 0; i < budgets.size(); ++i)
      o << "<text x='" << px(i) - 15 << "' y='" << top + ph + 15 << "'>" << budgets[i]
        << "</text>\n";
    for (double r = 1; r < ymax; r += 1)
      o << "<text x='" << x0 - 30 << "' y='" << py(r) + 4 << "'>" << r << "x</text>\n";
    for (size_t m = 0; m < modes.size(); ++m) {
      std::string path;
      for (size_t i = 0; i < budgets.size(); ++i)
        for (const Cell& c : cells)
          if (c.model == names[k] && c.budget == budgets[i] && c.mode == modes[m] &&
              c.status == "ok") {
            path += (path.empty() ? "M" : " L") + std::to_string(px(i)) + " " +
                    std::to_string(py(c.ratio));
            o << "<circle cx='" << px(i) << "' cy='" << py(c.ratio) << "' r='3' fill='"
              << colour[m % 3] << "'/>\n";
          }
      if (!path.empty())
        o << "<path d='" << path << "' fill='none' stroke='" << colour[m % 3] << "'/>\n";
      if (k + 1 == names.size())
        o << "<text x='" << x0 + pw + 10 << "' y='" << top + 15 + 15 * static_cast<int>(m)
          << "' fill='" << colour[m % 3] << "'>" << modes[m] << "</text>\n";
    }
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Recompute-only, offload-only and joint plans with a second memory tier"};
  std::string out_dir = "tier_sweep", models_s = "gpt6-d256,resnet50-64px",
              fractions_s = "1,0.5,0.25", below_s = "0.9,0.8", state_s = "0.5", host = "2GiB",
              offload_state = "auto", dir = std::filesystem::temp_directory_path().string(),
              text = "/usr/share/common-licenses/GPL-3";
  int timed = 8;
  app.add_option("--out", out_dir, "folder for tier_sweep.csv and tier_sweep.svg")
      ->capture_default_str();
  app.add_option("--models", models_s, "gpt6-d256, resnet50-64px")->capture_default_str();
  app.add_option("--fractions", fractions_s, "activation fractions")->capture_default_str();
  app.add_option("--below", below_s,
                 "multiples of recompute-only's smallest budget to run at (below it: < 1)")
      ->capture_default_str();
  app.add_option("--state", state_s,
                 "fractions of parameters + gradients + AdamW state to run at (their homes in the "
                 "tier)")
      ->capture_default_str();
  app.add_option("--host-budget", host, "the tier's size")->capture_default_str();
  app.add_option("--offload-state", offload_state,
                 "SessionOptions::offload_state of every cell: auto, always or never")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "always", "never"}));
  app.add_option("--dir", dir, "the tier file's directory")->capture_default_str();
  app.add_option(
         "--timed", timed,
         "steps timed per cell (its fastest), after 12 to 21 steps of planning and measuring")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--text", text, "text for the GPT")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::filesystem::create_directories(out_dir);
  const std::vector<std::string> modes{"recompute", "offload", "joint"}, wanted = split(models_s);
  std::vector<Cell> cells;
  std::vector<std::string> names;
  std::vector<double> joint_over;  // per budget: joint's ratio over the better of the others
  for (const Model& m : models(text)) {
    if (std::find(wanted.begin(), wanted.end(), m.name) == wanted.end()) continue;
    names.push_back(m.name);
    SessionOptions plain{.seed = 3};
    plain.early_updates = false;  // as with a tier: updates after the plan
    train(m, plain, 2);           // warm-up
    const Trained ref = train(m, plain, kWarmStepsMax + timed);
    const double unl = warm_seconds(ref, timed);
    size_t state_bytes = 0;  // parameters + gradients + AdamW's two moments
    for (const Tensor& p : m.make().second) state_bytes += 4 * p.numel() * sizeof(float);
    const size_t smallest = find_min_budget(plain, [&] {
      auto [step, params] = m.make();
      optim::AdamW opt(params, optim::AdamWOptions(1e-3));
      step(0).backward();
      opt.step();
    });
    std::printf(
        "\n%s: unlimited %.1f ms/step, peak %.2f MiB; recompute-only's smallest budget %.2f MiB; "
        "parameters + gradients + AdamW state %.2f MiB\n",
        m.name.c_str(), unl * 1e3, ref.peak / 1048576.0, smallest / 1048576.0,
        state_bytes / 1048576.0);
    std::printf("%-9s %-10s %-9s %9s %9s %8s %9s %9s %9s %9s %s\n", "budget", "mode", "plan", "MiB",
                "peak MiB", "ratio", "tier MiB", "homes MiB", "copy ms", "hidden", "bitwise");
    std::vector<std::pair<std::string, std::string>> budgets;  // label, budget
    for (const std::string& f : split(fractions_s)) budgets.push_back({f, f});
    budgets.push_back({"min", std::to_string(smallest) + "B"});
    for (const std::string& b : split(below_s))
      budgets.push_back({b + "min", std::to_string(static_cast<size_t>(
                                        std::stod(b) * static_cast<double>(smallest))) +
                                        "B"});
    for (const std::string& f : split(state_s))
      budgets.push_back({f + "state", std::to_string(static_cast<size_t>(
                                          std::stod(f) * static_cast<double>(state_bytes))) +
                                          "B"});
    for (const auto& [label, budget] : budgets) {
      std::vector<SessionOptions> opts;
      for (const std::string& mode : modes) {
        SessionOptions o{.seed = 3, .memory_budget = budget};
        o.host_budget = host;
        o.offload_path = dir;
        o.tier_plan = mode;
        o.offload_state = offload_state;
        opts.push_back(o);
      }
      const std::vector<Lanes::Outcome> runs = Lanes(m, opts).run(kWarmSteps, kWarmStepsMax, timed);
      for (size_t k = 0; k < modes.size(); ++k) {
        const std::string& mode = modes[k];
        Cell c{m.name, label, mode};
        c.status = runs[k].status;
        if (c.status == "ok") {
          const Trained& t = runs[k].t;
          c.plan = t.last.tier_plan;
          c.measured = t.last.tier_measured;
          c.wall = t.wall;
          c.trial = t.trial;
          c.budget_bytes = t.last.budget_bytes;
          c.peak = t.peak;
          c.tier = t.last.tier_peak_bytes;
          c.homes = t.last.tier_home_bytes;
          c.out = t.last.copy_out_bytes;
          c.in = t.last.copy_in_bytes;
          c.copy_s = t.last.copy_seconds;
          c.hidden_s = t.last.copy_hidden_seconds;
          c.ratio = warm_seconds(t, timed) / unl;
          c.bitwise = t.losses.size() <= ref.losses.size() &&
                      std::equal(t.losses.begin(), t.losses.end(), ref.losses.begin());
        }
        if (c.status == "ok") {
          std::printf("%-9s %-10s %-9s %9.2f %9.2f %7.3fx %9.2f %9.2f %9.1f %8.0f%% %s\n",
                      label.c_str(), mode.c_str(), c.plan.c_str(), c.budget_bytes / 1048576.0,
                      c.peak / 1048576.0, c.ratio, c.tier / 1048576.0, c.homes / 1048576.0,
                      c.copy_s * 1e3, c.copy_s > 0 ? 100.0 * c.hidden_s / c.copy_s : 0.0,
                      c.bitwise ? "yes" : "NO");
          if (!c.measured.empty()) {
            std::printf("%-9s %-10s measured:", "", "");
            for (const auto& [kind, secs] : c.measured)
              std::printf(" %s %.3fx", kind.c_str(), secs / unl);
            std::printf("\n");
          }
          if (std::getenv("TIER_SWEEP_WALL")) {
            std::printf("%-9s %-10s ms per step (t: measuring a candidate plan):", "", "");
            for (size_t i = 0; i < c.wall.size(); ++i)
              std::printf(" %.0f%s", c.wall[i] * 1e3, c.trial[i] ? "t" : "");
            std::printf("\n");
          }
        } else
          std::printf("%-9s %-10s %s\n", label.c_str(), mode.c_str(),
                      c.status.substr(0, 90).c_str());
        std::fflush(stdout);
        cells.push_back(c);
      }
      // Joint against the better of the other two at this budget, where joint and one of them ran.
      const std::string& here = label;  // clang before 16 cannot capture a structured binding
      auto ratio_of = [&](const std::string& mode) {
        for (auto it = cells.rbegin(); it != cells.rend() && it->budget == here; ++it)
          if (it->mode == mode && it->status == "ok") return it->ratio;
        return 0.0;
      };
      const double joint = ratio_of("joint"), rec = ratio_of("recompute"),
                   off = ratio_of("offload");
      const double better = rec > 0 && off > 0 ? std::min(rec, off) : std::max(rec, off);
      if (joint > 0 && better > 0) {
        std::printf("%-9s joint over the better of recompute-only and offload-only: %.3fx (%s)\n",
                    label.c_str(), joint / better, joint <= 1.03 * better ? "ok" : "OVER 1.03");
        joint_over.push_back(joint / better);
      }
    }
  }
  if (!joint_over.empty())
    std::printf("\njoint over the better of the others: worst %.3fx over %zu budgets\n",
                *std::max_element(joint_over.begin(), joint_over.end()), joint_over.size());
  std::ofstream csv(out_dir + "/tier_sweep.csv");
  csv << "model,budget,mode,plan,budget_bytes,arena_peak_bytes,tier_peak_bytes,tier_home_bytes,"
         "copied_out_bytes,copied_in_bytes,copy_seconds,copy_hidden_seconds,step_over_unlimited,"
         "bitwise_equal,"
         "status\n";
  for (const Cell& c : cells)
    csv << c.model << ',' << c.budget << ',' << c.mode << ',' << c.plan << ',' << c.budget_bytes
        << ',' << c.peak << ',' << c.tier << ',' << c.homes << ',' << c.out << ',' << c.in << ','
        << c.copy_s << ',' << c.hidden_s << ',' << c.ratio << ','
        << (c.status == "ok" ? (c.bitwise ? "yes" : "no") : "") << ',' << c.status << '\n';
  std::ofstream(out_dir + "/tier_sweep.svg") << svg(cells, names, modes);
  std::printf("\nwrote %s/tier_sweep.csv and %s/tier_sweep.svg\n", out_dir.c_str(),
              out_dir.c_str());
  return 0;
}

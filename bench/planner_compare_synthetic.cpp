// planner_compare --synthetic: the sections that came before the corpus table.
//
// (a) optimality gap of lethe vs checkmate's proven optimum (graphs <= 150 nodes, fractions
//     0.75/0.5/0.35/0.25); (b) overhead (cost / no-remat cost) at fractions 0.5/0.33/0.2 on
//     ResNet-, Transformer- and U-Net-style graphs and on the graph files given, with the cut lower
//     bound of scheduler/bounds.h beside them; (c) cost and peak
//     of every planner x budget x graph in DIR/planner_compare_synthetic.csv and one SVG per graph
//     (overhead against budget, one line per planner); (d) lethe's solve time at 1,000 and
//     10,000 nodes. Tables go to stdout.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "scheduler/bounds.h"
#include "scheduler/budget.h"
#include "scheduler/generators.h"
#include "scheduler/graph_io.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"
#include "planner_compare.h"

using namespace lethe::sched;
using namespace planner_compare;

namespace {

// Generated graph of about `target` nodes.
Problem sized(const std::string& family, int target, uint64_t seed) {
  int n = std::max(1, target / 3);
  for (int it = 0; it < 4; ++it) {
    const int sz = generate(family, n, seed).size();
    n = std::max(1, static_cast<int>(std::lround(n * static_cast<double>(target) / sz)));
  }
  return generate(family, n, seed);
}

struct Curve {
  std::string planner;
  std::vector<std::pair<double, double>> pts;  // fraction, overhead
};

void write_svg(const std::string& path, const std::string& title,
               const std::vector<Curve>& curves) {
  const double W = 640, H = 400, L = 60, R = 150, T = 40, B = 50;
  double ymax = 1.0;
  for (const Curve& c : curves) {
    for (auto [x, y] : c.pts) ymax = std::max(ymax, y);
  }
  ymax = std::ceil(ymax * 10.0) / 10.0 + 0.05;
  const double ymin = 1.0;
  auto X = [&](double f) { return L + (f - 0.0) / 1.0 * (W - L - R); };
  auto Y = [&](double o) { return H - B - (o - ymin) / (ymax - ymin) * (H - T - B); };
  std::ofstream s(path);
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" "
       "fill=\"white\"/>\n";
  s << "<text x=\"" << W / 2 - 60 << "\" y=\"20\" font-size=\"13\">" << title << "</text>\n";
  s << "<line x1=\"" << L << "\" y1=\"" << H - B << "\" x2=\"" << W - R << "\" y2=\"" << H - B
    << "\" stroke=\"black\"/>\n";
  s << "<line x1=\"" << L << "\" y1=\"" << T << "\" x2=\"" << L << "\" y2=\"" << H - B
    << "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 10; ++i) {
    const double f = i / 10.0;
    s << "<line x1=\"" << X(f) << "\" y1=\"" << H - B << "\" x2=\"" << X(f) << "\" y2=\""
      << H - B + 5 << "\" stroke=\"black\"/><text x=\"" << X(f) - 8 << "\" y=\"" << H - B + 18
      << "\">" << fmt(f, 1) << "</text>\n";
  }
  const int yt = 5;
  for (int i = 0; i <= yt; ++i) {
    const double o = ymin + (ymax - ymin) * i / yt;
    s << "<line x1=\"" << L - 5 << "\" y1=\"" << Y(o) << "\" x2=\"" << L << "\" y2=\"" << Y(o)
      << "\" stroke=\"black\"/><text x=\"" << 8 << "\" y=\"" << Y(o) + 4 << "\">" << fmt(o, 2)
      << "</text>\n";
  }
  s << "<text x=\"" << X(0.5) - 70 << "\" y=\"" << H - 12
    << "\">budget (activation fraction)</text>\n";
  s << "<text x=\"12\" y=\"" << T - 10 << "\">overhead (cost / no-remat cost)</text>\n";
  const char* colors[] = {"#d62728", "#1f77b4", "#2ca02c", "#ff7f0e",
                          "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
  for (size_t c = 0; c < curves.size(); ++c) {
    const char* col = colors[c % 8];
    std::vector<std::pair<double, double>> pts = curves[c].pts;
    std::sort(pts.begin(), pts.end());
    if (!pts.empty()) {
      s << "<polyline fill=\"none\" stroke=\"" << col << "\" stroke-width=\""
        << (c == 0 ? 2.5 : 1.5) << "\" points=\"";
      for (auto [x, y] : pts) s << X(x) << "," << Y(y) << " ";
      s << "\"/>\n";
      for (auto [x, y] : pts)
        s << "<circle cx=\"" << X(x) << "\" cy=\"" << Y(y) << "\" r=\"2.5\" fill=\"" << col
          << "\"/>\n";
    }
    const double ly = T + 10 + 18.0 * c;
    s << "<line x1=\"" << W - R + 15 << "\" y1=\"" << ly << "\" x2=\"" << W - R + 40 << "\" y2=\""
      << ly << "\" stroke=\"" << col << "\" stroke-width=\"2\"/><text x=\"" << W - R + 45
      << "\" y=\"" << ly + 4 << "\">" << curves[c].planner << "</text>\n";
  }
  s << "</svg>\n";
}

}  // namespace

int planner_compare::run_synthetic(const std::string& out, double cm_time, bool quick,
                                   const std::vector<std::string>& files) {
  std::ofstream csv(out + "/planner_compare_synthetic.csv");
  csv << "section,graph,nodes,planner,fraction,budget_bytes,status,cost,overhead,peak_bytes,solve_"
         "s,optimal\n";
  auto csv_row = [&](const char* sec, const Problem& p, const std::string& pl, double f, int64_t b,
                     const Outcome& o) {
    csv << sec << "," << p.name << "," << p.size() << "," << pl << "," << f << "," << b << ","
        << (o.ok ? "ok" : "infeasible") << "," << (o.ok ? o.cost : 0) << ","
        << (o.ok ? o.cost / no_remat_cost(p) : 0) << "," << o.peak << "," << o.seconds << ","
        << (o.optimal ? 1 : 0) << "\n";
  };

  // ------------------------------------------------------------ (a) gap vs checkmate
  const bool have_cm = static_cast<bool>(find_planner("checkmate").fn);
  std::printf("\n(a) optimality gap: lethe vs checkmate (proven optima only, time limit %.0f s)\n",
              cm_time);
  if (!have_cm) {
    std::printf("    checkmate not built (%s): skipped\n",
                find_planner("checkmate").unavailable_reason.c_str());
  } else {
    PlannerOptions cmo;
    cmo.time_limit_s = cm_time;
    std::printf("%-26s %5s %6s %12s %12s %8s %9s\n", "graph", "nodes", "frac", "lethe", "checkmate",
                "gap%", "cm_s");
    std::printf(
        "(frac -t: budget at t of the way from lethe's smallest feasible budget to the no-remat "
        "peak)\n");
    double worst = 0, sum = 0;
    int count = 0, unproven = 0, missed = 0;  // missed: checkmate proved a plan, lethe found none
    std::vector<Problem> gs;
    const std::vector<int> sizes = quick ? std::vector<int>{40} : std::vector<int>{40, 90, 140};
    for (const std::string& fam : generator_families()) {
      for (int target : sizes) {
        Problem p = sized(fam, target, 11);
        if (p.size() <= 150) gs.push_back(std::move(p));
      }
    }
    for (const Problem& p : gs) {
      // The spec's fractions, then (negative "frac" = -t) budgets at t of the way from lethe's
      // smallest feasible budget to the no-remat peak: on small graphs the fractions are often
      // below what any plan can fit.
      const int64_t lo = smallest_feasible_budget(p, "lethe"), hi = no_remat_peak(p);
      for (double f : {0.75, 0.5, 0.35, 0.25, -0.4, -0.1}) {
        const int64_t b = f > 0 ? fraction_budget(f, p)
                                : lo + static_cast<int64_t>(-f * static_cast<double>(hi - lo));
        if (f < 0 && lo < 0) continue;
        const Outcome l = run(p, b, "lethe", {});
        const Outcome c = run(p, b, "checkmate", cmo);
        csv_row("gap", p, "lethe", f, b, l);
        csv_row("gap", p, "checkmate", f, b, c);
        if (!c.ok && !l.ok) {
          std::printf("%-26s %5d %6.2f %12s %12s %8s %9.2f\n", p.name.c_str(), p.size(), f,
                      "infeasible", "-", "", c.seconds);
          continue;
        }
        if (!c.ok || !c.optimal) {
          ++unproven;
          std::printf("%-26s %5d %6.2f %12s %12s %8s %9.2f\n", p.name.c_str(), p.size(), f,
                      l.ok ? fmt(l.cost, 4).c_str() : "-",
                      c.ok ? (fmt(c.cost, 4) + "*").c_str() : "-", "n/a", c.seconds);
          continue;
        }
        if (!l.ok) {
          ++missed;
          std::printf("%-26s %5d %6.2f %12s %12s %8s %9.2f\n", p.name.c_str(), p.size(), f,
                      "no plan", fmt(c.cost, 4).c_str(), "missed", c.seconds);
          continue;
        }
        const double gap = 100.0 * (l.cost / c.cost - 1.0);
        worst = std::max(worst, gap);
        sum += gap;
        ++count;
        std::printf("%-26s %5d %6.2f %12s %12s %8.2f %9.2f\n", p.name.c_str(), p.size(), f,
                    l.ok ? fmt(l.cost, 4).c_str() : "-", fmt(c.cost, 4).c_str(), gap, c.seconds);
      }
    }
    std::printf(
        "gap over %d proven optima: mean %.2f%%, worst %.2f%% (target <= 3%%); %d not proven in "
        "time (*); "
        "%d budgets where lethe found no plan but checkmate did\n",
        count, count ? sum / count : 0.0, worst, unproven, missed);
  }

  // ------------------------------------------------------------ (b) overheads
  std::vector<Problem> graphs;
  const int big = quick ? 200 : 500;
  graphs.push_back(resnet_graph(quick ? 2 : 3, 4, 1));
  graphs.push_back(sized("transformer", big, 1));
  graphs.push_back(sized("unet", big, 1));
  for (const std::string& f : files) graphs.push_back(read_problem_file(f));
  std::printf(
      "\n(b) overhead (cost / no-remat cost): lethe, (the best other planner) and >= the cut "
      "lower\n"
      "    bound of scheduler/bounds.h, which no plan can beat ('none fits': no plan fits at "
      "all)\n");
  std::printf("%-28s %6s | %-25s %-25s %-25s\n", "graph", "nodes", "f=0.5", "f=0.33", "f=0.2");
  for (const Problem& p : graphs) {
    std::printf("%-28s %6d |", p.name.c_str(), p.size());
    for (double f : {0.5, 0.33, 0.2}) {
      const int64_t b = fraction_budget(f, p);
      const Outcome l = run(p, b, "lethe", {});
      double other = 1e30;
      for (const PlannerEntry& e : planners()) {
        if (!e.fn || e.name == "lethe" || (e.name == "checkmate")) continue;
        const Outcome o = run(p, b, e.name, {});
        if (o.ok) other = std::min(other, o.cost);
      }
      const double nr = no_remat_cost(p);
      std::string lb = "-";
      if (p.size() <= 3000) {
        const CostBound cb = cut_lower_bound(p, b);
        lb = cb.infeasible ? "none fits" : ">=" + fmt(cb.cost / nr);
        csv << "bound," << p.name << "," << p.size() << ",cut-lower-bound," << f << "," << b << ","
            << (cb.infeasible ? "infeasible" : "ok") << "," << cb.cost << "," << cb.cost / nr
            << ",0,0,0\n";
      }
      std::printf(" %-7s (%-6s) %-9s", l.ok ? fmt(l.cost / nr).c_str() : "inf",
                  other < 1e29 ? fmt(other / nr).c_str() : "inf", lb.c_str());
    }
    std::printf("\n");
  }
  std::printf(
      "targets: <= 1.08 at 0.5, <= 1.15 at 0.33, <= 1.30 at 0.2 (best other planner in "
      "parentheses)\n");

  // ------------------------------------------------------------ (c) table + plots
  std::printf(
      "\n(c) every planner x budget x graph (CSV: %s/planner_compare_synthetic.csv, plots: "
      "%s/*.svg)\n",
      out.c_str(), out.c_str());
  const std::vector<double> fracs{1.0, 0.75, 0.5, 0.35, 0.25, 0.2, 0.15, 0.1};
  for (const Problem& p : graphs) {
    std::printf("%s (%d nodes)\n%-10s", p.name.c_str(), p.size(), "planner");
    for (double f : fracs) std::printf(" %13s", ("f=" + fmt(f, 2)).c_str());
    std::printf("\n");
    std::vector<Curve> curves;
    for (const PlannerEntry& e : planners()) {
      if (!e.fn || (e.name == "checkmate" && p.size() > 150)) continue;
      Curve c{e.name, {}};
      std::printf("%-10s", e.name.c_str());
      for (double f : fracs) {
        const int64_t b = fraction_budget(f, p);
        PlannerOptions o;
        o.time_limit_s = cm_time;
        const Outcome r = run(p, b, e.name, o);
        csv_row("table", p, e.name, f, b, r);
        if (r.ok) {
          const double ov = r.cost / no_remat_cost(p);
          c.pts.push_back({f, ov});
          std::printf(" %6s/%6.2fM", fmt(ov).c_str(), r.peak / 1048576.0);
        } else {
          std::printf(" %13s", "-");
        }
      }
      std::printf("\n");
      curves.push_back(std::move(c));
    }
    std::string fname = p.name;
    for (char& ch : fname) {
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') ch = '_';
    }
    write_svg(out + "/" + fname + ".svg", p.name + ": overhead vs budget", curves);
  }
  std::printf("cells: overhead/peak MiB\n");

  // ------------------------------------------------------------ (d) solve times
  std::printf("\n(d) lethe solve time (s)\n%-28s %6s %10s %10s\n", "graph", "nodes", "f=0.5",
              "f=0.25");
  for (int target : {1000, 10000}) {
    for (const std::string& fam : {"chain", "transformer", "unet", "layered"}) {
      const Problem p = sized(fam, target, 3);
      const Outcome a = run(p, fraction_budget(0.5, p), "lethe", {});
      const Outcome b = run(p, fraction_budget(0.25, p), "lethe", {});
      csv_row("time", p, "lethe", 0.5, fraction_budget(0.5, p), a);
      csv_row("time", p, "lethe", 0.25, fraction_budget(0.25, p), b);
      std::printf("%-28s %6d %10.3f %10.3f\n", p.name.c_str(), p.size(), a.seconds, b.seconds);
    }
  }
  std::printf("targets: <= 0.1 s at 1,000 nodes, <= 2 s at 10,000 nodes\n");
  return 0;
}

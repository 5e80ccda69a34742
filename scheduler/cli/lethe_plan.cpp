// lethe-plan: plan a graph file under a budget, compare planners, or generate graphs.
//
//   lethe-plan g.graph.json --budget 0.25 --planner treewidth -o g.plan.json
//   lethe-plan g.graph.json --sweep
//   lethe-plan --generate transformer --n 200 --seed 3 -o t.graph.json
//   lethe-plan --check g.graph.json g.plan.json [--budget 2GiB]
//   lethe-plan g.graph.json --budget 0.5 --streams 2 -o g.plan.json   (a plan on two streams)
//   lethe-plan g.graph.json --budget 0.2 --host-budget 4GiB --bandwidth 12GB/s -o g.plan.json
//       (copies to a second tier: recompute-only, offload-only and joint, the fastest written)
//
// Every failure is one line on stderr and exit code 2. --check exits 0 when the plan is valid in
// every order its streams allow and its worst-case peak is within the budget, 1 when not (the
// first broken rule, or the steps that can hold memory together), 2 when a file cannot be read.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "scheduler/budget.h"
#include "scheduler/generators.h"
#include "scheduler/graph_io.h"
#include "scheduler/planner.h"
#include "scheduler/simulator.h"
#include "scheduler/layout.h"
#include "scheduler/offload.h"
#include "scheduler/stream_assign.h"
#include "scheduler/streams.h"

namespace {

using namespace lethe::sched;

constexpr int kCheckmateSweepMaxNodes = 150;

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// What --time-limit gives checkmate when it is not set: a plan asked for by name may take its
// time; a sweep runs checkmate at seven budgets, so each gets less.
constexpr double kPlanTimeLimit = 30.0;
constexpr double kSweepTimeLimit = 10.0;

int run_plan(const Problem& p, const std::string& budget_text, const std::string& planner,
             const std::string& out, bool as_json, const PlannerOptions& opts, int streams) {
  const int64_t budget = parse_budget(budget_text, p);
  PlanResult r = plan(p, budget, planner, opts);
  const double serial_time = makespan(p, r.plan);
  if (streams > 1) {
    // On streams: the serial plan's waits, and the frees in plan order ahead of the computes after
    // them, so that no order holds more than the serial plan (the budget holds in every order).
    StreamAssignOptions o;
    o.streams = streams;
    o.keep_serial_peak = true;
    Plan streamed = assign_streams(p, r.plan, o);
    streamed.predicted_peak_bytes = worst_case_memory(p, streamed).peak_bytes;
    streamed.predicted_cost = r.plan.predicted_cost;
    r.plan = std::move(streamed);
  }
  const double time = makespan(p, r.plan);
  if (!out.empty()) write_plan_file(r.plan, out);
  const double base = no_remat_cost(p);
  const double overhead = base > 0 ? r.plan.predicted_cost / base : 1.0;
  if (as_json) {
    nlohmann::json j = {{"graph", p.name},
                        {"nodes", p.size()},
                        {"resident_bytes", resident_bytes(p)},
                        {"floor_bytes", floor_bytes(p)},
                        {"no_remat_peak_bytes", no_remat_peak(p)},
                        {"no_remat_cost", base},
                        {"budget_bytes", budget},
                        {"planner", r.plan.planner},
                        {"peak_bytes", r.plan.predicted_peak_bytes},
                        {"cost", r.plan.predicted_cost},
                        {"overhead", overhead},
                        {"steps", r.plan.steps.size()},
                        {"solve_seconds", r.solve_seconds},
                        {"streams", std::max(streams, 1)},
                        {"makespan", time},
                        {"serial_makespan", serial_time},
                        {"note", r.info.note}};
    if (r.info.treewidth >= 0) j["treewidth"] = r.info.treewidth;
    if (!out.empty()) j["plan_file"] = out;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "graph          " << p.name << " (" << p.size() << " nodes)\n"
            << "resident       " << format_bytes(resident_bytes(p)) << "\n"
            << "floor          " << format_bytes(floor_bytes(p)) << "\n"
            << "no-remat peak  " << format_bytes(no_remat_peak(p)) << "\n"
            << "budget         " << format_bytes(budget) << " (" << budget << " bytes)\n"
            << "planner        " << r.plan.planner << "\n"
            << "plan peak      " << format_bytes(r.plan.predicted_peak_bytes) << " ("
            << r.plan.predicted_peak_bytes << " bytes)\n"
            << "cost           " << r.plan.predicted_cost << " (no-remat " << base << ")\n"
            << "overhead       " << fmt("%.3fx", overhead) << "\n"
            << "steps          " << r.plan.steps.size() << "\n"
            << "solve time     " << fmt("%.3f s", r.solve_seconds) << "\n";
  if (streams > 1)
    std::cout << "streams        " << streams << ": predicted time " << time << " (serial "
              << serial_time << ", " << fmt("%.2fx", time > 0 ? serial_time / time : 1.0)
              << "), worst-case peak over every order " << format_bytes(r.plan.predicted_peak_bytes)
              << "\n";
  if (r.info.treewidth >= 0) std::cout << "treewidth      " << r.info.treewidth << "\n";
  if (!r.info.note.empty()) std::cout << "note           " << r.info.note << "\n";
  if (!out.empty()) std::cout << "plan written   " << out << "\n";
  return 0;
}

bool limit_hit(const PlannerInfo& info) {
  return info.note.find("time limit hit") != std::string::npos ||
         info.note.find("node limit hit") != std::string::npos;
}

// Rows are printed (and flushed) cell by cell as each plan finishes: a sweep of checkmate on a
// large graph takes minutes, and a silent terminal looks like a hang.
void sweep_offload(const Problem& p, const std::vector<std::string>& labels,
                   const std::vector<int64_t>& budgets, int64_t host, const PlannerOptions& opts);

int run_sweep(const Problem& p, const PlannerOptions& opts, const std::string& host_text) {
  const std::vector<std::string> labels = {"1", "0.75", "0.5", "0.35", "0.25", "0.15", "smallest"};
  std::vector<int64_t> budgets;
  for (size_t i = 0; i + 1 < labels.size(); ++i) budgets.push_back(parse_budget(labels[i], p));
  budgets.push_back(smallest_feasible_budget(p, "auto"));
  const double base = no_remat_cost(p);
  std::cout << p.name << ": " << p.size() << " nodes, floor " << format_bytes(floor_bytes(p))
            << ", no-remat peak " << format_bytes(no_remat_peak(p)) << ", no-remat cost " << base
            << "\n"
            << "overhead (cost / no-remat cost) per planner and budget:\n";
  std::printf("%-11s", "planner");
  for (size_t i = 0; i < labels.size(); ++i) std::printf(" %14s", labels[i].c_str());
  std::printf("\n%-11s", "");
  for (int64_t b : budgets) std::printf(" %14s", format_bytes(b).c_str());
  std::printf("\n");
  std::fflush(stdout);
  bool any_incumbent = false, any_time_limit = false;
  for (const PlannerEntry& e : planners()) {
    std::printf("%-11s", e.name.c_str());
    std::fflush(stdout);
    for (int64_t b : budgets) {
      std::string cell;
      if (!e.fn) {
        cell = "n/a";
      } else if (e.name == "checkmate" && p.size() > kCheckmateSweepMaxNodes) {
        cell = "skipped";
      } else {
        PlannerInfo info;
        const std::optional<PlanResult> r = try_plan(p, b, e.name, opts, &info);
        if (r) {
          cell = fmt("%.3fx", base > 0 ? r->plan.predicted_cost / base : 1.0);
          if (limit_hit(info)) {
            cell += "*";
            any_incumbent = true;
          }
        } else if (limit_hit(info)) {
          cell = "time limit";
          any_time_limit = true;
        } else {
          cell = "infeasible";
        }
      }
      std::printf(" %14s", cell.c_str());
      std::fflush(stdout);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  std::printf(
      "smallest: the smallest budget any planner but checkmate fits (a search between the floor "
      "and the "
      "no-remat peak)\n");
  if (any_incumbent)
    std::printf(
        "*: checkmate's limit (--time-limit %g s) ended the search; the best plan found so far, "
        "not proven "
        "optimal\n",
        opts.time_limit_s);
  if (any_time_limit)
    std::printf(
        "time limit: checkmate found no plan within --time-limit %g s; the budget may still be "
        "feasible\n",
        opts.time_limit_s);
  if (!host_text.empty()) sweep_offload(p, labels, budgets, parse_budget(host_text, p), opts);
  return 0;
}

std::string time_str(const std::optional<OffloadPlan>& o) {
  return o ? fmt("%.6g", o->makespan) : std::string("infeasible");
}

// Plans with copies to a second tier: recompute-only, offload-only and joint (plan_joint); the
// joint plan (the fastest) is written.
int run_offload(const Problem& p, const std::string& budget_text, const std::string& host_text,
                const std::string& planner, const std::string& out, bool as_json,
                const PlannerOptions& opts) {
  const int64_t budget = parse_budget(budget_text, p);
  const int64_t host = parse_budget(host_text, p);
  const std::string name = planner == "auto" ? "lethe" : planner;
  const JointPlans j = plan_joint(p, budget, host, p.bandwidth, name, 4, opts);
  if (!out.empty()) write_plan_file(j.joint->plan, out);
  auto row = [&](const char* mode, const std::optional<OffloadPlan>& o) {
    if (!o) return nlohmann::json{{"mode", mode}, {"feasible", false}};
    return nlohmann::json{{"mode", mode},
                          {"feasible", true},
                          {"makespan", o->makespan},
                          {"peak_bytes", o->device_peak_bytes},
                          {"tier_peak_bytes", o->tier_peak_bytes},
                          {"copies", o->copies},
                          {"remat_budget_bytes", o->remat_budget_bytes}};
  };
  if (as_json) {
    nlohmann::json jo = {{"graph", p.name},
                         {"nodes", p.size()},
                         {"budget_bytes", budget},
                         {"host_budget_bytes", host},
                         {"bandwidth_out", p.bandwidth.out},
                         {"bandwidth_in", p.bandwidth.in},
                         {"planner", name},
                         {"no_remat_cost", no_remat_cost(p)},
                         {"plans",
                          {row("recompute-only", j.recompute_only),
                           row("offload-only", j.offload_only), row("joint", j.joint)}}};
    if (!out.empty()) jo["plan_file"] = out;
    std::cout << jo.dump(2) << "\n";
    return 0;
  }
  std::cout << "graph          " << p.name << " (" << p.size() << " nodes)\n"
            << "budget         " << format_bytes(budget) << " (" << budget << " bytes)\n"
            << "host budget    " << format_bytes(host) << " (" << host << " bytes)\n"
            << "bandwidth      out " << fmt("%.4g", p.bandwidth.out) << " B/s, in "
            << fmt("%.4g", p.bandwidth.in) << " B/s\n"
            << "no-remat cost  " << no_remat_cost(p) << "\n";
  std::printf("%-15s %12s %14s %14s %7s %14s\n", "plan", "makespan", "device peak", "tier peak",
              "copies", "remat budget");
  auto line = [&](const char* mode, const std::optional<OffloadPlan>& o) {
    if (!o) {
      std::printf("%-15s %12s\n", mode, "infeasible");
      return;
    }
    std::printf("%-15s %12.6g %14s %14s %7lld %14s\n", mode, o->makespan,
                format_bytes(o->device_peak_bytes).c_str(),
                format_bytes(o->tier_peak_bytes).c_str(), static_cast<long long>(o->copies),
                format_bytes(o->remat_budget_bytes).c_str());
  };
  line("recompute-only", j.recompute_only);
  line("offload-only", j.offload_only);
  line("joint", j.joint);
  std::fflush(stdout);
  if (!out.empty()) std::cout << "plan written   " << out << " (joint)\n";
  return 0;
}

// --sweep with --host-budget: predicted makespans of the three ways at the sweep's budgets.
void sweep_offload(const Problem& p, const std::vector<std::string>& labels,
                   const std::vector<int64_t>& budgets, int64_t host, const PlannerOptions& opts) {
  std::printf(
      "\nwith a second tier of %s (bandwidth out %.4g B/s, in %.4g B/s), planner lethe: predicted "
      "makespan per budget\n",
      format_bytes(host).c_str(), p.bandwidth.out, p.bandwidth.in);
  std::printf("%-15s", "plan");
  for (const std::string& l : labels) std::printf(" %14s", l.c_str());
  std::printf("\n");
  std::vector<JointPlans> all;
  for (int64_t b : budgets) {
    try {
      all.push_back(plan_joint(p, b, host, p.bandwidth, "lethe", 4, opts));
    } catch (const Infeasible&) {
      all.emplace_back();
    }
  }
  const char* names[] = {"recompute-only", "offload-only", "joint"};
  for (int k = 0; k < 3; ++k) {
    std::printf("%-15s", names[k]);
    for (const JointPlans& j : all) {
      const std::optional<OffloadPlan>& o = k == 0   ? j.recompute_only
                                            : k == 1 ? j.offload_only
                                                     : j.joint;
      std::printf(" %14s", time_str(o).c_str());
    }
    std::printf("\n");
  }
  std::fflush(stdout);
}

int run_check(const Problem& p, const std::string& plan_file, const std::string& budget_text,
              const std::string& host_text) {
  // Waits are checked by simulate() below, so that a wait on a later step is a refusal naming the
  // step (exit 1) rather than an unreadable file.
  Plan pl = read_plan_file(plan_file, /*check_waits=*/false);
  if (!budget_text.empty()) pl.budget_bytes = parse_budget(budget_text, p);
  if (!host_text.empty()) pl.host_budget_bytes = parse_budget(host_text, p);
  const SimResult r = simulate(p, pl);
  // simulate() stops at the first broken rule of a serial plan; the summary covers the whole plan
  // whenever its steps are well-formed.
  int64_t peak = r.peak_bytes;
  double cost = r.cost, time = r.makespan;
  std::optional<WorstCase> wc;
  try {
    wc = worst_case_memory(p, pl);
    peak = wc->peak_bytes;
    time = r.makespan;
    if (!has_copies(pl)) time = makespan(p, pl);
    cost = 0.0;
    for (const Step& s : pl.steps)
      cost += s.kind == Step::Kind::compute ? p.nodes[static_cast<size_t>(s.node)].cost : 0.0;
  } catch (const Error&) {
    // A step names no node, or the waits are malformed: the message below names the step.
  }
  std::cout << "graph          " << p.name << " (" << p.size() << " nodes)\n"
            << "plan           " << plan_file << " (" << pl.steps.size() << " steps, planner "
            << (pl.planner.empty() ? "?" : pl.planner) << ")\n"
            << "streams        " << r.streams << "\n";
  if (r.valid) {
    std::cout << "valid          yes, in every order the streams allow\n";
  } else {
    std::cout << "valid          no: " << r.message;
    if (r.first_bad_step >= 0 && r.first_bad_step < static_cast<int64_t>(pl.steps.size())) {
      const NodeId v = pl.steps[static_cast<size_t>(r.first_bad_step)].node;
      if (v >= 0 && v < p.size() && !p.nodes[static_cast<size_t>(v)].name.empty()) {
        std::cout << " [node " << v << " is '" << p.nodes[static_cast<size_t>(v)].name << "']";
      }
    }
    std::cout << "\n";
  }
  const bool any_compute = std::any_of(pl.steps.begin(), pl.steps.end(),
                                       [](const Step& s) { return s.kind == Step::Kind::compute; });
  const bool over = peak > pl.budget_bytes && any_compute;
  std::cout << "peak           " << peak << " bytes (" << format_bytes(peak) << ")"
            << (has_streams(pl) ? ", the largest over every order the streams allow" : "") << "\n"
            << "budget         " << pl.budget_bytes << " bytes (" << format_bytes(pl.budget_bytes)
            << "), " << (over ? "exceeded" : "within") << "\n";
  if (over && wc) {
    std::cout << "in flight      " << wc->live.size()
              << " values can be in memory together, beside " << format_bytes(resident_bytes(p))
              << " resident:";
    for (size_t k = 0; k < wc->live.size(); ++k) {
      const int64_t j = wc->live[k];
      const NodeId v = pl.steps[static_cast<size_t>(j)].node;
      std::cout << (k ? ", " : " ") << "step " << j << " (node " << v << ", "
                << p.nodes[static_cast<size_t>(v)].bytes << " B)";
    }
    std::cout << "\n";
  }
  if (has_copies(pl)) {
    std::cout << "tier peak      " << r.tier_peak_bytes << " bytes ("
              << format_bytes(r.tier_peak_bytes) << "), the largest over every order\n"
              << "host budget    ";
    if (pl.host_budget_bytes < 0)
      std::cout << "none (the plan has no \"host_budget_bytes\"; give --host-budget)\n";
    else
      std::cout << pl.host_budget_bytes << " bytes (" << format_bytes(pl.host_budget_bytes) << "), "
                << (r.tier_peak_bytes > pl.host_budget_bytes ? "exceeded" : "within") << "\n";
  }
  std::cout << "cost           " << cost << "\n";
  if (time < 0)
    std::cout << "makespan       unknown: the copies need --bandwidth OUT[,IN] (or the graph's "
                 "\"bandwidth\")\n";
  else
    std::cout << "makespan       " << time << "\n";
  return r.valid ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lethe-plan: plan a training graph (remat-graph/1) under a memory budget"};
  std::string graph, budget, planner = "auto", out, family, plan_file, host_budget, bandwidth;
  bool as_json = false, sweep = false, check = false;
  int n = 0, width = 4;
  std::string streams_text = "1";
  double time_limit = 0.0;
  uint64_t seed = 0;
  app.add_option("graph", graph, "graph file (remat-graph/1)");
  app.add_option("plan", plan_file,
                 "with --check: the plan file (remat-plan/1, with or without streams)");
  app.add_flag(
      "--check", check,
      "check PLAN against GRAPH in every order its streams allow, under --budget (default: the "
      "plan's budget_bytes); exit 0 valid, 1 invalid or over the budget, 2 unreadable");
  app.add_option("-b,--budget", budget,
                 "bytes (512MiB, 2GiB, 1.5GB) or activation fraction in (0, 1]");
  app.add_option("-p,--planner", planner, "planner name or 'auto' (default)");
  app.add_option("-o,--output", out, "write the plan (or the generated graph) here");
  app.add_flag("--json", as_json, "print the summary as JSON");
  app.add_option(
      "--streams", streams_text,
      "plan on N streams (default 1: serial): the plan's steps assigned to streams by their costs, "
      "with the waits that keep it and its layout valid in every order");
  app.add_flag(
      "--sweep", sweep,
      "table of overheads (plan cost / no-remat cost): every planner at the activation fractions "
      "1, 0.75, 0.5, 0.35, 0.25, 0.15 and at 'smallest', the smallest budget any planner but "
      "checkmate "
      "fits (found by a search between the floor and the no-remat peak; checkmate may not fit it). "
      "Rows print as each plan finishes; 'infeasible': no plan fits; 'time limit': checkmate found "
      "none "
      "in --time-limit; '*': checkmate's best plan when its limit ended the search");
  app.add_option(
         "--time-limit", time_limit,
         "seconds checkmate's MILP may run per plan (default 30, or 10 per budget in --sweep)")
      ->check(CLI::PositiveNumber);
  app.add_option("--host-budget", host_budget,
                 "bytes of the second memory tier (host memory, a file) a plan may copy values to "
                 "(budget syntax): plan with copies (recompute-only, offload-only and joint; the "
                 "fastest is written), check a plan's copies, or add their makespans to --sweep");
  app.add_option("--bandwidth", bandwidth,
                 "OUT[,IN]: bytes/s of the copies to the tier and back (12e9, 2GB/s, 512MiB/s; IN "
                 "defaults to OUT); needed with --host-budget unless the graph gives "
                 "\"bandwidth\"");
  app.add_option("--generate", family, "write a generated training graph of this family");
  app.add_option("--n", n, "generator: number of forward operations (1 to 1000000)");
  app.add_option("--seed", seed, "generator: seed");
  app.add_option("--width", width, "generator: width (grid, layered, densenet)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "lethe-plan: error: " << e.what() << " (see --help)\n";
    return 2;
  }
  try {
    if (!family.empty()) {
      if (n < 1) throw Error("--generate needs --n N with N >= 1");
      if (out.empty()) throw Error("--generate needs -o FILE");
      const Problem p = generate(family, n, seed, width);
      write_problem_file(p, out);
      std::cout << "wrote " << out << ": " << p.size() << " nodes, floor "
                << format_bytes(floor_bytes(p)) << ", no-remat peak "
                << format_bytes(no_remat_peak(p)) << "\n";
      return 0;
    }
    if (graph.empty())
      throw Error("no graph file given (lethe-plan GRAPH.json --budget B, or --generate)");
    if (check && plan_file.empty())
      throw Error("--check needs a graph and a plan: lethe-plan --check GRAPH PLAN");
    if (!check && !plan_file.empty()) {
      throw Error("a second file (" + plan_file +
                  ") is read only with --check: lethe-plan --check GRAPH PLAN");
    }
    Problem p = read_problem_file(graph);
    if (!bandwidth.empty()) p.bandwidth = parse_bandwidth(bandwidth);
    if (check) return run_check(p, plan_file, budget, host_budget);
    if (!host_budget.empty() && !p.bandwidth.known()) {
      throw Error(
          "--host-budget needs --bandwidth OUT[,IN] (bytes/s, e.g. 12GB/s) to time the copies, or "
          "a graph with \"bandwidth\"");
    }
    PlannerOptions opts;
    opts.time_limit_s = time_limit > 0 ? time_limit : sweep ? kSweepTimeLimit : kPlanTimeLimit;
    if (sweep) return run_sweep(p, opts, host_budget);
    if (budget.empty())
      throw Error("--budget is required (bytes like 512MiB, or a fraction like 0.25)");
    const bool digits = !streams_text.empty() && streams_text.size() <= 4 &&
                        streams_text.find_first_not_of("0123456789") == std::string::npos;
    const int streams = digits ? std::stoi(streams_text) : 0;
    if (streams < 1)
      throw Error("--streams: expected a positive number of streams, got '" + streams_text + "'");
    if (!host_budget.empty()) {
      if (streams > 1)
        throw Error("--streams with --host-budget: a plan with copies has its own streams");
      return run_offload(p, budget, host_budget, planner, out, as_json, opts);
    }
    return run_plan(p, budget, planner, out, as_json, opts, streams);
  } catch (const std::exception& e) {
    std::cerr << "lethe-plan: error: " << e.what() << "\n";
    return 2;
  }
}

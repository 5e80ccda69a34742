#include "framework/executor.h"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdint>

#include "framework/error.h"
#include "framework/trace.h"

namespace lethe {

std::vector<ExecStep> natural_steps(const Graph& g, const std::vector<int>& targets, bool side_effects) {
  const size_t n = g.nodes.size();
  std::vector<char> needed(n, 0), keep(n, 0);
  for (int t : targets) needed[static_cast<size_t>(t)] = keep[static_cast<size_t>(t)] = 1;
  for (size_t i = 0; i < n; ++i)
    if (side_effects && g.nodes[i].op && !g.nodes[i].op->mutated_inputs().empty()) needed[i] = 1;
  for (size_t i = n; i-- > 0;)
    if (needed[i])
      for (int in : g.nodes[i].inputs) needed[static_cast<size_t>(in)] = 1;
  std::vector<int> last_use(n, -1);
  for (size_t i = 0; i < n; ++i)
    if (needed[i])
      for (int in : g.nodes[i].inputs) last_use[static_cast<size_t>(in)] = static_cast<int>(i);
  std::vector<ExecStep> steps;
  for (size_t i = 0; i < n; ++i) {
    if (!needed[i] || g.nodes[i].is_leaf()) continue;
    steps.push_back({true, static_cast<int>(i)});
    // Free inputs whose last use this was (once, even when an input appears twice).
    for (size_t k = 0; k < g.nodes[i].inputs.size(); ++k) {
      int in = g.nodes[i].inputs[k];
      bool dup = false;
      for (size_t j = 0; j < k; ++j) dup = dup || g.nodes[i].inputs[j] == in;
      if (!dup && last_use[static_cast<size_t>(in)] == static_cast<int>(i) && !keep[static_cast<size_t>(in)] &&
          !g.nodes[static_cast<size_t>(in)].is_leaf())
        steps.push_back({false, in});
    }
    if (last_use[i] < 0 && !keep[i]) steps.push_back({false, static_cast<int>(i)});
  }
  return steps;
}

namespace {

// The index of the first NaN or infinity in a floating-point value, or -1.
int64_t first_non_finite(const Storage& st, const TensorMeta& meta, double* value) {
  if (!is_floating(meta.dtype) || meta.numel() == 0) return -1;
  return dispatch_float(meta.dtype, "detect_anomaly", [&](auto tag) -> int64_t {
    using T = decltype(tag);
    std::vector<T> host(static_cast<size_t>(meta.numel()));
    copy_to_host(st, host.data(), meta.bytes());
    for (size_t i = 0; i < host.size(); ++i)
      if (!std::isfinite(host[i])) {
        *value = static_cast<double>(host[i]);
        return static_cast<int64_t>(i);
      }
    return -1;
  });
}

// Anomaly detection: the op that just wrote `out` produced a NaN or an infinity.
void check_finite(const Graph& g, int id, const Storage& out, const KernelCall& call) {
  const Node& n = g.nodes[static_cast<size_t>(id)];
  double bad = 0;
  const int64_t at = first_non_finite(out, n.meta, &bad);
  if (at < 0) return;
  std::string origin = "from inputs that were all finite: this op is where it started";
  for (size_t k = 0; k < n.inputs.size(); ++k) {
    const Node& in = g.nodes[static_cast<size_t>(n.inputs[k])];
    Storage view;  // the input's bytes as a storage of the call's pointer (read only)
    view.data = call.inputs[k];
    view.bytes = in.meta.bytes();
    view.device = in.meta.device;
    view.context = out.context;
    double v = 0;
    if (first_non_finite(view, in.meta, &v) >= 0) {
      origin = detail::concat("input ", k, " (node ", n.inputs[k], ", ",
                              in.is_leaf() ? std::string("a leaf: a parameter or data the step was given")
                                           : in.op->name(),
                              ") already held ", v, ": the non-finite value came in with it");
      break;
    }
  }
  throw Error(detail::concat("anomaly detection: ", n.op->name(), " (node ", id, " of step ", g.step, ") produced ",
                             bad, " at element ", at, " of its output ", n.meta.str(), ", ", origin));
}

}  // namespace

void compute_node(const KernelEnv& env, Graph& g, int id, std::vector<std::shared_ptr<Storage>>& values,
                  const BufferFn& buffers) {
  Node& n = g.nodes[static_cast<size_t>(id)];
  LETHE_ASSERT(n.op != nullptr);
  std::vector<TensorMeta> in_metas;
  KernelCall call;
  call.inputs.reserve(n.inputs.size());
  call.in_meta.reserve(n.inputs.size());
  for (int in : n.inputs) {
    auto& v = values[static_cast<size_t>(in)];
    if (!v && g.nodes[static_cast<size_t>(in)].is_leaf()) v = g.nodes[static_cast<size_t>(in)].leaf;
    LETHE_CHECK(v != nullptr, "internal error: ", n.op->name(), " (node ", id, ") reads node ", in,
                " which is not in memory");
    call.inputs.push_back(v->data);
    call.in_meta.push_back(&g.nodes[static_cast<size_t>(in)].meta);
    in_metas.push_back(g.nodes[static_cast<size_t>(in)].meta);
  }
  auto out = buffers(n.meta.bytes(), false);
  call.output = out->data;
  call.out_meta = &n.meta;
  std::shared_ptr<Storage> ws;
  size_t wsb = n.op->workspace_bytes(in_metas, n.meta);
  if (wsb) {
    ws = buffers(wsb, true);
    call.workspace = ws->data;
    call.workspace_bytes = wsb;
  }
  call.seed = env.seed;
  call.step = g.step;
  call.node = id;
  call.stream = env.backend;  // the session's CUDA context (null on CPU)
  run_kernel(*n.op, call, n.meta.device);
  if (env.detect_anomaly) check_finite(g, id, *out, call);
  values[static_cast<size_t>(id)] = std::move(out);
}

ExecStats run_steps(Graph& g, const StepRun& run, std::vector<std::shared_ptr<Storage>>& values) {
  LETHE_ASSERT(run.steps != nullptr && run.memory != nullptr && run.timer != nullptr);
  ExecStats st;
  values.resize(g.nodes.size());
  st.first_seconds.assign(g.nodes.size(), -1.0);
  std::vector<char> done(g.nodes.size(), 0);
  Tracer* tr = run.tracer;
  StepMemory& mem = *run.memory;
  // Op times come from the timer (CUDA: events in stream order), read once the device has finished
  // the step; so do the trace's slices, placed from the host time the step began.
  StepTimer& timer = *run.timer;
  timer.reset();
  struct Timed {
    int node, begin, end;
    Tracer::Kind kind;
    int64_t measured, predicted;  // traced memory right after the op
  };
  std::vector<Timed> timed;
  std::vector<std::pair<int, int>> first(g.nodes.size(), {-1, -1});  // a node's first compute's marks
  auto compute = [&](size_t step, int node, bool update, const BufferFn& buffers) {
    const size_t id = static_cast<size_t>(node);
    const bool again = done[id] != 0;
    if (tr && values[id]) mem.freed(node);  // a recomputation over a value still held (not in valid plans)
    const int m0 = timer.mark();
    compute_node(run.env, g, node, values, buffers);
    const int m1 = timer.mark();
    if (!again) first[id] = {m0, m1};
    if (tr) {
      const auto [measured, predicted] = mem.computed(step, node, update);
      const Tracer::Kind kind = update ? Tracer::Kind::update : again ? Tracer::Kind::recompute : Tracer::Kind::compute;
      timed.push_back({node, m0, m1, kind, measured, predicted});
    }
    ++st.computed;
    if (again) ++st.recomputed;
    done[id] = 1;
  };
  auto t0 = std::chrono::steady_clock::now();
  const double start_us = tr ? tr->now_us() : 0.0;
  const int start = timer.mark();
  const std::vector<ExecStep>& steps = *run.steps;
  for (size_t i = 0; i < steps.size(); ++i) {
    const ExecStep& e = steps[i];
    const size_t id = static_cast<size_t>(e.node);
    if (e.compute) {
      const Node& n = g.nodes[id];
      compute(i, e.node, !n.op->mutated_inputs().empty(), mem.buffers(i, e.node));
    } else {
      if (tr && values[id]) mem.freed(e.node);
      values[id].reset();
    }
  }
  // Side effects run once, after every read of what they overwrite (recomputations included).
  if (run.side_effects) {
    for (int id : *run.side_effects) {
      compute(SIZE_MAX, id, true, mem.side_effect_buffers(id));
      values[static_cast<size_t>(id)].reset();
    }
  }
  // The step's time ends when the device has finished it, not when the host has launched it.
  timer.synchronize();
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (size_t id = 0; id < first.size(); ++id)
    if (first[id].first >= 0) st.first_seconds[id] = timer.seconds(first[id].first, first[id].second);
  for (const Timed& t : timed) {
    const double b = start_us + timer.seconds(start, t.begin) * 1e6, e = start_us + timer.seconds(start, t.end) * 1e6;
    const Node& n = g.nodes[static_cast<size_t>(t.node)];
    tr->slice(t.kind, n.op->name(), t.node, g.step, b, e, n.buffer_bytes());
    tr->memory(b, t.measured, t.predicted);
  }
  return st;
}

}  // namespace lethe

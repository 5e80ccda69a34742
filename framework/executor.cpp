#include "framework/executor.h"

#include <algorithm>

#include "framework/error.h"
#include "framework/session.h"
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

void compute_node(SessionState& s, Graph& g, int id, std::vector<std::shared_ptr<Storage>>& values,
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
  call.seed = s.seed();
  call.step = g.step;
  call.node = id;
  call.stream = s.backend_context();  // the session's CUDA context (null on CPU)
  run_kernel(*n.op, call, n.meta.device);
  values[static_cast<size_t>(id)] = std::move(out);
}

ExecStats execute_steps(SessionState& s, Graph& g, const std::vector<ExecStep>& steps,
                        std::vector<std::shared_ptr<Storage>>& values, const BufferFn& buffers,
                        std::vector<double>* seconds) {
  ExecStats st;
  values.resize(g.nodes.size());
  if (seconds) seconds->assign(g.nodes.size(), -1.0);
  std::vector<char> done(g.nodes.size(), 0);
  Tracer* tr = s.tracer();
  // Traced: measured = the heap allocator's bytes in use; predicted = bytes in use when the step
  // began plus the (aligned) values this schedule holds.
  const int64_t trace_base = tr ? static_cast<int64_t>(s.heap_in_use()) : 0;
  int64_t trace_live = 0;
  auto value_bytes = [&](int id) { return static_cast<int64_t>(align_up(std::max<size_t>(g.nodes[static_cast<size_t>(id)].meta.bytes(), 1))); };
  // Op times come from the session's timer (CUDA: events in stream order), read once the device has
  // finished the step; so do the trace's slices, placed from the host time the step began.
  StepTimer& timer = s.step_timer();
  timer.reset();
  const double start_us = tr ? tr->now_us() : 0.0;
  const int start = timer.mark();
  struct Timed {
    int node, begin, end;
    bool first;  // the node's first computation in this run: its time is the node's
    Tracer::Kind kind;
    int64_t in_use, predicted;
  };
  std::vector<Timed> timed;
  for (const ExecStep& e : steps) {
    if (e.compute) {
      const int m0 = timer.mark();
      compute_node(s, g, e.node, values, buffers);
      const int m1 = timer.mark();
      const Node& n = g.nodes[static_cast<size_t>(e.node)];
      const bool again = done[static_cast<size_t>(e.node)];
      if ((seconds && !again) || tr) {
        Timed t{e.node, m0, m1, !again, Tracer::Kind::compute, 0, 0};
        if (tr) {
          t.kind = !n.op->mutated_inputs().empty() ? Tracer::Kind::update
                   : again                         ? Tracer::Kind::recompute
                                                   : Tracer::Kind::compute;
          trace_live += value_bytes(e.node);
          t.in_use = static_cast<int64_t>(s.heap_in_use());
          t.predicted = trace_base + trace_live;
        }
        timed.push_back(t);
      }
      ++st.computed;
      if (again) ++st.recomputed;
      done[static_cast<size_t>(e.node)] = 1;
    } else {
      if (tr && values[static_cast<size_t>(e.node)]) trace_live -= value_bytes(e.node);
      values[static_cast<size_t>(e.node)].reset();
    }
  }
  timer.synchronize();
  for (const Timed& t : timed) {
    const int node = t.node;
    if (seconds && t.first) (*seconds)[static_cast<size_t>(node)] = timer.seconds(t.begin, t.end);
    if (tr) {
      const double b = start_us + timer.seconds(start, t.begin) * 1e6, e = start_us + timer.seconds(start, t.end) * 1e6;
      tr->slice(t.kind, g.nodes[static_cast<size_t>(node)].op->name(), node, g.step, b, e, value_bytes(node));
      tr->memory(b, t.in_use, t.predicted);
    }
  }
  return st;
}

}  // namespace lethe

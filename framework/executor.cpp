#include "framework/executor.h"

#ifdef _OPENMP  // LETHE_OPENMP=OFF (the ThreadSanitizer build): kernels run on their calling thread
#include <omp.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>

#include "framework/error.h"
#include "framework/tier.h"
#include "framework/trace.h"

namespace lethe {

std::vector<ExecStep> natural_steps(const Graph& g, const std::vector<int>& targets,
                                    bool side_effects) {
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
      if (!dup && last_use[static_cast<size_t>(in)] == static_cast<int>(i) &&
          !keep[static_cast<size_t>(in)] && !g.nodes[static_cast<size_t>(in)].is_leaf())
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
                              in.is_leaf()
                                  ? std::string("a leaf: a parameter or data the step was given")
                                  : in.op->name(),
                              ") already held ", v, ": the non-finite value came in with it");
      break;
    }
  }
  throw Error(detail::concat("anomaly detection: ", n.op->name(), " (node ", id, " of step ",
                             g.step, ") produced ", bad, " at element ", at, " of its output ",
                             n.meta.str(), ", ", origin));
}

}  // namespace

std::string step_name(const Node& n) {
  return n.op ? n.op->name() : "read_home";
}

namespace {

// read_home() of leaf node `leaf` into `dst`, an error naming the node.
void read_home_of(const Graph& g, int leaf, void* dst, const KernelEnv& env) {
  const Storage& st = *g.nodes[static_cast<size_t>(leaf)].leaf;
  try {
    read_home(st, dst, env.backend);
  } catch (Error& e) {
    e.add_context(detail::concat("reading node ", leaf, " (", st.bytes,
                                 " bytes) in from its home in the second memory tier: "));
    throw;
  }
}

}  // namespace

void compute_node(const KernelEnv& env, Graph& g, int id,
                  std::vector<std::shared_ptr<Storage>>& values, const BufferFn& buffers,
                  const BufferFn& homes) {
  Node& n = g.nodes[static_cast<size_t>(id)];
  if (n.op == nullptr) {
    // A plan's read of a leaf whose home is the second tier (build_step_problem()).
    LETHE_ASSERT(n.leaf && n.leaf->home, "node ", id, " is a leaf the plan computes");
    auto out = buffers(n.leaf->bytes, false);
    read_home_of(g, id, out->data, env);
    values[static_cast<size_t>(id)] = std::move(out);
    return;
  }
  std::vector<TensorMeta> in_metas;
  KernelCall call;
  call.inputs.reserve(n.inputs.size());
  call.in_meta.reserve(n.inputs.size());
  std::vector<int> staged;  // inputs read in from their home for this node only
  for (int in : n.inputs) {
    auto& v = values[static_cast<size_t>(in)];
    const Node& src = g.nodes[static_cast<size_t>(in)];
    if (!v && src.is_leaf()) {
      if (src.leaf->home) {
        LETHE_CHECK(homes, "internal error: ", n.op->name(), " (node ", id, ") reads node ", in,
                    ", whose home is the second tier, and its plan did not read it in");
        v = homes(src.leaf->bytes, false);
        read_home_of(g, in, v->data, env);
        staged.push_back(in);
      } else {
        v = src.leaf;
      }
    }
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
  size_t wsb = kernel_workspace_bytes(*n.op, in_metas, n.meta);
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
  // What the node overwrote of a value whose home is the tier goes back there (read in for this
  // node, or by the plan for an update inside it).
  for (int m : n.op->mutated_inputs()) {
    const int in = n.inputs[static_cast<size_t>(m)];
    const Node& src = g.nodes[static_cast<size_t>(in)];
    if (!src.is_leaf() || !src.leaf->home) continue;
    Storage& leaf = *src.leaf;
    try {
      write_home(leaf, values[static_cast<size_t>(in)]->data, env.backend);
    } catch (Error& e) {
      e.add_context(detail::concat(n.op->name(), " (node ", id, ") writing node ", in, " (",
                                   leaf.bytes, " bytes) back to its home in the second tier: "));
      throw;
    }
  }
  for (int in : staged) values[static_cast<size_t>(in)].reset();
}

namespace {

// LETHE_JITTER: a pseudo-random pause of 0-2 ms (log-uniform from 1 us) before step `i`.
void jitter(uint64_t seed, size_t i) {
  if (seed == 0) return;
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (static_cast<uint64_t>(i) + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  const double u = static_cast<double>(z >> 11) * 0x1.0p-53;
  std::this_thread::sleep_for(std::chrono::duration<double, std::micro>(std::pow(2000.0, u)));
}

// The time two or more of `spans` (per stream: [begin, end) intervals in order) overlap, and the
// part of each recompute span that some other stream's span covers.
struct Overlap {
  double parallel = 0, recompute = 0, recompute_total = 0;
};
Overlap overlaps(const std::vector<std::vector<std::pair<double, double>>>& spans,
                 const std::vector<std::vector<char>>& is_recompute) {
  Overlap o;
  std::vector<std::pair<double, int>> ev;
  for (const auto& st : spans)
    for (const auto& [b, e] : st) {
      ev.push_back({b, +1});
      ev.push_back({e, -1});
    }
  std::sort(ev.begin(), ev.end());
  int busy = 0;
  double last = 0;
  for (const auto& [t, d] : ev) {
    if (busy >= 2) o.parallel += t - last;
    busy += d;
    last = t;
  }
  // Recompute spans against the union of the other streams' spans (each stream's spans are
  // disjoint and in order).
  for (size_t s = 0; s < spans.size(); ++s)
    for (size_t k = 0; k < spans[s].size(); ++k) {
      if (!is_recompute[s][k]) continue;
      const auto [b, e] = spans[s][k];
      o.recompute_total += e - b;
      std::vector<std::pair<double, double>> cover;
      for (size_t t = 0; t < spans.size(); ++t)
        if (t != s)
          for (const auto& [b2, e2] : spans[t])
            if (b2 < e && b < e2) cover.push_back({std::max(b, b2), std::min(e, e2)});
      std::sort(cover.begin(), cover.end());
      double end = b;
      for (const auto& [cb, ce] : cover) {
        const double from = std::max(cb, end);
        if (ce > from) {
          o.recompute += ce - from;
          end = ce;
        }
      }
    }
  return o;
}

// run_steps() on several streams (CPU: a worker thread per stream).
ExecStats run_streams(Graph& g, const StepRun& run, std::vector<std::shared_ptr<Storage>>& values);

}  // namespace

int comm_stream_plan(const Graph& g, const std::vector<ExecStep>& steps, std::vector<int>& stream,
                     std::vector<std::vector<int32_t>>& after) {
  stream.clear();
  after.clear();
  // The collectives and the copies out of their buckets (the compute stream never waits for them).
  auto is_comm = [&](const ExecStep& e) {
    const Node& n = g.nodes[static_cast<size_t>(e.node)];
    return e.compute && n.op &&
           (n.op->kind() == OpKind::all_reduce || n.op->kind() == OpKind::bucket_slice);
  };
  if (std::none_of(steps.begin(), steps.end(), is_comm)) return 1;
  const size_t m = steps.size();
  stream.assign(m, 0);
  after.assign(m, {});
  std::vector<int32_t> live(g.nodes.size(), -1);
  std::vector<std::vector<int32_t>> readers(g.nodes.size());
  for (size_t i = 0; i < m; ++i) {
    const ExecStep& e = steps[i];
    const size_t v = static_cast<size_t>(e.node);
    std::vector<int32_t> waits;
    if (e.compute) {
      for (int in : g.nodes[v].inputs) {
        const size_t x = static_cast<size_t>(in);
        if (live[x] >= 0) waits.push_back(live[x]);
        readers[x].push_back(static_cast<int32_t>(i));
      }
      if (live[v] >= 0) waits.push_back(live[v]);
      live[v] = static_cast<int32_t>(i);
      stream[i] = is_comm(e) ? 1 : 0;
    } else {
      if (live[v] >= 0) waits.push_back(live[v]);
      waits.insert(waits.end(), readers[v].begin(), readers[v].end());
      readers[v].clear();
      live[v] = -1;
      // On the communication stream when it waits for one of its steps: stream 0 never waits for
      // it.
      stream[i] = std::any_of(waits.begin(), waits.end(),
                              [&](int32_t w) { return stream[static_cast<size_t>(w)] == 1; })
                      ? 1
                      : 0;
    }
    for (int32_t w : waits)
      if (stream[static_cast<size_t>(w)] != stream[i]) after[i].push_back(w);
    std::sort(after[i].begin(), after[i].end());
    after[i].erase(std::unique(after[i].begin(), after[i].end()), after[i].end());
  }
  return 2;
}

namespace {

// A copy step between the arena and the tier (ExecStep::copy), on the calling thread: it returns
// once the copy is done (a failed copy throws the tier's lethe::Error, naming the node). A fetch
// takes its buffer from `buffers`, as a compute takes its output's.
void copy_step(Graph& g, const StepRun& run, size_t step, const ExecStep& e,
               std::vector<std::shared_ptr<Storage>>& values, const BufferFn& buffers,
               ExecStats& st) {
  LETHE_CHECK(run.tier != nullptr && run.tier_offsets != nullptr,
              "internal error: a plan with copies to a second tier ran without the session's tier");
  const size_t id = static_cast<size_t>(e.node);
  const Node& n = g.nodes[id];
  const size_t bytes = n.meta.bytes();
  const size_t offset = static_cast<size_t>((*run.tier_offsets)[step]);
  try {
    switch (e.copy) {
      case CopyKind::offload:
        LETHE_ASSERT(values[id] != nullptr, "offload of node ", e.node, " which is not in memory");
        run.tier->wait(run.tier->copy_out(offset, values[id]->data, bytes));
        st.copy_out_bytes += bytes;
        break;
      case CopyKind::fetch: {
        std::shared_ptr<Storage> buf = buffers(bytes, false);
        run.tier->wait(run.tier->copy_in(buf->data, offset, bytes));
        values[id] = std::move(buf);
        st.copy_in_bytes += bytes;
        break;
      }
      case CopyKind::drop:
      case CopyKind::none:
        break;
    }
  } catch (Error& err) {
    err.add_context(detail::concat(e.copy == CopyKind::offload ? "copying" : "fetching", " node ",
                                   e.node, " (", n.op ? n.op->name() : "leaf", ", ", bytes,
                                   " bytes) ", e.copy == CopyKind::offload ? "to" : "from",
                                   " the second memory tier: "));
    throw;
  }
}

}  // namespace

ExecStats run_steps(Graph& g, const StepRun& run, std::vector<std::shared_ptr<Storage>>& values) {
  LETHE_ASSERT(run.steps != nullptr && run.memory != nullptr && run.timer != nullptr);
  if (run.stream != nullptr && run.streams > 1) return run_streams(g, run, values);
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
  std::vector<std::pair<int, int>> first(g.nodes.size(),
                                         {-1, -1});  // a node's first compute's marks
  auto compute = [&](size_t step, int node, bool update, const BufferFn& buffers,
                     const BufferFn& homes) {
    const size_t id = static_cast<size_t>(node);
    const bool again = done[id] != 0;
    if ((tr || run.report_frees) && values[id])
      mem.freed(node);  // a recomputation over a held value (not in valid plans)
    jitter(run.jitter_seed, step);
    const int m0 = timer.mark();
    compute_node(run.env, g, node, values, buffers, homes);
    const int m1 = timer.mark();
    if (!again) first[id] = {m0, m1};
    if (tr) {
      const auto [measured, predicted] = mem.computed(step, node, update);
      const Tracer::Kind kind = update  ? Tracer::Kind::update
                                : again ? Tracer::Kind::recompute
                                        : Tracer::Kind::compute;
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
      compute(i, e.node, n.op && !n.op->mutated_inputs().empty(), mem.buffers(i, e.node),
              mem.home_buffers(e.node, false));
    } else if (e.copy != CopyKind::none) {
      if (e.copy == CopyKind::fetch && (tr || run.report_frees) && values[id]) mem.freed(e.node);
      const auto c0 = std::chrono::steady_clock::now();
      copy_step(g, run, i, e, values, e.copy == CopyKind::fetch ? mem.buffers(i, e.node) : nullptr,
                st);
      st.copy_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count();
      if (e.copy == CopyKind::fetch && tr) (void)mem.computed(i, e.node, false);
    } else {
      if ((tr || run.report_frees) && values[id]) mem.freed(e.node);
      values[id].reset();
    }
  }
  // Side effects run once, after every read of what they overwrite (recomputations included).
  if (run.side_effects) {
    for (int id : *run.side_effects) {
      compute(SIZE_MAX, id, true, mem.side_effect_buffers(id), mem.home_buffers(id, true));
      values[static_cast<size_t>(id)].reset();
    }
  }
  mem.finished();
  // The step's time ends when the device has finished it, not when the host has launched it.
  timer.synchronize();
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (size_t id = 0; id < first.size(); ++id)
    if (first[id].first >= 0)
      st.first_seconds[id] = timer.seconds(first[id].first, first[id].second);
  for (const Timed& t : timed) {
    const double b = start_us + timer.seconds(start, t.begin) * 1e6,
                 e = start_us + timer.seconds(start, t.end) * 1e6;
    const Node& n = g.nodes[static_cast<size_t>(t.node)];
    tr->slice(t.kind, step_name(n), t.node, g.step, b, e, n.buffer_bytes());
    tr->memory(b, t.measured, t.predicted);
  }
  return st;
}

}  // namespace lethe

namespace lethe {
namespace {

// What a run on streams measured, in seconds from its start: each plan step's interval, whether a
// compute recomputed its node, the traced memory right after it (tracing only), and the same for
// the side effects run after the streams.
struct StreamRecord {
  std::vector<double> begin, end;
  std::vector<char> again;
  std::vector<std::pair<int64_t, int64_t>> traced;
  std::vector<std::pair<double, double>> side;
  std::vector<std::pair<int64_t, int64_t>> side_traced;
};

// Intervals sorted and merged where they overlap.
std::vector<std::pair<double, double>> merge_intervals(std::vector<std::pair<double, double>> v) {
  std::sort(v.begin(), v.end());
  std::vector<std::pair<double, double>> merged;
  for (const auto& b : v) {
    if (!merged.empty() && b.first <= merged.back().second)
      merged.back().second = std::max(merged.back().second, b.second);
    else
      merged.push_back(b);
  }
  return merged;
}

// The time of [b, e) covered by `merged` (disjoint intervals).
double overlap(double b, double e, const std::vector<std::pair<double, double>>& merged) {
  double t = 0;
  for (const auto& [mb, me] : merged) t += std::max(0.0, std::min(e, me) - std::max(b, mb));
  return t;
}

// The stats both executors on streams report from their record: compute counts, each node's first
// computation time, the trace's slices (one track per stream) and the overlap between streams.
void account(const Graph& g, const StepRun& run, const StreamRecord& r, double start_us,
             ExecStats& st) {
  const std::vector<ExecStep>& steps = *run.steps;
  Tracer* tr = run.tracer;
  std::vector<std::vector<std::pair<double, double>>> spans(static_cast<size_t>(run.streams));
  std::vector<std::vector<char>> rec(static_cast<size_t>(run.streams));
  for (size_t i = 0; i < steps.size(); ++i) {
    if (!steps[i].compute) continue;
    const size_t id = static_cast<size_t>(steps[i].node);
    const size_t s = static_cast<size_t>((*run.stream)[i]);
    spans[s].push_back({r.begin[i], r.end[i]});
    rec[s].push_back(r.again[i]);
    ++st.computed;
    if (r.again[i])
      ++st.recomputed;
    else if (st.first_seconds[id] < 0)
      st.first_seconds[id] = r.end[i] - r.begin[i];
    if (tr) {
      const Node& n = g.nodes[id];
      tr->slice(r.again[i] ? Tracer::Kind::recompute : Tracer::Kind::compute, step_name(n),
                steps[i].node, g.step, start_us + r.begin[i] * 1e6, start_us + r.end[i] * 1e6,
                n.buffer_bytes(), static_cast<int>(s));
      tr->memory(start_us + r.begin[i] * 1e6, r.traced[i].first, r.traced[i].second);
    }
  }
  for (size_t k = 0; k < r.side.size(); ++k) {
    const int id = (*run.side_effects)[k];
    const auto [b, f] = r.side[k];
    ++st.computed;
    if (st.first_seconds[static_cast<size_t>(id)] < 0)
      st.first_seconds[static_cast<size_t>(id)] = f - b;
    if (tr) {
      const Node& n = g.nodes[static_cast<size_t>(id)];
      tr->slice(Tracer::Kind::update, n.op->name(), id, g.step, start_us + b * 1e6,
                start_us + f * 1e6, n.buffer_bytes());
      tr->memory(start_us + b * 1e6, r.side_traced[k].first, r.side_traced[k].second);
    }
  }
  if (run.comm_stream >= 0 && run.comm_stream < run.streams) {
    // The collectives' time, and the part of it during which a compute stream was busy.
    std::vector<std::pair<double, double>> busy;
    for (int s = 0; s < run.streams; ++s)
      if (s != run.comm_stream)
        busy.insert(busy.end(), spans[static_cast<size_t>(s)].begin(),
                    spans[static_cast<size_t>(s)].end());
    const std::vector<std::pair<double, double>> merged = merge_intervals(std::move(busy));
    for (const auto& [b, e] : spans[static_cast<size_t>(run.comm_stream)]) {
      st.comm_seconds += e - b;
      st.comm_overlap_seconds += overlap(b, e, merged);
    }
  }
  // Copies to and from the tier: their time, and the part of it during which a compute ran.
  {
    std::vector<std::pair<double, double>> busy;
    for (const auto& sp : spans) busy.insert(busy.end(), sp.begin(), sp.end());
    const std::vector<std::pair<double, double>> merged = merge_intervals(std::move(busy));
    int64_t in_tier = 0;  // the trace's counter of the tier's bytes held (in plan order)
    for (size_t i = 0; i < steps.size(); ++i) {
      const CopyKind c = steps[i].copy;
      if (tr && (c == CopyKind::offload || c == CopyKind::drop)) {
        const int64_t b = g.nodes[static_cast<size_t>(steps[i].node)].buffer_bytes();
        in_tier += c == CopyKind::offload ? b : -b;
        tr->tier(start_us + r.begin[i] * 1e6, in_tier);
      }
      if (c != CopyKind::offload && c != CopyKind::fetch) continue;
      const double b = r.begin[i], e = r.end[i];
      st.copy_seconds += e - b;
      st.copy_hidden_seconds += overlap(b, e, merged);
      if (tr) {
        const Node& n = g.nodes[static_cast<size_t>(steps[i].node)];
        tr->slice(c == CopyKind::offload ? Tracer::Kind::copy_out : Tracer::Kind::copy_in,
                  n.op ? n.op->name() : "leaf", steps[i].node, g.step, start_us + b * 1e6,
                  start_us + e * 1e6, n.buffer_bytes(), (*run.stream)[i]);
      }
    }
  }
  const Overlap o = overlaps(spans, rec);
  st.parallel_seconds = o.parallel;
  st.overlapped_recompute_seconds = o.recompute;
  st.recompute_seconds = o.recompute_total;
}

// A plan on a device's streams: the host issues the steps in plan order; the device orders them by
// events (DeviceStreams). Times come from timing events on each stream, read after the step.
ExecStats run_device_streams(Graph& g, const StepRun& run,
                             std::vector<std::shared_ptr<Storage>>& values) {
  const std::vector<ExecStep>& steps = *run.steps;
  const size_t m = steps.size();
  DeviceStreams& ds = *run.device_streams;
  ExecStats st;
  st.streams = run.streams;
  values.resize(g.nodes.size());
  st.first_seconds.assign(g.nodes.size(), -1.0);
  StepMemory& mem = *run.memory;
  Tracer* tr = run.tracer;
  const bool report = tr || run.report_frees;
  StreamRecord r;
  r.again.assign(m, 0);
  r.traced.assign(m, {0, 0});
  std::vector<char> done(g.nodes.size(), 0);
  std::vector<std::pair<int, int>> marks(m, {-1, -1}), side_marks;
  const auto t0 = std::chrono::steady_clock::now();
  const int start = ds.mark(0);
  for (size_t i = 0; i < m; ++i) {
    const ExecStep& e = steps[i];
    const int s = (*run.stream)[i];
    for (int32_t a : (*run.after)[i]) ds.wait(s, static_cast<size_t>(a));
    const size_t id = static_cast<size_t>(e.node);
    if (report && values[id]) mem.freed(e.node);
    if (e.compute) {
      KernelEnv env = run.env;
      env.backend = ds.context(s);
      r.again[i] = done[id];
      const int b = ds.mark(s);
      compute_node(env, g, e.node, values, mem.buffers(i, e.node), mem.home_buffers(e.node, false));
      marks[i] = {b, ds.mark(s)};
      done[id] = 1;
      if (tr) r.traced[i] = mem.computed(i, e.node, false);
    } else if (e.copy != CopyKind::none) {
      // The device finishes what the plan orders before the copy (every stream, conservatively),
      // and the copy is done before any later step is issued: correct in every order, with no
      // overlap of copies and compute on a device yet.
      ds.synchronize();
      copy_step(g, run, i, e, values, e.copy == CopyKind::fetch ? mem.buffers(i, e.node) : nullptr,
                st);
      if (tr && e.copy == CopyKind::fetch) r.traced[i] = mem.computed(i, e.node, false);
    } else {
      values[id].reset();
    }
    ds.done(s, i);
  }
  ds.join();
  if (run.side_effects) {
    for (int id : *run.side_effects) {
      const int b = ds.mark(0);
      compute_node(run.env, g, id, values, mem.side_effect_buffers(id), mem.home_buffers(id, true));
      side_marks.push_back({b, ds.mark(0)});
      r.side_traced.push_back(tr ? mem.computed(SIZE_MAX, id, true)
                                 : std::pair<int64_t, int64_t>{0, 0});
      values[static_cast<size_t>(id)].reset();
    }
  }
  mem.finished();
  ds.synchronize();
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Event times, read once the device has passed them.
  r.begin.assign(m, 0.0);
  r.end.assign(m, 0.0);
  for (size_t i = 0; i < m; ++i)
    if (marks[i].first >= 0) {
      r.begin[i] = ds.seconds(start, marks[i].first);
      r.end[i] = ds.seconds(start, marks[i].second);
    }
  for (const auto& [b, f] : side_marks)
    r.side.push_back({ds.seconds(start, b), ds.seconds(start, f)});
  account(g, run, r, tr ? tr->to_us(t0) : 0.0, st);
  return st;
}

ExecStats run_streams(Graph& g, const StepRun& run, std::vector<std::shared_ptr<Storage>>& values) {
  const std::vector<ExecStep>& steps = *run.steps;
  const size_t m = steps.size();
  LETHE_ASSERT(run.stream->size() == m && run.after != nullptr && run.after->size() == m);
  if (run.device_streams) return run_device_streams(g, run, values);
  LETHE_CHECK(run.env.backend == nullptr,
              "internal error: a device session's plan on streams needs its DeviceStreams");
  ExecStats st;
  st.streams = run.streams;
  values.resize(g.nodes.size());
  st.first_seconds.assign(g.nodes.size(), -1.0);
  StepMemory& mem = *run.memory;
  Tracer* tr = run.tracer;
  // Leaves any step reads are in place before the streams start (compute_node would otherwise
  // store them from several threads).
  for (const ExecStep& e : steps) {
    if (!e.compute) continue;
    for (int in : g.nodes[static_cast<size_t>(e.node)].inputs)
      if (!values[static_cast<size_t>(in)] && g.nodes[static_cast<size_t>(in)].is_leaf() &&
          !g.nodes[static_cast<size_t>(in)].leaf->home)
        values[static_cast<size_t>(in)] = g.nodes[static_cast<size_t>(in)].leaf;
  }
  std::vector<std::vector<size_t>> of_stream(static_cast<size_t>(run.streams));
  for (size_t i = 0; i < m; ++i) {
    const int s = (*run.stream)[i];
    LETHE_ASSERT(s >= 0 && s < run.streams);
    of_stream[static_cast<size_t>(s)].push_back(i);
  }
  std::vector<char> copy_only(static_cast<size_t>(run.streams), 1);
  for (size_t i = 0; i < m; ++i)
    if (steps[i].copy == CopyKind::none) copy_only[static_cast<size_t>((*run.stream)[i])] = 0;
  // 0: not run, 1: done, 2: the step was abandoned (another stream failed).
  std::vector<std::atomic<int>> state(m);
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex mu;  // StepMemory and the error
  std::vector<char> done(g.nodes.size(),
                         0);  // a node computed once already (recomputes wait on its free)
  const bool report = tr || run.report_frees;
  StreamRecord r;
  r.begin.assign(m, 0.0);
  r.end.assign(m, 0.0);
  r.again.assign(m, 0);
  r.traced.assign(tr ? m : 0, {0, 0});
  const auto t0 = std::chrono::steady_clock::now();
  auto since = [&](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(t - t0).count();
  };
  auto abandon = [&](std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = e;
    }
    failed = true;
    for (auto& x : state) {
      int expected = 0;
      x.compare_exchange_strong(expected, 2);
      x.notify_all();
    }
  };
  // The buffers of a step that makes its node's value (a compute, a fetch), each taken under the
  // lock that guards StepMemory; a value still held is reported freed first.
  auto claim = [&](size_t i, const ExecStep& e) -> BufferFn {
    std::lock_guard<std::mutex> lock(mu);
    if (report && values[static_cast<size_t>(e.node)]) mem.freed(e.node);
    BufferFn inner = mem.buffers(i, e.node);
    return [&mu, inner](size_t bytes, bool workspace) {
      std::lock_guard<std::mutex> l(mu);
      return inner(bytes, workspace);
    };
  };
  auto worker = [&](int s) {
#ifdef _OPENMP
    // The communication stream packs and sums buckets on its own thread; MPI does the rest. A copy
    // stream waits for the tier's I/O threads.
    omp_set_num_threads(
        s == run.comm_stream || copy_only[static_cast<size_t>(s)] ? 1 : run.threads_per_stream);
#endif
    try {
      for (size_t i : of_stream[static_cast<size_t>(s)]) {
        for (int32_t a : (*run.after)[i]) {
          std::atomic<int>& w = state[static_cast<size_t>(a)];
          for (int spin = 0; spin < 2000 && w.load(std::memory_order_acquire) == 0; ++spin) {
          }
          w.wait(0, std::memory_order_acquire);
        }
        if (failed) return;
        const ExecStep& e = steps[i];
        const size_t id = static_cast<size_t>(e.node);
        if (e.compute) {
          const BufferFn buffers = claim(i, e);
          jitter(run.jitter_seed, i);
          r.again[i] = done[id];
          const auto b = std::chrono::steady_clock::now();
          compute_node(run.env, g, e.node, values, buffers);
          const auto f = std::chrono::steady_clock::now();
          r.begin[i] = since(b);
          r.end[i] = since(f);
          done[id] = 1;
          if (tr) {
            std::lock_guard<std::mutex> lock(mu);
            r.traced[i] = mem.computed(i, e.node, false);
          }
        } else if (e.copy != CopyKind::none) {
          const BufferFn buffers = e.copy == CopyKind::fetch ? claim(i, e) : BufferFn{};
          ExecStats moved;
          const auto b = std::chrono::steady_clock::now();
          copy_step(g, run, i, e, values, buffers, moved);
          const auto f = std::chrono::steady_clock::now();
          r.begin[i] = since(b);
          r.end[i] = since(f);
          std::lock_guard<std::mutex> lock(mu);
          st.copy_out_bytes += moved.copy_out_bytes;
          st.copy_in_bytes += moved.copy_in_bytes;
          if (tr && e.copy == CopyKind::fetch) r.traced[i] = mem.computed(i, e.node, false);
        } else {
          if (report) {
            std::lock_guard<std::mutex> lock(mu);
            if (values[id]) mem.freed(e.node);
          }
          values[id].reset();
        }
        state[i].store(1, std::memory_order_release);
        state[i].notify_all();
      }
    } catch (...) {
      abandon(std::current_exception());
    }
  };
  // OpenBLAS runs single-threaded everywhere (ops/gemm.cpp parallelises a GEMM over blocks of its
  // output with the calling thread's OpenMP threads), so each stream's GEMMs use its own threads.
  {
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(run.streams));
    for (int s = 0; s < run.streams; ++s) threads.emplace_back(worker, s);
    for (std::thread& t : threads) t.join();
  }
  if (error) std::rethrow_exception(error);
  // Side effects, once each, after every stream (with all threads).
  if (run.side_effects) {
    for (int id : *run.side_effects) {
      jitter(run.jitter_seed, SIZE_MAX);
      const auto b = std::chrono::steady_clock::now();
      compute_node(run.env, g, id, values, mem.side_effect_buffers(id), mem.home_buffers(id, true));
      const auto f = std::chrono::steady_clock::now();
      r.side.push_back({since(b), since(f)});
      r.side_traced.push_back(tr ? mem.computed(SIZE_MAX, id, true)
                                 : std::pair<int64_t, int64_t>{0, 0});
      values[static_cast<size_t>(id)].reset();
    }
  }
  mem.finished();
  st.seconds = since(std::chrono::steady_clock::now());
  account(g, run, r, tr ? tr->to_us(t0) : 0.0, st);
  return st;
}

}  // namespace
}  // namespace lethe

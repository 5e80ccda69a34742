#include "framework/session.h"

#ifdef _OPENMP  // LETHE_OPENMP=OFF (the ThreadSanitizer build): kernels run on their calling thread
#include <omp.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "framework/arena.h"
#include "framework/backend.h"
#include "framework/error.h"
#include "framework/executor.h"
#include "framework/step_problem.h"
#include "framework/tensor.h"
#include "framework/tier.h"
#include "framework/trace.h"
#include "scheduler/budget.h"
#include "scheduler/offload.h"
#include "scheduler/planner.h"

namespace lethe {
namespace {

thread_local std::vector<std::shared_ptr<SessionState>> t_sessions;
thread_local std::shared_ptr<SessionState> t_default;
thread_local bool t_grad_enabled = true;

}  // namespace

SessionState::SessionState(SessionOptions o) : opts_(std::move(o)) {
  // Without a usable device: "no CUDA device is available (...)".
  Backend& device = backend(opts_.device.kind);
  backend_ = device.create_context(opts_.device.index);
  heap_ = device.make_allocator(backend_);
  timer_ = device.make_timer(backend_);
  if (opts_.num_threads > 0) {
#ifdef _OPENMP
    omp_set_num_threads(
        opts_.num_threads);  // OpenBLAS runs single-threaded: ops/gemm.cpp parallelises
#endif
  }
#ifdef _OPENMP
  threads_ = opts_.num_threads > 0 ? opts_.num_threads : std::max(1, omp_get_max_threads());
#else
  threads_ = opts_.num_threads > 0 ? opts_.num_threads : 1;
#endif
  LETHE_CHECK(opts_.streams >= 1 || opts_.streams == kAutoStreams, "SessionOptions::streams is ",
              opts_.streams,
              ": expected a positive number of streams (1: serial) or lethe::kAutoStreams (the "
              "planner chooses)");
  // Test switches (tests/CMakeLists.txt sets them): a seeded pause before every op, and checks of
  // every arena buffer against the buffers live beside it.
  if (const char* j = std::getenv("LETHE_JITTER"); j && *j) {
    char* end = nullptr;
    jitter_seed_ = std::strtoull(j, &end, 10);
    LETHE_CHECK(end && *end == '\0' && jitter_seed_ != 0, "LETHE_JITTER='", j,
                "': expected a positive seed");
  }
  if (const char* c = std::getenv("LETHE_ARENA_CHECK"); c && *c && std::string(c) != "0")
    arena_check_ = true;
  if (opts_.planner != "auto") {
    try {
      sched::find_planner(opts_.planner);
    } catch (Error& e) {
      e.add_context("SessionOptions::planner: ");
      throw;
    }
  }
  if (!opts_.trace_path.empty()) tracer_ = std::make_unique<Tracer>(opts_.trace_path);
  LETHE_CHECK(opts_.tier_plan == "auto" || opts_.tier_plan == "recompute" ||
                  opts_.tier_plan == "offload" || opts_.tier_plan == "joint",
              "SessionOptions::tier_plan '", opts_.tier_plan,
              "' is not one of auto, recompute, offload, joint");
  LETHE_CHECK(opts_.offload_state == "auto" || opts_.offload_state == "always" ||
                  opts_.offload_state == "never",
              "SessionOptions::offload_state '", opts_.offload_state,
              "' is not one of auto, always, never");
  LETHE_CHECK(opts_.offload_state != "always" || !opts_.host_budget.empty(),
              "SessionOptions::offload_state 'always' needs a second tier: set host_budget too");
  LETHE_CHECK(opts_.offload_state != "always" || !opts_.data_parallel,
              "SessionOptions::offload_state 'always' is not supported with data_parallel yet: "
              "each rank's parameters stay in its budget");
  const std::string& b = opts_.memory_budget;
  const bool unlimited = b.empty() || b == "unlimited" || b == "inf";
  LETHE_CHECK(opts_.tier_bandwidth.empty() || !opts_.host_budget.empty(),
              "SessionOptions::tier_bandwidth '", opts_.tier_bandwidth,
              "' needs a second tier: set host_budget too");
  if (!opts_.host_budget.empty()) {
    sched::BudgetSpec host;
    try {
      host = sched::parse_budget_spec(opts_.host_budget);
    } catch (Error& e) {
      e.add_context("host_budget: ");
      throw;
    }
    LETHE_CHECK(!host.fraction, "host_budget '", opts_.host_budget,
                "' must be bytes with a unit (e.g. 4GiB): the second tier's size is not a "
                "fraction of anything");
    LETHE_CHECK(!unlimited,
                "host_budget needs a memory_budget: without one nothing is copied out of it");
    const std::string dir = opts_.offload_path.empty()
                                ? std::filesystem::temp_directory_path().string()
                                : opts_.offload_path;
    if (!opts_.tier_bandwidth.empty()) {
      try {
        const sched::TierBandwidth bw = sched::parse_bandwidth(opts_.tier_bandwidth);
        tier_out_bw_ = bw.out;
        tier_in_bw_ = bw.in;
      } catch (Error& e) {
        e.add_context("SessionOptions::tier_bandwidth: ");
        throw;
      }
    }
    try {
      tier_ = make_tier(opts_.device, static_cast<size_t>(host.bytes), dir);
    } catch (Error& e) {
      e.add_context("the second memory tier (host_budget " + opts_.host_budget + "): ");
      throw;
    }
  }
  LETHE_CHECK(
      !opts_.plan_only || !unlimited,
      "SessionOptions::plan_only needs a memory budget in bytes "
      "(memory_budget, e.g. \"512MiB\"); without a budget there is nothing to plan against");
  if (unlimited) return;
  LETHE_CHECK(
      !opts_.eager,
      "SessionOptions: eager mode runs ops one at a time and cannot plan a step "
      "under a memory budget; use eager mode without memory_budget (for debugging) or drop eager");
  // The one budget parser of every tool (scheduler/budget.h): a text means the same everywhere.
  sched::BudgetSpec spec;
  try {
    spec = sched::parse_budget_spec(b);
  } catch (Error& e) {
    e.add_context("memory_budget: ");
    throw;
  }
  if (spec.fraction) {
    // A fraction of each step's own activations scales with the step: it bounds no batch size.
    LETHE_CHECK(!opts_.plan_only,
                "SessionOptions::plan_only needs a memory budget in bytes (e.g. "
                "\"512MiB\"), got the activation fraction '",
                b,
                "': a fraction of each step's own "
                "activations grows with the step, so it cannot tell which step fits");
    budget_fraction_ = spec.f;
    budget_kind_ = BudgetKind::fraction;
    return;
  }
  LETHE_CHECK(spec.bytes >= static_cast<int64_t>(kAlignment), "memory_budget '", b, "' is ",
              spec.bytes, " bytes, less than one ", kAlignment, "-byte buffer: write a unit (e.g. ",
              b, "MiB) or an activation fraction with a decimal point (e.g. 0.5)");
  budget_value_ = spec.bytes;
  budget_kind_ = BudgetKind::bytes;
  ensure_arena(static_cast<size_t>(budget_value_));
}

SessionState::~SessionState() = default;

bool SessionState::recording() const {
  return graph_ && !std::all_of(graph_->nodes.begin(), graph_->nodes.end(),
                                [](const Node& n) { return n.is_leaf(); });
}

void SessionState::enter_outside_budget() {
  LETHE_CHECK(!opts_.plan_only,
              "OutsideBudgetGuard: a plan-only session runs no step, inside its budget or "
              "outside it");
  LETHE_CHECK(!recording(),
              "OutsideBudgetGuard: a step is being recorded; make the guard before recording the "
              "step it is for");
  ++outside_budget_;
}

OutsideBudgetGuard::OutsideBudgetGuard() : session_(current_session()) {
  session_->enter_outside_budget();
}
OutsideBudgetGuard::~OutsideBudgetGuard() {
  session_->leave_outside_budget();
}

void SessionState::set_rng_state(const RngState& r) {
  LETHE_CHECK(!recording(),
              "set_rng_state: a step is being recorded; restore the random state between steps");
  opts_.seed = r.seed;
  step_ = r.step;
  rng_counter_ = r.next_stream;
  if (graph_) graph_->step = step_;
}

void SessionState::start_trace(const std::string& path) {
  LETHE_CHECK(!path.empty(), "start_trace: the trace file path is empty");
  stop_trace();
  tracer_ = std::make_unique<Tracer>(path);
}

void SessionState::stop_trace() {
  if (!tracer_) return;
  std::unique_ptr<Tracer> t = std::move(tracer_);
  t->write();
}

size_t SessionState::budget_bytes() const {
  return arena_ ? arena_->capacity() : 0;
}

void SessionState::ensure_arena(size_t bytes) {
  if (arena_) return;
  arena_ = Arena::create(bytes, opts_.device, backend_);
  // Values made before the budget was known (a fraction budget) move in now.
  for (auto& w : staged_) {
    auto st = w.lock();
    if (!st) continue;
    auto dst = arena_->allocate_persistent(st->bytes);
    LETHE_CHECK(dst != nullptr, "the memory budget of ", bytes,
                " bytes cannot even hold the session's parameters and state");
    std::vector<char> host(st->bytes);
    copy_to_host(*st, host.data(), host.size());
    copy_from_host(*dst, host.data(), host.size());
    // Swap the blocks: the user's handles keep the same Storage object, now inside the arena.
    std::swap(st->data, dst->data);
    std::swap(st->release, dst->release);
    note_persistent(st);
  }
  staged_.clear();
}

const std::shared_ptr<Graph>& SessionState::graph() {
  if (!graph_) {
    graph_ = std::make_shared<Graph>();
    graph_->session = this;
    graph_->step = step_;
  }
  return graph_;
}

std::function<std::shared_ptr<Storage>(size_t, bool)> SessionState::heap_buffers() {
  return [this](size_t bytes, bool) {
    auto s = heap_->allocate(bytes);
    s->device = opts_.device;
    s->context = backend_;
    return s;
  };
}

std::shared_ptr<Storage> SessionState::allocate(size_t bytes) {
  // Outside the budget (OutsideBudgetGuard), new tensors (an evaluation batch) go to the heap too.
  if (outside_budget_ > 0) return heap_buffers()(bytes, false);
  if (!arena_) {
    auto s = heap_buffers()(bytes, false);
    if (budget_kind_ == BudgetKind::fraction) staged_.push_back(s);
    return s;
  }
  auto s = arena_->allocate_persistent(bytes);
  // With a tier, parameters and optimizer state may move there to make room
  // (SessionOptions::offload_state: an optimizer's state made larger than the budget's room).
  if (s == nullptr && move_state_home()) s = arena_->allocate_persistent(bytes);
  if (s != nullptr) note_persistent(s);
  // An InfeasibleBudget (the budget is too small, not the program wrong): a batch too large for the
  // arena is a batch that does not fit (framework/max_batch.h). No smallest budget is known here.
  if (s == nullptr)
    throw InfeasibleBudget(
        detail::concat("memory budget exhausted: ", bytes,
                       " more bytes do not fit in the arena of ", arena_->capacity(), " bytes (",
                       arena_->persistent_bytes(),
                       " held by parameters, optimizer state and kept values); raise "
                       "memory_budget or hold fewer tensors"),
        0);
  return s;
}

namespace {

// Unlimited steps: every buffer from the session's heap. Traced memory: the heap's bytes in use
// (measured) and, predicted, the bytes in use when the step began plus the (aligned) values the
// schedule holds.
class HeapMemory final : public StepMemory {
 public:
  HeapMemory(const Graph& g, BufferFn heap, const Allocator& allocator)
      : g_(g),
        heap_(std::move(heap)),
        allocator_(allocator),
        base_(static_cast<int64_t>(allocator.in_use())) {}
  BufferFn buffers(size_t, int) override { return heap_; }
  BufferFn side_effect_buffers(int) override { return heap_; }
  BufferFn home_buffers(int, bool) override { return heap_; }
  std::pair<int64_t, int64_t> computed(size_t, int node, bool) override {
    live_ += bytes(node);
    return {static_cast<int64_t>(allocator_.in_use()), base_ + live_};
  }
  void freed(int node) override { live_ -= bytes(node); }

 private:
  int64_t bytes(int node) const { return g_.nodes[static_cast<size_t>(node)].buffer_bytes(); }
  const Graph& g_;
  BufferFn heap_;
  const Allocator& allocator_;
  int64_t base_, live_ = 0;
};

}  // namespace

DeviceStreams* SessionState::device_streams(int n) {
  if (!device_streams_ || device_stream_count_ < n) {
    device_streams_ = backend(opts_.device.kind).make_streams(backend_, n);
    device_stream_count_ = n;
  }
  return device_streams_.get();
}

void SessionState::report_comm(const Graph& g, const std::vector<ExecStep>& steps,
                               const ExecStats& st) {
  report_.buckets = 0;
  report_.allreduce_bytes = 0;
  for (const ExecStep& e : steps) {
    const Node& n = g.nodes[static_cast<size_t>(e.node)];
    if (!e.compute || !n.op || n.op->kind() != OpKind::all_reduce) continue;
    ++report_.buckets;
    report_.allreduce_bytes += n.meta.bytes();
  }
  report_.allreduce_seconds = st.comm_seconds;
  report_.allreduce_overlap_seconds = st.comm_overlap_seconds;
}

void SessionState::run_unlimited(Graph& g, const std::vector<int>& targets, bool side_effects,
                                 std::vector<std::shared_ptr<Storage>>& values) {
  heap_->reset_peak();
  const std::vector<ExecStep> steps = natural_steps(g, targets, side_effects);
  HeapMemory memory(g, heap_buffers(), *heap_);
  StepRun run;
  run.steps = &steps;
  run.memory = &memory;
  run.env = {opts_.seed, backend_.get(), opts_.detect_anomaly};
  run.timer = timer_.get();
  run.tracer = tracer_.get();
  // run_steps() returns once the device has finished the step: the time is the step's own.
  // Data parallel: the all-reduces on a communication stream beside the compute stream.
  std::vector<int> stream;
  std::vector<std::vector<int32_t>> after;
  if (opts_.data_parallel && side_effects) {
    const int k = comm_stream_plan(g, steps, stream, after);
    if (k > 1) {
      run.stream = &stream;
      run.after = &after;
      run.streams = k;
      run.threads_per_stream = threads_;
      run.comm_stream = k - 1;
      run.device_streams = device_streams(k);
    }
  }
  ExecStats st = run_settled(g, run, values);
  std::vector<double> seconds = std::move(st.first_seconds);
  report_ = StepReport{};
  report_.streams = st.streams;
  report_comm(g, steps, st);
  report_.seconds = st.seconds;
  report_.nodes = st.computed;
  report_.recomputed = st.recomputed;
  report_.peak_bytes = heap_->peak();
  report_.no_remat_peak_bytes = heap_->peak();
  report_.planner = "natural";
  if (side_effects) {
    uint64_t h = g.structural_hash();
    last_problem_ = std::make_shared<sched::Problem>(
        build_step_problem(g, targets, true, &seconds, CostModel::calibrated()).problem);
    measured_[h] = std::move(seconds);
  }
}

namespace {

// The values a step must compute: every one a user handle still points to (side effects are added
// by the runners).
std::vector<int> step_targets(const Graph& g) {
  std::vector<int> targets;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (!n.is_leaf() && !n.handle.expired() && !g.node_value(static_cast<int>(i)))
      targets.push_back(static_cast<int>(i));
  }
  return targets;
}

}  // namespace

void SessionState::flush() {
  if (!graph_) return;
  std::shared_ptr<Graph> g = graph_;
  const std::vector<int> targets = step_targets(*g);
  std::vector<std::shared_ptr<Storage>> values = g->values;
  const double trace_t0 = tracer_ ? tracer_->now_us() : 0.0;
  if (opts_.eager) {
    report_ = StepReport{};
    report_.planner = "eager";
    report_.peak_bytes = heap_->peak();
  } else if (plans_steps()) {
    if (!opts_.plan_only) dp_prepare_step(*g);
    run_budgeted(*g, targets, true, values);
  } else {
    dp_prepare_step(*g);
    run_unlimited(*g, targets, true, values);
  }
  report_.step = step_;
  if (tracer_) tracer_->slice(Tracer::Kind::step, "step", -1, step_, trace_t0, tracer_->now_us());
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    const Node& n = g->nodes[i];
    if (n.is_leaf()) continue;
    auto impl = n.handle.lock();
    if (!impl) continue;
    if (values.size() > i && values[i]) impl->storage = values[i];
    // A plan-only step computed nothing: its handles end with neither a value nor a graph, and
    // reading one says why (framework/tensor.cpp).
    LETHE_ASSERT(impl->storage != nullptr || opts_.plan_only);
    impl->detached_by_step = n.requires_grad;
    impl->graph.reset();
    impl->node = -1;
  }
  g->executed = true;
  g->values.clear();
  graph_.reset();
  ++step_;
}

std::shared_ptr<Storage> SessionState::compute_now(int id) {
  Graph& g = *graph();
  std::vector<std::shared_ptr<Storage>> values = g.values;
  StepReport saved = report_;
  if (plans_steps()) {
    // A fraction budget sizes the arena from the first step planned: that is the whole step as
    // recorded so far, not the part this read runs (which would make "0.5" half of the part).
    if (!arena_) compile(g, step_targets(g), true, g.structural_hash());
    try {
      run_budgeted(g, {id}, false, values);
    } catch (const InfeasibleBudget& part) {
      // The read runs only the part of the step that computes this value. A budget fitted to that
      // part would be refused again at the next read or at the end of the step: name the smallest
      // budget of the whole step (as recorded so far, with its side effects) instead.
      std::string whole_what;
      size_t whole_smallest = 0;
      try {
        compile(g, step_targets(g), true, g.structural_hash());
      } catch (const InfeasibleBudget& whole) {
        whole_what = whole.what();
        whole_smallest = whole.smallest_feasible_bytes;
      }
      if (whole_what.empty()) throw;
      const std::string part_fits =
          part.smallest_feasible_bytes > 0
              ? "that part alone fits " + std::to_string(part.smallest_feasible_bytes) + " bytes"
              : "no plan of that part alone was found either";
      throw InfeasibleBudget(
          "reading a value of step " + std::to_string(step_) +
              " runs only the part of the step that computes it (" + part_fits +
              "), but the budget must hold the whole step; for the whole step as recorded "
              "so far: " +
              whole_what,
          whole_smallest);
    }
  } else
    run_unlimited(g, {id}, false, values);
  report_ = saved;  // a partial read is not a step
  return values[static_cast<size_t>(id)];
}

void SessionState::run_eager(int id) {
  Graph& g = *graph();
  g.values.resize(g.nodes.size());
  compute_node({opts_.seed, backend_.get(), opts_.detect_anomaly}, g, id, g.values, heap_buffers());
}

Session::Session(SessionOptions o) : state_(std::make_shared<SessionState>(std::move(o))) {
  t_sessions.push_back(state_);
}

Session::~Session() {
  try {
    state_->stop_trace();
  } catch (const Error& e) {
    std::fprintf(stderr, "lethe: %s\n", e.what());
  }
  auto it = std::find(t_sessions.begin(), t_sessions.end(), state_);
  if (it != t_sessions.end()) t_sessions.erase(it);
}

const std::shared_ptr<SessionState>& current_session() {
  if (!t_sessions.empty()) return t_sessions.back();
  if (!t_default) t_default = std::make_shared<SessionState>(SessionOptions{});
  return t_default;
}

bool grad_enabled() {
  return t_grad_enabled;
}
NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) {
  t_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  t_grad_enabled = prev_;
}

int parse_streams(const std::string& text, const std::string& flag) {
  if (text == "auto") return kAutoStreams;
  size_t used = 0;
  long long n = 0;
  bool ok = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
            text.size() <= 6;
  if (ok) {
    n = std::stoll(text, &used);
    ok = used == text.size() && n >= 1;
  }
  LETHE_CHECK(ok, flag,
              ": expected a positive number of streams (1 runs every op in order on one stream) "
              "or 'auto' (the planner chooses per step), got '",
              text, "'");
  return static_cast<int>(n);
}

std::string StepReport::str() const {
  char buf[512];
  auto mib = [](size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
  if (budget_bytes == 0) {
    std::snprintf(buf, sizeof buf, "step %llu: unlimited memory, peak %.2f MiB, %zu ops, %.2f ms",
                  static_cast<unsigned long long>(step), mib(peak_bytes), nodes, seconds * 1e3);
  } else if (plan_only) {
    std::snprintf(
        buf, sizeof buf,
        "step %llu (plan only, not run): budget %.2f MiB, no-remat peak %.2f MiB, planner %s, "
        "predicted overhead %.3fx, %zu ops planned (%zu recomputed), planning %.2f ms%s",
        static_cast<unsigned long long>(step), mib(budget_bytes), mib(no_remat_peak_bytes),
        planner.c_str(), predicted_overhead, nodes, recomputed, planning_seconds * 1e3,
        plan_from_cache ? " (cached plan)" : "");
  } else {
    std::snprintf(
        buf, sizeof buf,
        "step %llu: budget %.2f MiB, arena peak %.2f MiB, no-remat peak %.2f MiB, planner %s, "
        "predicted overhead %.3fx, %zu ops (%zu recomputed), %.2f ms, planning %.2f ms%s%s",
        static_cast<unsigned long long>(step), mib(budget_bytes), mib(peak_bytes),
        mib(no_remat_peak_bytes), planner.c_str(), predicted_overhead, nodes, recomputed,
        seconds * 1e3, planning_seconds * 1e3, plan_from_cache ? " (cached plan)" : "",
        measured_costs ? "" : " (estimated costs)");
  }
  std::string out = buf;
  if (streams != 1 && !plan_only) {
    std::snprintf(buf, sizeof buf,
                  ", streams %d (predicted %.2f ms, two or more busy %.2f ms, recompute overlapped "
                  "%.2f of %.2f ms)",
                  streams, predicted_seconds * 1e3, parallel_seconds * 1e3,
                  overlapped_recompute_seconds * 1e3, recompute_seconds * 1e3);
    out += buf;
  }
  if (buckets > 0 && !plan_only) {
    std::snprintf(buf, sizeof buf,
                  ", all-reduce %zu buckets %.2f MiB in %.2f ms (%.2f ms hidden behind compute)",
                  buckets, mib(allreduce_bytes), allreduce_seconds * 1e3,
                  allreduce_overlap_seconds * 1e3);
    out += buf;
    if (allreduce_room_bytes > 0) {
      std::snprintf(buf, sizeof buf, ", planned %.2f MiB short for them",
                    mib(allreduce_room_bytes));
      out += buf;
    }
  }
  if (tier_home_bytes > 0) {
    std::snprintf(buf, sizeof buf, ", parameters and optimizer state in the second tier %.2f MiB",
                  mib(tier_home_bytes));
    out += buf;
  }
  if (!tier_plan.empty()) {
    std::snprintf(buf, sizeof buf,
                  ", second tier: %s plan, tier peak %.2f MiB, copied %.2f MiB out and %.2f MiB in "
                  "in %.2f ms (%.2f ms hidden behind compute)",
                  tier_plan.c_str(), mib(tier_peak_bytes), mib(copy_out_bytes), mib(copy_in_bytes),
                  copy_seconds * 1e3, copy_hidden_seconds * 1e3);
    out += buf;
    if (tier_trial) out += " (measuring the plans of each kind)";
    for (size_t i = 0; i < tier_measured.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%s%s %.2f ms", i == 0 ? ", plans measured: " : ", ",
                    tier_measured[i].first.c_str(), tier_measured[i].second * 1e3);
      out += buf;
    }
  }
  return out;
}

}  // namespace lethe

#include "framework/session.h"

#include <omp.h>

#include <algorithm>
#include <chrono>

#include "framework/error.h"
#include "framework/executor.h"
#include "framework/tensor.h"

extern "C" void openblas_set_num_threads(int);

namespace lethe {
namespace {

thread_local std::vector<std::shared_ptr<SessionState>> t_sessions;
thread_local std::shared_ptr<SessionState> t_default;
thread_local bool t_grad_enabled = true;

}  // namespace

SessionState::SessionState(SessionOptions o) : opts_(std::move(o)), allocator_(make_heap_allocator()) {
  if (opts_.num_threads > 0) {
    omp_set_num_threads(opts_.num_threads);
    openblas_set_num_threads(opts_.num_threads);
  }
}

SessionState::~SessionState() = default;

const std::shared_ptr<Graph>& SessionState::graph() {
  if (!graph_) {
    graph_ = std::make_shared<Graph>();
    graph_->session = this;
    graph_->step = step_;
  }
  return graph_;
}

std::shared_ptr<Storage> SessionState::allocate(size_t bytes) { return allocator_->allocate(bytes); }

void SessionState::flush() {
  if (!graph_) return;
  std::shared_ptr<Graph> g = graph_;
  // Targets: every value a user handle still points to, and every side effect.
  std::vector<int> targets;
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    const Node& n = g->nodes[i];
    if (n.is_leaf()) continue;
    if (!n.handle.expired()) targets.push_back(static_cast<int>(i));
  }
  auto t0 = std::chrono::steady_clock::now();
  allocator_->reset_peak();
  std::vector<std::shared_ptr<Storage>> values = g->values;
  ExecStats st;
  if (!opts_.eager) {
    st = execute_steps(*this, *g, natural_steps(*g, targets), values);
  }
  auto t1 = std::chrono::steady_clock::now();
  for (int id : targets) {
    auto impl = g->nodes[static_cast<size_t>(id)].handle.lock();
    if (!impl) continue;
    impl->storage = values[static_cast<size_t>(id)];
    LETHE_ASSERT(impl->storage != nullptr);
    impl->graph.reset();
    impl->node = -1;
  }
  report_ = StepReport{};
  report_.step = step_;
  report_.nodes = st.computed;
  report_.recomputed = st.recomputed;
  report_.peak_bytes = allocator_->peak();
  report_.seconds = std::chrono::duration<double>(t1 - t0).count();
  g->executed = true;
  g->values.clear();
  graph_.reset();
  ++step_;
}

std::shared_ptr<Storage> SessionState::compute_now(int id) {
  Graph& g = *graph();
  std::vector<std::shared_ptr<Storage>> values = g.values;
  execute_steps(*this, g, natural_steps(g, {id}, /*side_effects=*/false), values);
  return values[static_cast<size_t>(id)];
}

void SessionState::run_eager(int id) {
  Graph& g = *graph();
  g.values.resize(g.nodes.size());
  compute_node(*this, g, id, g.values);
}

Session::Session(SessionOptions o) : state_(std::make_shared<SessionState>(std::move(o))) {
  t_sessions.push_back(state_);
}

Session::~Session() {
  auto it = std::find(t_sessions.begin(), t_sessions.end(), state_);
  if (it != t_sessions.end()) t_sessions.erase(it);
}

const std::shared_ptr<SessionState>& current_session() {
  if (!t_sessions.empty()) return t_sessions.back();
  if (!t_default) t_default = std::make_shared<SessionState>(SessionOptions{});
  return t_default;
}

bool grad_enabled() { return t_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = prev_; }

}  // namespace lethe

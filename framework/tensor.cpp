#include "framework/tensor.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "framework/error.h"
#include "framework/session.h"

namespace lethe {
namespace {

const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl, const char* what) {
  LETHE_CHECK(impl != nullptr, what,
              ": the tensor is undefined (default-constructed or moved from)");
  return *impl;
}

// The node of `impl` in graph g, creating a leaf for a materialised value.
int node_in(Graph& g, const std::shared_ptr<TensorImpl>& impl, const std::string& op) {
  if (impl->graph.get() == &g) return impl->node;
  if (impl->storage) return g.leaf_for(impl->storage, impl->meta, impl, impl->requires_grad);
  LETHE_CHECK(impl->graph != nullptr || !impl->session || !impl->session->options().plan_only, op,
              ": an input is a value of an earlier step of a plan-only session (SessionOptions::"
              "plan_only), which was planned but not computed");
  LETHE_CHECK(
      impl->graph == nullptr || !impl->graph->executed, op, ": an input is a value of step ",
      impl->graph ? impl->graph->step : 0,
      " that was not kept (no Tensor handle held it when that step ran); hold a Tensor to it "
      "before the step runs, or recompute it");
  throw Error(op + ": an input belongs to a step graph that is not this session's current one");
}

}  // namespace

const Shape& Tensor::shape() const {
  return checked(impl_, "shape()").meta.shape;
}
DType Tensor::dtype() const {
  return checked(impl_, "dtype()").meta.dtype;
}
Device Tensor::device() const {
  return checked(impl_, "device()").meta.device;
}
const TensorMeta& Tensor::meta() const {
  return checked(impl_, "meta()").meta;
}
const std::string& Tensor::name() const {
  return checked(impl_, "name()").name;
}
Tensor& Tensor::set_name(std::string n) {
  checked(impl_, "set_name()");
  impl_->name = std::move(n);
  if (impl_->graph && impl_->node >= 0)
    impl_->graph->nodes[static_cast<size_t>(impl_->node)].name = impl_->name;
  return *this;
}

bool Tensor::requires_grad() const {
  const TensorImpl& t = checked(impl_, "requires_grad()");
  if (t.graph && t.node >= 0 && !t.graph->executed)
    return t.graph->nodes[static_cast<size_t>(t.node)].requires_grad;
  return t.requires_grad;
}

Tensor& Tensor::set_requires_grad(bool r) {
  const TensorImpl& t = checked(impl_, "set_requires_grad()");
  LETHE_CHECK(t.graph == nullptr,
              "set_requires_grad(): only materialised tensors (parameters, created tensors) can be "
              "marked; this one is the pending result of an op");
  LETHE_CHECK(!r || is_floating(t.meta.dtype), "set_requires_grad(): a ", dtype_name(t.meta.dtype),
              " tensor cannot require a gradient (expected f32 or f64)");
  impl_->requires_grad = r;
  if (r) {
    impl_->role = StorageRole::parameter;
    if (impl_->storage) impl_->storage->role = StorageRole::parameter;
  }
  return *this;
}

bool Tensor::has_grad() const {
  return checked(impl_, "has_grad()").grad != nullptr;
}

Tensor Tensor::grad() const {
  const TensorImpl& t = checked(impl_, "grad()");
  LETHE_CHECK(t.grad != nullptr, "grad(): no gradient was computed for this tensor",
              t.name.empty() ? "" : " ('" + t.name + "')",
              t.requires_grad ? " yet: call loss.backward() on a loss that depends on it first"
                              : ": it does not require a gradient (call set_requires_grad(true) "
                                "before recording the ops)");
  return Tensor(t.grad);
}

void Tensor::zero_grad() {
  checked(impl_, "zero_grad()");
  impl_->grad.reset();
}

void Tensor::set_grad(const Tensor& g) {
  const TensorImpl& t = checked(impl_, "set_grad()");
  const TensorImpl& gi = checked(g.impl_, "set_grad(): the gradient");
  LETHE_CHECK(t.requires_grad, "set_grad(): this tensor",
              t.name.empty() ? "" : " ('" + t.name + "')",
              " does not require a gradient (call set_requires_grad(true) first)");
  LETHE_CHECK(gi.meta.shape == t.meta.shape && gi.meta.dtype == t.meta.dtype,
              "set_grad(): the gradient is ", dtype_name(gi.meta.dtype), gi.meta.shape.str(),
              ", the tensor ", dtype_name(t.meta.dtype), t.meta.shape.str(), ": they must match");
  LETHE_CHECK(gi.session == t.session, "set_grad(): the gradient belongs to another session");
  if (gi.graph && gi.node >= 0) gi.graph->nodes[static_cast<size_t>(gi.node)].is_gradient = true;
  impl_->grad = g.impl_;
}

bool Tensor::is_materialised() const {
  return checked(impl_, "is_materialised()").storage != nullptr;
}

// Where a value can be read from (computing it when needed).
static std::shared_ptr<Storage> value_storage(const std::shared_ptr<TensorImpl>& impl,
                                              const char* what) {
  checked(impl, what);
  if (impl->storage) return impl->storage;
  LETHE_CHECK(
      !impl->session || !impl->session->options().plan_only, what,
      ": the session is plan-only (SessionOptions::plan_only): its steps are planned under the "
      "memory budget but never run, so no value they compute can be read");
  Graph* g = impl->graph.get();
  LETHE_ASSERT(g != nullptr);
  LETHE_CHECK(!g->executed, what, ": this value belongs to step ", g->step,
              ", which has run without keeping it; hold a Tensor handle to it while the step runs");
  SessionState& s = *impl->session;
  if (g->node_value(impl->node)) return g->node_value(impl->node);
  if (!g->has_grad && !g->has_side_effects && s.graph().get() == g) {
    // A pure inference graph: run the whole step; live handles (this one too) are kept.
    s.flush();
    LETHE_ASSERT(impl->storage != nullptr);
    return impl->storage;
  }
  impl->storage = s.compute_now(impl->node);
  return impl->storage;
}

namespace {
template <typename T>
std::vector<T> read_as(const TensorImpl& t, const Storage& st) {
  size_t n = static_cast<size_t>(t.meta.numel());
  std::vector<T> out(n);
  auto convert = [&](auto tag) {
    using S = decltype(tag);
    std::vector<S> raw(n);
    copy_to_host(st, raw.data(), n * sizeof(S));
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<T>(raw[i]);
  };
  dispatch_all(t.meta.dtype, convert);
  return out;
}
}  // namespace

template <typename T>
T Tensor::item() const {
  auto st = value_storage(impl_, "item()");
  LETHE_CHECK(impl_->meta.numel() == 1, "item(): expected a tensor with one element, got shape ",
              impl_->meta.shape.str(), "; reduce it first (sum(), mean()) or use to_vector()");
  return read_as<T>(*impl_, *st)[0];
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  auto st = value_storage(impl_, "to_vector()");
  return read_as<T>(*impl_, *st);
}

template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int64_t Tensor::item<int64_t>() const;
template int Tensor::item<int>() const;
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<int> Tensor::to_vector<int>() const;

void Tensor::assign(const Tensor& src) {
  const TensorImpl& t = checked(impl_, "assign()");
  LETHE_CHECK(src.defined(), "assign(): the source tensor is undefined");
  LETHE_CHECK(t.storage != nullptr && t.graph == nullptr,
              "assign(): only materialised tensors (parameters, buffers) can be assigned a value");
  LETHE_CHECK(src.shape() == t.meta.shape && src.dtype() == t.meta.dtype, "assign(): expected ",
              t.meta.str(), ", got ", src.meta().str());
  auto st = value_storage(src.impl(), "assign()");
  std::vector<char> host(t.meta.bytes());
  copy_to_host(*st, host.data(), host.size());
  copy_from_host(*impl_->storage, host.data(), host.size());
}

std::vector<unsigned char> Tensor::to_bytes() const {
  auto st = value_storage(impl_, "to_bytes()");
  std::vector<unsigned char> host(impl_->meta.bytes());
  copy_to_host(*st, host.data(), host.size());
  return host;
}

void Tensor::assign_bytes(const void* data, size_t bytes) {
  const TensorImpl& t = checked(impl_, "assign_bytes()");
  LETHE_CHECK(t.storage != nullptr && t.graph == nullptr,
              "assign_bytes(): only materialised tensors (parameters, buffers, state) can be "
              "assigned a value");
  LETHE_CHECK(bytes == t.meta.bytes(), "assign_bytes(): ", t.meta.str(), " holds ", t.meta.bytes(),
              " bytes, got ", bytes);
  copy_from_host(*impl_->storage, data, bytes);
}

Tensor tensor_from_bytes(const std::shared_ptr<SessionState>& s, const Shape& shape, DType dtype,
                         const void* bytes, size_t n) {
  LETHE_ASSERT(s != nullptr);
  const TensorMeta meta{shape, dtype, s->device()};
  LETHE_CHECK(n == meta.bytes(), "tensor_from_bytes: ", meta.str(), " holds ", meta.bytes(),
              " bytes, got ", n);
  auto st = s->allocate(meta.bytes());
  st->device = meta.device;
  copy_from_host(*st, bytes, n);
  return make_materialised(s, meta, std::move(st));
}

Tensor make_materialised(const std::shared_ptr<SessionState>& s, const TensorMeta& meta,
                         std::shared_ptr<Storage> storage) {
  auto impl = std::make_shared<TensorImpl>();
  impl->session = s;
  impl->meta = meta;
  impl->storage = std::move(storage);
  return Tensor(impl);
}

Tensor tensor_for_node(const std::shared_ptr<Graph>& g, int id) {
  Node& n = g->nodes[static_cast<size_t>(id)];
  if (auto h = n.handle.lock()) return Tensor(h);
  auto impl = std::make_shared<TensorImpl>();
  impl->session = g->session->shared_from_this();
  impl->meta = n.meta;
  if (n.is_leaf()) {
    impl->storage = n.leaf;
    impl->requires_grad = n.requires_grad;
  } else {
    impl->graph = g;
    impl->node = id;
  }
  n.handle = impl;
  return Tensor(impl);
}

Tensor record(std::shared_ptr<const Op> op, const std::vector<Tensor>& inputs,
              const std::shared_ptr<SessionState>& session) {
  std::shared_ptr<SessionState> s = session;
  for (size_t i = 0; i < inputs.size(); ++i) {
    LETHE_CHECK(inputs[i].defined(), op->name(), ": input ", i, " is an undefined tensor");
    const auto& is = inputs[i].impl()->session;
    if (!s) s = is;
    LETHE_CHECK(is == s, op->name(), ": input ", i,
                " belongs to another session; tensors of two sessions cannot be mixed");
  }
  if (!s) s = current_session();
  const std::shared_ptr<Graph>& g = s->graph();
  std::vector<TensorMeta> metas;
  std::vector<int> ids;
  metas.reserve(inputs.size());
  ids.reserve(inputs.size());
  bool needs_grad = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& impl = inputs[i].impl();
    if (i > 0)
      LETHE_CHECK(impl->meta.device == metas[0].device, op->name(), ": input 0 is on ",
                  metas[0].device.str(), " but input ", i, " is on ", impl->meta.device.str(),
                  "; move them to one device");
    metas.push_back(impl->meta);
    int id = node_in(*g, impl, op->name());
    ids.push_back(id);
    needs_grad = needs_grad || g->nodes[static_cast<size_t>(id)].requires_grad;
  }
  TensorMeta out = op->infer(metas);
  out.device = metas.empty() ? s->device() : metas[0].device;
  Node n;
  n.op = std::move(op);
  n.inputs = std::move(ids);
  n.meta = out;
  n.requires_grad =
      needs_grad && grad_enabled() && n.op->differentiable() && is_floating(out.dtype);
  if (!n.op->mutated_inputs().empty()) g->has_side_effects = true;
  if (n.requires_grad) g->has_grad = true;
  auto impl = std::make_shared<TensorImpl>();
  impl->session = s;
  impl->meta = out;
  impl->graph = g;
  impl->node = static_cast<int>(g->nodes.size());
  n.handle = impl;
  g->nodes.push_back(std::move(n));
  if (s->options().eager) s->run_eager(impl->node);
  return Tensor(impl);
}

// ---------------------------------------------------------------- printing

namespace {

struct Formatter {
  bool is_int = false;
  bool sci = false;
  int width = 1;
  std::string fmt(double v) const {
    char buf[64];
    if (is_int)
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    else if (std::isnan(v))
      std::snprintf(buf, sizeof buf, "nan");
    else if (std::isinf(v))
      std::snprintf(buf, sizeof buf, v > 0 ? "inf" : "-inf");
    else if (sci)
      std::snprintf(buf, sizeof buf, "%.4e", v);
    else
      std::snprintf(buf, sizeof buf, "%.4f", v);
    return buf;
  }
};

void print_rec(std::ostream& os, const std::vector<double>& v, const Shape& s, int dim,
               int64_t offset, const std::vector<int64_t>& strides, const Formatter& f,
               bool summarise, int indent) {
  const int64_t edge = 3;
  if (s.ndim() == 0) {
    os << f.fmt(v[0]);
    return;
  }
  os << '[';
  int64_t n = s[dim];
  auto emit = [&](int64_t i, bool first) {
    if (!first) {
      if (dim == s.ndim() - 1) {
        os << ", ";
      } else {
        os << ',';
        for (int k = 0; k < s.ndim() - 1 - dim; ++k) os << '\n';
        os << std::string(static_cast<size_t>(indent + 1), ' ');
      }
    }
    int64_t off = offset + i * strides[static_cast<size_t>(dim)];
    if (dim == s.ndim() - 1) {
      std::string t = f.fmt(v[static_cast<size_t>(off)]);
      os << std::string(static_cast<size_t>(std::max<int>(0, f.width - static_cast<int>(t.size()))),
                        ' ')
         << t;
    } else {
      print_rec(os, v, s, dim + 1, off, strides, f, summarise, indent + 1);
    }
  };
  if (summarise && n > 2 * edge) {
    for (int64_t i = 0; i < edge; ++i) emit(i, i == 0);
    if (dim == s.ndim() - 1) {
      os << ", ...";
    } else {
      os << ",\n" << std::string(static_cast<size_t>(indent + 1), ' ') << "...";
    }
    for (int64_t i = n - edge; i < n; ++i) emit(i, false);
  } else {
    for (int64_t i = 0; i < n; ++i) emit(i, i == 0);
  }
  os << ']';
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  std::vector<double> v = t.to_vector<double>();
  Formatter f;
  f.is_int = t.dtype() == DType::i64;
  double amax = 0, amin = INFINITY;
  for (double x : v) {
    if (!std::isfinite(x)) continue;
    amax = std::max(amax, std::fabs(x));
    if (x != 0) amin = std::min(amin, std::fabs(x));
  }
  f.sci = !f.is_int && (amax >= 1e8 || (amin < 1e-4 && amin != INFINITY));
  bool summarise = t.numel() > 1000;
  for (double x : v) f.width = std::max(f.width, static_cast<int>(f.fmt(x).size()));
  os << "tensor(";
  print_rec(os, v, t.shape(), 0, 0, t.shape().strides(), f, summarise, 7);
  os << ", shape=" << t.shape().str() << ", dtype=" << dtype_name(t.dtype())
     << ", device=" << t.device().str();
  if (t.requires_grad()) os << ", requires_grad=true";
  return os << ')';
}

}  // namespace lethe

// Tensor: a handle to a value that is either materialised (a parameter, the batch, a kept result)
// or pending in the session's step graph. Ops record nodes; values are computed when the step runs
// (optimizer.step(), item(), to_vector()) or at once in eager mode.
//
//   lethe::Session session;                          // CPU, unlimited memory
//   auto x = lethe::randn({4, 3});
//   auto w = lethe::randn({3, 2}).set_requires_grad(true);
//   auto loss = lethe::matmul(x, w).relu().sum();
//   loss.backward();
//   std::cout << loss.item() << "\n" << w.grad() << "\n";
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "framework/device.h"
#include "framework/dtype.h"
#include "framework/graph.h"
#include "framework/op.h"
#include "framework/shape.h"
#include "framework/storage.h"

namespace lethe {

class SessionState;

struct TensorImpl {
  std::shared_ptr<SessionState> session;
  TensorMeta meta;
  std::shared_ptr<Storage> storage;  // the value, once materialised
  std::shared_ptr<Graph> graph;      // the graph it is pending in (null when materialised)
  int node = -1;
  bool requires_grad = false;        // leaves: parameters
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  std::string name;
  StorageRole role = StorageRole::other;
  bool detached_by_step = false;  // a result that required grad, kept past the end of its step
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int dim() const { return shape().ndim(); }
  int64_t size(int d) const { return shape().at(d); }
  int64_t numel() const { return shape().numel(); }
  DType dtype() const;
  Device device() const;
  const TensorMeta& meta() const;
  const std::string& name() const;
  Tensor& set_name(std::string n);

  // Autograd.
  bool requires_grad() const;
  Tensor& set_requires_grad(bool r);  // only on materialised leaves (parameters)
  bool has_grad() const;
  Tensor grad() const;  // throws when no gradient was computed
  void zero_grad();     // drops the gradient (PyTorch's set_to_none)
  // Replaces the gradient (of the same shape and dtype, in the same session) that the optimizer's
  // next step() uses: how gradients are changed before step() (optim/clip_grad.h), as PyTorch's
  // `p.grad = g`. A gradient recorded in the step stays a node of the step, planned as the others.
  void set_grad(const Tensor& g);
  // Appends the gradient nodes of this (pending) result to the step and accumulates into the
  // parameters' grad(). As in PyTorch, a second backward() through the same part of the step
  // throws, since it would add the same contributions again; pass retain_graph = true to the
  // earlier backward() to accumulate on purpose (e.g. two losses sharing a trunk).
  void backward(const Tensor& grad_output = Tensor(), bool retain_graph = false) const;
  Tensor detach() const;  // same value, no gradient history

  // Reading values (executes what is needed).
  template <typename T = double>
  T item() const;
  template <typename T>
  std::vector<T> to_vector() const;
  bool is_materialised() const;
  // Replaces this leaf's value with src's (shapes and dtypes must match); used by initialisers and
  // to load weights. Not recorded.
  void assign(const Tensor& src);
  // The value as raw little-endian bytes on the host (numel x element size), for serialisation.
  std::vector<unsigned char> to_bytes() const;
  // Replaces this materialised tensor's value with `bytes` raw bytes (exactly its size). Not
  // recorded.
  void assign_bytes(const void* data, size_t bytes);

  // Shape ops.
  Tensor reshape(const Shape& s) const;
  Tensor view(const Shape& s) const { return reshape(s); }
  Tensor flatten(int start_dim = 0, int end_dim = -1) const;
  Tensor transpose(int d0, int d1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor permute(const std::vector<int>& dims) const;
  Tensor slice(int axis, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor unsqueeze(int d) const;
  Tensor squeeze(int d) const;
  Tensor to(DType t) const;

  // Elementwise.
  Tensor neg() const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor pow(double e) const;
  Tensor relu() const;
  Tensor sigmoid() const;
  Tensor tanh() const;
  Tensor abs() const;
  Tensor sign() const;
  Tensor log1p() const;
  Tensor expm1() const;
  Tensor pow(const Tensor& e) const;
  Tensor clamp(std::optional<double> min, std::optional<double> max = std::nullopt) const;
  Tensor minimum(const Tensor& o) const;
  Tensor maximum(const Tensor& o) const;

  // Comparisons: i64 masks of 0 and 1 (Lethe has no bool dtype), no gradient (ops/compare.h).
  Tensor eq(const Tensor& o) const;
  Tensor ne(const Tensor& o) const;
  Tensor lt(const Tensor& o) const;
  Tensor le(const Tensor& o) const;
  Tensor gt(const Tensor& o) const;
  Tensor ge(const Tensor& o) const;
  Tensor eq(double s) const;
  Tensor ne(double s) const;
  Tensor lt(double s) const;
  Tensor le(double s) const;
  Tensor gt(double s) const;
  Tensor ge(double s) const;
  // torch's x.where(cond, y): x where cond is nonzero, else y.
  Tensor where(const Tensor& cond, const Tensor& other) const;

  // Indexing by i64 tensors (ops/indexing.h).
  Tensor gather(int dim, const Tensor& index) const;
  Tensor scatter_add(int dim, const Tensor& index, const Tensor& src) const;
  Tensor index_select(int dim, const Tensor& index) const;

  // Reductions (empty axes = all axes).
  Tensor sum(const std::vector<int>& axes = {}, bool keepdim = false) const;
  Tensor mean(const std::vector<int>& axes = {}, bool keepdim = false) const;
  Tensor max(int axis, bool keepdim = false) const;
  Tensor argmax(int axis, bool keepdim = false) const;
  Tensor min(int axis, bool keepdim = false) const;
  Tensor argmin(int axis, bool keepdim = false) const;
  Tensor cumsum(int axis) const;

  Tensor matmul(const Tensor& o) const;

  const std::shared_ptr<TensorImpl>& impl() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
Tensor operator-(const Tensor& a);

// Printing as PyTorch does: values (truncated beyond 1000 elements), then shape, dtype and device.
std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Records `op` applied to `inputs` on the step graph of their session and returns its output.
// Checks that the inputs are defined, share a session and a device; infers shape and dtype.
// An op without inputs records on `session` (default: the current session).
Tensor record(std::shared_ptr<const Op> op, const std::vector<Tensor>& inputs,
              const std::shared_ptr<SessionState>& session = nullptr);

// A handle on node `id` of graph g (reusing the live handle when there is one).
Tensor tensor_for_node(const std::shared_ptr<Graph>& g, int id);

// A materialised tensor of session `s` (on its device, in its arena or heap) holding `bytes`, the
// raw little-endian value (exactly shape.numel() x the element size).
Tensor tensor_from_bytes(const std::shared_ptr<SessionState>& s, const Shape& shape, DType dtype,
                         const void* bytes, size_t n);

// Materialises a tensor from a storage that already holds its value (no recording).
Tensor make_materialised(const std::shared_ptr<SessionState>& s, const TensorMeta& meta,
                         std::shared_ptr<Storage> storage);

}  // namespace lethe

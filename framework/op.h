// One primitive operation: shape/dtype inference, a cost estimate, a CPU kernel and a gradient
// rule. An op object holds its attributes (stride, axis, ...) and is immutable once recorded.
//
//   class ReluOp final : public Op {
//     OpKind kind() const override { return OpKind::relu; }
//     TensorMeta infer(const std::vector<TensorMeta>& in) const override { return in[0]; }
//     void cpu(const KernelCall& k) const override { ... k.in<float>(0) ... k.out<float>() ... }
//     std::vector<Tensor> backward(const BackwardCtx& c) const override { ... recorded ops ... }
//   };
//   Tensor relu(const Tensor& x) { return record(std::make_shared<ReluOp>(), {x}); }
//
// An op with attributes keeps them in a public struct of ops/attrs.h and returns it from
// attrs_ref(); other backends read them typed, never from the text of attrs():
//
//   const SoftmaxAttrs& a = op.attrs_as<SoftmaxAttrs>();   // checked: the op's struct is that type
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

#include "framework/backend.h"  // run_kernel, kernel_workspace_bytes
#include "framework/device.h"
#include "framework/dtype.h"
#include "framework/error.h"
#include "framework/op_kind.h"
#include "framework/shape.h"

namespace lethe {

class Tensor;

struct TensorMeta {
  Shape shape;
  DType dtype = DType::f32;
  Device device;

  int64_t numel() const { return shape.numel(); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool operator==(const TensorMeta&) const = default;
  std::string str() const;  // "f32[2, 3] on cpu"
};

struct OpCost {
  double flops = 0;  // floating-point operations
  double bytes = 0;  // bytes read + written
};

// Everything a kernel sees: raw pointers into buffers placed by the executor.
struct KernelCall {
  std::vector<void*> inputs;  // input buffers (writable only for mutated_inputs())
  std::vector<const TensorMeta*> in_meta;
  void* output = nullptr;
  const TensorMeta* out_meta = nullptr;
  void* workspace = nullptr;  // workspace_bytes() bytes, 64-byte aligned
  size_t workspace_bytes = 0;
  uint64_t seed = 0;       // session seed
  uint64_t step = 0;       // step index (random ops key their stream on it)
  int64_t node = 0;        // node id in the step graph
  void* stream = nullptr;  // backend context (CUDA: the session's stream and
                           // library handles, framework/cuda/context.h); null on CPU

  template <typename T>
  const T* in(size_t i) const {
    return static_cast<const T*>(inputs[i]);
  }
  template <typename T>
  T* in_mut(size_t i) const {
    return static_cast<T*>(inputs[i]);
  }
  template <typename T>
  T* out() const {
    return static_cast<T*>(output);
  }
  const Shape& in_shape(size_t i) const { return in_meta[i]->shape; }
  const Shape& out_shape() const { return out_meta->shape; }
};

// What a gradient rule sees. Rules record ordinary ops on these tensors (under no_grad), so the
// gradient is part of the step graph that the scheduler plans.
struct BackwardCtx {
  std::vector<Tensor> inputs;
  std::vector<bool> needs_grad;  // one per input
  const Tensor& output;
  const Tensor& grad_output;
};

// A typed view of an op's attribute struct (what attrs_ref() returns).
struct AttrsRef {
  const void* data = nullptr;
  const std::type_info* type = nullptr;
  template <typename A>
  static AttrsRef of(const A& a) {
    return AttrsRef{&a, &typeid(A)};
  }
};

class Op {
 public:
  virtual ~Op() = default;
  virtual OpKind kind() const = 0;
  std::string name() const { return op_kind_name(kind()); }
  // The op's attribute struct (ops/attrs.h), as the type it is; throws lethe::Error when the op
  // holds another type (or none): a kernel reading the wrong struct is a bug, never a
  // reinterpretation.
  template <typename A>
  const A& attrs_as() const {
    const AttrsRef r = attrs_ref();
    LETHE_CHECK(r.data != nullptr && r.type != nullptr && *r.type == typeid(A),
                "internal error: ", name(), "'s attributes are not a ", typeid(A).name());
    return *static_cast<const A*>(r.data);
  }
  // Attributes as text ("stride=2,padding=1"): part of the graph's structural hash and of exports.
  virtual std::string attrs() const { return {}; }
  // Output meta from input metas; throws lethe::Error naming the op and the shapes on mismatch.
  virtual TensorMeta infer(const std::vector<TensorMeta>& in) const = 0;
  virtual void cpu(const KernelCall& k) const = 0;
  // Default: flops = output elements, bytes = all inputs + output.
  virtual OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const;
  // Extra scratch memory the CPU kernel needs (im2col buffers, ...); placed in the session's arena.
  // Other devices size their kernels' workspaces in their Backend (kernel_workspace_bytes).
  virtual size_t workspace_bytes(const std::vector<TensorMeta>& /*in*/,
                                 const TensorMeta& /*out*/) const {
    return 0;
  }
  // One gradient per input (an undefined Tensor where not needed or not differentiable).
  virtual std::vector<Tensor> backward(const BackwardCtx& ctx) const;
  virtual bool differentiable() const { return true; }
  // Inputs this op overwrites in place (side-effect ops: optimizer updates, running statistics).
  // Such a node runs exactly once, after every read of those inputs.
  virtual std::vector<int> mutated_inputs() const { return {}; }

 protected:
  // The attribute struct of ops that have one (AttrsRef::of(attrs_)); none by default.
  virtual AttrsRef attrs_ref() const { return {}; }
};

}  // namespace lethe

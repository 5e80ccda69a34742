#include "ops/comm.h"

#include <cstring>
#include <string>

#include "dist/dist.h"
#include "framework/error.h"
#include "framework/step_problem.h"
#include "ops/attrs.h"

namespace lethe {

namespace {

class AllReduceOp final : public Op {
 public:
  AllReduceOp(int64_t numel, int bucket, bool ordered) : a_{numel, bucket, ordered} {}
  OpKind kind() const override { return OpKind::all_reduce; }
  std::string attrs() const override {
    return "numel=" + std::to_string(a_.numel) + ",bucket=" + std::to_string(a_.bucket) +
           (a_.ordered ? ",ordered" : "");
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(in.size() > (a_.ordered ? 1u : 0u),
                "all_reduce: a bucket needs at least one gradient");
    int64_t numel = 0;
    for (size_t i = 0; i < packed(in.size()); ++i) {
      LETHE_CHECK(in[i].dtype == in[0].dtype && is_floating(in[i].dtype), "all_reduce: gradient ",
                  i, " is ", in[i].str(),
                  "; a bucket holds f32 or f64 values of one dtype (gradient 0 is ", in[0].str(),
                  ")");
      numel += in[i].numel();
    }
    LETHE_CHECK(numel == a_.numel, "all_reduce: the gradients hold ", numel, " values, the bucket ",
                a_.numel);
    return TensorMeta{Shape{dist::bucket_elements(numel)}, in[0].dtype, in[0].device};
  }
  // The collectives' time at the bandwidth dist::init() measured, in the cost model's bytes.
  OpCost cost(const std::vector<TensorMeta>& in, const TensorMeta& out) const override {
    const double wire = dist::allreduce_seconds(out.bytes()) * CostModel::calibrated().bytes_per_s;
    return {static_cast<double>(out.numel()), 2.0 * static_cast<double>(out.bytes()) + wire};
  }
  // The other ranks' shares of this rank's chunk arrive here.
  size_t workspace_bytes(const std::vector<TensorMeta>&, const TensorMeta& out) const override {
    return dist::world_size() > 1 ? out.bytes() : 0;
  }
  // The inputs packed into the bucket (all but the ordering input).
  size_t packed(size_t inputs) const { return inputs - (a_.ordered ? 1 : 0); }
  void cpu(const KernelCall& c) const override {
    char* out = static_cast<char*>(c.output);
    size_t at = 0;
    for (size_t i = 0; i < packed(c.inputs.size()); ++i) {
      const size_t b = c.in_meta[i]->bytes();
      std::memcpy(out + at, c.inputs[i], b);
      at += b;
    }
    std::memset(out + at, 0, c.out_meta->bytes() - at);
    dist::detail::allreduce_mean(c.output, c.workspace, c.out_meta->numel(), c.out_meta->dtype,
                                 "the all-reduce of gradient bucket " + std::to_string(a_.bucket) +
                                     " of step " + std::to_string(c.step));
  }
  bool differentiable() const override { return false; }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  AllReduceAttrs a_;
};

class BucketSliceOp final : public Op {
 public:
  BucketSliceOp(int64_t offset, Shape shape) : shape_(std::move(shape)), a_{offset} {}
  OpKind kind() const override { return OpKind::bucket_slice; }
  std::string attrs() const override {
    return "offset=" + std::to_string(a_.offset) + ",shape=" + shape_.str();
  }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override {
    LETHE_CHECK(in.size() == 1 && in[0].shape.ndim() == 1,
                "bucket_slice: expected one flat bucket");
    LETHE_CHECK(a_.offset >= 0 && a_.offset + shape_.numel() <= in[0].numel(),
                "bucket_slice: values [", a_.offset, ", ", a_.offset + shape_.numel(),
                ") lie outside a bucket of ", in[0].numel());
    return TensorMeta{shape_, in[0].dtype, in[0].device};
  }
  OpCost cost(const std::vector<TensorMeta>&, const TensorMeta& out) const override {
    return {0, 2.0 * static_cast<double>(out.bytes())};
  }
  void cpu(const KernelCall& c) const override {
    std::memcpy(c.output,
                static_cast<const char*>(c.inputs[0]) +
                    a_.offset * static_cast<int64_t>(dtype_size(c.out_meta->dtype)),
                c.out_meta->bytes());
  }
  bool differentiable() const override { return false; }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  Shape shape_;
  BucketSliceAttrs a_;
};

}  // namespace

Tensor all_reduce(const std::vector<Tensor>& grads, int bucket, const Tensor& after) {
  int64_t numel = 0;
  for (const Tensor& g : grads) {
    LETHE_CHECK(g.defined(), "all_reduce: gradient ", &g - grads.data(), " is undefined");
    numel += g.numel();
  }
  std::vector<Tensor> in = grads;
  if (after.defined()) in.push_back(after);
  return record(std::make_shared<AllReduceOp>(numel, bucket, after.defined()), in);
}

Tensor bucket_slice(const Tensor& bucket, int64_t offset, const Shape& shape) {
  return record(std::make_shared<BucketSliceOp>(offset, shape), {bucket});
}

}  // namespace lethe

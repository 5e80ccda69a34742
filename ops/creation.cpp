#include "ops/creation.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "framework/error.h"
#include "ops/attrs.h"
#include "framework/random.h"
#include "framework/session.h"

namespace lethe {
namespace {

// Fills a host buffer of dtype t with f(i) and materialises it in the current session.
template <typename F>
Tensor materialise(const Shape& s, DType t, F&& f) {
  for (int64_t d : s.dims())
    LETHE_CHECK(d >= 0, "cannot create a tensor with a negative dimension: shape ", s.str());
  const auto& sess = current_session();
  TensorMeta meta{s, t, sess->device()};
  auto st = sess->allocate(meta.bytes());
  st->device = meta.device;
  const int64_t n = s.numel();
  dispatch_all(t, [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> host(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) host[static_cast<size_t>(i)] = static_cast<T>(f(i));
    copy_from_host(*st, host.data(), meta.bytes());
  });
  return make_materialised(sess, meta, std::move(st));
}

class FullOp final : public Op {
 public:
  FullOp(TensorMeta m, double v) : meta_(std::move(m)), a_{v} {}
  OpKind kind() const override { return OpKind::full; }
  // %.17g: the value round-trips exactly in exports.
  std::string attrs() const override {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", a_.value);
    return std::string("value=") + buf + ",shape=" + meta_.shape.str();
  }
  TensorMeta infer(const std::vector<TensorMeta>&) const override { return meta_; }
  bool differentiable() const override { return false; }
  void cpu(const KernelCall& k) const override {
    const int64_t n = k.out_meta->numel();
    dispatch_all(k.out_meta->dtype, [&](auto tag) {
      using T = decltype(tag);
      T* o = k.out<T>();
      const T v = static_cast<T>(a_.value);
      for (int64_t i = 0; i < n; ++i) o[i] = v;
    });
  }

 protected:
  AttrsRef attrs_ref() const override { return AttrsRef::of(a_); }

 private:
  TensorMeta meta_;
  FullAttrs a_;
};

class CopyOp final : public Op {
 public:
  OpKind kind() const override { return OpKind::copy; }
  TensorMeta infer(const std::vector<TensorMeta>& in) const override { return in[0]; }
  bool differentiable() const override { return false; }
  void cpu(const KernelCall& k) const override {
    std::memcpy(k.output, k.inputs[0], k.out_meta->bytes());
  }
};

}  // namespace

Tensor zeros(const Shape& s, DType t) {
  return full(s, 0.0, t);
}
Tensor ones(const Shape& s, DType t) {
  return full(s, 1.0, t);
}
Tensor full(const Shape& s, double value, DType t) {
  return materialise(s, t, [&](int64_t) { return value; });
}

Tensor arange(double start, double end, double step, DType t) {
  LETHE_CHECK(step != 0, "arange: step must be non-zero");
  double span = (end - start) / step;
  int64_t n = span > 0 ? static_cast<int64_t>(std::ceil(span)) : 0;
  return materialise(Shape{n}, t, [&](int64_t i) { return start + static_cast<double>(i) * step; });
}

template <typename T>
Tensor detail::from_vector_impl(const std::vector<T>& values, const Shape& s) {
  LETHE_CHECK(static_cast<int64_t>(values.size()) == s.numel(), "from_vector: ", values.size(),
              " values cannot fill shape ", s.str(), " (", s.numel(), " elements)");
  return materialise(s, dtype_of<T>(), [&](int64_t i) { return values[static_cast<size_t>(i)]; });
}
template Tensor detail::from_vector_impl<float>(const std::vector<float>&, const Shape&);
template Tensor detail::from_vector_impl<double>(const std::vector<double>&, const Shape&);
template Tensor detail::from_vector_impl<int64_t>(const std::vector<int64_t>&, const Shape&);

Tensor uniform(const Shape& s, double lo, double hi, DType t) {
  LETHE_CHECK(is_floating(t), "uniform: expected a floating dtype, got ", dtype_name(t));
  const auto& sess = current_session();
  uint64_t seed = sess->seed(), stream = rng::creation_stream(sess->next_rng_stream());
  return materialise(s, t, [&](int64_t i) {
    return lo + (hi - lo) * rng::uniform01(seed, stream, static_cast<uint64_t>(i));
  });
}
Tensor rand(const Shape& s, DType t) {
  return uniform(s, 0.0, 1.0, t);
}
Tensor randn(const Shape& s, DType t) {
  LETHE_CHECK(is_floating(t), "randn: expected a floating dtype, got ", dtype_name(t));
  const auto& sess = current_session();
  uint64_t seed = sess->seed(), stream = rng::creation_stream(sess->next_rng_stream());
  return materialise(
      s, t, [&](int64_t i) { return rng::normal(seed, stream, static_cast<uint64_t>(i)); });
}

Tensor full_like(const Tensor& x, double value) {
  // x's session, not the current one: another session may have been created since x was.
  return record(std::make_shared<FullOp>(x.meta(), value), {}, x.impl()->session);
}

Tensor gradient_seed(const Tensor& loss) {
  // FullOp ignores its input's value; the edge only records that the backward pass starts from the
  // loss, which is how planners find the forward/backward split of a step.
  return record(std::make_shared<FullOp>(loss.meta(), 1.0), {loss}, loss.impl()->session);
}

Tensor detached_copy(const Tensor& x) {
  return record(std::make_shared<CopyOp>(), {x});
}

}  // namespace lethe

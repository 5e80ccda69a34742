#include "nn/norm.h"

#include <algorithm>
#include <limits>

#include "nn/init.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/norm.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"

namespace lethe::nn {

BatchNormBase::BatchNormBase(const char* type_name, const BatchNormOptions& o)
    : UnaryModule(type_name), options_(o) {
  LETHE_CHECK(o.num_features() > 0, type_name, ": num_features must be positive, got ",
              o.num_features());
  LETHE_CHECK(!o.momentum() || (*o.momentum() >= 0 && *o.momentum() <= 1), type_name,
              ": momentum must be in [0, 1] (or None), got ", o.momentum().value_or(0));
  Shape c{o.num_features()};
  if (o.affine()) {
    weight = register_parameter("weight", ones(c, o.dtype()));
    bias = register_parameter("bias", zeros(c, o.dtype()));
  }
  if (o.track_running_stats()) {
    running_mean = register_buffer("running_mean", zeros(c, o.dtype()));
    running_var = register_buffer("running_var", ones(c, o.dtype()));
    if (!o.momentum())
      num_batches_tracked = register_buffer("num_batches_tracked", zeros(Shape{}, DType::i64));
  }
}

void BatchNormBase::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
  if (bias.defined()) init::zeros_(bias);
  if (running_mean.defined()) init::zeros_(running_mean);
  if (running_var.defined()) init::ones_(running_var);
  if (num_batches_tracked.defined()) num_batches_tracked.assign(from_vector<int64_t>({0}, Shape{}));
}

Tensor BatchNormBase::forward(const Tensor& x) {
  LETHE_CHECK(accepts_rank(x.dim()) && x.size(1) == options_.num_features(), type_name(),
              ": expected input ", expected_input(), " with C = ", options_.num_features(),
              ", got ", x.shape());
  // Without running statistics, eval still normalises with the batch's statistics (as PyTorch).
  bool use_batch_stats = is_training() || !running_mean.defined();
  double momentum = options_.momentum().value_or(0.0);
  if (num_batches_tracked.defined() && is_training()) {
    // The cumulative average of PyTorch's momentum=None: the n-th batch weighs 1/n. The count is
    // host state kept in the buffer (saved and loaded with the module, as PyTorch's).
    const int64_t n = num_batches_tracked.item<int64_t>() + 1;
    num_batches_tracked.assign(from_vector<int64_t>({n}, Shape{}));
    momentum = 1.0 / static_cast<double>(n);
  }
  return batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, momentum,
                    options_.eps());
}

void BatchNormBase::pretty_print(std::ostream& os) const {
  os << type_name() << "(" << options_.num_features() << ", eps=" << options_.eps()
     << ", momentum=";
  if (options_.momentum())
    os << *options_.momentum();
  else
    os << "None";
  os << ", affine=" << (options_.affine() ? "true" : "false") << ")";
}

LayerNorm::LayerNorm(const LayerNormOptions& o) : UnaryModule("LayerNorm"), options_(o) {
  LETHE_CHECK(!o.normalized_shape().empty(), "LayerNorm: normalized_shape must not be empty");
  for (auto d : o.normalized_shape())
    LETHE_CHECK(d > 0, "LayerNorm: normalized_shape dims must be positive, got ",
                Shape(o.normalized_shape()));
  if (o.elementwise_affine()) {
    Shape s(o.normalized_shape());
    weight = register_parameter("weight", ones(s, o.dtype()));
    bias = register_parameter("bias", zeros(s, o.dtype()));
  }
}

void LayerNorm::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
  if (bias.defined()) init::zeros_(bias);
}

Tensor LayerNorm::forward(const Tensor& x) {
  const auto& ns = options_.normalized_shape();
  bool ok = x.dim() >= static_cast<int>(ns.size());
  for (size_t i = 0; ok && i < ns.size(); ++i)
    ok = x.size(-static_cast<int>(ns.size()) + static_cast<int>(i)) == ns[i];
  LETHE_CHECK(ok, "LayerNorm: expected input ending in ", Shape(ns), ", got ", x.shape());
  return layer_norm(x, ns, weight, bias, options_.eps());
}

void LayerNorm::pretty_print(std::ostream& os) const {
  os << "LayerNorm(" << Shape(options_.normalized_shape()) << ", eps=" << options_.eps() << ")";
}

GroupNorm::GroupNorm(const GroupNormOptions& o) : UnaryModule("GroupNorm"), options_(o) {
  LETHE_CHECK(o.num_groups() > 0 && o.num_channels() > 0,
              "GroupNorm: num_groups and num_channels must be positive, got ", o.num_groups(),
              " and ", o.num_channels());
  LETHE_CHECK(o.num_channels() % o.num_groups() == 0, "GroupNorm: num_channels (", o.num_channels(),
              ") must be divisible by num_groups (", o.num_groups(), ")");
  if (o.affine()) {
    weight = register_parameter("weight", ones({o.num_channels()}, o.dtype()));
    bias = register_parameter("bias", zeros({o.num_channels()}, o.dtype()));
  }
}

void GroupNorm::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
  if (bias.defined()) init::zeros_(bias);
}

Tensor GroupNorm::forward(const Tensor& x) {
  const int64_t c = options_.num_channels(), g = options_.num_groups();
  LETHE_CHECK(x.dim() >= 2 && x.size(1) == c, "GroupNorm: expected input [N, ", c, ", *], got ",
              x.shape());
  const int64_t n = x.size(0), rest = x.shape().numel() / std::max<int64_t>(1, n * g);
  Tensor y =
      reshape(layer_norm(reshape(x, Shape{n, g, rest}), {rest}, Tensor(), Tensor(), options_.eps()),
              x.shape());
  if (!weight.defined()) return y;
  // weight and bias [C] as [C, 1, ...] against [N, C, *]
  std::vector<int64_t> ws(static_cast<size_t>(x.dim() - 1), 1);
  ws[0] = c;
  return add(mul(y, reshape(weight, Shape(ws))), reshape(bias, Shape(ws)));
}

void GroupNorm::pretty_print(std::ostream& os) const {
  os << "GroupNorm(" << options_.num_groups() << ", " << options_.num_channels()
     << ", eps=" << options_.eps() << ", affine=" << (options_.affine() ? "true" : "false") << ")";
}

RMSNorm::RMSNorm(const RMSNormOptions& o) : UnaryModule("RMSNorm"), options_(o) {
  LETHE_CHECK(!o.normalized_shape().empty(), "RMSNorm: normalized_shape must not be empty");
  for (auto d : o.normalized_shape())
    LETHE_CHECK(d > 0, "RMSNorm: normalized_shape dims must be positive, got ",
                Shape(o.normalized_shape()));
  if (o.elementwise_affine())
    weight = register_parameter("weight", ones(Shape(o.normalized_shape()), o.dtype()));
}

void RMSNorm::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
}

Tensor RMSNorm::forward(const Tensor& x) {
  const auto& ns = options_.normalized_shape();
  const int k = static_cast<int>(ns.size());
  bool ok = x.dim() >= k;
  for (int i = 0; ok && i < k; ++i) ok = x.size(-k + i) == ns[static_cast<size_t>(i)];
  LETHE_CHECK(ok, "RMSNorm: expected input ending in ", Shape(ns), ", got ", x.shape());
  double eps = options_.eps();
  if (eps < 0)
    eps = x.dtype() == DType::f64 ? std::numeric_limits<double>::epsilon()
                                  : std::numeric_limits<float>::epsilon();
  std::vector<int> axes;
  for (int i = 0; i < k; ++i) axes.push_back(x.dim() - k + i);
  Tensor y = div(x, sqrt(add_scalar(mean(mul(x, x), axes, true), eps)));
  return weight.defined() ? mul(y, weight) : y;
}

void RMSNorm::pretty_print(std::ostream& os) const {
  os << "RMSNorm(" << Shape(options_.normalized_shape()) << ", eps=";
  if (options_.eps() < 0)
    os << "None";
  else
    os << options_.eps();
  os << ", elementwise_affine=" << (options_.elementwise_affine() ? "true" : "false") << ")";
}

}  // namespace lethe::nn

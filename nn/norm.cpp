#include "nn/norm.h"

#include "nn/init.h"
#include "ops/creation.h"
#include "ops/norm.h"

namespace lethe::nn {

BatchNorm2d::BatchNorm2d(const BatchNorm2dOptions& o) : UnaryModule("BatchNorm2d"), options_(o) {
  LETHE_CHECK(o.num_features() > 0, "BatchNorm2d: num_features must be positive, got ", o.num_features());
  LETHE_CHECK(o.momentum() >= 0 && o.momentum() <= 1, "BatchNorm2d: momentum must be in [0, 1], got ",
              o.momentum());
  Shape c{o.num_features()};
  if (o.affine()) {
    weight = register_parameter("weight", ones(c, o.dtype()));
    bias = register_parameter("bias", zeros(c, o.dtype()));
  }
  if (o.track_running_stats()) {
    running_mean = register_buffer("running_mean", zeros(c, o.dtype()));
    running_var = register_buffer("running_var", ones(c, o.dtype()));
  }
}

void BatchNorm2d::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
  if (bias.defined()) init::zeros_(bias);
  if (running_mean.defined()) init::zeros_(running_mean);
  if (running_var.defined()) init::ones_(running_var);
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  LETHE_CHECK(x.dim() == 4 && x.size(1) == options_.num_features(), "BatchNorm2d: expected input [N, ",
              options_.num_features(), ", H, W], got ", x.shape());
  // Without running statistics, eval still normalises with the batch's statistics (as PyTorch).
  bool use_batch_stats = is_training() || !running_mean.defined();
  return batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, options_.momentum(),
                    options_.eps());
}

void BatchNorm2d::pretty_print(std::ostream& os) const {
  os << "BatchNorm2d(" << options_.num_features() << ", eps=" << options_.eps()
     << ", momentum=" << options_.momentum() << ", affine=" << (options_.affine() ? "true" : "false")
     << ")";
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

}  // namespace lethe::nn

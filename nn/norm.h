// Normalisation layers.
//
//   auto bn = std::make_shared<lethe::nn::BatchNorm2d>(lethe::nn::BatchNorm2dOptions(64).momentum(0.01));
//   auto ln = std::make_shared<lethe::nn::LayerNorm>(lethe::nn::LayerNormOptions({256}).eps(1e-6));
#pragma once

#include <vector>

#include "nn/arg.h"
#include "nn/module.h"

namespace lethe::nn {

struct BatchNorm2dOptions {
  explicit BatchNorm2dOptions(int64_t num_features) : num_features_(num_features) {}
  LETHE_ARG(int64_t, num_features);
  LETHE_ARG(double, eps) = 1e-5;
  LETHE_ARG(double, momentum) = 0.1;
  LETHE_ARG(bool, affine) = true;
  LETHE_ARG(bool, track_running_stats) = true;
  LETHE_ARG(DType, dtype) = DType::f32;
};

// Batch statistics in training (and an update of the running statistics, a side-effect node of the
// step); running statistics in eval. Buffers: running_mean (zeros), running_var (ones).
class BatchNorm2d : public UnaryModule {
 public:
  explicit BatchNorm2d(const BatchNorm2dOptions& o);
  explicit BatchNorm2d(int64_t num_features) : BatchNorm2d(BatchNorm2dOptions(num_features)) {}
  void reset_parameters();
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;
  const BatchNorm2dOptions& options() const { return options_; }
  // PyTorch's state dicts also hold num_batches_tracked (used only with momentum=None, which Lethe
  // does not have): accepted on load, not saved (PyTorch fills it in when it is absent).
  bool ignores_state_key(const std::string& name) const override { return name == "num_batches_tracked"; }

  Tensor weight, bias;               // undefined unless affine
  Tensor running_mean, running_var;  // undefined unless track_running_stats

 private:
  BatchNorm2dOptions options_;
};

struct LayerNormOptions {
  LayerNormOptions(std::vector<int64_t> normalized_shape) : normalized_shape_(std::move(normalized_shape)) {}
  LETHE_ARG(std::vector<int64_t>, normalized_shape);
  LETHE_ARG(double, eps) = 1e-5;
  LETHE_ARG(bool, elementwise_affine) = true;
  LETHE_ARG(DType, dtype) = DType::f32;
};

class LayerNorm : public UnaryModule {
 public:
  explicit LayerNorm(const LayerNormOptions& o);
  void reset_parameters();
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;
  const LayerNormOptions& options() const { return options_; }

  Tensor weight, bias;  // ones / zeros of normalized_shape, undefined without elementwise_affine

 private:
  LayerNormOptions options_;
};

}  // namespace lethe::nn

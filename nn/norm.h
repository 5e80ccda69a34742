// Normalisation layers, as torch.nn.
//
//   auto bn =
//   std::make_shared<lethe::nn::BatchNorm2d>(lethe::nn::BatchNorm2dOptions(64).momentum(0.01));
//   auto b1 = std::make_shared<lethe::nn::BatchNorm1d>(128);               // [N, C] or [N, C, L]
//   auto ln = std::make_shared<lethe::nn::LayerNorm>(lethe::nn::LayerNormOptions({256}).eps(1e-6));
//   auto gn = std::make_shared<lethe::nn::GroupNorm>(lethe::nn::GroupNormOptions(8, 64));
//   auto rn = std::make_shared<lethe::nn::RMSNorm>(lethe::nn::RMSNormOptions({256}).eps(1e-6));
#pragma once

#include <optional>
#include <vector>

#include "nn/arg.h"
#include "nn/module.h"

namespace lethe::nn {

struct BatchNormOptions {
  explicit BatchNormOptions(int64_t num_features) : num_features_(num_features) {}
  LETHE_ARG(int64_t, num_features);
  LETHE_ARG(double, eps) = 1e-5;
  // nullopt: PyTorch's momentum=None, a cumulative average (momentum 1/n at the n-th training
  // batch, n in the buffer num_batches_tracked). Each step then records another momentum, so each
  // step is planned anew.
  LETHE_ARG(std::optional<double>, momentum) = 0.1;
  LETHE_ARG(bool, affine) = true;
  LETHE_ARG(bool, track_running_stats) = true;
  LETHE_ARG(DType, dtype) = DType::f32;
};

using BatchNorm1dOptions = BatchNormOptions;
using BatchNorm2dOptions = BatchNormOptions;

// Batch statistics in training (and an update of the running statistics, a side-effect node of the
// step); running statistics in eval. Buffers: running_mean (zeros), running_var (ones).
// BatchNorm1d and BatchNorm2d differ only in the input ranks they accept.
class BatchNormBase : public UnaryModule {
 public:
  BatchNormBase(const char* type_name, const BatchNormOptions& o);
  void reset_parameters();
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;
  const BatchNormOptions& options() const { return options_; }
  // PyTorch's state dicts also hold num_batches_tracked, which only momentum=None uses: with a
  // momentum it is accepted on load and not saved (PyTorch fills it in when it is absent).
  bool ignores_state_key(const std::string& name) const override {
    return name == "num_batches_tracked" && !num_batches_tracked.defined();
  }

  Tensor weight, bias;               // undefined unless affine
  Tensor running_mean, running_var;  // undefined unless track_running_stats
  Tensor num_batches_tracked;  // i64 scalar buffer with momentum=None (and running statistics)

 protected:
  virtual bool accepts_rank(int ndim) const = 0;
  virtual const char* expected_input() const = 0;  // "[N, C, H, W]"

 private:
  BatchNormOptions options_;
};

// Over [N, C] or [N, C, L].
class BatchNorm1d : public BatchNormBase {
 public:
  explicit BatchNorm1d(const BatchNormOptions& o) : BatchNormBase("BatchNorm1d", o) {}
  explicit BatchNorm1d(int64_t num_features) : BatchNorm1d(BatchNormOptions(num_features)) {}

 protected:
  bool accepts_rank(int ndim) const override { return ndim == 2 || ndim == 3; }
  const char* expected_input() const override { return "[N, C] or [N, C, L]"; }
};

// Over [N, C, H, W].
class BatchNorm2d : public BatchNormBase {
 public:
  explicit BatchNorm2d(const BatchNormOptions& o) : BatchNormBase("BatchNorm2d", o) {}
  explicit BatchNorm2d(int64_t num_features) : BatchNorm2d(BatchNormOptions(num_features)) {}

 protected:
  bool accepts_rank(int ndim) const override { return ndim == 4; }
  const char* expected_input() const override { return "[N, C, H, W]"; }
};

struct LayerNormOptions {
  LayerNormOptions(std::vector<int64_t> normalized_shape)
      : normalized_shape_(std::move(normalized_shape)) {}
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

struct GroupNormOptions {
  GroupNormOptions(int64_t num_groups, int64_t num_channels)
      : num_groups_(num_groups), num_channels_(num_channels) {}
  LETHE_ARG(int64_t, num_groups);
  LETHE_ARG(int64_t, num_channels);
  LETHE_ARG(double, eps) = 1e-5;
  LETHE_ARG(bool, affine) = true;
  LETHE_ARG(DType, dtype) = DType::f32;
};

// x [N, C, *] normalised over each group of C / num_groups channels (and all of *), then scaled and
// shifted per channel. Composed of layer_norm over [N, G, C/G * prod(*)].
class GroupNorm : public UnaryModule {
 public:
  explicit GroupNorm(const GroupNormOptions& o);
  GroupNorm(int64_t num_groups, int64_t num_channels)
      : GroupNorm(GroupNormOptions(num_groups, num_channels)) {}
  void reset_parameters();
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;
  const GroupNormOptions& options() const { return options_; }

  Tensor weight, bias;  // ones / zeros [C], undefined without affine

 private:
  GroupNormOptions options_;
};

struct RMSNormOptions {
  RMSNormOptions(std::vector<int64_t> normalized_shape)
      : normalized_shape_(std::move(normalized_shape)) {}
  LETHE_ARG(std::vector<int64_t>, normalized_shape);
  // PyTorch's default (None) is the dtype's machine epsilon; that is what eps() < 0 means here.
  LETHE_ARG(double, eps) = -1;
  LETHE_ARG(bool, elementwise_affine) = true;
  LETHE_ARG(DType, dtype) = DType::f32;
};

// x / sqrt(mean(x^2 over the trailing normalized_shape) + eps) * weight, as torch.nn.RMSNorm.
class RMSNorm : public UnaryModule {
 public:
  explicit RMSNorm(const RMSNormOptions& o);
  void reset_parameters();
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;
  const RMSNormOptions& options() const { return options_; }

  Tensor weight;  // ones of normalized_shape, undefined without elementwise_affine

 private:
  RMSNormOptions options_;
};

}  // namespace lethe::nn

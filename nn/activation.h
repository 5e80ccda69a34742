// Parameter-free layers: activations, dropout, flatten and pooling, for use in Sequential.
//
//   auto net = std::make_shared<lethe::nn::Sequential>(
//       std::make_shared<lethe::nn::Linear>(784, 256), std::make_shared<lethe::nn::ReLU>(),
//       std::make_shared<lethe::nn::Dropout>(0.1), std::make_shared<lethe::nn::Linear>(256, 10));
#pragma once

#include <array>
#include <optional>
#include <string>
#include <utility>

#include "nn/arg.h"
#include "nn/module.h"

namespace lethe::nn {

class ReLU : public UnaryModule {
 public:
  ReLU() : UnaryModule("ReLU") {}
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override { os << "ReLU()"; }
};

struct GELUOptions {
  LETHE_ARG(std::string, approximate) = "none";  // "none" (erf) or "tanh"
};

class GELU : public UnaryModule {
 public:
  explicit GELU(const GELUOptions& o = {});
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;

 private:
  GELUOptions options_;
};

class Sigmoid : public UnaryModule {
 public:
  Sigmoid() : UnaryModule("Sigmoid") {}
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override { os << "Sigmoid()"; }
};

class Tanh : public UnaryModule {
 public:
  Tanh() : UnaryModule("Tanh") {}
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override { os << "Tanh()"; }
};

struct LeakyReLUOptions {
  LeakyReLUOptions(double negative_slope = 0.01) : negative_slope_(negative_slope) {}
  LETHE_ARG(double, negative_slope);
};

// x > 0 ? x : negative_slope x.
class LeakyReLU : public UnaryModule {
 public:
  explicit LeakyReLU(const LeakyReLUOptions& o = {}) : UnaryModule("LeakyReLU"), options_(o) {}
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;

 private:
  LeakyReLUOptions options_;
};

// x sigmoid(x) (swish).
class SiLU : public UnaryModule {
 public:
  SiLU() : UnaryModule("SiLU") {}
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override { os << "SiLU()"; }
};

struct DropoutOptions {
  DropoutOptions(double p = 0.5) : p_(p) {}
  LETHE_ARG(double, p);
};

// Inverted dropout while training, identity in eval.
class Dropout : public UnaryModule {
 public:
  explicit Dropout(const DropoutOptions& o = {});
  explicit Dropout(double p) : Dropout(DropoutOptions(p)) {}
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;
  const DropoutOptions& options() const { return options_; }

 private:
  DropoutOptions options_;
};

struct FlattenOptions {
  LETHE_ARG(int, start_dim) = 1;
  LETHE_ARG(int, end_dim) = -1;
};

class Flatten : public UnaryModule {
 public:
  explicit Flatten(const FlattenOptions& o = {}) : UnaryModule("Flatten"), options_(o) {}
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;

 private:
  FlattenOptions options_;
};

struct MaxPool2dOptions {
  using Pair = std::array<int64_t, 2>;
  MaxPool2dOptions(int64_t k) : kernel_size_{k, k}, stride_{k, k} {}
  MaxPool2dOptions(Pair k) : kernel_size_(k), stride_(k) {}
  LETHE_ARG(Pair, kernel_size);
  LETHE_ARG(Pair, stride);  // defaults to kernel_size
  LETHE_ARG(Pair, padding) = Pair{0, 0};
  LETHE_ARG(Pair, dilation) = Pair{1, 1};
  LETHE_ARG(bool, ceil_mode) = false;

 public:
  MaxPool2dOptions& stride(int64_t s) { return stride(Pair{s, s}); }
  MaxPool2dOptions& padding(int64_t p) { return padding(Pair{p, p}); }
  MaxPool2dOptions& dilation(int64_t d) { return dilation(Pair{d, d}); }
};

class MaxPool2d : public UnaryModule {
 public:
  explicit MaxPool2d(const MaxPool2dOptions& o) : UnaryModule("MaxPool2d"), options_(o) {}
  Tensor forward(const Tensor& x) override;
  // The output and where each value came from (flat index in its input plane, i64), as libtorch's
  // MaxPool2dImpl::forward_with_indices (torch's return_indices).
  std::pair<Tensor, Tensor> forward_with_indices(const Tensor& x);
  void pretty_print(std::ostream& os) const override;

 private:
  MaxPool2dOptions options_;
};

struct AvgPool2dOptions {
  using Pair = std::array<int64_t, 2>;
  AvgPool2dOptions(int64_t k) : kernel_size_{k, k}, stride_{k, k} {}
  AvgPool2dOptions(Pair k) : kernel_size_(k), stride_(k) {}
  LETHE_ARG(Pair, kernel_size);
  LETHE_ARG(Pair, stride);  // defaults to kernel_size
  LETHE_ARG(Pair, padding) = Pair{0, 0};
  LETHE_ARG(bool, ceil_mode) = false;
  LETHE_ARG(bool, count_include_pad) = true;
  LETHE_ARG(std::optional<int64_t>, divisor_override) = std::nullopt;

 public:
  AvgPool2dOptions& stride(int64_t s) { return stride(Pair{s, s}); }
  AvgPool2dOptions& padding(int64_t p) { return padding(Pair{p, p}); }
};

// Mean over each window, divided as torch.nn.AvgPool2d (count_include_pad, divisor_override).
class AvgPool2d : public UnaryModule {
 public:
  explicit AvgPool2d(const AvgPool2dOptions& o) : UnaryModule("AvgPool2d"), options_(o) {}
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;

 private:
  AvgPool2dOptions options_;
};

}  // namespace lethe::nn

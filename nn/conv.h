// Convolutions: 2-d over NCHW tensors, weight [out, in/groups, kh, kw], bias [out]; 1-d over NCL
// tensors, weight [out, in/groups, k] (run as a 2-d convolution of height 1).
//
//   auto conv = std::make_shared<lethe::nn::Conv2d>(
//       lethe::nn::Conv2dOptions(3, 32, 3).stride(2).padding(1).bias(false));
//   auto c1 = std::make_shared<lethe::nn::Conv1d>(lethe::nn::Conv1dOptions(16, 32, 5).padding(2));
//   auto up = std::make_shared<lethe::nn::ConvTranspose2d>(
//       lethe::nn::ConvTranspose2dOptions(32, 16, 4).stride(2).padding(1));   // H -> 2H
#pragma once

#include <array>

#include "nn/arg.h"
#include "nn/module.h"

namespace lethe::nn {

struct Conv2dOptions {
  using Pair = std::array<int64_t, 2>;
  Conv2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels_(in_channels),
        out_channels_(out_channels),
        kernel_size_{kernel_size, kernel_size} {}
  Conv2dOptions(int64_t in_channels, int64_t out_channels, Pair kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  LETHE_ARG(int64_t, in_channels);
  LETHE_ARG(int64_t, out_channels);
  LETHE_ARG(Pair, kernel_size);
  LETHE_ARG(Pair, stride) = Pair{1, 1};
  LETHE_ARG(Pair, padding) = Pair{0, 0};
  LETHE_ARG(Pair, dilation) = Pair{1, 1};
  LETHE_ARG(int64_t, groups) = 1;
  LETHE_ARG(bool, bias) = true;
  LETHE_ARG(DType, dtype) = DType::f32;

 public:
  // Square shorthands: .stride(2) == .stride({2, 2}).
  Conv2dOptions& stride(int64_t s) { return stride(Pair{s, s}); }
  Conv2dOptions& padding(int64_t p) { return padding(Pair{p, p}); }
  Conv2dOptions& dilation(int64_t d) { return dilation(Pair{d, d}); }
};

class Conv2d : public UnaryModule {
 public:
  explicit Conv2d(const Conv2dOptions& o);
  Conv2d(int64_t in, int64_t out, int64_t k) : Conv2d(Conv2dOptions(in, out, k)) {}
  void reset_parameters();  // as PyTorch: kaiming_uniform(a = sqrt(5)), bias ±1/sqrt(fan_in)
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;
  const Conv2dOptions& options() const { return options_; }

  Tensor weight, bias;

 private:
  Conv2dOptions options_;
};

struct ConvTranspose2dOptions {
  using Pair = std::array<int64_t, 2>;
  ConvTranspose2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels_(in_channels),
        out_channels_(out_channels),
        kernel_size_{kernel_size, kernel_size} {}
  ConvTranspose2dOptions(int64_t in_channels, int64_t out_channels, Pair kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  LETHE_ARG(int64_t, in_channels);
  LETHE_ARG(int64_t, out_channels);
  LETHE_ARG(Pair, kernel_size);
  LETHE_ARG(Pair, stride) = Pair{1, 1};
  LETHE_ARG(Pair, padding) = Pair{0, 0};
  LETHE_ARG(Pair, output_padding) = Pair{0, 0};
  LETHE_ARG(Pair, dilation) = Pair{1, 1};
  LETHE_ARG(int64_t, groups) = 1;
  LETHE_ARG(bool, bias) = true;
  LETHE_ARG(DType, dtype) = DType::f32;

 public:
  ConvTranspose2dOptions& stride(int64_t s) { return stride(Pair{s, s}); }
  ConvTranspose2dOptions& padding(int64_t p) { return padding(Pair{p, p}); }
  ConvTranspose2dOptions& output_padding(int64_t p) { return output_padding(Pair{p, p}); }
  ConvTranspose2dOptions& dilation(int64_t d) { return dilation(Pair{d, d}); }
};

// The transpose of Conv2d (lethe::conv_transpose2d): weight [in, out/groups, kh, kw], bias [out].
class ConvTranspose2d : public UnaryModule {
 public:
  explicit ConvTranspose2d(const ConvTranspose2dOptions& o);
  void reset_parameters();  // as Conv2d (fan in from the weight's dim 1, as PyTorch)
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;
  const ConvTranspose2dOptions& options() const { return options_; }

  Tensor weight, bias;

 private:
  ConvTranspose2dOptions options_;
};

struct Conv1dOptions {
  Conv1dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  LETHE_ARG(int64_t, in_channels);
  LETHE_ARG(int64_t, out_channels);
  LETHE_ARG(int64_t, kernel_size);
  LETHE_ARG(int64_t, stride) = 1;
  LETHE_ARG(int64_t, padding) = 0;
  LETHE_ARG(int64_t, dilation) = 1;
  LETHE_ARG(int64_t, groups) = 1;
  LETHE_ARG(bool, bias) = true;
  LETHE_ARG(DType, dtype) = DType::f32;
};

class Conv1d : public UnaryModule {
 public:
  explicit Conv1d(const Conv1dOptions& o);
  Conv1d(int64_t in, int64_t out, int64_t k) : Conv1d(Conv1dOptions(in, out, k)) {}
  void reset_parameters();                   // as Conv2d
  Tensor forward(const Tensor& x) override;  // x [N, in, L] -> [N, out, L_out]
  void pretty_print(std::ostream& os) const override;
  const Conv1dOptions& options() const { return options_; }

  Tensor weight, bias;  // weight [out, in/groups, k]

 private:
  Conv1dOptions options_;
};

}  // namespace lethe::nn

// Upsampling of NCHW images, as torch.nn.Upsample: a target size or a scale factor, mode "nearest"
// or "bilinear" (align_corners as torch; only with bilinear).
//
//   auto up =
//   std::make_shared<nn::Upsample>(nn::UpsampleOptions().scale_factor({2.0, 2.0}).mode("bilinear"));
#pragma once

#include <array>
#include <optional>
#include <string>

#include "nn/arg.h"
#include "nn/module.h"

namespace lethe::nn {

struct UpsampleOptions {
  using Size = std::array<int64_t, 2>;  // (H, W)
  using Scale = std::array<double, 2>;  // (H, W)
  LETHE_ARG(std::optional<Size>, size) = std::nullopt;
  LETHE_ARG(std::optional<Scale>, scale_factor) = std::nullopt;
  LETHE_ARG(std::string, mode) = "nearest";
  LETHE_ARG(std::optional<bool>, align_corners) = std::nullopt;
};

class Upsample : public UnaryModule {
 public:
  explicit Upsample(const UpsampleOptions& o);
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override;
  const UpsampleOptions& options() const { return options_; }

 private:
  UpsampleOptions options_;
};

}  // namespace lethe::nn

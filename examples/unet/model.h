// A small U-Net (Ronneberger et al. 2015) for per-pixel segmentation, with batch norm and
// nearest-neighbour upsampling, and the synthetic segmentation set the example trains on (coloured
// rectangles and discs on noise; the target is the class of each pixel).
//
//   auto net = std::make_shared<lethe::examples::UNet>(UNetConfig{.depth = 3, .width = 16, .classes
//   = 3}); auto logits = net->forward(images);                   // [N, 3, H, W] -> [N, classes, H,
//   W] auto loss = lethe::cross_entropy(logits, targets);    // targets: i64 [N, H, W]
//
// Its training step is the long-skip-connection graph the planner is measured on: every encoder
// level's output is held from the first half of the forward pass until the matching decoder level.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "lethe.h"

namespace lethe::examples {

struct UNetConfig {
  int depth =
      3;  // encoder levels (each halves the resolution); the image side must divide by 2^depth
  int64_t width = 16;  // channels of the first level (doubled at each level below)
  int64_t in_channels = 3;
  int64_t classes = 3;
};

// Two 3x3 conv + batch norm + ReLU, the unit of every U-Net level.
class DoubleConv : public nn::UnaryModule {
 public:
  DoubleConv(int64_t in, int64_t out) : nn::UnaryModule("DoubleConv") {
    using nn::Conv2dOptions;
    c1 = register_module(
        "conv1", std::make_shared<nn::Conv2d>(Conv2dOptions(in, out, 3).padding(1).bias(false)));
    b1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(out));
    c2 = register_module(
        "conv2", std::make_shared<nn::Conv2d>(Conv2dOptions(out, out, 3).padding(1).bias(false)));
    b2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(out));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = b1->forward(c1->forward(x)).relu();
    return b2->forward(c2->forward(h)).relu();
  }

 private:
  std::shared_ptr<nn::Conv2d> c1, c2;
  std::shared_ptr<nn::BatchNorm2d> b1, b2;
};

// Nearest-neighbour 2x upsampling [N, C, H, W] -> [N, C, 2H, 2W] from differentiable primitives
// (Lethe has no upsample op): each pixel broadcast over a 2x2 block. broadcast_to's gradient is
// sum_to, so the backward sums each 2x2 block, as an upsample's would.
inline Tensor upsample_nearest2x(const Tensor& x) {
  const Shape& s = x.shape();
  const int64_t n = s[0], c = s[1], h = s[2], w = s[3];
  const Tensor blocks =
      broadcast_to(x.reshape(Shape({n, c, h, 1, w, 1})), Shape({n, c, h, 2, w, 2}));
  return blocks.reshape(Shape({n, c, 2 * h, 2 * w}));
}

class UNet : public nn::UnaryModule {
 public:
  explicit UNet(const UNetConfig& c) : nn::UnaryModule("UNet"), config(c) {
    if (c.depth < 1 || c.depth > 8)
      throw Error("UNet: depth must be 1..8, got " + std::to_string(c.depth));
    if (c.width < 1 || c.classes < 2)
      throw Error("UNet: width must be >= 1 and classes >= 2, got width " +
                  std::to_string(c.width) + ", " + std::to_string(c.classes) + " classes");
    int64_t in = c.in_channels;
    for (int l = 0; l < c.depth; ++l) {
      const int64_t ch = c.width << l;
      down.push_back(
          register_module("down" + std::to_string(l), std::make_shared<DoubleConv>(in, ch)));
      in = ch;
    }
    bottleneck =
        register_module("bottleneck", std::make_shared<DoubleConv>(in, c.width << c.depth));
    // Decoder level l: the upsampled 2^(l+1) * width channels of the level below, concatenated with
    // the 2^l * width channels of encoder level l.
    up.resize(static_cast<size_t>(c.depth));
    for (int l = c.depth - 1; l >= 0; --l)
      up[static_cast<size_t>(l)] = register_module(
          "up" + std::to_string(l),
          std::make_shared<DoubleConv>((c.width << (l + 1)) + (c.width << l), c.width << l));
    head = register_module("head",
                           std::make_shared<nn::Conv2d>(nn::Conv2dOptions(c.width, c.classes, 1)));
  }
  Tensor forward(const Tensor& x) override {
    const Shape& s = x.shape();
    const int64_t unit = int64_t{1} << config.depth;
    if (s.ndim() != 4 || s[1] != config.in_channels || s[2] % unit != 0 || s[3] % unit != 0)
      throw Error("UNet: expected images [N, " + std::to_string(config.in_channels) +
                  ", H, W] with H and W multiples of " + std::to_string(unit) + " (2^depth), got " +
                  s.str());
    std::vector<Tensor> skips;
    Tensor h = x;
    for (auto& level : down) {
      h = level->forward(h);
      skips.push_back(h);
      h = max_pool2d(h, {2, 2});
    }
    h = bottleneck->forward(h);
    for (int l = config.depth - 1; l >= 0; --l)
      h = up[static_cast<size_t>(l)]->forward(
          concat({upsample_nearest2x(h), skips[static_cast<size_t>(l)]}, 1));
    return head->forward(h);
  }
  void pretty_print(std::ostream& os) const override {
    os << "UNet(depth " << config.depth << ", width " << config.width << ", " << config.classes
       << " classes)";
  }
  UNetConfig config;

 private:
  std::vector<std::shared_ptr<DoubleConv>> down, up;
  std::shared_ptr<DoubleConv> bottleneck;
  std::shared_ptr<nn::Conv2d> head;
};

// Synthetic segmentation images: a noisy background (class 0) with 2 to 5 filled rectangles and
// discs, each of a random class 1..classes-1, drawn in that class's colour; later shapes cover
// earlier ones. Target: the class of each pixel. The noise is strong enough that one pixel's colour
// is ambiguous and its neighbourhood decides. Sample i is a pure function of (seed, i): generated
// when gathered.
class SyntheticSegmentation : public data::Dataset {
 public:
  SyntheticSegmentation(int64_t n, int64_t size, int64_t classes, uint64_t seed,
                        int64_t first_index = 0)
      : n_(n), size_(size), classes_(classes), seed_(seed), first_(first_index) {}
  int64_t size() const override { return n_; }
  // The colour of class k in channel ch (class 0, the background, is dark grey).
  static float colour(int64_t k, int ch) {
    if (k == 0) return -0.6f;
    static const int mul[3] = {37, 53, 71}, add[3] = {0, 3, 7};
    return -0.2f + 1.2f * static_cast<float>((k * mul[ch] + add[ch]) % 10) / 9.f;
  }
  data::Batch get_batch(const std::vector<int64_t>& idx) const override {
    const int64_t hw = size_ * size_;
    std::vector<float> x(idx.size() * static_cast<size_t>(3 * hw));
    std::vector<int64_t> y(idx.size() * static_cast<size_t>(hw));
    for (size_t b = 0; b < idx.size(); ++b) {
      const int64_t i = idx[b] + first_;
      std::mt19937_64 rng(seed_ * 0x9e3779b97f4a7c15ull +
                          static_cast<uint64_t>(i) * 0xbf58476d1ce4e5b9ull + 7);
      std::uniform_real_distribution<double> u(0.0, 1.0);
      int64_t* target = y.data() + b * static_cast<size_t>(hw);
      std::fill(target, target + hw, int64_t{0});
      const int shapes = 2 + static_cast<int>(rng() % 4);
      const double side = static_cast<double>(size_);
      for (int k = 0; k < shapes; ++k) {
        const int64_t cls = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(classes_ - 1));
        const bool disc = rng() % 2 == 0;
        const double cx = side * u(rng), cy = side * u(rng);
        const double rx = side * (0.08 + 0.17 * u(rng)),
                     ry = disc ? rx : side * (0.08 + 0.17 * u(rng));
        for (int64_t r = 0; r < size_; ++r)
          for (int64_t c = 0; c < size_; ++c) {
            const double dx = (static_cast<double>(c) + 0.5 - cx) / rx,
                         dy = (static_cast<double>(r) + 0.5 - cy) / ry;
            const bool inside =
                disc ? dx * dx + dy * dy <= 1.0 : std::abs(dx) <= 1.0 && std::abs(dy) <= 1.0;
            if (inside) target[r * size_ + c] = cls;
          }
      }
      std::normal_distribution<float> noise(0.f, 0.6f);
      float* img = x.data() + b * static_cast<size_t>(3 * hw);
      for (int ch = 0; ch < 3; ++ch)
        for (int64_t p = 0; p < hw; ++p) img[ch * hw + p] = colour(target[p], ch) + noise(rng);
    }
    const auto n = static_cast<int64_t>(idx.size());
    return {from_vector(x, {n, 3, size_, size_}), from_vector(y, {n, size_, size_})};
  }

 private:
  int64_t n_, size_, classes_;
  uint64_t seed_;
  int64_t first_;
};

}  // namespace lethe::examples

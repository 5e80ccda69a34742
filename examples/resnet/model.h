// ResNet-18/34/50 (He et al. 2016) with batch norm, and the image data the example trains on:
// CIFAR-10 binary files or a synthetic set whose classes are learnable (oriented coloured stripes +
// noise).
//
//   auto net = std::make_shared<lethe::examples::ResNet>(ResNetConfig{.depth = 18, .width = 16});
//   auto logits = net->forward(images);   // [N, 3, H, W] -> [N, classes]
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lethe.h"

namespace lethe::examples {

struct ResNetConfig {
  int depth = 18;      // 18, 34 (basic blocks) or 50 (bottlenecks)
  int64_t width = 64;  // channels of the first stage (64 in the paper)
  int64_t classes = 10;
  bool imagenet_stem = false;  // 7x7/2 conv + 3x3/2 max pool (else a 3x3/1 conv, for small images)
};

class ResidualBlock : public nn::UnaryModule {
 public:
  // Basic: 3x3 -> 3x3. Bottleneck: 1x1 -> 3x3 (stride) -> 1x1 expanding to 4 * planes.
  ResidualBlock(int64_t in, int64_t planes, int64_t stride, bool bottleneck)
      : nn::UnaryModule("ResidualBlock") {
    using nn::Conv2dOptions;
    const int64_t out = bottleneck ? 4 * planes : planes;
    if (bottleneck) {
      c1 = register_module("conv1",
                           std::make_shared<nn::Conv2d>(Conv2dOptions(in, planes, 1).bias(false)));
      c2 = register_module(
          "conv2", std::make_shared<nn::Conv2d>(
                       Conv2dOptions(planes, planes, 3).stride(stride).padding(1).bias(false)));
      c3 = register_module("conv3",
                           std::make_shared<nn::Conv2d>(Conv2dOptions(planes, out, 1).bias(false)));
      b3 = register_module("bn3", std::make_shared<nn::BatchNorm2d>(out));
    } else {
      c1 = register_module("conv1",
                           std::make_shared<nn::Conv2d>(
                               Conv2dOptions(in, planes, 3).stride(stride).padding(1).bias(false)));
      c2 = register_module("conv2", std::make_shared<nn::Conv2d>(
                                        Conv2dOptions(planes, planes, 3).padding(1).bias(false)));
    }
    b1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(planes));
    b2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(bottleneck ? planes : out));
    if (stride != 1 || in != out) {
      down = register_module(
          "downsample_conv",
          std::make_shared<nn::Conv2d>(Conv2dOptions(in, out, 1).stride(stride).bias(false)));
      down_bn = register_module("downsample_bn", std::make_shared<nn::BatchNorm2d>(out));
    }
    out_channels = out;
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = b1->forward(c1->forward(x)).relu();
    h = b2->forward(c2->forward(h));
    if (c3) h = b3->forward(c3->forward(h.relu()));
    Tensor skip = down ? down_bn->forward(down->forward(x)) : x;
    return (h + skip).relu();
  }
  int64_t out_channels = 0;

 private:
  std::shared_ptr<nn::Conv2d> c1, c2, c3, down;
  std::shared_ptr<nn::BatchNorm2d> b1, b2, b3, down_bn;
};

class ResNet : public nn::UnaryModule {
 public:
  explicit ResNet(const ResNetConfig& c) : nn::UnaryModule("ResNet"), config(c) {
    std::vector<int> blocks;
    bool bottleneck = false;
    if (c.depth == 18)
      blocks = {2, 2, 2, 2};
    else if (c.depth == 34)
      blocks = {3, 4, 6, 3};
    else if (c.depth == 50)
      blocks = {3, 4, 6, 3}, bottleneck = true;
    else
      throw Error("ResNet: depth must be 18, 34 or 50, got " + std::to_string(c.depth));
    using nn::Conv2dOptions;
    stem = register_module("stem", std::make_shared<nn::Sequential>());
    if (c.imagenet_stem) {
      stem->push_back(std::make_shared<nn::Conv2d>(
          Conv2dOptions(3, c.width, 7).stride(2).padding(3).bias(false)));
      stem->push_back(std::make_shared<nn::BatchNorm2d>(c.width));
      stem->push_back(std::make_shared<nn::ReLU>());
      stem->push_back(
          std::make_shared<nn::MaxPool2d>(nn::MaxPool2dOptions(3).stride(2).padding(1)));
    } else {
      stem->push_back(
          std::make_shared<nn::Conv2d>(Conv2dOptions(3, c.width, 3).padding(1).bias(false)));
      stem->push_back(std::make_shared<nn::BatchNorm2d>(c.width));
      stem->push_back(std::make_shared<nn::ReLU>());
    }
    body = register_module("body", std::make_shared<nn::Sequential>());
    int64_t in = c.width;
    for (size_t stage = 0; stage < blocks.size(); ++stage) {
      const int64_t planes = c.width << stage;
      for (int b = 0; b < blocks[stage]; ++b) {
        auto blk =
            std::make_shared<ResidualBlock>(in, planes, (b == 0 && stage > 0) ? 2 : 1, bottleneck);
        in = blk->out_channels;
        body->push_back(blk);
      }
    }
    fc = register_module("fc", std::make_shared<nn::Linear>(in, c.classes));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = body->forward(stem->forward(x));
    return fc->forward(adaptive_avg_pool2d(h, {1, 1}).flatten(1));
  }
  void pretty_print(std::ostream& os) const override {
    os << "ResNet-" << config.depth << "(width " << config.width << ", " << config.classes
       << " classes" << (config.imagenet_stem ? ", ImageNet stem" : ", small-image stem") << ")";
  }
  ResNetConfig config;

 private:
  std::shared_ptr<nn::Sequential> stem, body;
  std::shared_ptr<nn::Linear> fc;
};

// Synthetic images whose class is visible: class k has stripes at angle k*pi/classes, its own
// colour and stripe frequency; each sample adds a random phase, a random colour jitter and Gaussian
// noise. Sample i is a pure function of (seed, i): generated when gathered, nothing stored.
class SyntheticImages : public data::Dataset {
 public:
  SyntheticImages(int64_t n, int64_t size, int64_t classes, uint64_t seed, int64_t first_index = 0)
      : n_(n), size_(size), classes_(classes), seed_(seed), first_(first_index) {}
  int64_t size() const override { return n_; }
  data::Batch get_batch(const std::vector<int64_t>& idx) const override {
    const int64_t hw = size_ * size_, per = 3 * hw;
    std::vector<float> x(idx.size() * static_cast<size_t>(per));
    std::vector<int64_t> y(idx.size());
    for (size_t b = 0; b < idx.size(); ++b) {
      const int64_t i = idx[b] + first_;
      std::mt19937_64 rng(seed_ * 0x9e3779b97f4a7c15ull +
                          static_cast<uint64_t>(i) * 0xbf58476d1ce4e5b9ull + 1);
      const int64_t k = static_cast<int64_t>(rng() % static_cast<uint64_t>(classes_));
      y[b] = k;
      std::normal_distribution<float> noise(0.f, 0.35f);
      std::uniform_real_distribution<float> u(0.f, 1.f);
      const double angle = M_PI * static_cast<double>(k) / static_cast<double>(classes_);
      const double freq =
          2.0 * M_PI * (2.0 + static_cast<double>(k % 3)) / static_cast<double>(size_);
      const double phase = 2.0 * M_PI * u(rng);
      const float colour[3] = {
          0.3f + 0.7f * static_cast<float>((k * 37) % 10) / 10.f + 0.1f * u(rng),
          0.3f + 0.7f * static_cast<float>((k * 53 + 3) % 10) / 10.f + 0.1f * u(rng),
          0.3f + 0.7f * static_cast<float>((k * 71 + 7) % 10) / 10.f + 0.1f * u(rng)};
      const double ca = std::cos(angle), sa = std::sin(angle);
      float* img = x.data() + b * static_cast<size_t>(per);
      for (int64_t r = 0; r < size_; ++r)
        for (int64_t c = 0; c < size_; ++c) {
          const float s = static_cast<float>(
              std::sin(freq * (static_cast<double>(c) * ca + static_cast<double>(r) * sa) + phase));
          for (int ch = 0; ch < 3; ++ch) img[ch * hw + r * size_ + c] = colour[ch] * s + noise(rng);
        }
    }
    const auto n = static_cast<int64_t>(idx.size());
    return {from_vector(x, {n, 3, size_, size_}), from_vector(y, {n})};
  }

 private:
  int64_t n_, size_, classes_;
  uint64_t seed_;
  int64_t first_;
};

// CIFAR-10 binary version (data_batch_{1..5}.bin, test_batch.bin: records of 1 label byte + 3072
// bytes of 32x32 R, G, B planes), normalised per channel, resized (nearest) to `size`.
class Cifar10 : public data::Dataset {
 public:
  Cifar10(const std::string& dir, bool train, int64_t size) : size_(size) {
    std::vector<std::string> files;
    if (train)
      for (int i = 1; i <= 5; ++i)
        files.push_back(dir + "/data_batch_" + std::to_string(i) + ".bin");
    else
      files.push_back(dir + "/test_batch.bin");
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      if (!in) {
        if (train && !bytes_.empty()) continue;  // fewer training batches is fine
        throw Error("CIFAR-10: cannot read " + f +
                    " (expected the binary version: data_batch_*.bin)");
      }
      std::vector<uint8_t> buf((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
      if (buf.size() % 3073 != 0)
        throw Error("CIFAR-10: " + f + " is not a multiple of 3073-byte records");
      bytes_.insert(bytes_.end(), buf.begin(), buf.end());
    }
    n_ = static_cast<int64_t>(bytes_.size() / 3073);
  }
  int64_t size() const override { return n_; }
  data::Batch get_batch(const std::vector<int64_t>& idx) const override {
    static const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, stdv[3] = {0.2470f, 0.2435f, 0.2616f};
    const int64_t hw = size_ * size_;
    std::vector<float> x(idx.size() * static_cast<size_t>(3 * hw));
    std::vector<int64_t> y(idx.size());
    for (size_t b = 0; b < idx.size(); ++b) {
      const uint8_t* rec = bytes_.data() + static_cast<size_t>(idx[b]) * 3073;
      y[b] = rec[0];
      for (int ch = 0; ch < 3; ++ch)
        for (int64_t r = 0; r < size_; ++r)
          for (int64_t c = 0; c < size_; ++c) {
            const uint8_t v = rec[1 + ch * 1024 + (r * 32 / size_) * 32 + (c * 32 / size_)];
            x[b * static_cast<size_t>(3 * hw) + static_cast<size_t>(ch * hw + r * size_ + c)] =
                (static_cast<float>(v) / 255.f - mean[ch]) / stdv[ch];
          }
    }
    const auto n = static_cast<int64_t>(idx.size());
    return {from_vector(x, {n, 3, size_, size_}), from_vector(y, {n})};
  }

 private:
  int64_t n_ = 0, size_;
  std::vector<uint8_t> bytes_;
};

}  // namespace lethe::examples

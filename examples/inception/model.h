// A branchy Inception-style CNN (after GoogLeNet, Szegedy et al. 2015, with the 5x5 branch
// factorised into two 3x3 convolutions as in their 2016 follow-up): stages of Inception blocks,
// each block four parallel branches concatenated along channels, a 2x2 max pool between stages,
// global average pool and a linear classifier. Every convolution is followed by batch norm and
// ReLU.
//
//   auto net = std::make_shared<lethe::examples::Inception>(InceptionConfig{.width = 16, .blocks =
//   {2, 2}}); auto logits = net->forward(images);   // [N, 3, H, W] -> [N, classes]
//
// Its step is the graph of independent branches the streams issue is about: within a block the four
// branches share one input and meet only at the concatenation, so they (and their gradients) can
// run side by side, at the price of holding their activations at once.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "lethe.h"

namespace lethe::examples {

struct InceptionConfig {
  int64_t width = 16;  // output channels of each branch in the first stage (doubled per stage)
  std::vector<int> blocks{2, 2};  // Inception blocks per stage
  int64_t in_channels = 3;
  int64_t classes = 10;
  double dropout = 0.0;  // before the classifier (GoogLeNet: 0.4)
};

// k x k convolution (stride 1, same padding, no bias) + batch norm + ReLU.
class ConvBNReLU : public nn::UnaryModule {
 public:
  ConvBNReLU(int64_t in, int64_t out, int64_t k) : nn::UnaryModule("ConvBNReLU") {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(
                                       nn::Conv2dOptions(in, out, k).padding(k / 2).bias(false)));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(out));
  }
  Tensor forward(const Tensor& x) override { return bn->forward(conv->forward(x)).relu(); }

 private:
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
};

// Four branches of `w` output channels each, on the same input: 1x1; 1x1 reduce to w/2 then 3x3;
// 1x1 reduce to w/2 then two 3x3 (a 5x5's receptive field); 3x3 max pool (stride 1) then 1x1.
// Output: their concatenation, 4w channels, the input's height and width.
class InceptionBlock : public nn::UnaryModule {
 public:
  InceptionBlock(int64_t in, int64_t w) : nn::UnaryModule("InceptionBlock"), out_channels(4 * w) {
    const int64_t r = std::max<int64_t>(1, w / 2);
    b1 = register_module("branch1x1", std::make_shared<ConvBNReLU>(in, w, 1));
    b3 = register_module("branch3x3",
                         std::make_shared<nn::Sequential>(std::make_shared<ConvBNReLU>(in, r, 1),
                                                          std::make_shared<ConvBNReLU>(r, w, 3)));
    b5 = register_module("branch5x5",
                         std::make_shared<nn::Sequential>(std::make_shared<ConvBNReLU>(in, r, 1),
                                                          std::make_shared<ConvBNReLU>(r, w, 3),
                                                          std::make_shared<ConvBNReLU>(w, w, 3)));
    pool_proj = register_module("branch_pool", std::make_shared<ConvBNReLU>(in, w, 1));
  }
  Tensor forward(const Tensor& x) override {
    const Tensor pooled = max_pool2d(x, {3, 3}, {1, 1}, {1, 1});
    return concat({b1->forward(x), b3->forward(x), b5->forward(x), pool_proj->forward(pooled)}, 1);
  }
  const int64_t out_channels;

 private:
  std::shared_ptr<ConvBNReLU> b1, pool_proj;
  std::shared_ptr<nn::Sequential> b3, b5;
};

class Inception : public nn::UnaryModule {
 public:
  explicit Inception(const InceptionConfig& c) : nn::UnaryModule("Inception"), config(c) {
    if (c.width < 1 || c.classes < 2 || c.blocks.empty())
      throw Error("Inception: width must be >= 1, classes >= 2 and blocks non-empty, got width " +
                  std::to_string(c.width) + ", " + std::to_string(c.classes) + " classes, " +
                  std::to_string(c.blocks.size()) + " stages");
    stem = register_module("stem", std::make_shared<ConvBNReLU>(c.in_channels, 2 * c.width, 3));
    int64_t in = 2 * c.width;
    for (size_t s = 0; s < c.blocks.size(); ++s) {
      if (c.blocks[s] < 1) throw Error("Inception: every stage needs at least one block");
      for (int b = 0; b < c.blocks[s]; ++b) {
        auto blk = std::make_shared<InceptionBlock>(in, c.width << s);
        in = blk->out_channels;
        body.push_back(
            register_module("stage" + std::to_string(s) + "_block" + std::to_string(b), blk));
      }
    }
    if (c.dropout > 0) drop = register_module("dropout", std::make_shared<nn::Dropout>(c.dropout));
    fc = register_module("fc", std::make_shared<nn::Linear>(in, c.classes));
  }
  Tensor forward(const Tensor& x) override {
    const Shape& s = x.shape();
    const int64_t unit = int64_t{1} << (config.blocks.size() - 1);
    if (s.ndim() != 4 || s[1] != config.in_channels || s[2] % unit != 0 || s[3] % unit != 0)
      throw Error("Inception: expected images [N, " + std::to_string(config.in_channels) +
                  ", H, W] with H and W multiples of " + std::to_string(unit) +
                  " (2^(stages-1)), got " + s.str());
    Tensor h = stem->forward(x);
    size_t k = 0;
    for (size_t st = 0; st < config.blocks.size(); ++st) {
      if (st > 0) h = max_pool2d(h, {2, 2});
      for (int b = 0; b < config.blocks[st]; ++b) h = body[k++]->forward(h);
    }
    h = adaptive_avg_pool2d(h, {1, 1}).flatten(1);
    if (drop) h = drop->forward(h);
    return fc->forward(h);
  }
  void pretty_print(std::ostream& os) const override {
    os << "Inception(width " << config.width << ", blocks";
    for (int b : config.blocks) os << " " << b;
    os << ", " << config.classes << " classes)";
  }
  InceptionConfig config;

 private:
  std::shared_ptr<ConvBNReLU> stem;
  std::vector<std::shared_ptr<InceptionBlock>> body;
  std::shared_ptr<nn::Dropout> drop;
  std::shared_ptr<nn::Linear> fc;
};

}  // namespace lethe::examples

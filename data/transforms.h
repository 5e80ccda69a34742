// Per-sample transforms that a DataLoader applies to each sample of a batch on the host, before the
// batch becomes tensors (torchvision.transforms on [C, H, W] float samples). Random transforms draw
// from a generator keyed by (loader seed, epoch, sample index) alone, so a seed gives the same
// batches whatever the number of worker threads and whichever thread gathers a batch. (The draws
// are not torchvision's: its generator is torch's global one.)
//
//   auto t = std::vector<std::shared_ptr<const lethe::data::Transform>>{
//       std::make_shared<lethe::data::RandomCrop>(28, 28, /*padding=*/2),
//       std::make_shared<lethe::data::RandomHorizontalFlip>(0.5),
//       std::make_shared<lethe::data::Normalize>(std::vector<float>{0.286f},
//       std::vector<float>{0.353f})};
//   lethe::data::DataLoader loader(dataset,
//   lethe::data::DataLoaderOptions().batch_size(64).shuffle(true)
//                                               .transforms(t).num_workers(2));
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "framework/shape.h"

namespace lethe::data {

// A counter-based generator (SplitMix64) for one sample's random choices.
class SampleRng {
 public:
  SampleRng(uint64_t seed, int64_t epoch, int64_t sample);
  uint64_t next();
  double uniform();          // [0, 1), 53 bits
  int64_t below(int64_t n);  // [0, n), n >= 1

 private:
  uint64_t state_;
};

// One sample: its values and shape ([C, H, W] for images).
struct Sample {
  std::vector<float> data;
  Shape shape;
};

class Transform {
 public:
  virtual ~Transform() = default;
  // Changes `s` in place (its shape may change); draws from `rng` when random.
  virtual void apply(Sample& s, SampleRng& rng) const = 0;
  virtual std::string name() const = 0;
};

// (x - mean[c]) / std[c] per channel c of a [C, ...] sample, in f32 (torchvision's sub_ then div_).
// One mean and std for all channels, or one per channel.
class Normalize final : public Transform {
 public:
  Normalize(std::vector<float> mean, std::vector<float> std);
  void apply(Sample& s, SampleRng& rng) const override;
  std::string name() const override { return "Normalize"; }

 private:
  std::vector<float> mean_, std_;
};

// Pads a [C, H, W] sample by `padding` zeros on every side, then cuts a height x width window at a
// uniformly drawn position (torchvision's RandomCrop with padding and fill 0).
class RandomCrop final : public Transform {
 public:
  RandomCrop(int64_t height, int64_t width, int64_t padding = 0);
  void apply(Sample& s, SampleRng& rng) const override;
  std::string name() const override { return "RandomCrop"; }

 private:
  int64_t h_, w_, pad_;
};

// Mirrors the last axis (W) with probability p.
class RandomHorizontalFlip final : public Transform {
 public:
  explicit RandomHorizontalFlip(double p = 0.5);
  void apply(Sample& s, SampleRng& rng) const override;
  std::string name() const override { return "RandomHorizontalFlip"; }

 private:
  double p_;
};

}  // namespace lethe::data

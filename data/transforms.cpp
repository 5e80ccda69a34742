#include "data/transforms.h"

#include <algorithm>
#include <cmath>

#include "framework/error.h"

namespace lethe::data {

namespace {

uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

SampleRng::SampleRng(uint64_t seed, int64_t epoch, int64_t sample)
    : state_(mix(mix(seed ^ 0x7472616E73666Dull) ^ mix(static_cast<uint64_t>(epoch)) * 3 ^
                 mix(static_cast<uint64_t>(sample) + 0x51ull))) {}

uint64_t SampleRng::next() {
  state_ += 0x9E3779B97F4A7C15ull;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double SampleRng::uniform() {
  return static_cast<double>(next() >> 11) * 0x1.0p-53;
}

int64_t SampleRng::below(int64_t n) {
  LETHE_ASSERT(n >= 1);
  // Lemire's multiply-and-reject: no modulo bias.
  const uint64_t un = static_cast<uint64_t>(n);
  unsigned __int128 m = static_cast<unsigned __int128>(next()) * un;
  uint64_t lo = static_cast<uint64_t>(m);
  if (lo < un) {
    const uint64_t threshold = (0 - un) % un;
    while (lo < threshold) {
      m = static_cast<unsigned __int128>(next()) * un;
      lo = static_cast<uint64_t>(m);
    }
  }
  return static_cast<int64_t>(m >> 64);
}

Normalize::Normalize(std::vector<float> mean, std::vector<float> std)
    : mean_(std::move(mean)), std_(std::move(std)) {
  LETHE_CHECK(!mean_.empty() && mean_.size() == std_.size(),
              "Normalize: expected as many means as stds (at least one), got ", mean_.size(),
              " and ", std_.size());
  for (float s : std_)
    LETHE_CHECK(s != 0 && std::isfinite(s),
                "Normalize: every std must be finite and non-zero, got ", s);
}

void Normalize::apply(Sample& s, SampleRng&) const {
  LETHE_CHECK(s.shape.ndim() >= 1, "Normalize: the sample has no channel axis (shape ", s.shape,
              ")");
  const int64_t c = s.shape[0];
  LETHE_CHECK(mean_.size() == 1 || static_cast<int64_t>(mean_.size()) == c,
              "Normalize: ", mean_.size(), " means for a sample of ", c, " channels (shape ",
              s.shape, ")");
  const int64_t per = c > 0 ? s.shape.numel() / c : 0;
  for (int64_t k = 0; k < c; ++k) {
    const float m = mean_[mean_.size() == 1 ? 0 : static_cast<size_t>(k)];
    const float d = std_[std_.size() == 1 ? 0 : static_cast<size_t>(k)];
    float* x = s.data.data() + k * per;
    for (int64_t i = 0; i < per; ++i) x[i] = (x[i] - m) / d;
  }
}

RandomCrop::RandomCrop(int64_t height, int64_t width, int64_t padding)
    : h_(height), w_(width), pad_(padding) {
  LETHE_CHECK(height > 0 && width > 0 && padding >= 0,
              "RandomCrop: expected height, width > 0 and padding >= 0, got ", height, ", ", width,
              ", ", padding);
}

void RandomCrop::apply(Sample& s, SampleRng& rng) const {
  LETHE_CHECK(s.shape.ndim() == 3, "RandomCrop: expected a [C, H, W] sample, got shape ", s.shape);
  const int64_t c = s.shape[0], h = s.shape[1], w = s.shape[2];
  const int64_t ph = h + 2 * pad_, pw = w + 2 * pad_;
  LETHE_CHECK(h_ <= ph && w_ <= pw, "RandomCrop: a ", h_, "x", w_, " crop does not fit a ", h, "x",
              w, " sample padded by ", pad_);
  const int64_t top = rng.below(ph - h_ + 1), left = rng.below(pw - w_ + 1);
  std::vector<float> out(static_cast<size_t>(c * h_ * w_), 0.0f);
  for (int64_t k = 0; k < c; ++k)
    for (int64_t i = 0; i < h_; ++i) {
      const int64_t si = top + i - pad_;
      if (si < 0 || si >= h) continue;
      for (int64_t j = 0; j < w_; ++j) {
        const int64_t sj = left + j - pad_;
        if (sj < 0 || sj >= w) continue;
        out[static_cast<size_t>((k * h_ + i) * w_ + j)] =
            s.data[static_cast<size_t>((k * h + si) * w + sj)];
      }
    }
  s.data = std::move(out);
  s.shape = Shape{c, h_, w_};
}

RandomHorizontalFlip::RandomHorizontalFlip(double p) : p_(p) {
  LETHE_CHECK(p >= 0 && p <= 1, "RandomHorizontalFlip: p must be in [0, 1], got ", p);
}

void RandomHorizontalFlip::apply(Sample& s, SampleRng& rng) const {
  LETHE_CHECK(s.shape.ndim() >= 1, "RandomHorizontalFlip: the sample has no axis to flip");
  if (!(rng.uniform() < p_)) return;
  const int64_t w = s.shape[s.shape.ndim() - 1];
  for (int64_t row = 0; row + w <= static_cast<int64_t>(s.data.size()); row += w)
    std::reverse(s.data.begin() + row, s.data.begin() + row + w);
}

}  // namespace lethe::data

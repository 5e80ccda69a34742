// Data transforms (closed forms) and loader worker threads, which must not change the batches a
// seed gives.
#include <doctest/doctest.h>

#include <numeric>

#include "data/data.h"
#include "lethe.h"

using namespace lethe;
using namespace lethe::data;

namespace {

// 20 samples of [2, 4, 5], values 1000·i + position (distinct everywhere), targets i.
std::shared_ptr<TensorDataset> numbered() {
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int64_t i = 0; i < 20; ++i) {
    for (int64_t k = 0; k < 40; ++k) x.push_back(static_cast<float>(1000 * i + k));
    y.push_back(i);
  }
  return std::make_shared<TensorDataset>(x, Shape{2, 4, 5}, y);
}

std::vector<std::pair<std::vector<float>, std::vector<int64_t>>> all_batches(DataLoader& l,
                                                                             int epochs) {
  std::vector<std::pair<std::vector<float>, std::vector<int64_t>>> out;
  for (int e = 0; e < epochs; ++e)
    for (const Batch& b : l)
      out.emplace_back(b.data.to_vector<float>(), b.target.to_vector<int64_t>());
  return out;
}

}  // namespace

TEST_CASE("Normalize: (x - mean[c]) / std[c] per channel, in f32") {
  Sample s{{1, 2, 3, 4, 5, 6}, Shape{2, 3}};
  SampleRng rng(0, 0, 0);
  Normalize({0.5f, 2.0f}, {0.25f, 3.0f}).apply(s, rng);
  CHECK(s.data == std::vector<float>{(1 - 0.5f) / 0.25f, (2 - 0.5f) / 0.25f, (3 - 0.5f) / 0.25f,
                                     (4 - 2.0f) / 3.0f, (5 - 2.0f) / 3.0f, (6 - 2.0f) / 3.0f});
  CHECK_THROWS_WITH_AS(Normalize({0.5f, 1, 2}, {1, 1, 1}).apply(s, rng),
                       doctest::Contains("3 means for a sample of 2 channels"), Error);
  CHECK_THROWS_WITH_AS(Normalize({0.5f}, {0.0f}),
                       doctest::Contains("every std must be finite and non-zero"), Error);
}

TEST_CASE("RandomHorizontalFlip mirrors the last axis with probability p") {
  Sample s{{1, 2, 3, 4, 5, 6}, Shape{1, 2, 3}};
  SampleRng rng(1, 0, 0);
  RandomHorizontalFlip(1.0).apply(s, rng);
  CHECK(s.data == std::vector<float>{3, 2, 1, 6, 5, 4});
  RandomHorizontalFlip(0.0).apply(s, rng);
  CHECK(s.data == std::vector<float>{3, 2, 1, 6, 5, 4});
  // p = 0.5 flips some samples and not others.
  int flipped = 0;
  for (int64_t i = 0; i < 64; ++i) {
    Sample t{{1, 2}, Shape{1, 1, 2}};
    SampleRng r(7, 0, i);
    RandomHorizontalFlip(0.5).apply(t, r);
    flipped += t.data[0] == 2;
  }
  CHECK(flipped > 10);
  CHECK(flipped < 54);
}

TEST_CASE("RandomCrop cuts a window of the zero-padded sample") {
  for (int64_t sample = 0; sample < 16; ++sample) {
    Sample s{std::vector<float>(2 * 4 * 5), Shape{2, 4, 5}};
    std::iota(s.data.begin(), s.data.end(), 1.0f);
    const Sample in = s;
    SampleRng rng(3, 1, sample);
    RandomCrop(3, 4, 1).apply(s, rng);
    REQUIRE(s.shape == Shape{2, 3, 4});
    // Some offset (top, left) of the padded 6x7 sample gives exactly this window.
    bool found = false;
    for (int64_t top = 0; top <= 3 && !found; ++top)
      for (int64_t left = 0; left <= 3 && !found; ++left) {
        bool same = true;
        for (int64_t c = 0; c < 2; ++c)
          for (int64_t i = 0; i < 3; ++i)
            for (int64_t j = 0; j < 4; ++j) {
              const int64_t si = top + i - 1, sj = left + j - 1;
              const float want = si < 0 || si >= 4 || sj < 0 || sj >= 5
                                     ? 0.0f
                                     : in.data[static_cast<size_t>((c * 4 + si) * 5 + sj)];
              same = same && s.data[static_cast<size_t>((c * 3 + i) * 4 + j)] == want;
            }
        found = same;
      }
    CHECK(found);
  }
  Sample s{std::vector<float>(8), Shape{2, 2, 2}};
  SampleRng rng(0, 0, 0);
  CHECK_THROWS_WITH_AS(RandomCrop(3, 3).apply(s, rng),
                       doctest::Contains("a 3x3 crop does not fit a 2x2 sample"), Error);
}

TEST_CASE(
    "DataLoader: transforms are keyed by (seed, epoch, sample); workers give the same batches") {
  Session session({.seed = 1});
  const std::vector<std::shared_ptr<const Transform>> ts{
      std::make_shared<RandomCrop>(4, 5, 2), std::make_shared<RandomHorizontalFlip>(0.5),
      std::make_shared<Normalize>(std::vector<float>{10.0f}, std::vector<float>{4.0f})};
  auto opts = DataLoaderOptions().batch_size(6).shuffle(true).seed(9).transforms(ts);
  DataLoader serial(numbered(), opts);
  const auto want = all_batches(serial, 3);
  REQUIRE(want.size() == 12);
  for (int workers : {1, 3, 8}) {
    CAPTURE(workers);
    DataLoader parallel(numbered(), DataLoaderOptions(opts).num_workers(workers));
    CHECK(all_batches(parallel, 3) == want);
  }
  // The epochs differ (order and crops), and the same seed gives the same batches again.
  CHECK(want[0] != want[4]);
  DataLoader again(numbered(), opts);
  CHECK(all_batches(again, 3) == want);
  // Without transforms, workers give the batches of the dataset's get_batch.
  DataLoader plain(numbered(), DataLoaderOptions().batch_size(7).shuffle(true).seed(2));
  DataLoader plain_workers(numbered(),
                           DataLoaderOptions().batch_size(7).shuffle(true).seed(2).num_workers(2));
  CHECK(all_batches(plain, 2) == all_batches(plain_workers, 2));
  // A resumed position with workers: the batches of an uninterrupted run from there on.
  DataLoader resumed(numbered(), DataLoaderOptions(opts).num_workers(2));
  std::vector<std::vector<float>> tail;
  for (auto it = resumed.begin_at(1, 2); it != resumed.end(); ++it)
    tail.push_back(it->data.to_vector<float>());
  REQUIRE(tail.size() == 2);
  CHECK(tail[0] == want[6].first);
  CHECK(tail[1] == want[7].first);
}

namespace {
struct NoHost : Dataset {
  int64_t size() const override { return 4; }
  Batch get_batch(const std::vector<int64_t>&) const override { return {}; }
};
}  // namespace

TEST_CASE(
    "DataLoader: workers and transforms on a dataset without host batches are refused by name") {
  CHECK_THROWS_WITH_AS(
      DataLoader(std::make_shared<NoHost>(), DataLoaderOptions().num_workers(2)),
      doctest::Contains("transforms and num_workers need a dataset that gives host batches"),
      Error);
  CHECK_THROWS_WITH_AS(DataLoader(numbered(), DataLoaderOptions().num_workers(-1)),
                       doctest::Contains("num_workers must be >= 0"), Error);
}

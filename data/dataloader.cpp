#include "data/dataloader.h"

#include <numeric>
#include <random>

#include "framework/error.h"

namespace lethe::data {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [0, n) without modulo bias (Lemire's multiply-and-reject); defined here rather than
// via std::uniform_int_distribution, whose algorithm differs between standard libraries.
uint64_t below(std::mt19937_64& g, uint64_t n) {
  unsigned __int128 m = static_cast<unsigned __int128>(g()) * n;
  uint64_t lo = static_cast<uint64_t>(m);
  if (lo < n) {
    const uint64_t threshold = (0 - n) % n;
    while (lo < threshold) {
      m = static_cast<unsigned __int128>(g()) * n;
      lo = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

}  // namespace

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, const DataLoaderOptions& o)
    : dataset_(std::move(dataset)), options_(o) {
  LETHE_CHECK(dataset_ != nullptr, "DataLoader: the dataset is null");
  LETHE_CHECK(o.batch_size() > 0, "DataLoader: batch_size must be positive, got ", o.batch_size());
}

int64_t DataLoader::size() const {
  const int64_t n = dataset_->size(), b = options_.batch_size();
  return options_.drop_last() ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> DataLoader::order(int64_t epoch) const {
  std::vector<int64_t> idx(static_cast<size_t>(dataset_->size()));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  if (!options_.shuffle()) return idx;
  std::mt19937_64 gen(splitmix64(options_.seed() ^ splitmix64(static_cast<uint64_t>(epoch))));
  for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[below(gen, i)]);
  return idx;
}

DataLoader::Iterator DataLoader::begin() {
  auto ord = std::make_shared<const std::vector<int64_t>>(order(epoch_));
  ++epoch_;
  return Iterator(this, std::move(ord), 0);
}

DataLoader::Iterator DataLoader::begin_at(int64_t epoch, int64_t index) {
  LETHE_CHECK(epoch >= 0 && index >= 0 && index <= size(), "DataLoader::begin_at: epoch ", epoch, ", batch ", index,
              " is not a position of a loader of ", size(), " batches per epoch");
  auto ord = std::make_shared<const std::vector<int64_t>>(order(epoch));
  epoch_ = epoch + 1;
  return Iterator(this, std::move(ord), index);
}

DataLoader::Iterator DataLoader::end() const {
  Iterator it;
  it.index_ = size();
  return it;
}

DataLoader::Iterator::Iterator(const DataLoader* l, std::shared_ptr<const std::vector<int64_t>> order,
                               int64_t index)
    : loader_(l), order_(std::move(order)), index_(index) {
  load();
}

void DataLoader::Iterator::load() {
  batch_ = Batch{};
  if (index_ >= loader_->size()) return;
  const int64_t b = loader_->options_.batch_size();
  const int64_t lo = index_ * b;
  const int64_t hi = std::min<int64_t>(lo + b, static_cast<int64_t>(order_->size()));
  std::vector<int64_t> idx(order_->begin() + lo, order_->begin() + hi);
  batch_ = loader_->dataset_->get_batch(idx);
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  ++index_;
  load();
  return *this;
}

}  // namespace lethe::data

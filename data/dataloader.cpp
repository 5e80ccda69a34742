#include "data/dataloader.h"

#include <algorithm>
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
  LETHE_CHECK(o.num_workers() >= 0, "DataLoader: num_workers must be >= 0, got ", o.num_workers());
  for (const auto& t : o.transforms()) LETHE_CHECK(t != nullptr, "DataLoader: a transform is null");
  LETHE_CHECK(!(o.sampler() && o.shuffle()),
              "DataLoader: sampler and shuffle are mutually exclusive (the sampler "
              "shuffles: DistributedSamplerOptions::shuffle)");
  LETHE_CHECK(
      (o.transforms().empty() && o.num_workers() == 0) || dataset_->has_host_batches(),
      "DataLoader: transforms and num_workers need a dataset that gives host batches "
      "(Dataset::has_host_batches and get_host_batch, as TensorDataset and FashionMNIST do)");
}

HostBatch DataLoader::host_batch(const std::vector<int64_t>& order, int64_t epoch,
                                 int64_t index) const {
  const int64_t b = options_.batch_size();
  const int64_t lo = index * b;
  const int64_t hi = std::min<int64_t>(lo + b, static_cast<int64_t>(order.size()));
  std::vector<int64_t> idx(order.begin() + lo, order.begin() + hi);
  HostBatch hb = dataset_->get_host_batch(idx);
  if (options_.transforms().empty()) return hb;
  // Each sample through every transform, with its own generator; then stacked again (a crop may
  // change the sample shape, the same for every sample of a batch).
  const int64_t n = static_cast<int64_t>(idx.size());
  const std::vector<int64_t>& dims = hb.data_shape.dims();
  const Shape sample_shape(std::vector<int64_t>(dims.begin() + 1, dims.end()));
  const int64_t per = sample_shape.numel();
  std::vector<float> out;
  Shape out_shape;
  for (int64_t k = 0; k < n; ++k) {
    Sample s{std::vector<float>(hb.data.begin() + k * per, hb.data.begin() + (k + 1) * per),
             sample_shape};
    SampleRng rng(options_.seed(), epoch, idx[static_cast<size_t>(k)]);
    for (const auto& t : options_.transforms()) t->apply(s, rng);
    if (k == 0) {
      out_shape = s.shape;
      out.reserve(static_cast<size_t>(n * s.shape.numel()));
    }
    LETHE_CHECK(s.shape == out_shape, "DataLoader: the transforms gave samples of shapes ",
                out_shape, " and ", s.shape, " in one batch");
    out.insert(out.end(), s.data.begin(), s.data.end());
  }
  std::vector<int64_t> bd{n};
  bd.insert(bd.end(), out_shape.dims().begin(), out_shape.dims().end());
  hb.data = std::move(out);
  hb.data_shape = Shape(std::move(bd));
  return hb;
}

int64_t DataLoader::size() const {
  const int64_t n = options_.sampler() ? options_.sampler()->size() : dataset_->size(),
                b = options_.batch_size();
  return options_.drop_last() ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  std::mt19937_64 gen(splitmix64(seed ^ splitmix64(static_cast<uint64_t>(epoch))));
  for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[below(gen, i)]);
  return idx;
}

std::vector<int64_t> DataLoader::order(int64_t epoch) const {
  if (options_.sampler()) return options_.sampler()->indices(epoch);
  if (options_.shuffle()) return shuffled_order(dataset_->size(), options_.seed(), epoch);
  std::vector<int64_t> idx(static_cast<size_t>(dataset_->size()));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  return idx;
}

DataLoader::Iterator DataLoader::begin() {
  auto ord = std::make_shared<const std::vector<int64_t>>(order(epoch_));
  ++epoch_;
  return Iterator(this, std::move(ord), epoch_ - 1, 0);
}

DataLoader::Iterator DataLoader::begin_at(int64_t epoch, int64_t index) {
  LETHE_CHECK(epoch >= 0 && index >= 0 && index <= size(), "DataLoader::begin_at: epoch ", epoch,
              ", batch ", index, " is not a position of a loader of ", size(),
              " batches per epoch");
  auto ord = std::make_shared<const std::vector<int64_t>>(order(epoch));
  epoch_ = epoch + 1;
  return Iterator(this, std::move(ord), epoch, index);
}

DataLoader::Iterator DataLoader::end() const {
  Iterator it;
  it.index_ = size();
  return it;
}

DataLoader::Iterator::Iterator(const DataLoader* l,
                               std::shared_ptr<const std::vector<int64_t>> order, int64_t epoch,
                               int64_t index)
    : loader_(l), order_(std::move(order)), epoch_(epoch), index_(index) {
  if (l->options_.num_workers() > 0) ahead_ = std::make_shared<Ahead>();
  load();
}

DataLoader::Iterator::Ahead::~Ahead() {
  for (auto& [i, f] : pending)
    if (f.valid()) f.wait();
}

// Keeps num_workers batches past the current one being gathered, each on a thread of its own.
void DataLoader::Iterator::fill_ahead() {
  const int64_t last = std::min(loader_->size() - 1, index_ + loader_->options_.num_workers());
  ahead_->next = std::max(ahead_->next, index_);
  for (; ahead_->next <= last; ++ahead_->next) {
    const int64_t next = ahead_->next;
    const DataLoader* l = loader_;
    std::shared_ptr<const std::vector<int64_t>> ord = order_;
    const int64_t e = epoch_;
    ahead_->pending.emplace_back(next, std::async(std::launch::async, [l, ord, e, next] {
                                   return l->host_batch(*ord, e, next);
                                 }));
  }
}

void DataLoader::Iterator::load() {
  batch_ = Batch{};
  if (index_ >= loader_->size()) return;
  if (ahead_) {
    // Batches before index_ (skipped) are dropped; the one at index_ is waited for.
    while (!ahead_->pending.empty() && ahead_->pending.front().first < index_) {
      ahead_->pending.front().second.wait();
      ahead_->pending.pop_front();
    }
    fill_ahead();
    LETHE_ASSERT(!ahead_->pending.empty() && ahead_->pending.front().first == index_);
    std::future<HostBatch> f = std::move(ahead_->pending.front().second);
    ahead_->pending.pop_front();
    batch_ = to_batch(f.get());
    return;
  }
  if (loader_->options_.transforms().empty()) {
    const int64_t b = loader_->options_.batch_size();
    const int64_t lo = index_ * b;
    const int64_t hi = std::min<int64_t>(lo + b, static_cast<int64_t>(order_->size()));
    std::vector<int64_t> idx(order_->begin() + lo, order_->begin() + hi);
    batch_ = loader_->dataset_->get_batch(idx);
    return;
  }
  batch_ = to_batch(loader_->host_batch(*order_, epoch_, index_));
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  ++index_;
  load();
  return *this;
}

}  // namespace lethe::data

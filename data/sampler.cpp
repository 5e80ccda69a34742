#include "data/sampler.h"

#include "dist/dist.h"
#include "framework/error.h"

namespace lethe::data {

DistributedSampler::DistributedSampler(int64_t dataset_size, const DistributedSamplerOptions& o)
    : dataset_size_(dataset_size),
      replicas_(o.num_replicas() > 0 ? o.num_replicas() : dist::world_size()),
      rank_(o.rank() >= 0 ? o.rank() : dist::rank()),
      o_(o) {
  LETHE_CHECK(dataset_size >= 0, "DistributedSampler: the dataset size must be >= 0, got ",
              dataset_size);
  LETHE_CHECK(o.num_replicas() >= 0,
              "DistributedSampler: num_replicas must be positive (0: the world size), got ",
              o.num_replicas());
  LETHE_CHECK(rank_ < replicas_ && o.rank() >= -1, "DistributedSampler: rank ", o.rank(),
              " is not in [0, ", replicas_, ")");
  per_rank_ = o.drop_last() ? dataset_size / replicas_ : (dataset_size + replicas_ - 1) / replicas_;
  LETHE_CHECK(per_rank_ > 0 || dataset_size == 0, "DistributedSampler: a dataset of ", dataset_size,
              " samples gives nothing to each of ", replicas_, " ranks with drop_last");
}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch) const {
  std::vector<int64_t> all;
  if (o_.shuffle()) {
    all = shuffled_order(dataset_size_, o_.seed(), epoch);
  } else {
    all.resize(static_cast<size_t>(dataset_size_));
    for (int64_t i = 0; i < dataset_size_; ++i) all[static_cast<size_t>(i)] = i;
  }
  const int64_t total = per_rank_ * replicas_;
  // Padding repeats the order's start (as often as needed); drop_last cuts its tail.
  for (int64_t i = 0; static_cast<int64_t>(all.size()) < total; ++i)
    all.push_back(all[static_cast<size_t>(i)]);
  all.resize(static_cast<size_t>(total));
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(per_rank_));
  for (int64_t i = rank_; i < total; i += replicas_) mine.push_back(all[static_cast<size_t>(i)]);
  return mine;
}

}  // namespace lethe::data

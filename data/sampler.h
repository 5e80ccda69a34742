// Each rank's share of a dataset for data-parallel training, as
// torch.utils.data.DistributedSampler: the epoch's order (shuffled from (seed, epoch), the same on
// every rank) padded by repeating its start to a multiple of the number of ranks (or cut to one
// with drop_last), then every num_replicas-th sample from position rank on. Equal shares, disjoint
// up to the padding.
//
//   auto sampler = std::make_shared<lethe::data::DistributedSampler>(
//       dataset->size(), lethe::data::DistributedSamplerOptions().seed(1));  // dist::rank() of
//       dist::world_size()
//   lethe::data::DataLoader loader(dataset,
//   lethe::data::DataLoaderOptions().batch_size(32).sampler(sampler));
#pragma once

#include <cstdint>
#include <vector>

#include "nn/arg.h"

namespace lethe::data {

struct DistributedSamplerOptions {
  LETHE_ARG(int64_t, num_replicas) = 0;  // 0: dist::world_size()
  LETHE_ARG(int64_t, rank) = -1;         // -1: dist::rank()
  LETHE_ARG(bool, shuffle) = true;
  LETHE_ARG(uint64_t, seed) = 0;
  LETHE_ARG(bool, drop_last) = false;
};

class DistributedSampler {
 public:
  DistributedSampler(int64_t dataset_size, const DistributedSamplerOptions& o = {});
  // This rank's sample indices in epoch `epoch` (size() of them).
  std::vector<int64_t> indices(int64_t epoch) const;
  int64_t size() const { return per_rank_; }
  int64_t num_replicas() const { return replicas_; }
  int64_t rank() const { return rank_; }

 private:
  int64_t dataset_size_, replicas_, rank_, per_rank_;
  DistributedSamplerOptions o_;
};

// The sample order of an epoch: 0..n-1 shuffled by a Fisher-Yates shuffle from (seed, epoch) (the
// DataLoader's order with shuffle).
std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, int64_t epoch);

}  // namespace lethe::data

// Batches of a dataset in a seeded order, iterated by range-for. The permutation of an epoch
// depends only on (seed, epoch): a std::mt19937_64 seeded explicitly from both, and an explicit
// Fisher-Yates shuffle — so two runs with one seed see the same batches on any platform.
//
//   lethe::data::DataLoader loader(std::make_shared<lethe::data::FashionMNIST>(dir, true),
//       lethe::data::DataLoaderOptions().batch_size(64).shuffle(true).drop_last(true).seed(42));
//   for (int epoch = 0; epoch < 2; ++epoch)
//     for (auto& batch : loader) { ... batch.data, batch.target ... }   // each loop is one epoch
//
// Transforms (data/transforms.h) change each sample on the host; num_workers threads gather (and
// transform) the next batches while the current one trains. Neither changes which batches a seed
// gives: the order depends on (seed, epoch), a sample's random transform on (seed, epoch, sample),
// and the batches are handed out in order whatever thread gathered them. Both need a dataset with
// host batches (Dataset::get_host_batch: TensorDataset, FashionMNIST). The tensors of a batch are
// made on the thread that iterates, in its session.
#pragma once

#include <deque>
#include <future>
#include <memory>
#include <vector>

#include "data/dataset.h"
#include "data/sampler.h"
#include "data/transforms.h"
#include "nn/arg.h"

namespace lethe::data {

struct DataLoaderOptions {
  LETHE_ARG(int64_t, batch_size) = 64;
  LETHE_ARG(bool, shuffle) = false;
  LETHE_ARG(bool, drop_last) = false;  // drop a last batch smaller than batch_size
  LETHE_ARG(uint64_t, seed) = 0;
  LETHE_ARG(std::vector<std::shared_ptr<const Transform>>, transforms) = {};
  // Threads gathering batches ahead of the one in use (0: gathered on the iterating thread).
  LETHE_ARG(int64_t, num_workers) = 0;
  // The samples of each epoch and their order (data/sampler.h; this rank's share in data-parallel
  // training) instead of the whole dataset; excludes shuffle.
  LETHE_ARG(std::shared_ptr<const DistributedSampler>, sampler) = nullptr;
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, const DataLoaderOptions& o = {});

  class Iterator {
   public:
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    Iterator() = default;
    const Batch& operator*() const { return batch_; }
    const Batch* operator->() const { return &batch_; }
    Iterator& operator++();
    bool operator==(const Iterator& o) const { return index_ == o.index_; }
    // Index of the current batch within the epoch.
    int64_t index() const { return index_; }

   private:
    friend class DataLoader;
    // Batches being gathered by worker threads, by index, in order (shared by copies of an
    // iterator).
    struct Ahead {
      std::deque<std::pair<int64_t, std::future<HostBatch>>> pending;
      int64_t next = 0;  // the next batch to hand to a worker
      ~Ahead();          // waits for the workers: they read the loader and the order
    };
    Iterator(const DataLoader* l, std::shared_ptr<const std::vector<int64_t>> order, int64_t epoch,
             int64_t index);
    void load();
    void fill_ahead();
    const DataLoader* loader_ = nullptr;
    std::shared_ptr<const std::vector<int64_t>> order_;
    int64_t epoch_ = 0;
    int64_t index_ = 0;
    Batch batch_;
    std::shared_ptr<Ahead> ahead_;
  };

  // Starts the next epoch (the first call starts epoch 0, or the one given to set_epoch).
  Iterator begin();
  // Starts epoch `epoch` at its batch `index` (a resumed run: the batches of an uninterrupted run
  // from there on); the next begin() starts epoch + 1.
  Iterator begin_at(int64_t epoch, int64_t index);
  Iterator end() const;

  // Batches per epoch.
  int64_t size() const;
  int64_t epoch() const { return epoch_; }
  void set_epoch(int64_t e) { epoch_ = e; }
  const Dataset& dataset() const { return *dataset_; }
  const DataLoaderOptions& options() const { return options_; }
  // The sample order of an epoch (identity without shuffle).
  std::vector<int64_t> order(int64_t epoch) const;
  // Batch `index` of epoch `epoch` (order `order`) as host arrays, transforms applied: what a
  // worker thread computes.
  HostBatch host_batch(const std::vector<int64_t>& order, int64_t epoch, int64_t index) const;

 private:
  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
  int64_t epoch_ = 0;
};

}  // namespace lethe::data

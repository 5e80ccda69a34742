// Datasets: a size and a way to gather a batch of samples by index into {data, target} tensors.
// Samples stay on the host; only the gathered batch becomes a tensor of the current session.
//
//   lethe::data::FashionMNIST train("/usr/share/datasets/fashion-mnist", /*train=*/true);
//   auto b = train.get_batch({0, 1, 2});   // b.data f32 [3, 1, 28, 28], b.target i64 [3]
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "framework/tensor.h"

namespace lethe::data {

struct Batch {
  Tensor data;
  Tensor target;
};

// A batch as host arrays, before it becomes tensors of a session: what the DataLoader's worker
// threads gather and its transforms change (tensors are made on the session's own thread).
struct HostBatch {
  std::vector<float> data;
  Shape data_shape;  // [batch, sample dims...]
  std::vector<int64_t> target;
  Shape target_shape;  // [batch] (or [batch, target dims...])
};
// The tensors of `b`, in the current session.
Batch to_batch(const HostBatch& b);

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Samples `indices` (each in [0, size())), stacked along a new first dimension.
  virtual Batch get_batch(const std::vector<int64_t>& indices) const = 0;
  // The same batch as host arrays, for transforms and worker threads; it must be safe to call from
  // several threads at once. The default says the dataset gives none (DataLoader then refuses
  // transforms and workers, naming the dataset).
  virtual bool has_host_batches() const { return false; }
  virtual HostBatch get_host_batch(const std::vector<int64_t>& indices) const;
};

// In-memory samples: f32 features of `sample_shape` each, one i64 target each.
class TensorDataset : public Dataset {
 public:
  TensorDataset(std::vector<float> data, Shape sample_shape, std::vector<int64_t> targets);
  int64_t size() const override { return static_cast<int64_t>(targets_.size()); }
  Batch get_batch(const std::vector<int64_t>& indices) const override;
  bool has_host_batches() const override { return true; }
  HostBatch get_host_batch(const std::vector<int64_t>& indices) const override;

 private:
  std::vector<float> data_;
  Shape sample_shape_;
  std::vector<int64_t> targets_;
};

// Fashion-MNIST (Xiao et al. 2017): 28x28 grey images in [0, 1] as [1, 28, 28], labels 0..9.
// Reads {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from `dir`.
class FashionMNIST : public Dataset {
 public:
  static constexpr const char* kDefaultDir = "/usr/share/datasets/fashion-mnist/";
  static constexpr int64_t kClasses = 10;
  explicit FashionMNIST(const std::string& dir = kDefaultDir, bool train = true);
  int64_t size() const override { return n_; }
  Batch get_batch(const std::vector<int64_t>& indices) const override;
  bool has_host_batches() const override { return true; }
  HostBatch get_host_batch(const std::vector<int64_t>& indices) const override;
  // The class names ("T-shirt/top", ...).
  static const std::vector<std::string>& classes();

 private:
  int64_t n_ = 0, rows_ = 0, cols_ = 0;
  std::vector<uint8_t> images_;  // kept as bytes: 4x smaller than floats
  std::vector<uint8_t> labels_;
};

}  // namespace lethe::data

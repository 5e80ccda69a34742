#include "data/dataset.h"

#include <filesystem>

#include "data/idx.h"
#include "framework/error.h"
#include "ops/creation.h"

namespace lethe::data {
namespace {

void check_indices(const std::vector<int64_t>& idx, int64_t n, const char* who) {
  LETHE_CHECK(!idx.empty(), who, "::get_batch: no indices given");
  for (int64_t i : idx)
    LETHE_CHECK(i >= 0 && i < n, who, "::get_batch: index ", i, " is out of range [0, ", n, ")");
}

Shape batch_shape(int64_t b, const Shape& sample) {
  std::vector<int64_t> d{b};
  d.insert(d.end(), sample.dims().begin(), sample.dims().end());
  return Shape(d);
}

// `name` in dir, or `name` without .gz when only the uncompressed file exists.
std::string find_file(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  fs::path gz = fs::path(dir) / (name + ".gz");
  fs::path raw = fs::path(dir) / name;
  std::error_code ec;
  if (fs::is_regular_file(gz, ec)) return gz.string();
  if (fs::is_regular_file(raw, ec)) return raw.string();
  throw Error(
      "FashionMNIST: neither '" + gz.string() + "' nor '" + raw.string() +
      "' exists; install the dataset (apt-get install dataset-fashion-mnist) or pass --data DIR "
      "pointing at a folder holding the IDX files");
}

}  // namespace

Batch to_batch(const HostBatch& b) {
  return {from_vector<float>(b.data, b.data_shape), from_vector<int64_t>(b.target, b.target_shape)};
}

HostBatch Dataset::get_host_batch(const std::vector<int64_t>& /*indices*/) const {
  throw Error(
      "this dataset gives no host batches (Dataset::get_host_batch), which the DataLoader's "
      "transforms and worker threads need; override has_host_batches() and get_host_batch()");
}

TensorDataset::TensorDataset(std::vector<float> data, Shape sample_shape,
                             std::vector<int64_t> targets)
    : data_(std::move(data)), sample_shape_(std::move(sample_shape)), targets_(std::move(targets)) {
  LETHE_CHECK(static_cast<int64_t>(data_.size()) == sample_shape_.numel() * size(),
              "TensorDataset: ", targets_.size(), " targets of samples ", sample_shape_, " need ",
              sample_shape_.numel() * size(), " values, got ", data_.size());
}

HostBatch TensorDataset::get_host_batch(const std::vector<int64_t>& indices) const {
  check_indices(indices, size(), "TensorDataset");
  const int64_t per = sample_shape_.numel();
  HostBatch hb;
  hb.data.resize(indices.size() * static_cast<size_t>(per));
  hb.target.resize(indices.size());
  for (size_t b = 0; b < indices.size(); ++b) {
    std::copy_n(data_.begin() + indices[b] * per, per,
                hb.data.begin() + static_cast<int64_t>(b) * per);
    hb.target[b] = targets_[static_cast<size_t>(indices[b])];
  }
  const auto n = static_cast<int64_t>(indices.size());
  hb.data_shape = batch_shape(n, sample_shape_);
  hb.target_shape = Shape{n};
  return hb;
}

Batch TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  return to_batch(get_host_batch(indices));
}

FashionMNIST::FashionMNIST(const std::string& dir, bool train) {
  const std::string prefix = train ? "train" : "t10k";
  const std::string ipath = find_file(dir, prefix + "-images-idx3-ubyte");
  const std::string lpath = find_file(dir, prefix + "-labels-idx1-ubyte");
  IdxFile images = read_idx(ipath, kIdxImagesMagic);
  IdxFile labels = read_idx(lpath, kIdxLabelsMagic);
  LETHE_CHECK(images.dims.size() == 3, "FashionMNIST: '", ipath, "' has ", images.dims.size(),
              " dimensions, expected 3");
  LETHE_CHECK(labels.dims.size() == 1 && labels.dims[0] == images.dims[0], "FashionMNIST: '", ipath,
              "' holds ", images.dims[0], " images but '", lpath, "' ",
              labels.dims.empty() ? 0 : labels.dims[0], " labels");
  for (uint8_t l : labels.data)
    LETHE_CHECK(l < kClasses, "FashionMNIST: '", lpath, "' holds label ", int(l),
                ", expected 0..9");
  n_ = images.dims[0];
  rows_ = images.dims[1];
  cols_ = images.dims[2];
  images_ = std::move(images.data);
  labels_ = std::move(labels.data);
}

HostBatch FashionMNIST::get_host_batch(const std::vector<int64_t>& indices) const {
  check_indices(indices, n_, "FashionMNIST");
  const int64_t per = rows_ * cols_;
  HostBatch hb;
  hb.data.resize(indices.size() * static_cast<size_t>(per));
  hb.target.resize(indices.size());
  for (size_t b = 0; b < indices.size(); ++b) {
    const uint8_t* src = images_.data() + indices[b] * per;
    float* dst = hb.data.data() + static_cast<int64_t>(b) * per;
    for (int64_t i = 0; i < per; ++i) dst[i] = static_cast<float>(src[i]) / 255.0f;
    hb.target[b] = labels_[static_cast<size_t>(indices[b])];
  }
  const auto n = static_cast<int64_t>(indices.size());
  hb.data_shape = Shape{n, 1, rows_, cols_};
  hb.target_shape = Shape{n};
  return hb;
}

Batch FashionMNIST::get_batch(const std::vector<int64_t>& indices) const {
  return to_batch(get_host_batch(indices));
}

const std::vector<std::string>& FashionMNIST::classes() {
  static const std::vector<std::string> names{"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                              "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};
  return names;
}

}  // namespace lethe::data

// IDX reading (raw and gzip), its errors, FashionMNIST from generated files, DataLoader batching.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

#include "data/data.h"
#include "lethe.h"

using namespace lethe;
namespace fs = std::filesystem;

namespace {

// A fresh folder under the system temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("lethe_test_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i * 37 + 11) % 256);
  return v;
}

void truncate_file(const std::string& path, uintmax_t keep) {
  fs::resize_file(path, keep);
}

}  // namespace

TEST_CASE("IDX images and labels read back from raw and gzip files") {
  Session session;
  TempDir dir;
  auto px = pattern(3 * 4 * 5);
  std::vector<uint8_t> labels{7, 0, 9};
  for (bool gz : {false, true}) {
    CAPTURE(gz);
    const std::string ip = dir / (gz ? "img.gz" : "img"), lp = dir / (gz ? "lab.gz" : "lab");
    data::write_idx(ip, data::kIdxImagesMagic, {3, 4, 5}, px, gz);
    data::write_idx(lp, data::kIdxLabelsMagic, {3}, labels, gz);
    Tensor x = data::read_idx_images(ip);
    CHECK(x.shape() == Shape{3, 1, 4, 5});
    CHECK(x.dtype() == DType::f32);
    auto xv = x.to_vector<float>();
    for (size_t i = 0; i < px.size(); ++i) CHECK(xv[i] == static_cast<float>(px[i]) / 255.0f);
    CHECK(data::read_idx_images(ip, /*channel_dim=*/false).shape() == Shape{3, 4, 5});
    Tensor y = data::read_idx_labels(lp);
    CHECK(y.dtype() == DType::i64);
    CHECK(y.to_vector<int64_t>() == std::vector<int64_t>{7, 0, 9});
  }
}

TEST_CASE("IDX errors name the file and say what was expected") {
  Session session;
  TempDir dir;
  CHECK_THROWS_WITH_AS(data::read_idx_images(dir / "missing.gz"),
                       doctest::Contains("dataset-fashion-mnist"), Error);
  CHECK_THROWS_WITH_AS(data::read_idx_images(dir / "missing.gz"), doctest::Contains("missing.gz"),
                       Error);

  // Labels read as images: wrong magic, both numbers named.
  data::write_idx(dir / "lab", data::kIdxLabelsMagic, {3}, {1, 2, 3});
  CHECK_THROWS_WITH_AS(data::read_idx_images(dir / "lab"), doctest::Contains("0x00000801"), Error);
  CHECK_THROWS_WITH_AS(data::read_idx_images(dir / "lab"), doctest::Contains("expected 0x00000803"),
                       Error);

  // Not an IDX file at all.
  { std::ofstream(dir / "text") << "hello world, not idx"; }
  CHECK_THROWS_AS(data::read_idx(dir / "text"), Error);
  CHECK_THROWS_WITH_AS(data::read_idx_labels(dir / "text"), doctest::Contains("magic"), Error);

  // Truncated raw data: the header says 60 bytes, 50 are there.
  data::write_idx(dir / "img", data::kIdxImagesMagic, {3, 4, 5}, pattern(60));
  truncate_file(dir / "img", 16 + 50);
  CHECK_THROWS_WITH_AS(data::read_idx_images(dir / "img"),
                       doctest::Contains("expected 60 bytes of data, found 50"), Error);
  truncate_file(dir / "img", 10);
  CHECK_THROWS_WITH_AS(data::read_idx_images(dir / "img"), doctest::Contains("truncated"), Error);
  truncate_file(dir / "img", 0);
  CHECK_THROWS_WITH_AS(data::read_idx_images(dir / "img"), doctest::Contains("truncated"), Error);

  // Truncated gzip stream.
  data::write_idx(dir / "big.gz", data::kIdxImagesMagic, {50, 28, 28}, pattern(50 * 784), true);
  truncate_file(dir / "big.gz", fs::file_size(dir / "big.gz") / 2);
  CHECK_THROWS_WITH_AS(data::read_idx_images(dir / "big.gz"), doctest::Contains("truncated"),
                       Error);
}

TEST_CASE("FashionMNIST reads a folder of IDX files, gzip or not, and reports a missing one") {
  Session session;
  TempDir dir;
  auto px = pattern(6 * 28 * 28);
  data::write_idx(dir / "train-images-idx3-ubyte.gz", data::kIdxImagesMagic, {6, 28, 28}, px, true);
  data::write_idx(dir / "train-labels-idx1-ubyte", data::kIdxLabelsMagic, {6}, {0, 1, 2, 3, 4, 9});
  data::FashionMNIST ds(dir.path.string(), true);
  CHECK(ds.size() == 6);
  auto b = ds.get_batch({5, 0});
  CHECK(b.data.shape() == Shape{2, 1, 28, 28});
  CHECK(b.target.to_vector<int64_t>() == std::vector<int64_t>{9, 0});
  CHECK(b.data.to_vector<float>()[0] == static_cast<float>(px[5 * 784]) / 255.0f);
  CHECK_THROWS_WITH_AS(ds.get_batch({6}), doctest::Contains("out of range"), Error);
  CHECK_THROWS_WITH_AS(data::FashionMNIST(dir.path.string(), false),
                       doctest::Contains("t10k-images-idx3-ubyte"), Error);
  CHECK(data::FashionMNIST::classes().size() == 10);
  // A label file that does not match the images.
  data::write_idx(dir / "t10k-images-idx3-ubyte", data::kIdxImagesMagic, {2, 28, 28},
                  pattern(2 * 784));
  data::write_idx(dir / "t10k-labels-idx1-ubyte", data::kIdxLabelsMagic, {3}, {0, 1, 2});
  CHECK_THROWS_WITH_AS(data::FashionMNIST(dir.path.string(), false), doctest::Contains("3 labels"),
                       Error);
}

namespace {
std::shared_ptr<data::TensorDataset> counting_dataset(int64_t n) {
  std::vector<float> x(static_cast<size_t>(n * 2));
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    x[static_cast<size_t>(2 * i)] = static_cast<float>(i);
    x[static_cast<size_t>(2 * i + 1)] = -static_cast<float>(i);
    y[static_cast<size_t>(i)] = i;
  }
  return std::make_shared<data::TensorDataset>(x, Shape{2}, y);
}

std::vector<std::vector<int64_t>> epoch_targets(data::DataLoader& l) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& b : l) out.push_back(b.target.to_vector<int64_t>());
  return out;
}
}  // namespace

TEST_CASE("DataLoader: batch sizes and drop_last") {
  Session session;
  auto ds = counting_dataset(10);
  data::DataLoader keep(ds, data::DataLoaderOptions().batch_size(3));
  CHECK(keep.size() == 4);
  auto batches = epoch_targets(keep);
  REQUIRE(batches.size() == 4);
  CHECK(batches[0] == std::vector<int64_t>{0, 1, 2});
  CHECK(batches[3] == std::vector<int64_t>{9});
  data::DataLoader drop(ds, data::DataLoaderOptions().batch_size(3).drop_last(true));
  CHECK(drop.size() == 3);
  int n = 0;
  for (const auto& b : drop) {
    CHECK(b.data.shape() == Shape{3, 2});
    CHECK(b.data.to_vector<float>()[1] == -static_cast<float>(b.target.to_vector<int64_t>()[0]));
    ++n;
  }
  CHECK(n == 3);
  CHECK_THROWS_AS(data::DataLoader(ds, data::DataLoaderOptions().batch_size(0)), Error);
}

TEST_CASE("DataLoader: seeded shuffle is a permutation, reproducible, new each epoch") {
  Session session;
  auto ds = counting_dataset(100);
  auto opts = data::DataLoaderOptions().batch_size(10).shuffle(true).seed(1234);
  data::DataLoader a(ds, opts), b(ds, opts), c(ds, data::DataLoaderOptions(opts).seed(99));
  auto a0 = epoch_targets(a), a1 = epoch_targets(a);
  auto b0 = epoch_targets(b), b1 = epoch_targets(b);
  CHECK(a0 == b0);
  CHECK(a1 == b1);
  CHECK(a0 != a1);
  CHECK(epoch_targets(c) != a0);
  std::set<int64_t> seen;
  for (auto& batch : a0) seen.insert(batch.begin(), batch.end());
  CHECK(seen.size() == 100);
  CHECK(*seen.begin() == 0);
  CHECK(*seen.rbegin() == 99);
  // set_epoch replays an epoch; order() exposes it.
  a.set_epoch(0);
  CHECK(epoch_targets(a) == a0);
  CHECK(a.order(1) == b.order(1));
  CHECK(a.epoch() == 1);
}

// IDX files (the MNIST family's format), raw or gzip-compressed (detected from the content).
//
//   auto images =
//   lethe::data::read_idx_images("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
//   // f32 [10000, 1, 28, 28] in [0, 1]
//   auto labels = lethe::data::read_idx_labels(".../t10k-labels-idx1-ubyte.gz");   // i64 [10000]
//
// Every failure (missing file, wrong magic, truncated data) throws lethe::Error naming the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "framework/tensor.h"

namespace lethe::data {

constexpr uint32_t kIdxImagesMagic = 0x00000803;  // unsigned bytes, 3 dims
constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned bytes, 1 dim

// The raw content of an IDX file of unsigned bytes, on the host.
struct IdxFile {
  uint32_t magic = 0;
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// Reads an IDX file of unsigned bytes. When `expected_magic` is non-zero, a different magic number
// is an error that names both.
IdxFile read_idx(const std::string& path, uint32_t expected_magic = 0);

// Images as f32 in [0, 1] (bytes / 255): [N, 1, rows, cols] with `channel_dim`, else [N, rows,
// cols].
Tensor read_idx_images(const std::string& path, bool channel_dim = true);
// Labels as i64 [N].
Tensor read_idx_labels(const std::string& path);

// Writes an IDX file of unsigned bytes (gzip-compressed when `gzip`); used by tests and tools.
void write_idx(const std::string& path, uint32_t magic, const std::vector<int64_t>& dims,
               const std::vector<uint8_t>& data, bool gzip = false);

}  // namespace lethe::data

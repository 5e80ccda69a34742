#include "data/idx.h"

#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "framework/error.h"
#include "ops/creation.h"

namespace lethe::data {
namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const {
    if (f) gzclose(f);
  }
};
using GzPtr = std::unique_ptr<gzFile_s, GzCloser>;

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

// Reads up to n bytes; returns how many were read (fewer at end of data). Throws on a corrupt
// stream.
size_t read_some(gzFile f, void* dst, size_t n, const std::string& path) {
  size_t got = 0;
  auto* p = static_cast<unsigned char*>(dst);
  while (got < n) {
    unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30));
    int r = gzread(f, p + got, chunk);
    if (r < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      // A gzip stream cut short reads as a truncated file, which is what it is.
      if (err == Z_BUF_ERROR || err == Z_DATA_ERROR) return got;
      throw Error("read_idx: cannot read '" + path + "': " + (msg ? msg : "zlib error"));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace

IdxFile read_idx(const std::string& path, uint32_t expected_magic) {
  std::error_code ec;
  LETHE_CHECK(std::filesystem::is_regular_file(path, ec), "read_idx: no such file '", path,
              "'; install the dataset (apt-get install dataset-fashion-mnist) or pass --data DIR");
  // gzread reads plain files as they are, so one path serves raw and compressed files.
  GzPtr f(gzopen(path.c_str(), "rb"));
  LETHE_CHECK(f != nullptr, "read_idx: cannot open '", path, "'");
  unsigned char header[4];
  size_t got = read_some(f.get(), header, 4, path);
  LETHE_CHECK(got == 4, "read_idx: '", path, "' is truncated: expected a 4-byte header, found ",
              got, " bytes");
  const uint32_t magic = (uint32_t(header[0]) << 24) | (uint32_t(header[1]) << 16) |
                         (uint32_t(header[2]) << 8) | header[3];
  if (expected_magic != 0)
    LETHE_CHECK(magic == expected_magic, "read_idx: '", path, "' has magic number ", hex(magic),
                ", expected ", hex(expected_magic),
                expected_magic == kIdxImagesMagic   ? " (IDX images)"
                : expected_magic == kIdxLabelsMagic ? " (IDX labels)"
                                                    : "");
  LETHE_CHECK(header[0] == 0 && header[1] == 0, "read_idx: '", path,
              "' is not an IDX file (magic number ", hex(magic), ", expected 0x000008NN)");
  IdxFile out;
  out.magic = magic;
  LETHE_CHECK(header[2] == 0x08, "read_idx: '", path, "' holds element type ", hex(header[2]),
              "; only unsigned bytes (0x08) are supported");
  const int ndim = header[3];
  LETHE_CHECK(ndim >= 1 && ndim <= 8, "read_idx: '", path, "' declares ", ndim, " dimensions");
  std::vector<unsigned char> dims_raw(static_cast<size_t>(4 * ndim));
  got = read_some(f.get(), dims_raw.data(), dims_raw.size(), path);
  LETHE_CHECK(got == dims_raw.size(), "read_idx: '", path, "' is truncated: expected ",
              dims_raw.size(), " bytes of dimensions, found ", got);
  int64_t total = 1;
  for (int d = 0; d < ndim; ++d) {
    const unsigned char* b = &dims_raw[static_cast<size_t>(4 * d)];
    int64_t v =
        (int64_t(b[0]) << 24) | (int64_t(b[1]) << 16) | (int64_t(b[2]) << 8) | int64_t(b[3]);
    out.dims.push_back(v);
    total *= v;
    LETHE_CHECK(total <= (int64_t(1) << 40), "read_idx: '", path, "' declares an implausible size");
  }
  out.data.resize(static_cast<size_t>(total));
  got = read_some(f.get(), out.data.data(), out.data.size(), path);
  LETHE_CHECK(got == out.data.size(), "read_idx: '", path, "' is truncated: expected ",
              out.data.size(), " bytes of data, found ", got);
  return out;
}

Tensor read_idx_images(const std::string& path, bool channel_dim) {
  IdxFile f = read_idx(path, kIdxImagesMagic);
  LETHE_CHECK(f.dims.size() == 3, "read_idx_images: '", path, "' has ", f.dims.size(),
              " dimensions, expected 3 (N, rows, cols)");
  std::vector<float> v(f.data.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(f.data[i]) / 255.0f;
  Shape s = channel_dim ? Shape{f.dims[0], 1, f.dims[1], f.dims[2]}
                        : Shape{f.dims[0], f.dims[1], f.dims[2]};
  return from_vector<float>(v, s);
}

Tensor read_idx_labels(const std::string& path) {
  IdxFile f = read_idx(path, kIdxLabelsMagic);
  std::vector<int64_t> v(f.data.begin(), f.data.end());
  return from_vector<int64_t>(v, Shape{f.dims[0]});
}

void write_idx(const std::string& path, uint32_t magic, const std::vector<int64_t>& dims,
               const std::vector<uint8_t>& data, bool gzip) {
  std::vector<unsigned char> bytes;
  for (int s = 24; s >= 0; s -= 8) bytes.push_back(static_cast<unsigned char>(magic >> s));
  for (int64_t d : dims)
    for (int s = 24; s >= 0; s -= 8) bytes.push_back(static_cast<unsigned char>(d >> s));
  bytes.insert(bytes.end(), data.begin(), data.end());
  if (gzip) {
    GzPtr f(gzopen(path.c_str(), "wb"));
    LETHE_CHECK(f != nullptr, "write_idx: cannot create '", path, "'");
    LETHE_CHECK(gzwrite(f.get(), bytes.data(), static_cast<unsigned>(bytes.size())) ==
                    static_cast<int>(bytes.size()),
                "write_idx: cannot write '", path, "'");
    return;
  }
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  LETHE_CHECK(f != nullptr, "write_idx: cannot create '", path, "'");
  LETHE_CHECK(std::fwrite(bytes.data(), 1, bytes.size(), f.get()) == bytes.size(),
              "write_idx: cannot write '", path, "'");
}

}  // namespace lethe::data

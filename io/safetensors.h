// The safetensors file format (https://github.com/huggingface/safetensors), read and written
// without tensors: names, dtypes, shapes and raw little-endian bytes. The scheduler-only build
// compiles and tests it, so it depends on nothing but the standard library (and JSON inside).
//
//   io::SafetensorsFile f = io::read_safetensors("model.safetensors");   // validated, or io::Error
//   if (const io::TensorView* w = f.find("fc1.weight")) {
//     std::vector<float> v((w->end - w->begin) / sizeof(float));         // w->dtype == "F32"
//     std::memcpy(v.data(), f.data(*w), w->end - w->begin);
//   }
//   io::write_safetensors("out.safetensors",
//                         {{"fc1.weight", "F32", {2, 3}, values.data(), 6 * sizeof(float)}},
//                         {{"format", "pt"}});                              // atomic replace
//
// Layout: 8 bytes N (little-endian u64), N bytes of a UTF-8 JSON object, then the data section.
// Each key but "__metadata__" is a tensor {"dtype", "shape", "data_offsets": [begin, end]}, the
// offsets relative to the data section; "__metadata__" maps strings to strings. Reading checks
// everything the reference implementation checks (and a little more: duplicate keys, unknown
// fields), so that no input, however damaged, is read out of bounds.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "framework/error.h"

namespace lethe::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; Lethe copies it without swapping bytes");

// Every failure to read, validate or write a file. The message names the file (or the label given
// to parse_safetensors), the tensor when one is involved, what was expected and what was found.
// A lethe::Error (framework/error.h, header-only).
class Error : public lethe::Error {
 public:
  explicit Error(const std::string& what) : lethe::Error(what) {}
};

// One tensor of a file: its bytes are [begin, end) of the data section (use SafetensorsFile::data).
struct TensorView {
  std::string name;
  std::string dtype;  // "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;
  size_t begin = 0, end = 0;
};

// Bytes per element: F64 I64 U64 8; F32 I32 U32 4; F16 BF16 I16 U16 2; I8 U8 BOOL F8_E4M3
// F8_E5M2 1. Throws Error on any other name.
size_t dtype_size(const std::string& dtype);

// A validated file held in memory: the tensors cover its data section exactly, in offset order.
class SafetensorsFile {
 public:
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }  // by (begin, end, name)
  const TensorView* find(const std::string& name) const;               // null if absent
  // The first byte of `t`'s data (`t.end - t.begin` bytes). The header is padded to 8 bytes by
  // writers, not by the format: copy out with memcpy rather than casting the pointer.
  const unsigned char* data(const TensorView& t) const;
  size_t data_size() const { return bytes_.size() - data_start_; }  // bytes of the data section
  const std::string& source() const { return source_; }             // path or label

 private:
  friend SafetensorsFile parse_safetensors(std::string bytes, const std::string& source);
  std::string bytes_;  // the whole file
  size_t data_start_ = 0;
  std::string source_;
  std::map<std::string, std::string> metadata_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;  // name -> position in tensors_
};

// Validates `bytes` (a whole file) and keeps them; `source` labels the messages.
SafetensorsFile parse_safetensors(std::string bytes, const std::string& source);
// Reads and validates a regular file.
SafetensorsFile read_safetensors(const std::string& path);

// A tensor to write; `data` points to `bytes` little-endian bytes, which must equal the element
// count of `shape` times dtype_size(dtype). Names are non-empty, unique and not "__metadata__".
struct TensorToWrite {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t bytes = 0;
};

// The file's bytes: header keys sorted, the header padded with spaces to a multiple of 8 bytes,
// the tensors' data in the order given. An empty `metadata` writes no "__metadata__".
std::string serialize_safetensors(const std::vector<TensorToWrite>& tensors,
                                  const std::map<std::string, std::string>& metadata);

// Atomic: writes `path`.tmp-<pid>-<random> (never an existing file), fsyncs it, renames it over
// `path` and fsyncs the directory. On any failure the temporary is removed, `path` (the last good
// file) is untouched, and Error carries the OS error.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata);

namespace detail {
// write_safetensors with the random part of the temporary's name drawn from `next_suffix` (tests
// use it to make a name collide with an existing file).
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata,
                       const std::function<uint64_t()>& next_suffix);
}  // namespace detail

}  // namespace lethe::io

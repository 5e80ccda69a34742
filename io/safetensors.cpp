#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string_view>
#include <system_error>
#include <unordered_set>

namespace lethe::io {
namespace {

constexpr size_t kLengthBytes = 8;                 // the u64 header length
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference's MAX_HEADER_SIZE

struct DtypeInfo {
  std::string_view name;
  size_t size;
};
constexpr DtypeInfo kDtypes[] = {{"F64", 8}, {"F32", 4},     {"F16", 2},    {"BF16", 2},
                                 {"I64", 8}, {"I32", 4},     {"I16", 2},    {"I8", 1},
                                 {"U8", 1},  {"BOOL", 1},    {"U64", 8},    {"U32", 4},
                                 {"U16", 2}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};

// 0 for an unknown name.
size_t size_of_dtype(std::string_view name) {
  for (const DtypeInfo& d : kDtypes) {
    if (d.name == name) return d.size;
  }
  return 0;
}

std::string dtype_names() {
  std::string s;
  for (const DtypeInfo& d : kDtypes) {
    if (!s.empty()) s += ", ";
    s += d.name;
  }
  return s;
}

// Position of the first byte that is not part of well-formed UTF-8 (the rules of Rust's
// str::from_utf8: no overlong forms, no surrogates, nothing above U+10FFFF), npos if none.
size_t invalid_utf8_at(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t more = 0;
    unsigned lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      more = 1;
    } else if (c == 0xE0) {
      more = 2, lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      more = 2;
    } else if (c == 0xED) {
      more = 2, hi = 0x9F;
    } else if (c == 0xF0) {
      more = 3, lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
      more = 3;
    } else if (c == 0xF4) {
      more = 3, hi = 0x8F;
    } else {
      return i;
    }
    if (n - i <= more) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k <= more; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    }
    i += more + 1;
  }
  return std::string_view::npos;
}

// A name or string for a message: quoted, control bytes escaped, at most ~120 bytes.
std::string quote(std::string_view s) {
  constexpr size_t kMax = 120;
  size_t n = std::min(s.size(), kMax);
  const bool utf8 = invalid_utf8_at(s.substr(0, n)) == std::string_view::npos;
  if (n < s.size()) {  // do not cut a UTF-8 sequence in two
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  }
  std::string out = "'";
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F || (c >= 0x80 && !utf8)) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (n < s.size()) out += "...";
  out += "'";
  return out;
}

template <class T>
std::string shape_str(const std::vector<T>& shape) {
  constexpr size_t kMax = 8;
  std::string s = "[";
  for (size_t i = 0; i < shape.size() && i < kMax; ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() > kMax) s += ", ... (" + std::to_string(shape.size()) + " dimensions)";
  return s + "]";
}

std::string range_str(uint64_t begin, uint64_t end) {
  std::string s = "[";  // appended piece by piece: "[" + std::string trips GCC 12's -Wrestrict
  s += std::to_string(begin);
  s += ", ";
  s += std::to_string(end);
  return s + "]";
}

bool checked_mul(uint64_t a, uint64_t b, uint64_t& out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  out = a * b;
  return true;
}

std::string os_error(int err) {
  return std::system_category().message(err);
}

// Reads the header with nlohmann's SAX interface, so that the structure is checked as it streams
// by: a wrong value stops the parse at once (nothing nests deeper than a shape array, nothing
// large is built), duplicate keys are seen (a DOM would keep only one), and each message knows
// the tensor and field it is about.
class HeaderReader {
 public:
  using json = nlohmann::json;

  HeaderReader(const std::string& source, uint64_t data_size)
      : source_(source), data_size_(data_size) {}

  std::map<std::string, std::string> metadata;
  std::vector<TensorView> tensors;

  bool complete() const { return at_ == At::end; }

  bool null() { return value({Kind::null}); }
  bool boolean(bool b) { return value({b ? Kind::yes : Kind::no}); }
  bool number_integer(json::number_integer_t v) {
    Value x{Kind::integer};
    x.i = v;
    return value(x);
  }
  bool number_unsigned(json::number_unsigned_t v) {
    Value x{Kind::unsigned_integer};
    x.u = v;
    return value(x);
  }
  bool number_float(json::number_float_t, const json::string_t& text) {
    Value x{Kind::floating};
    x.text = &text;
    return value(x);
  }
  bool string(json::string_t& s) {
    Value x{Kind::string};
    x.text = &s;
    return value(x);
  }
  bool binary(json::binary_t&) { fail("the header holds binary data"); }
  bool start_object(std::size_t) { return value({Kind::object}); }
  bool start_array(std::size_t) { return value({Kind::array}); }

  bool key(json::string_t& k) {
    switch (at_) {
      case At::top:
        if (!keys_.insert(k).second) {
          fail(k == "__metadata__" ? std::string("__metadata__ appears twice in the header")
                                   : "tensor " + quote(k) + " appears twice in the header");
        }
        key_ = k;
        return true;
      case At::metadata:
        if (metadata.count(k)) fail("__metadata__ key " + quote(k) + " appears twice");
        meta_key_ = k;
        return true;
      case At::tensor: {
        int f = -1;
        for (int i = 0; i < 3; ++i) {
          if (k == kFields[i]) f = i;
        }
        if (f < 0) {
          fail(tensor_prefix() + "unexpected field " + quote(k) +
               " (a tensor has exactly dtype, shape and data_offsets)");
        }
        if (seen_fields_ & (1u << f))
          fail(tensor_prefix() + "field " + quote(k) + " appears twice");
        seen_fields_ |= 1u << f;
        field_ = f;
        return true;
      }
      default:
        fail("unexpected key " + quote(k));  // the parser never sends one here
    }
  }

  bool end_object() {
    switch (at_) {
      case At::top:
        at_ = At::end;
        return true;
      case At::metadata:
        at_ = At::top;
        return true;
      case At::tensor:
        for (int i = 0; i < 3; ++i) {
          if (!(seen_fields_ & (1u << i))) {
            fail(tensor_prefix() + "missing field '" + kFields[i] +
                 "' (a tensor has dtype, shape and data_offsets)");
          }
        }
        finish_tensor();
        at_ = At::top;
        return true;
      default:
        fail("unbalanced object");  // the parser never sends one here
    }
  }

  bool end_array() {
    switch (at_) {
      case At::shape:
        at_ = At::tensor;
        return true;
      case At::offsets:
        if (n_offsets_ != 2) {
          fail(tensor_prefix() + "data_offsets must be two integers [begin, end], found " +
               std::to_string(n_offsets_));
        }
        at_ = At::tensor;
        return true;
      default:
        fail("unbalanced array");  // the parser never sends one here
    }
  }

  bool parse_error(std::size_t, const std::string&, const json::exception& e) {
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 9: ..." -> from "parse error"
    if (const size_t p = what.find("] "); what.rfind("[json.exception", 0) == 0 && p != what.npos) {
      what.erase(0, p + 2);
    }
    if (what.size() > 300) what = what.substr(0, 300) + "...";
    fail("the header is not valid JSON: " + what);
  }

 private:
  enum class At { start, top, metadata, tensor, shape, offsets, end };
  enum class Kind { null, yes, no, integer, unsigned_integer, floating, string, object, array };
  struct Value {
    Kind kind;
    int64_t i = 0;
    uint64_t u = 0;
    const std::string* text = nullptr;
  };
  static constexpr const char* kFields[3] = {"dtype", "shape", "data_offsets"};
  enum { kDtype = 0, kShape = 1, kOffsets = 2 };

  [[noreturn]] void fail(const std::string& what) const { throw Error(source_ + ": " + what); }

  std::string tensor_prefix() const { return "tensor " + quote(key_) + ": "; }

  static std::string describe(const Value& v) {
    switch (v.kind) {
      case Kind::null:
        return "null";
      case Kind::yes:
        return "true";
      case Kind::no:
        return "false";
      case Kind::integer:
        return v.i == 0 ? "-0" : std::to_string(v.i);
      case Kind::unsigned_integer:
        return std::to_string(v.u);
      case Kind::floating:
        return v.text->size() > 40 ? v.text->substr(0, 40) + "..." : *v.text;
      case Kind::string:
        return "the string " + quote(*v.text);
      case Kind::object:
        return "an object";
      case Kind::array:
        return "an array";
    }
    return "?";
  }

  // A JSON integer without a minus sign (nlohmann reports exactly those as unsigned). Like the
  // reference (serde_json reads "-0" as a float), "-0" is refused.
  static bool as_count(const Value& v, uint64_t& out) {
    if (v.kind != Kind::unsigned_integer) return false;
    out = v.u;
    return true;
  }

  bool value(const Value& v) {
    switch (at_) {
      case At::start:
        if (v.kind != Kind::object) fail("the header must be a JSON object, found " + describe(v));
        at_ = At::top;
        return true;
      case At::top:
        if (key_ == "__metadata__") {
          if (v.kind == Kind::object) {
            at_ = At::metadata;
            return true;
          }
          if (v.kind == Kind::null) return true;  // the reference reads null as "no metadata"
          fail("__metadata__ must be an object mapping strings to strings, found " + describe(v));
        }
        if (v.kind != Kind::object) {
          fail(tensor_prefix() + "expected an object {dtype, shape, data_offsets}, found " +
               describe(v));
        }
        current_ = TensorView{};
        current_.name = key_;
        seen_fields_ = 0;
        n_offsets_ = 0;
        at_ = At::tensor;
        return true;
      case At::metadata:
        if (v.kind != Kind::string) {
          fail("__metadata__ entry " + quote(meta_key_) + " must be a string, found " +
               describe(v));
        }
        metadata.emplace(meta_key_, *v.text);
        return true;
      case At::tensor:
        if (field_ == kDtype) {
          if (v.kind != Kind::string) {
            fail(tensor_prefix() + "dtype must be a string such as \"F32\", found " + describe(v));
          }
          if (size_of_dtype(*v.text) == 0) {
            fail(tensor_prefix() + "unknown dtype " + quote(*v.text) + " (expected one of " +
                 dtype_names() + ")");
          }
          current_.dtype = *v.text;
          return true;
        }
        if (v.kind != Kind::array) {
          fail(tensor_prefix() +
               (field_ == kShape ? "shape must be an array of non-negative integers, found "
                                 : "data_offsets must be two integers [begin, end], found ") +
               describe(v));
        }
        at_ = field_ == kShape ? At::shape : At::offsets;
        return true;
      case At::shape: {
        uint64_t n = 0;
        const std::string where = "shape[" + std::to_string(current_.shape.size()) + "]";
        if (!as_count(v, n)) {
          fail(tensor_prefix() + where + " must be a non-negative integer, found " + describe(v));
        }
        if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          fail(tensor_prefix() + where + " is " + std::to_string(n) + ", above 2^63 - 1");
        }
        current_.shape.push_back(static_cast<int64_t>(n));
        return true;
      }
      case At::offsets: {
        uint64_t n = 0;
        if (!as_count(v, n)) {
          fail(tensor_prefix() + "data_offsets[" + std::to_string(n_offsets_) +
               "] must be a non-negative integer, found " + describe(v));
        }
        if (n_offsets_ == 2) {
          fail(tensor_prefix() + "data_offsets must be two integers [begin, end], found more");
        }
        offsets_[n_offsets_++] = n;
        return true;
      }
      case At::end:
        break;
    }
    fail("unexpected value after the header object");  // the parser never sends one here
  }

  // The checks one tensor needs alone; how tensors share the data section is checked later.
  void finish_tensor() {
    const uint64_t begin = offsets_[0], end = offsets_[1];
    const std::string offsets = "data_offsets " + range_str(begin, end);
    if (begin > end) fail(tensor_prefix() + offsets + " begin after they end");
    uint64_t numel = 1;
    for (int64_t d : current_.shape) {  // folded in order, like the reference
      if (!checked_mul(numel, static_cast<uint64_t>(d), numel)) {
        fail(tensor_prefix() + "shape " + shape_str(current_.shape) +
             " has more elements than 64 bits can count");
      }
    }
    uint64_t bytes = 0;
    if (!checked_mul(numel, size_of_dtype(current_.dtype), bytes)) {
      fail(tensor_prefix() + "shape " + shape_str(current_.shape) + " of " + current_.dtype +
           " needs more bytes than 64 bits can count");
    }
    if (end - begin != bytes) {
      fail(tensor_prefix() + offsets + " hold " + std::to_string(end - begin) +
           " bytes, but shape " + shape_str(current_.shape) + " of " + current_.dtype + " needs " +
           std::to_string(bytes));
    }
    if (end > data_size_) {
      fail(tensor_prefix() + offsets + " end past the data section, which has " +
           std::to_string(data_size_) + " bytes (is the file truncated?)");
    }
    current_.begin = static_cast<size_t>(begin);
    current_.end = static_cast<size_t>(end);
    tensors.push_back(std::move(current_));
  }

  const std::string& source_;
  const uint64_t data_size_;
  At at_ = At::start;
  std::unordered_set<std::string> keys_;  // the top-level keys so far
  std::string key_;                       // the top-level key whose value is being read
  std::string meta_key_;
  TensorView current_;
  unsigned seen_fields_ = 0;
  int field_ = kDtype;
  int n_offsets_ = 0;
  uint64_t offsets_[2] = {0, 0};
};

// The 8-byte length and the padded JSON header of `tensors` laid out in order; `where` labels
// the messages. Sets `data_bytes` to the size of the data section.
std::string make_header(const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata,
                        const std::string& where, uint64_t& data_bytes) {
  using json = nlohmann::json;
  json header = json::object();
  if (!metadata.empty()) {
    json m = json::object();
    for (const auto& [k, v] : metadata) {
      if (invalid_utf8_at(k) != std::string_view::npos) {
        throw Error(where + ": __metadata__ key " + quote(k) + " is not valid UTF-8");
      }
      if (invalid_utf8_at(v) != std::string_view::npos) {
        throw Error(where + ": __metadata__ value of " + quote(k) + " is not valid UTF-8");
      }
      m[k] = v;
    }
    header["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    const std::string prefix = where + ": tensor " + quote(t.name) + ": ";
    if (t.name.empty()) throw Error(where + ": a tensor has an empty name");
    if (t.name == "__metadata__") {
      throw Error(prefix + "the name is reserved for the file's metadata");
    }
    if (invalid_utf8_at(t.name) != std::string_view::npos) {
      throw Error(prefix + "the name is not valid UTF-8");
    }
    if (header.contains(t.name)) throw Error(prefix + "the name appears twice");
    const size_t size = size_of_dtype(t.dtype);
    if (size == 0) {
      throw Error(prefix + "unknown dtype " + quote(t.dtype) + " (expected one of " +
                  dtype_names() + ")");
    }
    uint64_t numel = 1;
    for (size_t i = 0; i < t.shape.size(); ++i) {
      if (t.shape[i] < 0) {
        throw Error(prefix + "shape[" + std::to_string(i) + "] is " + std::to_string(t.shape[i]) +
                    ", expected a non-negative size");
      }
      if (!checked_mul(numel, static_cast<uint64_t>(t.shape[i]), numel)) {
        throw Error(prefix + "shape " + shape_str(t.shape) +
                    " has more elements than 64 bits can count");
      }
    }
    uint64_t bytes = 0;
    if (!checked_mul(numel, size, bytes)) {
      throw Error(prefix + "shape " + shape_str(t.shape) + " of " + t.dtype +
                  " needs more bytes than 64 bits can count");
    }
    if (bytes != t.bytes) {
      throw Error(prefix + "has " + std::to_string(t.bytes) + " bytes, but shape " +
                  shape_str(t.shape) + " of " + t.dtype + " needs " + std::to_string(bytes));
    }
    if (bytes > 0 && t.data == nullptr) {
      throw Error(prefix + "its " + std::to_string(bytes) + " bytes of data are a null pointer");
    }
    if (offset > std::numeric_limits<uint64_t>::max() - bytes) {
      throw Error(prefix + "the data section would exceed 2^64 bytes");
    }
    header[t.name] = json{{"dtype", t.dtype},
                          {"shape", t.shape},
                          {"data_offsets", json::array({offset, offset + bytes})}};
    offset += bytes;
  }
  std::string text = header.dump();  // compact, keys sorted, UTF-8 kept as is
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxHeaderBytes) {
    throw Error(where + ": the header would be " + std::to_string(text.size()) +
                " bytes, above the format's limit of " + std::to_string(kMaxHeaderBytes));
  }
  std::string out(kLengthBytes, '\0');
  uint64_t n = text.size();
  for (size_t i = 0; i < kLengthBytes; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  out += text;
  data_bytes = offset;
  return out;
}

// Closes a descriptor on every path.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  // Closes now, reporting the error (write-back errors may first show here).
  int close_now() {
    const int r = ::close(fd);
    fd = -1;
    return r;
  }
};

// Writes all `n` bytes or returns errno.
int write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t r = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) return EIO;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return 0;
}

}  // namespace

size_t dtype_size(const std::string& dtype) {
  const size_t s = size_of_dtype(dtype);
  if (s == 0) {
    throw Error("unknown safetensors dtype " + quote(dtype) + " (expected one of " + dtype_names() +
                ")");
  }
  return s;
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const unsigned char* SafetensorsFile::data(const TensorView& t) const {
  if (t.begin > t.end || t.end > data_size()) {
    throw Error(source_ + ": tensor " + quote(t.name) + ": bytes " + range_str(t.begin, t.end) +
                " are outside the data section of " + std::to_string(data_size()) + " bytes");
  }
  return reinterpret_cast<const unsigned char*>(bytes_.data()) + data_start_ + t.begin;
}

SafetensorsFile parse_safetensors(std::string bytes, const std::string& source) {
  const auto fail = [&](const std::string& what) { throw Error(source + ": " + what); };
  if (bytes.size() < kLengthBytes) {
    fail("the file is " + std::to_string(bytes.size()) +
         " bytes, too short for the 8-byte header length");
  }
  uint64_t n = 0;
  for (size_t i = 0; i < kLengthBytes; ++i) {
    n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  }
  if (n > kMaxHeaderBytes) {
    fail("the header length is " + std::to_string(n) + " bytes, above the format's limit of " +
         std::to_string(kMaxHeaderBytes));
  }
  if (n > bytes.size() - kLengthBytes) {
    fail("the header length is " + std::to_string(n) + " bytes, but only " +
         std::to_string(bytes.size() - kLengthBytes) + " bytes follow it in the file");
  }
  const std::string_view header(bytes.data() + kLengthBytes, static_cast<size_t>(n));
  if (const size_t bad = invalid_utf8_at(header); bad != std::string_view::npos) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(header[bad]));
    fail("the header is not valid UTF-8 (byte " + std::string(hex) + " at header offset " +
         std::to_string(bad) + ")");
  }

  SafetensorsFile f;
  f.data_start_ = kLengthBytes + static_cast<size_t>(n);
  const uint64_t data_size = bytes.size() - f.data_start_;
  HeaderReader reader(source, data_size);
  try {
    nlohmann::json::sax_parse(header.begin(), header.end(), &reader);
  } catch (const nlohmann::json::exception& e) {  // parse errors arrive through the reader
    fail(std::string("the header is not valid JSON: ") + e.what());
  }
  if (!reader.complete()) fail("the header ends before its JSON object does");

  // The tensors must tile the data section: sorted by offsets, each begins where the last ended.
  std::vector<TensorView> tensors = std::move(reader.tensors);
  std::sort(tensors.begin(), tensors.end(), [](const TensorView& a, const TensorView& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  size_t cursor = 0;
  const TensorView* previous = nullptr;
  for (const TensorView& t : tensors) {
    const std::string prefix =
        "tensor " + quote(t.name) + ": data_offsets " + range_str(t.begin, t.end);
    if (t.begin < cursor) {
      fail(prefix + " overlap tensor " + quote(previous->name) + " at " +
           range_str(previous->begin, previous->end));
    }
    if (t.begin > cursor) {
      fail(prefix + " leave a hole: bytes [" + std::to_string(cursor) + ", " +
           std::to_string(t.begin) + ") of the data section belong to no tensor");
    }
    cursor = t.end;
    previous = &t;
  }
  if (cursor != data_size) {
    fail("bytes [" + std::to_string(cursor) + ", " + std::to_string(data_size) +
         ") at the end of the data section belong to no tensor");
  }

  for (size_t i = 0; i < tensors.size(); ++i) f.index_.emplace(tensors[i].name, i);
  f.tensors_ = std::move(tensors);
  f.metadata_ = std::move(reader.metadata);
  f.source_ = source;
  f.bytes_ = std::move(bytes);
  return f;
}

SafetensorsFile read_safetensors(const std::string& path) {
  // O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever (no effect on files).
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (fd.fd < 0) {
    const int err = errno;
    throw Error(path + ": cannot open for reading: " + os_error(err));
  }
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) {
    const int err = errno;
    throw Error(path + ": cannot stat: " + os_error(err));
  }
  // Not a FIFO or a device: their size is not known and reading them might never end.
  if (!S_ISREG(st.st_mode)) throw Error(path + ": not a regular file");
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t r =
        ::read(fd.fd, bytes.data() + got, std::min<size_t>(bytes.size() - got, size_t{1} << 30));
    if (r < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      throw Error(path + ": cannot read: " + os_error(err));
    }
    if (r == 0) break;  // the file shrank while we read it; validation will tell
    got += static_cast<size_t>(r);
  }
  bytes.resize(got);
  return parse_safetensors(std::move(bytes), path);
}

std::string serialize_safetensors(const std::vector<TensorToWrite>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  uint64_t data_bytes = 0;
  std::string out = make_header(tensors, metadata, "serialize_safetensors", data_bytes);
  if (data_bytes > out.max_size() - out.size()) {
    throw Error("serialize_safetensors: " + std::to_string(data_bytes) +
                " bytes of data do not fit in memory");
  }
  out.reserve(out.size() + static_cast<size_t>(data_bytes));
  for (const TensorToWrite& t : tensors) {
    if (t.bytes > 0) out.append(static_cast<const char*>(t.data), t.bytes);
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::random_device device;
  detail::write_safetensors(path, tensors, metadata, [&device] {
    return (static_cast<uint64_t>(device()) << 32) ^ device();
  });
}

namespace detail {

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata,
                       const std::function<uint64_t()>& next_suffix) {
  uint64_t data_bytes = 0;
  const std::string header = make_header(tensors, metadata, path, data_bytes);

  // O_EXCL: a name that exists (another writer's temporary, or anything else) is never reused.
  std::string tmp;
  Fd fd;
  for (int attempt = 0; fd.fd < 0; ++attempt) {
    char suffix[24];
    std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(next_suffix()));
    tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + suffix;
    fd.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd.fd < 0 && (errno != EEXIST || attempt == 99)) {
      const int err = errno;
      throw Error(path + ": cannot create the temporary file " + tmp + ": " + os_error(err));
    }
  }
  const auto fail = [&](const std::string& what, int err) {
    if (fd.fd >= 0) fd.close_now();
    ::unlink(tmp.c_str());
    throw Error(path + ": " + what + ": " + os_error(err) +
                " (the previous file, if any, is untouched)");
  };
  if (const int err = write_all(fd.fd, header.data(), header.size())) {
    fail("cannot write the temporary file " + tmp, err);
  }
  for (const TensorToWrite& t : tensors) {
    if (t.bytes == 0) continue;
    if (const int err = write_all(fd.fd, t.data, t.bytes)) {
      fail("cannot write the temporary file " + tmp, err);
    }
  }
  // errno is read before anything else runs (building a message may allocate).
  if (::fsync(fd.fd) != 0) {
    const int err = errno;
    fail("cannot sync the temporary file " + tmp, err);
  }
  if (fd.close_now() != 0) {
    const int err = errno;
    fail("cannot close the temporary file " + tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    fail("cannot rename the temporary file " + tmp + " over it", err);
  }

  // The rename is durable only once the directory is on disk too.
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  Fd dfd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dfd.fd < 0 || ::fsync(dfd.fd) != 0) {
    const int err = errno;
    throw Error(path + ": written, but syncing its directory " + dir.string() +
                " failed: " + os_error(err));
  }
}

}  // namespace detail
}  // namespace lethe::io

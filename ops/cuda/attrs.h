// Internal (lethe_cuda): reads an op's attributes back from Op::attrs() ("axis=1,shape=[2, 3]").
// The op classes live in anonymous namespaces of ops/*.cpp; their attribute text is exact (integers,
// %.17g doubles), is already part of the graph hash, and is all a CUDA kernel needs besides the
// shapes in the KernelCall. This keeps the CPU files untouched.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "framework/error.h"
#include "framework/op.h"

namespace lethe::cuda::detail {

// The text of attribute `key`, or nullptr-equivalent (found = false).
inline bool attr_text(const Op& op, const std::string& key, std::string& out) {
  const std::string a = op.attrs();
  size_t i = 0;
  while (i < a.size()) {
    size_t eq = a.find('=', i);
    if (eq == std::string::npos) break;
    std::string k = a.substr(i, eq - i);
    size_t j = eq + 1;
    int depth = 0;
    while (j < a.size() && !(a[j] == ',' && depth == 0)) {
      if (a[j] == '[') ++depth;
      if (a[j] == ']') --depth;
      ++j;
    }
    if (k == key) {
      out = a.substr(eq + 1, j - eq - 1);
      return true;
    }
    i = j + 1;
  }
  return false;
}

inline std::string attr_str(const Op& op, const std::string& key) {
  std::string v;
  LETHE_CHECK(attr_text(op, key, v), op.name(), ": CUDA kernel expected attribute '", key, "' in '",
              op.attrs(), "'");
  return v;
}
inline double attr_double(const Op& op, const std::string& key) {
  const std::string v = attr_str(op, key);
  if (v == "inf") return 1.0 / 0.0;
  if (v == "-inf") return -1.0 / 0.0;
  return std::strtod(v.c_str(), nullptr);
}
inline int64_t attr_int(const Op& op, const std::string& key) {
  return std::strtoll(attr_str(op, key).c_str(), nullptr, 10);
}
inline bool attr_bool(const Op& op, const std::string& key) { return attr_int(op, key) != 0; }
inline std::vector<int64_t> attr_ints(const Op& op, const std::string& key) {
  const std::string v = attr_str(op, key);
  std::vector<int64_t> r;
  const char* p = v.c_str();
  while (*p) {
    if ((*p >= '0' && *p <= '9') || *p == '-') {
      char* end = nullptr;
      r.push_back(std::strtoll(p, &end, 10));
      p = end;
    } else {
      ++p;
    }
  }
  return r;
}

// The first `count` integers after "key=" where the key starts the text or follows a comma. Conv and
// pooling attributes print pairs without brackets ("stride=2,2,padding=1,1,groups=1"), which the
// comma-separated walk of attr_text() cannot split; this reads them by position instead.
inline std::vector<int64_t> attr_ints_after(const Op& op, const std::string& key, int count) {
  const std::string a = op.attrs();
  const std::string k = key + "=";
  size_t pos = a.find(k);
  while (pos != std::string::npos && pos != 0 && a[pos - 1] != ',') pos = a.find(k, pos + 1);
  LETHE_CHECK(pos != std::string::npos, op.name(), ": CUDA kernel expected attribute '", key, "' in '",
              op.attrs(), "'");
  std::vector<int64_t> r;
  const char* p = a.c_str() + pos + k.size();
  for (int i = 0; i < count; ++i) {
    char* end = nullptr;
    r.push_back(std::strtoll(p, &end, 10));
    LETHE_CHECK(end != p && (i + 1 == count || *end == ','), op.name(), ": CUDA kernel expected ", count,
                " integers after '", k, "' in '", op.attrs(), "'");
    p = end + 1;
  }
  return r;
}

}  // namespace lethe::cuda::detail

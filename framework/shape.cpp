#include "framework/shape.h"

#include <sstream>

#include "framework/error.h"

namespace lethe {

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int64_t d : dims_) n *= d;
  return n;
}

int64_t Shape::at(int i) const {
  int n = ndim();
  LETHE_CHECK(i >= -n && i < n, "dimension ", i, " is out of range for a tensor of shape ", str());
  return dims_[static_cast<size_t>(i < 0 ? i + n : i)];
}

std::vector<int64_t> Shape::strides() const {
  std::vector<int64_t> s(dims_.size(), 1);
  for (int i = ndim() - 2; i >= 0; --i) s[i] = s[i + 1] * dims_[i + 1];
  return s;
}

std::string Shape::str() const {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < dims_.size(); ++i) os << (i ? ", " : "") << dims_[i];
  os << ']';
  return os.str();
}

int Shape::axis(int a, const char* op) const {
  int n = ndim();
  LETHE_CHECK(a >= -n && a < n, op, ": axis ", a, " is out of range for shape ", str(),
              " (expected -", n, " <= axis < ", n, ")");
  return a < 0 ? a + n : a;
}

std::ostream& operator<<(std::ostream& os, const Shape& s) {
  return os << s.str();
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  int n = std::max(a.ndim(), b.ndim());
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    int ia = a.ndim() - n + i, ib = b.ndim() - n + i;
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    LETHE_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a.str(), " and ", b.str(),
                " cannot broadcast (dimension ", i, ": ", da, " vs ", db, ")");
    out[static_cast<size_t>(i)] = da == 1 ? db : da;
  }
  return Shape(std::move(out));
}

}  // namespace lethe

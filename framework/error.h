// Errors. User-facing checks throw lethe::Error with what was expected, what was given and what to do;
// internal invariants use LETHE_ASSERT, which also throws (the library never aborts).
//
//   LETHE_CHECK(a.shape() == b.shape(), "add: shapes ", a.shape(), " and ", b.shape(), " differ");
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace lethe {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A memory budget that no plan fits; raised before anything of the step runs.
class InfeasibleBudget : public Error {
 public:
  InfeasibleBudget(const std::string& what, size_t smallest)
      : Error(what), smallest_feasible_bytes(smallest) {}
  size_t smallest_feasible_bytes;  // 0 when none was found
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace lethe

#define LETHE_CHECK(cond, ...)                                  \
  do {                                                          \
    if (!(cond)) throw ::lethe::Error(::lethe::detail::concat(__VA_ARGS__)); \
  } while (0)

#define LETHE_ASSERT(cond)                                                                    \
  do {                                                                                        \
    if (!(cond))                                                                              \
      throw ::lethe::Error(::lethe::detail::concat("internal error: ", #cond, " failed at ", \
                                                   __FILE__, ":", __LINE__));                 \
  } while (0)

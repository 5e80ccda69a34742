// Errors, as PyTorch's c10::Error: one hierarchy under lethe::Error (the scheduler's sched::Error
// and sched::Infeasible, InfeasibleBudget), each carrying the source location that raised it.
// User-facing checks say what was expected, what was given and what to do; internal invariants use
// LETHE_ASSERT, which also throws (the library never aborts). A caller that knows more context adds
// it to the error in flight and rethrows it (its type and location kept), instead of wrapping it.
//
//   LETHE_CHECK(a.shape() == b.shape(), "add: shapes ", a.shape(), " and ", b.shape(), " differ");
//   LETHE_ASSERT(offset >= 0, "a buffer below the arena's base");
//   try { parse(text); } catch (Error& e) { e.add_context("memory_budget: "); throw; }
#pragma once

#include <exception>
#include <sstream>
#include <string>

namespace lethe {

class Error : public std::exception {
 public:
  explicit Error(std::string message, const char* file = nullptr, int line = 0)
      : message_(std::move(message)), file_(file), line_(line) {}
  const char* what() const noexcept override { return message_.c_str(); }
  // Where it was raised (LETHE_CHECK, LETHE_ASSERT); null and 0 for an error made without.
  const char* file() const { return file_; }
  int line() const { return line_; }
  // Puts `prefix` before the message ("memory_budget: " + the parser's message).
  void add_context(const std::string& prefix) { message_ = prefix + message_; }

 private:
  std::string message_;
  const char* file_;
  int line_;
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

// A user error: throws lethe::Error with the message and this source location.
#define LETHE_CHECK(cond, ...)                                                                   \
  do {                                                                                           \
    if (!(cond)) throw ::lethe::Error(::lethe::detail::concat(__VA_ARGS__), __FILE__, __LINE__); \
  } while (0)

// An internal invariant (a bug of the library if it fails), with an optional message.
#define LETHE_ASSERT(cond, ...)                                                            \
  do {                                                                                     \
    if (!(cond))                                                                           \
      throw ::lethe::Error(                                                                \
          ::lethe::detail::concat("internal error: ", #cond, " failed at ", __FILE__, ":", \
                                  __LINE__ __VA_OPT__(, ": ", ) __VA_ARGS__),              \
          __FILE__, __LINE__);                                                             \
  } while (0)

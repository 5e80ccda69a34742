#include "framework/step_timer.h"

#include <chrono>
#include <vector>

#include "framework/error.h"

namespace lethe {
namespace {

class HostTimer final : public StepTimer {
 public:
  void reset() override { marks_.clear(); }
  int mark() override {
    marks_.push_back(std::chrono::steady_clock::now());
    return static_cast<int>(marks_.size()) - 1;
  }
  void synchronize() override {}
  double seconds(int from, int to) const override {
    LETHE_ASSERT(from >= 0 && to >= 0 && static_cast<size_t>(from) < marks_.size() &&
                 static_cast<size_t>(to) < marks_.size());
    return std::chrono::duration<double>(marks_[static_cast<size_t>(to)] -
                                         marks_[static_cast<size_t>(from)])
        .count();
  }

 private:
  std::vector<std::chrono::steady_clock::time_point> marks_;
};

}  // namespace

std::unique_ptr<StepTimer> make_host_timer() {
  return std::make_unique<HostTimer>();
}

}  // namespace lethe

// Must NOT compile: a plain nn::Module in a Sequential is refused with one sentence (a ctest checks
// the compiler's message; see tests/CMakeLists.txt).
#include <memory>

#include "nn/sequential.h"

struct Plain : lethe::nn::Module {};

int main() {
  auto s = std::make_shared<lethe::nn::Sequential>(std::make_shared<Plain>());
  return s->empty() ? 1 : 0;
}

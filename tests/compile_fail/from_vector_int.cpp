// Must NOT compile: from_vector<int> names the supported element types at compile time (a ctest
// checks the compiler's message; see tests/CMakeLists.txt).
#include "ops/creation.h"

int main() {
  lethe::Tensor t = lethe::from_vector<int>({1, 2, 3});
  return t.defined() ? 0 : 1;
}

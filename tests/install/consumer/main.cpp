// A program outside the tree, built against the installed package.
#include <lethe.h>

#include <iostream>

int main() {
  lethe::Session session({.seed = 1});
  auto w = lethe::from_vector<float>({1, 2, 3, 4}, {2, 2}).set_requires_grad(true);
  auto x = lethe::from_vector<float>({1, 1}, {1, 2});
  auto loss = lethe::matmul(x, w).sum();
  loss.backward();
  auto g = w.grad().to_vector<float>();
  std::cout << "loss " << loss.item() << " grad " << g[0] << " " << g[3] << "\n";
  if (loss.item() != 10.0 || g != std::vector<float>{1, 1, 1, 1}) return 1;
  std::cout << "consumer ok\n";
  return 0;
}

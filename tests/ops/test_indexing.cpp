// gather, scatter_add and index_select: values against torch, gradients (gather's is a
// scatter_add, scatter_add's src gets a gather, zero beyond the index), out-of-range indices named
// with the op, the index and the bound, shape and dtype errors.
#include <doctest/doctest.h>

#include "lethe.h"
#include "op_checks.h"

using namespace lethe;
using namespace op_checks;

TEST_CASE("gather: values (torch), gradient scatters back with repeats") {
  Session s;
  auto x = from_vector<double>({1, 2, 3, 4}, {2, 2});
  auto idx = from_vector<int64_t>({0, 0, 1, 0}, {2, 2});
  close(gather(x, 1, idx).to_vector<double>(), {1, 1, 4, 3});  // torch.gather(x, 1, idx)
  close(x.gather(0, from_vector<int64_t>({1, 0}, {1, 2})).to_vector<double>(), {3, 2});
  CHECK(gather(x, -1, from_vector<int64_t>({1}, {1, 1})).shape() == Shape{1, 1});
  auto w = from_vector<double>({1, 2, 3, 4}, {2, 2}).set_requires_grad(true);
  (gather(w, 1, idx) * from_vector<double>({1, 10, 100, 1000}, {2, 2})).sum().backward();
  close(w.grad().to_vector<double>(), {11, 0, 1000, 100});
  grad_ok([&](const std::vector<Tensor>& v) { return gather(v[0], 1, idx) * gather(v[0], 0, idx); },
          {rnd({2, 2})});
}

TEST_CASE("scatter_add: values (torch), gradients to x and src") {
  Session s;
  auto idx = from_vector<int64_t>({0, 1, 2, 0, 0, 2, 0, 0, 1, 2}, {2, 5});
  auto y = scatter_add(zeros({3, 5}, DType::f64), 0, idx, ones({2, 5}, DType::f64));
  close(y.to_vector<double>(), {1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1});  // torch
  // Repeated targets add up; src larger than index: its extra elements add nothing.
  auto r = scatter_add(from_vector<double>({10, 20}, {2}), 0, from_vector<int64_t>({1, 1, 0}, {3}),
                       from_vector<double>({1, 2, 3, 4}, {4}));
  close(r.to_vector<double>(), {13, 23});
  auto x = zeros({2}, DType::f64).set_requires_grad(true);
  auto src = from_vector<double>({1, 2, 3, 4}, {4}).set_requires_grad(true);
  (x.scatter_add(0, from_vector<int64_t>({1, 1, 0}, {3}), src) * from_vector<double>({5, 7}, {2}))
      .sum()
      .backward();
  close(x.grad().to_vector<double>(), {5, 7});
  close(src.grad().to_vector<double>(), {7, 7, 5, 0});
  auto i2 = from_vector<int64_t>({2, 0, 1, 1, 0, 0}, {2, 3});
  grad_ok([&](const std::vector<Tensor>& v) { return scatter_add(v[0], 1, i2, v[1]) * v[0]; },
          {rnd({2, 4}), rnd({3, 3})});
}

TEST_CASE("index_select: values (torch), gradient sums repeated indices") {
  Session s;
  auto x = from_vector<double>(seq(12), {3, 4});
  auto idx = from_vector<int64_t>({3, 0, 3}, {3});
  close(index_select(x, 1, idx).to_vector<double>(), {3, 0, 3, 7, 4, 7, 11, 8, 11});  // torch
  close(x.index_select(0, from_vector<int64_t>({2}, {1})).to_vector<double>(), {8, 9, 10, 11});
  auto w = from_vector<double>(seq(4), {4}).set_requires_grad(true);
  (index_select(w, 0, idx) * from_vector<double>({1, 2, 4}, {3})).sum().backward();
  close(w.grad().to_vector<double>(), {2, 0, 0, 5});
  grad_ok([&](const std::vector<Tensor>& v) { return index_select(v[0], 1, idx); },
          {rnd({2, 5, 2})});
  grad_ok([&](const std::vector<Tensor>& v) { return index_select(v[0], 0, idx); }, {rnd({4, 3})});
}

TEST_CASE(
    "gather, scatter_add, index_select: out-of-range indices name the op, the index and the "
    "bound") {
  Session s;
  auto x = zeros({2, 3});
  throws_with(
      [&] {
        gather(x, 1, from_vector<int64_t>({0, 3}, {1, 2})).to_vector<double>();
      },
      {"gather", "index 3", "position 1", "dim 1", "size 3"});
  throws_with(
      [&] {
        gather(x, 0, from_vector<int64_t>({-1}, {1, 1})).to_vector<double>();
      },
      {"gather", "index -1", "dim 0", "size 2"});
  throws_with(
      [&] {
        scatter_add(x, 0, from_vector<int64_t>({2}, {1, 1}), ones({1, 1})).to_vector<double>();
      },
      {"scatter_add", "index 2", "dim 0", "size 2"});
  throws_with(
      [&] {
        index_select(x, 1, from_vector<int64_t>({1, 7}, {2})).to_vector<double>();
      },
      {"index_select", "index 7", "position 1", "dim 1", "size 3"});
}

TEST_CASE("gather, scatter_add, index_select: shape, dim and dtype errors") {
  Session s;
  auto x = zeros({2, 3});
  throws_with([&] { gather(x, 2, from_vector<int64_t>({0}, {1, 1})); }, {"gather", "2"});
  throws_with([&] { gather(x, 0, from_vector<int64_t>({0}, {1})); },
              {"gather", "[1]", "[2, 3]", "number of dims"});
  throws_with(
      [&] {
        gather(x, 0, from_vector<int64_t>({0, 0, 0, 0}, {1, 4}));
      },
      {"gather", "[1, 4]", "dim 1"});
  throws_with([&] { gather(x, 0, from_vector<float>({0}, {1, 1})); }, {"gather", "i64", "f32"});
  throws_with(
      [&] {
        scatter_add(x, 0, from_vector<int64_t>({0, 0}, {1, 2}), ones({1, 1}));
      },
      {"scatter_add", "[1, 2]", "src", "[1, 1]"});
  throws_with(
      [&] {
        scatter_add(x, 0, from_vector<int64_t>({0}, {1, 1}), ones({1, 1}, DType::f64));
      },
      {"scatter_add", "f64", "f32"});
  throws_with(
      [&] {
        index_select(x, 0, from_vector<int64_t>({0}, {1, 1}));
      },
      {"index_select", "1-d", "[1, 1]"});
  throws_with([&] { index_select(x, -3, from_vector<int64_t>({0}, {1})); }, {"index_select", "-3"});
}

// Shape ops: reshape/flatten/unsqueeze/squeeze, transpose/permute, slice, concat.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "lethe.h"

using namespace lethe;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

void check_grad(const Fn& fn, const std::vector<Tensor>& in) {
  auto r = autograd::gradcheck(fn, in);
  CHECK_MESSAGE(r.ok, r.message);
}

std::vector<double> iota(int64_t n) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(static_cast<double>(i));
  return v;
}

using V = std::vector<double>;

}  // namespace

TEST_CASE("shape_ops: reshape, -1, flatten, unsqueeze, squeeze") {
  Session s;
  auto x = from_vector(iota(6), {2, 3});
  auto r = reshape(x, {3, 2});
  CHECK(r.shape() == Shape{3, 2});
  CHECK(r.to_vector<double>() == iota(6));
  CHECK(reshape(x, {-1}).shape() == Shape{6});
  CHECK(reshape(x, {1, -1, 2}).shape() == Shape{1, 3, 2});
  CHECK(x.view({6, 1}).shape() == Shape{6, 1});
  auto y = from_vector(iota(24), {2, 3, 4});
  CHECK(flatten(y).shape() == Shape{24});
  CHECK(flatten(y, 1).shape() == Shape{2, 12});
  CHECK(flatten(y, 0, 1).shape() == Shape{6, 4});
  CHECK(y.flatten(1, 2).to_vector<double>() == iota(24));
  CHECK(unsqueeze(x, 0).shape() == Shape{1, 2, 3});
  CHECK(unsqueeze(x, 2).shape() == Shape{2, 3, 1});
  CHECK(unsqueeze(x, -1).shape() == Shape{2, 3, 1});
  CHECK(unsqueeze(x, -3).shape() == Shape{1, 2, 3});
  auto z = from_vector(iota(3), {1, 3, 1});
  CHECK(squeeze(z, 0).shape() == Shape{3, 1});
  CHECK(squeeze(z, -1).shape() == Shape{1, 3});
  CHECK(squeeze(z, 1).shape() == Shape{1, 3, 1});  // not size 1: unchanged, as PyTorch
  CHECK(z.squeeze(0).squeeze(-1).to_vector<double>() == iota(3));
  // i64 and f32 go through too
  CHECK(reshape(from_vector<int64_t>({1, 2, 3, 4}, {4}), {2, 2}).to_vector<int64_t>() ==
        std::vector<int64_t>{1, 2, 3, 4});
  CHECK(reshape(from_vector<float>({1, 2}, {2}), {2, 1}).to_vector<float>() ==
        std::vector<float>{1, 2});
}

TEST_CASE("shape_ops: reshape errors name both shapes") {
  Session s;
  auto x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(
      reshape(x, {4, 2}),
      doctest::Contains("reshape: cannot reshape [2, 3] (6 elements) into [4, 2] (8 elements)"),
      Error);
  CHECK_THROWS_WITH_AS(
      reshape(x, {4, -1}),
      doctest::Contains("reshape: cannot reshape [2, 3] (6 elements) into [4, -1]"), Error);
  CHECK_THROWS_WITH_AS(reshape(x, {-1, -1}),
                       doctest::Contains("reshape: only one dimension may be -1"), Error);
  CHECK_THROWS_WITH_AS(flatten(x, 1, 0),
                       doctest::Contains("flatten: start_dim 1 comes after end_dim 0"), Error);
  CHECK_THROWS_WITH_AS(unsqueeze(x, 3),
                       doctest::Contains("unsqueeze: dimension 3 is out of range for shape [2, 3]"),
                       Error);
  CHECK_THROWS_WITH_AS(
      squeeze(x, 2), doctest::Contains("squeeze: axis 2 is out of range for shape [2, 3]"), Error);
}

TEST_CASE("shape_ops: transpose and permute") {
  Session s;
  auto x = from_vector(iota(6), {2, 3});
  auto t = transpose(x, 0, 1);
  CHECK(t.shape() == Shape{3, 2});
  CHECK(t.to_vector<double>() == V{0, 3, 1, 4, 2, 5});
  CHECK(x.t().to_vector<double>() == V{0, 3, 1, 4, 2, 5});
  auto y = from_vector(iota(24), {2, 3, 4});
  // permute [2, 0, 1]: out[k, i, j] = y[i, j, k] = 12i + 4j + k
  auto p = permute(y, {2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  V want;
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) want.push_back(12 * i + 4 * j + k);
  CHECK(p.to_vector<double>() == want);
  // batched transpose of the last two dims: out[i, k, j] = 12i + 4j + k
  want.clear();
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k)
      for (int j = 0; j < 3; ++j) want.push_back(12 * i + 4 * j + k);
  CHECK(y.transpose(-1, -2).to_vector<double>() == want);
  // permute keeping the last dim: out[j, i, k]
  want.clear();
  for (int j = 0; j < 3; ++j)
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 4; ++k) want.push_back(12 * i + 4 * j + k);
  CHECK(permute(y, {1, 0, 2}).to_vector<double>() == want);
  CHECK(permute(y, {0, 1, 2}).impl() == y.impl());
  CHECK(permute(y, {-3, -2, -1}).impl() == y.impl());
  CHECK_THROWS_WITH_AS(
      permute(y, {0, 0, 1}),
      doctest::Contains(
          "permute: dims [0, 0, 1] are not a permutation of the 3 dimensions of shape [2, 3, 4]"),
      Error);
  CHECK_THROWS_WITH_AS(permute(y, {0, 1}), doctest::Contains("permute: dims [0, 1]"), Error);
  CHECK_THROWS_WITH_AS(transpose(y, 0, 3),
                       doctest::Contains("transpose: axis 3 is out of range for shape [2, 3, 4]"),
                       Error);
}

TEST_CASE("shape_ops: large transposes (tiled, parallel) match the definition") {
  Session s;
  const int64_t r = 300, c = 257;
  auto x = from_vector(iota(r * c), {r, c});
  auto t = transpose(x, 0, 1).to_vector<double>();
  bool ok = true;
  for (int64_t i = 0; i < c && ok; ++i)
    for (int64_t j = 0; j < r && ok; ++j)
      ok = t[static_cast<size_t>(i * r + j)] == static_cast<double>(j * c + i);
  CHECK(ok);
  auto y = from_vector(iota(3 * 70 * 90), {3, 70, 90});
  auto p = permute(y, {2, 1, 0}).to_vector<double>();  // out[k, j, i] = y[i, j, k]
  ok = true;
  for (int64_t k = 0; k < 90 && ok; ++k)
    for (int64_t j = 0; j < 70 && ok; ++j)
      for (int64_t i = 0; i < 3 && ok; ++i)
        ok = p[static_cast<size_t>((k * 70 + j) * 3 + i)] ==
             static_cast<double>((i * 70 + j) * 90 + k);
  CHECK(ok);
  auto f = from_vector<float>(std::vector<float>(4 * 33 * 65, 1.f), {4, 33, 65});
  CHECK(f.transpose(1, 2).shape() == Shape{4, 65, 33});
}

TEST_CASE("shape_ops: slice with Python semantics") {
  Session s;
  auto x = from_vector(iota(10), {10});
  CHECK(slice(x, 0, 2, 5).to_vector<double>() == V{2, 3, 4});
  CHECK(slice(x, 0, -3, 10).to_vector<double>() == V{7, 8, 9});
  CHECK(slice(x, 0, 1, -1, 3).to_vector<double>() == V{1, 4, 7});
  CHECK(slice(x, 0, 0, 100, 4).to_vector<double>() == V{0, 4, 8});
  CHECK(slice(x, 0, -100, 2).to_vector<double>() == V{0, 1});
  CHECK(slice(x, 0, 6, 3).shape() == Shape{0});
  CHECK(slice(x, 0, 0, 10).impl() == x.impl());
  auto y = from_vector(iota(24), {2, 3, 4});
  // y[:, 1:3, :]
  CHECK(slice(y, 1, 1, 3).to_vector<double>() ==
        V{4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23});
  // y[..., ::2]
  CHECK(y.slice(-1, 0, 4, 2).to_vector<double>() == V{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22});
  // y[1:]
  CHECK(slice(y, 0, 1, 2).shape() == Shape{1, 3, 4});
  CHECK(slice(from_vector<int64_t>({5, 6, 7}, {3}), 0, 1, 3).to_vector<int64_t>() ==
        std::vector<int64_t>{6, 7});
  CHECK_THROWS_WITH_AS(slice(y, 3, 0, 1),
                       doctest::Contains("slice: axis 3 is out of range for shape [2, 3, 4]"),
                       Error);
  CHECK_THROWS_WITH_AS(slice(y, 0, 0, 1, 0),
                       doctest::Contains("slice: step must be positive, got 0"), Error);
}

TEST_CASE("shape_ops: concat") {
  Session s;
  auto a = from_vector(V{0, 1, 2, 3}, {2, 2});
  auto b = from_vector(V{4, 5}, {2, 1});
  auto c = from_vector(V{6, 7}, {1, 2});
  CHECK(concat({a, b}, 1).to_vector<double>() == V{0, 1, 4, 2, 3, 5});
  CHECK(concat({a, b}, 1).shape() == Shape{2, 3});
  CHECK(concat({a, c}, 0).to_vector<double>() == V{0, 1, 2, 3, 6, 7});
  CHECK(concat({a, c, a}, -2).shape() == Shape{5, 2});
  CHECK(concat({a}, 0).impl() == a.impl());
  CHECK(concat({from_vector<int64_t>({1}, {1}), from_vector<int64_t>({2, 3}, {2})}, 0)
            .to_vector<int64_t>() == std::vector<int64_t>{1, 2, 3});
  CHECK_THROWS_WITH_AS(
      concat({a, b}, 0),
      doctest::Contains("concat: shapes [2, 2] and [2, 1] (tensors 0 and 1) differ outside axis 0"),
      Error);
  CHECK_THROWS_WITH_AS(concat({a, zeros({2, 2})}, 0),
                       doctest::Contains("concat: tensor 1 has dtype f32 but tensor 0 has f64"),
                       Error);
  CHECK_THROWS_WITH_AS(concat({}, 0), doctest::Contains("concat: expected at least one tensor"),
                       Error);
}

TEST_CASE("shape_ops: gradients (f64 gradcheck)") {
  Session s({.seed = 8});
  auto x = randn({2, 3, 4}, DType::f64);
  check_grad([](const std::vector<Tensor>& v) { return reshape(v[0], {4, -1}); }, {x});
  check_grad([](const std::vector<Tensor>& v) { return flatten(v[0], 1); }, {x});
  check_grad([](const std::vector<Tensor>& v) { return unsqueeze(v[0], 1); }, {x});
  check_grad([](const std::vector<Tensor>& v) { return squeeze(unsqueeze(v[0], 0), 0); }, {x});
  check_grad([](const std::vector<Tensor>& v) { return transpose(v[0], 0, 2); }, {x});
  check_grad([](const std::vector<Tensor>& v) { return permute(v[0], {1, 2, 0}); }, {x});
  check_grad([](const std::vector<Tensor>& v) { return slice(v[0], 2, 1, 4, 2); }, {x});
  check_grad([](const std::vector<Tensor>& v) { return slice(v[0], 0, -1, 2); }, {x});
  check_grad([](const std::vector<Tensor>& v) { return slice(v[0], 1, 0, 2); }, {x});
  auto y = randn({2, 1, 4}, DType::f64);
  auto z = randn({2, 2, 4}, DType::f64);
  check_grad([](const std::vector<Tensor>& v) { return concat({v[0], v[1], v[2]}, 1); }, {x, y, z});
  check_grad([](const std::vector<Tensor>& v) { return concat({v[0], v[0]}, -1); }, {x});
  // slice_backward inside a bigger graph (its own gradient is a slice)
  check_grad(
      [](const std::vector<Tensor>& v) { return mul(slice(v[0], 2, 0, 3), slice(v[0], 2, 1, 4)); },
      {x});
}

TEST_CASE("shape_ops: slice gradient scatters into zeros") {
  Session s;
  auto w = from_vector<double>({1, 2, 3, 4, 5}, {5}).set_requires_grad(true);
  mul(slice(w, 0, 1, 5, 2), from_vector<double>({10, 20}, {2})).sum().backward();
  CHECK(w.grad().to_vector<double>() == V{0, 10, 0, 20, 0});
}

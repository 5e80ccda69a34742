// matmul and linear: hand-computed products, broadcasting against a naive loop, f64 gradient checks
// (1-d operands, batch broadcasting, folded transposes) and the errors users see.
#include <doctest/doctest.h>

#include "lethe.h"
#include "op_checks.h"

using namespace lethe;
using namespace op_checks;

namespace {

// Naive batched product of row-major a [..., m, k] and b [..., k, n] with batch broadcasting.
std::vector<double> naive_bmm(const std::vector<double>& a, const Shape& sa,
                              const std::vector<double>& b, const Shape& sb, const Shape& so) {
  const int64_t m = sa.at(-2), k = sa.at(-1), n = sb.at(-1);
  const int nb = so.ndim() - 2;
  std::vector<double> out(static_cast<size_t>(so.numel()));
  const int64_t batches = so.numel() / (m * n);
  for (int64_t bi = 0; bi < batches; ++bi) {
    std::vector<int64_t> idx(static_cast<size_t>(nb));
    int64_t r = bi;
    for (int d = nb - 1; d >= 0; --d) {
      idx[size_t(d)] = r % so[d];
      r /= so[d];
    }
    auto off = [&](const Shape& s) {
      int64_t o = 0;
      const int sn = s.ndim() - 2;
      for (int d = 0; d < sn; ++d) o = o * s[d] + (s[d] == 1 ? 0 : idx[size_t(d + nb - sn)]);
      return o;
    };
    const int64_t oa = off(sa) * m * k, ob = off(sb) * k * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += a[size_t(oa + i * k + p)] * b[size_t(ob + p * n + j)];
        out[size_t((bi * m + i) * n + j)] = s;
      }
  }
  return out;
}

}  // namespace

TEST_CASE("matmul: 2-d product and 1-d operands (hand-computed)") {
  Session s;
  auto a = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto b = from_vector<double>({7, 8, 9, 10, 11, 12}, {3, 2});
  auto c = matmul(a, b);
  CHECK(c.shape() == Shape{2, 2});
  close(c.to_vector<double>(), {58, 64, 139, 154});

  auto v3 = from_vector<double>({1, 0, -1}, {3});
  auto v2 = from_vector<double>({1, 2}, {2});
  auto dot = matmul(from_vector<double>({1, 2, 3}, {3}), from_vector<double>({4, 5, 6}, {3}));
  CHECK(dot.shape() == Shape{});
  CHECK(dot.item() == 32.0);
  auto mv = matmul(a, v3);
  CHECK(mv.shape() == Shape{2});
  close(mv.to_vector<double>(), {-2, -2});
  auto vm = matmul(v2, a);
  CHECK(vm.shape() == Shape{3});
  close(vm.to_vector<double>(), {9, 12, 15});
  // f32 goes through sgemm.
  auto cf = matmul(a.to(DType::f32), b.to(DType::f32));
  CHECK(cf.dtype() == DType::f32);
  close(cf.to_vector<double>(), {58, 64, 139, 154}, 1e-6);
}

TEST_CASE("matmul: batched with broadcasting matches a naive loop") {
  Session s;
  struct Case {
    Shape a, b, out;
  };
  for (const Case& c :
       {Case{{2, 1, 2, 3}, {3, 3, 4}, {2, 3, 2, 4}}, Case{{4, 2, 3}, {3, 5}, {4, 2, 5}},
        Case{{2, 3}, {4, 3, 2}, {4, 2, 2}}, Case{{1, 3, 2}, {2, 1, 2, 2}, {2, 1, 3, 2}},
        Case{{3, 2, 3}, {3, 3, 2}, {3, 2, 2}}}) {
    auto a = rnd(c.a), b = rnd(c.b);
    auto r = matmul(a, b);
    CHECK(r.shape() == c.out);
    close(r.to_vector<double>(),
          naive_bmm(a.to_vector<double>(), c.a, b.to_vector<double>(), c.b, c.out), 1e-12);
  }
  // vector against a batch: [3] x [2, 3, 4] -> [2, 4]; [2, 3, 4] x [4] -> [2, 3].
  auto bt = rnd({2, 3, 4});
  CHECK(matmul(rnd({3}), bt).shape() == Shape{2, 4});
  CHECK(matmul(bt, rnd({4})).shape() == Shape{2, 3});
}

TEST_CASE("matmul: transposed operands fold into the GEMM") {
  Session s;
  auto a = rnd({2, 3, 4}), b = rnd({2, 5, 4});
  auto ref = matmul(a, b.transpose(-2, -1));
  close(matmul_transposed(a, b, false, true).to_vector<double>(), ref.to_vector<double>(), 1e-12);
  auto at = a.transpose(-2, -1);  // [2, 4, 3]
  close(matmul_transposed(at, b, true, true).to_vector<double>(), ref.to_vector<double>(), 1e-12);
  close(matmul_transposed(at, b.transpose(-2, -1), true, false).to_vector<double>(),
        ref.to_vector<double>(), 1e-12);
}

TEST_CASE("matmul: gradients (f64 gradcheck), broadcasting and 1-d operands") {
  Session s;
  auto mm = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  grad_ok(mm, {rnd({2, 3}), rnd({3, 4})});
  grad_ok(mm, {rnd({2, 2, 3}), rnd({2, 3, 2})});
  grad_ok(mm, {rnd({2, 1, 2, 3}), rnd({3, 3, 2})});  // both batch dims broadcast
  grad_ok(mm, {rnd({3, 2, 3}), rnd({3, 2})});        // shared right operand (weight-style)
  grad_ok(mm, {rnd({2, 3}), rnd({2, 3, 2})});        // shared left operand
  grad_ok(mm, {rnd({1, 2, 3}), rnd({2, 3, 2})});     // size-1 batch dim
  grad_ok(mm, {rnd({3}), rnd({3})});
  grad_ok(mm, {rnd({3}), rnd({2, 3, 2})});
  grad_ok(mm, {rnd({2, 2, 3}), rnd({3})});
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      CAPTURE(ta);
      CAPTURE(tb);
      grad_ok(
          [&](const std::vector<Tensor>& in) { return matmul_transposed(in[0], in[1], ta, tb); },
          {rnd(ta ? Shape{2, 3, 2} : Shape{2, 2, 3}), rnd(tb ? Shape{4, 3} : Shape{3, 4})});
      grad_ok(
          [&](const std::vector<Tensor>& in) { return matmul_transposed(in[0], in[1], ta, tb); },
          {rnd(ta ? Shape{3, 2} : Shape{2, 3}), rnd(tb ? Shape{2, 4, 3} : Shape{2, 3, 4})});
    }
}

TEST_CASE("matmul: shape and dtype errors name the op and both shapes") {
  Session s;
  throws_with(
      [] {
        matmul(zeros({2, 3}), zeros({4, 5}));
      },
      {"matmul", "[2, 3]", "[4, 5]", "inner dimensions 3 and 4 differ"});
  throws_with([] { matmul(zeros({3}), zeros({4})); }, {"matmul", "[3]", "[4]"});
  throws_with(
      [] {
        matmul(zeros({2, 2, 3}), zeros({3, 3, 2}));
      },
      {"matmul", "[2, 2, 3]", "[3, 3, 2]"});
  throws_with([] { matmul(zeros({2, 3}), zeros({3, 2}, DType::f64)); }, {"matmul", "f32", "f64"});
  throws_with([] { matmul(zeros({2, 3}, DType::i64), zeros({3, 2}, DType::i64)); }, {"matmul"});
  throws_with([] { linear(zeros({2, 3}), zeros({4, 5})); }, {"linear", "[2, 3]", "[4, 5]"});
  throws_with(
      [] {
        linear(zeros({2, 3}), zeros({4, 3}), zeros({3}));
      },
      {"linear", "[4, 3]", "[3]"});
}

TEST_CASE("linear: forward (hand-computed) and gradients") {
  Session s;
  auto x = from_vector<double>({1, 2, 3, 4}, {2, 2});
  auto w = from_vector<double>({1, 0, 0, 1, 1, 1}, {3, 2});
  auto b = from_vector<double>({0.5, -1, 2}, {3});
  close(linear(x, w, b).to_vector<double>(), {1.5, 1, 5, 3.5, 3, 9});
  close(linear(x, w).to_vector<double>(), {1, 2, 3, 3, 4, 7});
  auto y1 = linear(from_vector<double>({1, 2}, {2}), w, b);
  CHECK(y1.shape() == Shape{3});
  close(y1.to_vector<double>(), {1.5, 1, 5});
  auto y3 = linear(rnd({2, 3, 2}), w, b);
  CHECK(y3.shape() == Shape{2, 3, 3});

  auto lin = [](const std::vector<Tensor>& in) {
    return linear(in[0], in[1], in.size() > 2 ? in[2] : Tensor());
  };
  grad_ok(lin, {rnd({4, 3}), rnd({2, 3}), rnd({2})});
  grad_ok(lin, {rnd({2, 3, 3}), rnd({2, 3}), rnd({2})});
  grad_ok(lin, {rnd({2, 3, 3}), rnd({2, 3})});
  grad_ok(lin, {rnd({3}), rnd({2, 3}), rnd({2})});
  // f32 agrees with f64.
  auto xd = rnd({5, 4}), wd = rnd({3, 4}), bd = rnd({3});
  close(linear(xd.to(DType::f32), wd.to(DType::f32), bd.to(DType::f32)).to_vector<double>(),
        linear(xd, wd, bd).to_vector<double>(), 1e-5);
}

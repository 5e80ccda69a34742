// Every op's CUDA kernel (forward and the backward ops its gradient records) against the CPU
// reference, in f32 (per-op tolerance) and f64 (near exact); gradcheck on CUDA in f64.
#include "tests/cuda/cuda_checks.h"

using namespace lethe;
using cuda_checks::Input;
using cuda_checks::same;

namespace {
const DType f32 = DType::f32, f64 = DType::f64;
std::vector<int64_t> labels(int64_t n, int64_t c) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < n; ++i) v.push_back((i * 7 + 3) % c);
  return v;
}
double tol_of(DType t, double f32_tol) { return t == DType::f64 ? 1e-11 : f32_tol; }
}  // namespace

TEST_CASE("cuda: availability is a plain answer") {
  CHECK(cuda::device_count() >= 0);
  CHECK(cuda::is_available() == (cuda::device_count() > 0));
  if (!cuda::is_available()) {
    bool threw = false;
    try {
      Session s({.device = Device::cuda(0)});
    } catch (const Error& e) {
      threw = std::string(e.what()).find("no CUDA device is available") != std::string::npos;
    }
    CHECK(threw);
  }
}

TEST_CASE("cuda: elementwise ops match the CPU") {
  LETHE_SKIP_WITHOUT_CUDA();
  for (DType t : {f32, f64}) {
    const double tol = tol_of(t, 1e-5);
    same([](auto& x) { return x[0] + x[1]; }, {{{4, 1, 5}, t}, {{3, 5}, t}}, tol);
    same([](auto& x) { return x[0] - x[1]; }, {{{4, 3, 5}, t}, {{5}, t}}, tol);
    same([](auto& x) { return x[0] * x[1]; }, {{{2, 3, 5}, t}, {{2, 1, 1}, t}}, tol);
    same([](auto& x) { return x[0] / (x[1].pow(2.0) + 1.0); }, {{{6, 7}, t}, {{6, 7}, t}}, tol);
    same([](auto& x) { return (x[0] * 0.5 + 2.0).exp() - (3.0 - x[0]) + 1.0 / (x[0].pow(2.0) + 1.0); },
         {{{33, 17}, t}}, tol);
    same([](auto& x) { return (x[0].pow(2.0) + 1.0).log() + (x[0].pow(2.0) + 1.0).sqrt() + x[0].pow(3.0); },
         {{{8, 9}, t}}, tol);
    same([](auto& x) { return x[0].relu() + x[0].sigmoid() + x[0].tanh() - x[0]; }, {{{1000}, t}}, tol);
    same([](auto& x) { return gelu(x[0], "none") + gelu(x[0], "tanh"); }, {{{5, 40}, t}}, tol);
    same([](auto& x) { return dropout(x[0], 0.3, true); }, {{{64, 33}, t}}, tol);
    same([t](auto& x) { return x[0].to(t == f32 ? f64 : f32).exp(); }, {{{7, 3}, t}}, 1e-5);
    same([](auto& x) { return broadcast_to(x[0], {3, 4, 5}) * 2.0; }, {{{4, 1}, t}}, tol);
  }
  same([](auto& x) { return (x[0] * 3 + 1).to(DType::f32); }, {{{5}, DType::i64, false, {1, 2, 3, 4, 5}}}, 0,
       false);
}

TEST_CASE("cuda: reductions, softmax and losses match the CPU") {
  LETHE_SKIP_WITHOUT_CUDA();
  for (DType t : {f32, f64}) {
    const double tol = tol_of(t, 1e-4);
    same([](auto& x) { return x[0].sum(); }, {{{300, 700}, t}}, tol);          // two-pass
    same([](auto& x) { return x[0].sum({1}); }, {{{30, 70}, t}}, tol);         // rows
    same([](auto& x) { return x[0].mean({0}); }, {{{30, 70}, t}}, tol);        // columns
    same([](auto& x) { return x[0].sum({0, 2}, true); }, {{{3, 4, 5, 6}, t}}, tol);  // general
    same([](auto& x) { return x[0].max(1); }, {{{6, 9, 4}, t}}, tol);
    same([](auto& x) { return x[0].argmax(2).to(DType::f64); }, {{{6, 9, 4}, t}}, 0, false);
    same([](auto& x) { return softmax(x[0], -1); }, {{{7, 300}, t}}, tol);
    same([](auto& x) { return log_softmax(x[0], 1); }, {{{3, 10, 4}, t}}, tol);
    same([](auto& x) { return cross_entropy(x[0], x[1]); }, {{{16, 10}, t}, {{16}, DType::i64, false, labels(16, 10)}},
         tol);
    same([](auto& x) { return cross_entropy(x[0], x[1], "sum"); },
         {{{4, 5, 3}, t}, {{4, 3}, DType::i64, false, labels(12, 5)}}, tol);
    same([](auto& x) { return cross_entropy(x[0], x[1], "none"); },
         {{{8, 6}, t}, {{8}, DType::i64, false, labels(8, 6)}}, tol);
    same([](auto& x) { return mse_loss(x[0], x[1]); }, {{{9, 4}, t}, {{9, 4}, t}}, tol);
    same([](auto& x) { return layer_norm(x[0], {32}, x[1], x[2]); }, {{{6, 32}, t}, {{32}, t}, {{32}, t}}, tol);
  }
}

TEST_CASE("cuda: matmul, linear, shape ops, embedding and attention match the CPU") {
  LETHE_SKIP_WITHOUT_CUDA();
  for (DType t : {f32, f64}) {
    const double tol = tol_of(t, 1e-4);
    same([](auto& x) { return matmul(x[0], x[1]); }, {{{17, 33}, t}, {{33, 9}, t}}, tol);
    same([](auto& x) { return matmul(x[0], x[1]); }, {{{3, 5, 8}, t}, {{3, 8, 4}, t}}, tol);
    same([](auto& x) { return matmul(x[0], x[1]); }, {{{2, 1, 5, 8}, t}, {{3, 8, 4}, t}}, tol);
    same([](auto& x) { return matmul(x[0], x[1]); }, {{{4, 5, 8}, t}, {{8, 6}, t}}, tol);
    same([](auto& x) { return linear(x[0], x[1], x[2]); }, {{{2, 7, 12}, t}, {{5, 12}, t}, {{5}, t}}, tol);
    same([](auto& x) { return x[0].permute({2, 0, 1}) * 1.5; }, {{{3, 4, 5}, t}}, tol);
    same([](auto& x) { return x[0].transpose(0, 1).reshape({20}); }, {{{4, 5}, t}}, tol);
    same([](auto& x) { return x[0].slice(1, 1, 7, 2); }, {{{3, 8, 2}, t}}, tol);
    same([](auto& x) { return concat({x[0], x[1]}, 1); }, {{{2, 3, 4}, t}, {{2, 5, 4}, t}}, tol);
    same([](auto& x) { return embedding(x[0], x[1]); },
         {{{11, 6}, t}, {{3, 7}, DType::i64, false, labels(21, 11)}}, tol);
    same([](auto& x) { return scaled_dot_product_attention(x[0], x[1], x[2], true); },
         {{{2, 3, 9, 8}, t}, {{2, 3, 9, 8}, t}, {{2, 3, 9, 8}, t}}, tol);
  }
}

TEST_CASE("cuda: gradcheck in f64 on the device") {
  LETHE_SKIP_WITHOUT_CUDA();
  Session s({.device = Device::cuda(0), .seed = 3});
  auto check = [](const cuda_checks::Fn& f, const std::vector<Tensor>& in) {
    auto r = autograd::gradcheck(f, in, 1e-6, 1e-6, 1e-4);
    CHECK_MESSAGE(r.ok, r.message);
  };
  auto r = [](Shape sh) { return randn(sh, DType::f64); };
  check([](auto& x) { return (matmul(x[0], x[1]).tanh() * x[2]).sum(); }, {r({3, 4}), r({4, 5}), r({3, 5})});
  check([](auto& x) { return softmax(x[0], -1).log().mean(); }, {r({4, 6})});
  check([](auto& x) { return layer_norm(x[0], {6}, x[1], x[2]).pow(2.0).sum(); }, {r({3, 6}), r({6}), r({6})});
  check([](auto& x) { return cross_entropy(x[0], from_vector<int64_t>({1, 0, 3}, {3})); }, {r({3, 4})});
  check([](auto& x) { return gelu(linear(x[0], x[1], x[2]), "tanh").sum(); }, {r({2, 3}), r({4, 3}), r({4})});
}

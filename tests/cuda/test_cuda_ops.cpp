// Every op's CUDA kernel (forward and the backward ops its gradient records) against the CPU
// reference, in f32 (per-op tolerance) and f64 (near exact); gradcheck on CUDA in f64.
#include <array>
#include <memory>
#include <string>

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
double tol_of(DType t, double f32_tol) {
  return t == DType::f64 ? 1e-11 : f32_tol;
}

// As cuda_checks::same, for outputs of millions of elements: one check that names the first
// mismatch and how many there are.
void same_large(const cuda_checks::Fn& f, const std::vector<Input>& ins, double rtol) {
  const auto cpu = cuda_checks::run(Device::cpu(), f, ins);
  const auto gpu = cuda_checks::run(Device::cuda(0), f, ins);
  REQUIRE(cpu.size() == gpu.size());
  REQUIRE(!cpu.empty());
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const bool ok = (std::isnan(cpu[i]) && std::isnan(gpu[i])) ||
                    std::abs(cpu[i] - gpu[i]) <= rtol * (1 + std::abs(cpu[i]));
    if (!ok && bad++ == 0) first = i;
  }
  CHECK_MESSAGE(bad == 0, bad, " of ", cpu.size(), " elements differ, the first at ", first,
                ": cpu ", cpu[first], ", cuda ", gpu[first]);
}

// n positions of a table of `rows`: most (9 in 10) on row 0, as a padding token, the others spread.
std::vector<int64_t> mostly_zero(int64_t n, int64_t rows) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(i % 10 == 3 ? (i * 7919 + 11) % rows : 0);
  return v;
}
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
    same(
        [](auto& x) {
          return (x[0] * 0.5 + 2.0).exp() - (3.0 - x[0]) + 1.0 / (x[0].pow(2.0) + 1.0);
        },
        {{{33, 17}, t}}, tol);
    same(
        [](auto& x) {
          return (x[0].pow(2.0) + 1.0).log() + (x[0].pow(2.0) + 1.0).sqrt() + x[0].pow(3.0);
        },
        {{{8, 9}, t}}, tol);
    same([](auto& x) { return x[0].relu() + x[0].sigmoid() + x[0].tanh() - x[0]; }, {{{1000}, t}},
         tol);
    same([](auto& x) { return gelu(x[0], "none") + gelu(x[0], "tanh"); }, {{{5, 40}, t}}, tol);
    same([](auto& x) { return dropout(x[0], 0.3, true); }, {{{64, 33}, t}}, tol);
    same([t](auto& x) { return x[0].to(t == f32 ? f64 : f32).exp(); }, {{{7, 3}, t}}, 1e-5);
    same([](auto& x) { return broadcast_to(x[0], {3, 4, 5}) * 2.0; }, {{{4, 1}, t}}, tol);
  }
  same([](auto& x) { return (x[0] * 3 + 1).to(DType::f32); },
       {{{5}, DType::i64, false, {1, 2, 3, 4, 5}}}, 0, false);
}

TEST_CASE("cuda: reductions, softmax and losses match the CPU") {
  LETHE_SKIP_WITHOUT_CUDA();
  for (DType t : {f32, f64}) {
    const double tol = tol_of(t, 1e-4);
    same([](auto& x) { return x[0].sum(); }, {{{300, 700}, t}}, tol);                // two-pass
    same([](auto& x) { return x[0].sum({1}); }, {{{30, 70}, t}}, tol);               // rows
    same([](auto& x) { return x[0].mean({0}); }, {{{30, 70}, t}}, tol);              // columns
    same([](auto& x) { return x[0].sum({0, 2}, true); }, {{{3, 4, 5, 6}, t}}, tol);  // general
    same([](auto& x) { return x[0].max(1); }, {{{6, 9, 4}, t}}, tol);
    same([](auto& x) { return x[0].argmax(2).to(DType::f64); }, {{{6, 9, 4}, t}}, 0, false);
    same([](auto& x) { return softmax(x[0], -1); }, {{{7, 300}, t}}, tol);
    same([](auto& x) { return log_softmax(x[0], 1); }, {{{3, 10, 4}, t}}, tol);
    same([](auto& x) { return cross_entropy(x[0], x[1]); },
         {{{16, 10}, t}, {{16}, DType::i64, false, labels(16, 10)}}, tol);
    same([](auto& x) { return cross_entropy(x[0], x[1], "sum"); },
         {{{4, 5, 3}, t}, {{4, 3}, DType::i64, false, labels(12, 5)}}, tol);
    same([](auto& x) { return cross_entropy(x[0], x[1], "none"); },
         {{{8, 6}, t}, {{8}, DType::i64, false, labels(8, 6)}}, tol);
    same([](auto& x) { return mse_loss(x[0], x[1]); }, {{{9, 4}, t}, {{9, 4}, t}}, tol);
    same([](auto& x) { return layer_norm(x[0], {32}, x[1], x[2]); },
         {{{6, 32}, t}, {{32}, t}, {{32}, t}}, tol);
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
    same([](auto& x) { return linear(x[0], x[1], x[2]); },
         {{{2, 7, 12}, t}, {{5, 12}, t}, {{5}, t}}, tol);
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

TEST_CASE("cuda: embedding's gradient matches the CPU for any spread of the indices") {
  LETHE_SKIP_WITHOUT_CUDA();
  for (DType t : {f32, f64}) {
    const double tol = tol_of(t, 1e-4);
    auto emb = [](auto& x) { return embedding(x[0], x[1]); };
    // dim 1 (f32 rows of 4 bytes), and more rows than positions.
    same(emb, {{{7, 1}, t}, {{40}, DType::i64, false, labels(40, 7)}}, tol);
    same(emb, {{{1000, 4}, t}, {{3, 10}, DType::i64, false, labels(30, 1000)}}, tol);
    // 9 positions in 10 on one row; tables whose sort takes 1, 2 and 3 radix passes.
    same_large(emb, {{{50, 3}, t}, {{50, 100}, DType::i64, false, mostly_zero(5000, 50)}}, tol);
    same_large(emb, {{{300, 1}, t}, {{5000}, DType::i64, false, mostly_zero(5000, 300)}}, tol);
    same_large(emb, {{{70000, 1}, t}, {{3000}, DType::i64, false, labels(3000, 70000)}}, tol);
  }
}

TEST_CASE("cuda: embedding's gradient adds each row's positions in increasing order, as the CPU") {
  LETHE_SKIP_WITHOUT_CUDA();
  // Gradients of mixed magnitudes: another order of the additions changes the bits.
  const int64_t n = 5000, rows = 300;
  const std::vector<int64_t> idx = mostly_zero(n, rows);
  std::vector<float> g;
  for (int64_t i = 0; i < n; ++i)
    g.push_back(static_cast<float>((i * 37) % 19 - 9) *
                std::pow(10.0f, static_cast<float>((i * 13) % 9 - 4)));
  auto grad_on = [&](Device d) {
    Session s({.device = d});
    Tensor w = zeros({rows, 1}, f32).set_requires_grad(true);
    (embedding(w, from_vector(idx, {n})) * from_vector(g, {n, 1})).sum().backward();
    return w.grad().to_vector<double>();
  };
  CHECK(grad_on(Device::cuda(0)) == grad_on(Device::cpu()));
}

TEST_CASE(
    "cuda: long column sums (bias gradients) and layer_norm's weight gradient match the CPU") {
  LETHE_SKIP_WITHOUT_CUDA();
  for (DType t : {f32, f64}) {
    const double tol = tol_of(t, 1e-4);
    // Tiles of 32 columns and a last one of 12; K0 > 1 with mean's scale; 1024 chunks of 3
    // columns; one chunk (enough tiles).
    same_large([](auto& x) { return x[0].sum({0}); }, {{{4096, 300}, t}}, tol);
    same_large([](auto& x) { return x[0].mean({1}); }, {{{3, 1000, 70}, t}}, tol);
    same_large([](auto& x) { return x[0].sum({0}); }, {{{100000, 3}, t}}, tol);
    same_large([](auto& x) { return x[0].sum({0}); }, {{{60, 5000}, t}}, tol);
    // The bias gradient of linear (sum) and of a broadcast add (sum_to: no room for chunks).
    same_large([](auto& x) { return linear(x[0], x[1], x[2]); },
               {{{4096, 24}, t}, {{300, 24}, t}, {{300}, t}}, tol);
    same_large([](auto& x) { return x[0] + x[1]; }, {{{4096, 300}, t}, {{300}, t}}, tol);
    same_large([](auto& x) { return layer_norm(x[0], {96}, x[1], x[2]); },
               {{{5000, 96}, t}, {{96}, t}, {{96}, t}}, tol);
    same_large(
        [](auto& x) {
          return layer_norm(x[0], {4, 24}, x[1], Tensor());
        },
        {{{2, 1500, 4, 24}, t}, {{4, 24}, t}}, tol);
  }
}

TEST_CASE("cuda: long column sums and embedding's gradient give the same bits on every run") {
  LETHE_SKIP_WITHOUT_CUDA();
  auto twice = [](const cuda_checks::Fn& f, const std::vector<Input>& ins) {
    CHECK(cuda_checks::run(Device::cuda(0), f, ins) == cuda_checks::run(Device::cuda(0), f, ins));
  };
  twice([](auto& x) { return x[0].sum({0}); }, {{{8192, 1024}, f32}});
  twice([](auto& x) { return linear(x[0], x[1], x[2]); },
        {{{4096, 16}, f32}, {{300, 16}, f32}, {{300}, f32}});
  twice([](auto& x) { return layer_norm(x[0], {768}, x[1], x[2]); },
        {{{4096, 768}, f32}, {{768}, f32}, {{768}, f32}});
  twice([](auto& x) { return embedding(x[0], x[1]); },
        {{{300, 8}, f32}, {{5000}, DType::i64, false, mostly_zero(5000, 300)}});
}

TEST_CASE("cuda: gradcheck in f64 on the device") {
  LETHE_SKIP_WITHOUT_CUDA();
  Session s({.device = Device::cuda(0), .seed = 3});
  auto check = [](const cuda_checks::Fn& f, const std::vector<Tensor>& in) {
    auto r = autograd::gradcheck(f, in, 1e-6, 1e-6, 1e-4);
    CHECK_MESSAGE(r.ok, r.message);
  };
  auto r = [](Shape sh) { return randn(sh, DType::f64); };
  check([](auto& x) { return (matmul(x[0], x[1]).tanh() * x[2]).sum(); },
        {r({3, 4}), r({4, 5}), r({3, 5})});
  check([](auto& x) { return softmax(x[0], -1).log().mean(); }, {r({4, 6})});
  check([](auto& x) { return layer_norm(x[0], {6}, x[1], x[2]).pow(2.0).sum(); },
        {r({3, 6}), r({6}), r({6})});
  check(
      [](auto& x) {
        return cross_entropy(x[0], from_vector<int64_t>({1, 0, 3}, {3}));
      },
      {r({3, 4})});
  check([](auto& x) { return gelu(linear(x[0], x[1], x[2]), "tanh").sum(); },
        {r({2, 3}), r({4, 3}), r({4})});
}

namespace {
Conv2dParams conv_params(int64_t s, int64_t p, int64_t d, int64_t g) {
  Conv2dParams r;
  r.stride = {s, s};
  r.padding = {p, p};
  r.dilation = {d, d};
  r.groups = g;
  return r;
}
}  // namespace

TEST_CASE("cuda: conv2d and its input and weight gradients match the CPU") {
  LETHE_SKIP_WITHOUT_CUDA();
  struct Case {
    Conv2dParams p;
    Shape x, w;
    bool bias;
  };
  const std::vector<Case> cases{
      {conv_params(1, 0, 1, 1), {2, 3, 7, 6}, {5, 3, 3, 3}, true},
      {conv_params(1, 1, 1, 1), {2, 3, 7, 6}, {5, 3, 3, 3}, false},
      {conv_params(2, 1, 1, 1), {3, 4, 9, 8}, {6, 4, 3, 3}, true},   // stride and padding
      {conv_params(1, 2, 2, 1), {2, 3, 8, 7}, {4, 3, 3, 3}, false},  // dilation
      {conv_params(1, 1, 1, 2), {2, 4, 6, 6}, {6, 2, 3, 3}, true},   // groups
      {conv_params(2, 1, 1, 4), {2, 4, 7, 7}, {4, 1, 3, 3}, false},  // depthwise, strided
      {conv_params(1, 0, 1, 1), {4, 8, 5, 5}, {3, 8, 1, 1}, true},   // pointwise
      {[] {
         Conv2dParams r;
         r.stride = {2, 1};
         r.padding = {0, 2};
         r.dilation = {1, 2};
         return r;
       }(),
       {2, 3, 9, 7},
       {4, 3, 2, 3},
       true},  // rectangular everything
  };
  for (DType t : {f32, f64}) {
    const double tol = tol_of(t, 1e-4);
    for (const Case& c : cases) {
      CAPTURE(c.x);
      CAPTURE(c.w);
      std::vector<Input> in{{c.x, t}, {c.w, t}};
      if (c.bias) in.push_back({{c.w[0]}, t});
      const Conv2dParams p = c.p;
      same([p](auto& x) { return conv2d(x[0], x[1], x.size() > 2 ? x[2] : Tensor(), p); }, in, tol);
    }
  }
}

TEST_CASE("cuda: max, average and adaptive pooling match the CPU") {
  LETHE_SKIP_WITHOUT_CUDA();
  using P = std::array<int64_t, 2>;
  for (DType t : {f32, f64}) {
    const double tol = tol_of(t, 1e-5);
    const std::vector<Input> x{{{2, 3, 7, 6}, t}};
    same([](auto& v) { return max_pool2d(v[0], P{2, 2}); }, x, tol);
    same(
        [](auto& v) {
          return max_pool2d(v[0], P{3, 3}, P{2, 1}, P{1, 1});
        },
        x, tol);  // overlapping, padded
    same([](auto& v) { return avg_pool2d(v[0], P{2, 2}); }, x, tol);
    same(
        [](auto& v) {
          return avg_pool2d(v[0], P{3, 2}, P{2, 1}, P{1, 1});
        },
        x, tol);                                                               // count_include_pad
    same([](auto& v) { return adaptive_avg_pool2d(v[0], P{3, 4}); }, x, tol);  // non-divisible
    same([](auto& v) { return adaptive_avg_pool2d(v[0], P{1, 1}); }, x, tol);
    same(
        [](auto& v) {
          return adaptive_avg_pool2d(v[0], P{9, 8});
        },
        x, tol);  // larger than the input
  }
}

TEST_CASE("cuda: max pooling gives a tied window's gradient to its first maximum") {
  LETHE_SKIP_WITHOUT_CUDA();
  Session s({.device = Device::cuda(0)});
  for (DType t : {f32, f64}) {
    auto x = ones({1, 1, 4, 4}, t).set_requires_grad(true);
    max_pool2d(x, {2, 2}).sum().backward();
    CHECK(x.grad().to_vector<double>() ==
          std::vector<double>{1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0});
    auto z = zeros({1, 1, 3, 3}, t).set_requires_grad(true);
    max_pool2d(z, {2, 2}, {1, 1})
        .sum()
        .backward();  // overlapping windows all pick (0, 0), (0, 1), ...
    CHECK(z.grad().to_vector<double>() == std::vector<double>{1, 1, 0, 1, 1, 0, 0, 0, 0});
  }
}

TEST_CASE("cuda: batch_norm in training and eval, with and without affine, matches the CPU") {
  LETHE_SKIP_WITHOUT_CUDA();
  for (DType t : {f32, f64}) {
    const double tol = tol_of(t, 1e-4);
    const Shape xs{4, 3, 5, 6};
    // Training: batch statistics (the stats node), gradient through them.
    same([](auto& v) { return batch_norm(v[0], Tensor(), Tensor(), v[1], v[2], true); },
         {{xs, t}, {{3}, t}, {{3}, t}}, tol);
    same([](auto& v) { return batch_norm(v[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
         {{xs, t}}, tol);
    same([](auto& v) { return batch_norm(v[0], Tensor(), Tensor(), v[1], Tensor(), true); },
         {{xs, t}, {{3}, t}}, tol);
    same(
        [](auto& v) {
          return batch_norm(v[0], Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-3);
        },
        {{{16, 5}, t}}, tol);  // [N, C]: one position per channel
    // Eval: running statistics (positive variances), not differentiated.
    same([](auto& v) { return batch_norm(v[0], v[1], v[2].pow(2.0) + 0.5, v[3], v[4], false); },
         {{xs, t}, {{3}, t, false}, {{3}, t, false}, {{3}, t}, {{3}, t}}, tol);
    same(
        [](auto& v) {
          return batch_norm(v[0], v[1], v[2].pow(2.0) + 0.5, Tensor(), Tensor(), false);
        },
        {{xs, t}, {{3}, t, false}, {{3}, t, false}}, tol);
  }
}

TEST_CASE("cuda: batch norm running statistics are updated as on the CPU") {
  LETHE_SKIP_WITHOUT_CUDA();
  for (DType t : {f32, f64}) {
    std::vector<std::vector<double>> r;
    for (Device d : {Device::cpu(), Device::cuda(0)}) {
      Session s({.device = d, .seed = 9});
      auto bn = std::make_shared<nn::BatchNorm2d>(nn::BatchNorm2dOptions(3).momentum(0.3).dtype(t));
      bn->train();
      auto x = randn({4, 3, 5, 2}, t);
      for (int step = 0; step < 2; ++step)
        (void)bn->forward(x * double(step + 1)).sum().item<double>();
      for (auto& b : bn->buffers()) r.push_back(b.to_vector<double>());
    }
    REQUIRE(r.size() % 2 == 0);
    const size_t half = r.size() / 2;
    for (size_t i = 0; i < half; ++i)
      for (size_t j = 0; j < r[i].size(); ++j)
        CHECK(r[half + i][j] == doctest::Approx(r[i][j]).epsilon(t == f64 ? 1e-12 : 1e-5));
  }
}

TEST_CASE("cuda: out-of-range targets and indices throw the CPU's error") {
  LETHE_SKIP_WITHOUT_CUDA();
  auto message = [](Device d, const std::function<Tensor()>& f) {
    Session s({.device = d, .seed = 1});
    try {
      (void)f().sum().item<double>();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto ce = [] {
    return cross_entropy(randn({5, 4}), from_vector<int64_t>({0, -100, 3, 7, -2}, {5}));
  };
  const std::string cpu_ce = message(Device::cpu(), ce), gpu_ce = message(Device::cuda(0), ce);
  CHECK(cpu_ce.find("cross_entropy: target 7 at position 3 is out of range for 4 classes") !=
        std::string::npos);
  CHECK(gpu_ce.find("cross_entropy: target 7 at position 3 is out of range for 4 classes") !=
        std::string::npos);
  CHECK(gpu_ce == cpu_ce);
  auto emb = [] { return embedding(randn({5, 3}), from_vector<int64_t>({1, 4, 5, -1}, {2, 2})); };
  const std::string cpu_e = message(Device::cpu(), emb), gpu_e = message(Device::cuda(0), emb);
  CHECK(cpu_e.find("embedding: index 5 (at position 2) is out of range for a table of 5 rows") !=
        std::string::npos);
  CHECK(gpu_e.find("embedding: index 5 (at position 2) is out of range for a table of 5 rows") !=
        std::string::npos);
  CHECK(gpu_e == cpu_e);
  // In range (ignore_index included), nothing throws and a later step still runs.
  Session s({.device = Device::cuda(0)});
  CHECK(std::isfinite(
      cross_entropy(randn({3, 4}), from_vector<int64_t>({0, -100, 3}, {3})).item<float>()));
}

TEST_CASE("cuda: gradcheck of conv2d, pooling and batch_norm in f64 on the device") {
  LETHE_SKIP_WITHOUT_CUDA();
  Session s({.device = Device::cuda(0), .seed = 4});
  using P = std::array<int64_t, 2>;
  auto check = [](const cuda_checks::Fn& f, const std::vector<Tensor>& in) {
    auto r = autograd::gradcheck(f, in, 1e-6, 1e-6, 1e-4);
    CHECK_MESSAGE(r.ok, r.message);
  };
  auto r = [](Shape sh) { return randn(sh, DType::f64); };
  const Conv2dParams p = conv_params(2, 1, 1, 2);
  check([p](auto& x) { return conv2d(x[0], x[1], x[2], p); },
        {r({2, 4, 6, 5}), r({6, 2, 3, 3}), r({6})});
  const Conv2dParams pd = conv_params(1, 2, 2, 1);
  check([pd](auto& x) { return conv2d(x[0], x[1], Tensor(), pd); },
        {r({1, 2, 6, 6}), r({3, 2, 3, 3})});
  check([](auto& x) { return max_pool2d(x[0], P{3, 3}, P{2, 1}, P{1, 1}); }, {r({2, 2, 5, 4})});
  check([](auto& x) { return avg_pool2d(x[0], P{3, 2}, P{2, 1}, P{1, 1}); }, {r({2, 2, 5, 4})});
  check([](auto& x) { return adaptive_avg_pool2d(x[0], P{3, 2}); }, {r({2, 1, 5, 4})});
  check([](auto& x) { return batch_norm(x[0], Tensor(), Tensor(), x[1], x[2], true); },
        {r({3, 2, 4, 3}), r({2}), r({2})});
}

// conv2d and pooling: hand-computed windows, a naive convolution loop for stride/padding/dilation/
// groups, f64 gradient checks, max-pool tie-breaking and the errors users see.
#include <doctest/doctest.h>

#include "lethe.h"
#include "op_checks.h"

using namespace lethe;
using namespace op_checks;

namespace {

std::vector<double> naive_conv(const Tensor& xt, const Tensor& wt, const Tensor& bt,
                               const Conv2dParams& p) {
  const auto x = xt.to_vector<double>(), w = wt.to_vector<double>();
  const auto b = bt.defined() ? bt.to_vector<double>() : std::vector<double>();
  const int64_t N = xt.size(0), C = xt.size(1), H = xt.size(2), W = xt.size(3);
  const int64_t O = wt.size(0), Cg = wt.size(1), KH = wt.size(2), KW = wt.size(3);
  const int64_t Og = O / p.groups;
  const int64_t Ho = (H + 2 * p.padding[0] - p.dilation[0] * (KH - 1) - 1) / p.stride[0] + 1;
  const int64_t Wo = (W + 2 * p.padding[1] - p.dilation[1] * (KW - 1) - 1) / p.stride[1] + 1;
  std::vector<double> out;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          double s = b.empty() ? 0.0 : b[size_t(o)];
          const int64_t g = o / Og;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t i = 0; i < KH; ++i)
              for (int64_t j = 0; j < KW; ++j) {
                const int64_t ih = oh * p.stride[0] - p.padding[0] + i * p.dilation[0];
                const int64_t iw = ow * p.stride[1] - p.padding[1] + j * p.dilation[1];
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += x[size_t(((n * C + g * Cg + c) * H + ih) * W + iw)] *
                     w[size_t(((o * Cg + c) * KH + i) * KW + j)];
              }
          out.push_back(s);
        }
  (void)C;
  return out;
}

struct ConvCase {
  Shape x, w;
  Conv2dParams p;
  bool bias;
};

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases{
      {{2, 2, 5, 4}, {3, 2, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 1}, true},  // same padding
      {{1, 2, 6, 5}, {2, 2, 3, 2}, {{2, 1}, {0, 1}, {1, 1}, 1}, true},  // stride, asymmetric kernel
      {{1, 1, 6, 6}, {2, 1, 2, 2}, {{1, 1}, {1, 0}, {2, 2}, 1}, false},  // dilation
      {{2, 4, 4, 4}, {4, 2, 3, 3}, {{1, 2}, {1, 1}, {1, 1}, 2}, true},   // groups
      {{1, 3, 4, 3}, {3, 1, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 3}, false},  // depthwise
      {{2, 3, 3, 4}, {2, 3, 1, 1}, {}, true},                            // pointwise fast path
      {{1, 4, 3, 3}, {4, 2, 1, 1}, {{1, 1}, {0, 0}, {1, 1}, 2}, false},  // grouped pointwise
  };
  return cases;
}

}  // namespace

TEST_CASE("conv2d: hand-computed 2x2 diagonal kernel, bias and padding") {
  Session s;
  auto x = from_vector<double>(seq(9, 1), {1, 1, 3, 3});
  auto w = from_vector<double>({1, 0, 0, 1}, {1, 1, 2, 2});
  auto y = conv2d(x, w);
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  close(y.to_vector<double>(), {6, 8, 12, 14});
  close(conv2d(x, w, from_vector<double>({1}, {1})).to_vector<double>(), {7, 9, 13, 15});
  Conv2dParams p;
  p.padding = {1, 1};
  p.stride = {2, 2};
  // Padded 5x5 input, windows at (0,0), (0,2), (2,0), (2,2) of the padded grid.
  close(conv2d(x, w, Tensor(), p).to_vector<double>(), {1, 3, 7, 14});
  // f32 path agrees.
  close(conv2d(x.to(DType::f32), w.to(DType::f32)).to_vector<double>(), {6, 8, 12, 14}, 1e-6);
}

TEST_CASE("conv2d: stride, padding, dilation and groups match a naive loop") {
  Session s;
  for (const auto& c : conv_cases()) {
    CAPTURE(c.x);
    CAPTURE(c.w);
    auto x = rnd(c.x), w = rnd(c.w), b = c.bias ? rnd({c.w[0]}) : Tensor();
    close(conv2d(x, w, b, c.p).to_vector<double>(), naive_conv(x, w, b, c.p), 1e-12);
    auto y32 =
        conv2d(x.to(DType::f32), w.to(DType::f32), c.bias ? b.to(DType::f32) : Tensor(), c.p);
    close(y32.to_vector<double>(), naive_conv(x, w, b, c.p), 1e-4);
  }
}

TEST_CASE("conv2d: gradients (f64 gradcheck) for input, weight and bias") {
  Session s;
  for (const auto& c : conv_cases()) {
    CAPTURE(c.x);
    CAPTURE(c.w);
    const Conv2dParams p = c.p;
    std::vector<Tensor> in{rnd(c.x), rnd(c.w)};
    if (c.bias) in.push_back(rnd({c.w[0]}));
    grad_ok(
        [p](const std::vector<Tensor>& v) {
          return conv2d(v[0], v[1], v.size() > 2 ? v[2] : Tensor(), p);
        },
        in);
  }
}

TEST_CASE("conv2d: shape and dtype errors name the op and both shapes") {
  Session s;
  throws_with(
      [] {
        conv2d(zeros({1, 3, 5, 5}), zeros({4, 2, 3, 3}));
      },
      {"conv2d", "[1, 3, 5, 5]", "[4, 2, 3, 3]"});
  throws_with(
      [] {
        conv2d(zeros({1, 3, 5}), zeros({4, 3, 3, 3}));
      },
      {"conv2d", "[1, 3, 5]", "[4, 3, 3, 3]"});
  throws_with(
      [] {
        conv2d(zeros({1, 3, 2, 2}), zeros({4, 3, 3, 3}));
      },
      {"conv2d", "[1, 3, 2, 2]", "[4, 3, 3, 3]"});
  Conv2dParams g3;
  g3.groups = 3;
  throws_with(
      [] {
        conv2d(zeros({1, 4, 5, 5}), zeros({4, 2, 3, 3}), Tensor(),
               Conv2dParams{{1, 1}, {0, 0}, {1, 1}, 3});
      },
      {"conv2d", "groups=3"});
  throws_with(
      [] {
        conv2d(zeros({1, 3, 5, 5}), zeros({4, 3, 3, 3}, DType::f64));
      },
      {"conv2d", "f32", "f64"});
  throws_with(
      [] {
        conv2d(zeros({1, 3, 5, 5}), zeros({4, 3, 3, 3}), zeros({3}));
      },
      {"conv2d", "bias", "[3]"});
}

TEST_CASE("pooling: max/avg/adaptive forward (hand-computed)") {
  Session s;
  auto x = from_vector<double>(seq(16, 1), {1, 1, 4, 4});
  close(max_pool2d(x, {2, 2}).to_vector<double>(), {6, 8, 14, 16});
  close(avg_pool2d(x, {2, 2}).to_vector<double>(), {3.5, 5.5, 11.5, 13.5});
  // 3x3 windows, stride 2, padding 1: padding counts in the average (count_include_pad).
  close(max_pool2d(x, {3, 3}, {2, 2}, {1, 1}).to_vector<double>(), {6, 8, 14, 16});
  close(avg_pool2d(x, {3, 3}, {2, 2}, {1, 1}).to_vector<double>(),
        {(1 + 2 + 5 + 6) / 9.0, (2 + 3 + 4 + 6 + 7 + 8) / 9.0, (5 + 6 + 9 + 10 + 13 + 14) / 9.0,
         (6 + 7 + 8 + 10 + 11 + 12 + 14 + 15 + 16) / 9.0});
  auto x3 = from_vector<double>(seq(9, 1), {1, 1, 3, 3});
  close(adaptive_avg_pool2d(x3, {2, 2}).to_vector<double>(), {3, 4, 6, 7});
  close(adaptive_avg_pool2d(x3, {1, 1}).to_vector<double>(), {5});
  // 5 -> 3 windows: [0,2), [1,4), [3,5).
  auto x5 = from_vector<double>(seq(5, 1), {1, 1, 1, 5});
  close(adaptive_avg_pool2d(x5, {1, 3}).to_vector<double>(), {1.5, 3, 4.5});
  CHECK(max_pool2d(rnd({2, 3, 7, 5}), {3, 2}, {2, 2}).shape() == Shape{2, 3, 3, 2});
}

TEST_CASE("pooling: gradients (f64 gradcheck) and max ties go to the first maximum") {
  Session s;
  auto mp = [](std::array<int64_t, 2> k, std::array<int64_t, 2> st, std::array<int64_t, 2> pd) {
    return [=](const std::vector<Tensor>& v) { return max_pool2d(v[0], k, st, pd); };
  };
  auto ap = [](std::array<int64_t, 2> k, std::array<int64_t, 2> st, std::array<int64_t, 2> pd) {
    return [=](const std::vector<Tensor>& v) { return avg_pool2d(v[0], k, st, pd); };
  };
  grad_ok(mp({2, 2}, {0, 0}, {0, 0}), {rnd({2, 2, 4, 4})});
  grad_ok(mp({3, 3}, {2, 1}, {1, 1}), {rnd({1, 2, 5, 4})});  // overlapping windows
  grad_ok(ap({2, 2}, {0, 0}, {0, 0}), {rnd({2, 2, 4, 4})});
  grad_ok(ap({3, 2}, {2, 1}, {1, 1}), {rnd({1, 2, 5, 4})});
  for (std::array<int64_t, 2> o : {std::array<int64_t, 2>{2, 3}, {3, 2}, {1, 1}, {5, 4}})
    grad_ok([o](const std::vector<Tensor>& v) { return adaptive_avg_pool2d(v[0], o); },
            {rnd({2, 1, 5, 4})});

  auto x = ones({1, 1, 2, 2}, DType::f64).set_requires_grad(true);
  max_pool2d(x, {2, 2}).sum().backward();
  close(x.grad().to_vector<double>(), {1, 0, 0, 0});
}

TEST_CASE("pooling: errors name the op and the shapes") {
  Session s;
  throws_with([] { max_pool2d(zeros({1, 4, 4}), {2, 2}); }, {"max_pool2d", "[1, 4, 4]"});
  throws_with([] { avg_pool2d(zeros({1, 1, 1, 1}), {2, 2}); }, {"avg_pool2d", "[1, 1, 1, 1]"});
  throws_with(
      [] {
        max_pool2d(zeros({1, 1, 4, 4}), {2, 2}, {1, 1}, {2, 2});
      },
      {"max_pool2d", "padding"});
  throws_with(
      [] {
        adaptive_avg_pool2d(zeros({4, 4}), {2, 2});
      },
      {"adaptive_avg_pool2d", "[4, 4]"});
}

TEST_CASE("conv2d: an input smaller than the kernel is an error, also with stride") {
  Session s;
  Conv2dParams p;
  p.stride = {2, 2};
  throws_with(
      [&] {
        conv2d(zeros({1, 1, 2, 2}), zeros({1, 1, 3, 3}), Tensor(), p);
      },
      {"conv2d", "[1, 1, 2, 2]", "[1, 1, 3, 3]"});
  throws_with(
      [] {
        max_pool2d(zeros({1, 1, 2, 2}), {3, 3}, {2, 2});
      },
      {"max_pool2d", "[1, 1, 2, 2]"});
}

TEST_CASE(
    "conv2d: samples batched into one GEMM (with a partial last chunk) match per-sample results") {
  Session s;
  // 32x32 outputs: two samples share a GEMM, so N = 3 gives chunks of 2 and 1.
  for (bool pointwise : {false, true}) {
    CAPTURE(pointwise);
    Conv2dParams p;
    if (!pointwise) p.padding = {1, 1};
    auto x = rnd({3, 2, 32, 32}), w = rnd(pointwise ? Shape{3, 2, 1, 1} : Shape{3, 2, 3, 3}),
         b = rnd({3});
    auto gy = rnd({3, 3, 32, 32});
    close(conv2d(x, w, b, p).to_vector<double>(), naive_conv(x, w, b, p), 1e-12);
    std::vector<double> dx, dw(size_t(w.numel()), 0.0);
    for (int64_t n = 0; n < 3; ++n) {
      auto xn = x.slice(0, n, n + 1), gn = gy.slice(0, n, n + 1);
      auto d = conv2d_backward_input(gn, w, xn.shape(), p).to_vector<double>();
      dx.insert(dx.end(), d.begin(), d.end());
      auto dwn = conv2d_backward_weight(xn, gn, w.shape(), p).to_vector<double>();
      for (size_t i = 0; i < dw.size(); ++i) dw[i] += dwn[i];
    }
    close(conv2d_backward_input(gy, w, x.shape(), p).to_vector<double>(), dx, 1e-12);
    close(conv2d_backward_weight(x, gy, w.shape(), p).to_vector<double>(), dw, 1e-10);
  }
}

TEST_CASE(
    "conv2d: large images in tiles of output rows match the naive loop and the adjoint "
    "identities") {
  // One sample's output has more than 2048 positions, so the column matrix holds a tile of whole
  // output rows at a time (the last tile shorter): forward against the naive loop, and both
  // gradients through <conv(x), g> = <x, dx(g)> = <w, dw(x, g)> (no bias).
  Session s;
  struct Case {
    Shape x, w;
    Conv2dParams p;
  };
  const std::vector<Case> cases{
      {{2, 3, 70, 40},
       {4, 3, 3, 3},
       {{1, 1}, {1, 1}, {1, 1}, 1}},  // 2800 outputs: tiles of 51 + 19 rows
      {{1, 2, 130, 70},
       {3, 2, 3, 3},
       {{2, 2}, {1, 1}, {1, 1}, 1}},  // stride 2: 65 x 35, tiles of 58 + 7
      {{1, 4, 60, 50}, {4, 2, 3, 3}, {{1, 1}, {2, 2}, {2, 2}, 2}},  // dilation and groups
  };
  auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
    double r = 0;
    for (size_t i = 0; i < a.size(); ++i) r += a[i] * b[i];
    return r;
  };
  for (const Case& c : cases) {
    CAPTURE(c.x);
    auto x = rnd(c.x), w = rnd(c.w), b = rnd({c.w[0]});
    close(conv2d(x, w, b, c.p).to_vector<double>(), naive_conv(x, w, b, c.p), 1e-12);
    const auto y = naive_conv(x, w, Tensor(), c.p);
    auto gy = rnd(conv2d(x, w, Tensor(), c.p).shape());
    const auto g = gy.to_vector<double>();
    const double lhs = dot(y, g);
    const auto dx = conv2d_backward_input(gy, w, x.shape(), c.p).to_vector<double>();
    const auto dw = conv2d_backward_weight(x, gy, w.shape(), c.p).to_vector<double>();
    CHECK(dot(x.to_vector<double>(), dx) == doctest::Approx(lhs).epsilon(1e-10));
    CHECK(dot(w.to_vector<double>(), dw) == doctest::Approx(lhs).epsilon(1e-10));
  }
}

// pad (constant, reflect, replicate) and upsample_nearest2d / upsample_bilinear2d: values and
// gradients against torch.nn.functional (pad, interpolate), errors that name the problem.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "lethe.h"
#include "op_checks.h"

using namespace lethe;
using namespace op_checks;

namespace {
Tensor plane() {
  return from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8}, {1, 1, 2, 4});
}
}  // namespace

TEST_CASE("pad: constant, negative, reflect and replicate values (torch)") {
  Session s;
  auto p = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto c = pad(p, {1, 2}, "constant", 9.0);
  CHECK(c.shape() == Shape{2, 6});
  close(c.to_vector<double>(), {9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9, 9});
  close(pad(p, {-1, 1}).to_vector<double>(), {2, 3, 0, 5, 6, 0});
  close(pad(p.unsqueeze(0), {2, 1}, "reflect").to_vector<double>(),
        {3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5});
  auto r = pad(p, {1, 2, 1, 0}, "replicate");
  CHECK(r.shape() == Shape{3, 6});
  close(r.to_vector<double>(), {1, 1, 2, 3, 3, 3, 1, 1, 2, 3, 3, 3, 4, 4, 5, 6, 6, 6});
  // NaN and infinities travel as values; a NaN pad value fills the border.
  auto n =
      pad(from_vector<double>({std::nan("")}, {1}), {1, 0}, "constant", 2.0).to_vector<double>();
  CHECK(n[0] == 2);
  CHECK(std::isnan(n[1]));
  CHECK(std::isnan(pad(p, {1, 0}, "constant", std::nan("")).to_vector<double>()[0]));
  CHECK(pad(from_vector<int64_t>({4, 5}, {2}), {0, 1}, "replicate").to_vector<int64_t>() ==
        std::vector<int64_t>{4, 5, 5});
}

TEST_CASE("pad: gradients sum what each element fed (torch), f64 gradcheck") {
  Session s;
  auto p = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3}).set_requires_grad(true);
  (pad(p.unsqueeze(0), {2, 1}, "reflect") * from_vector<double>(seq(12, 1), {1, 2, 6}))
      .sum()
      .backward();
  close(p.grad().to_vector<double>(), {3, 12, 6, 9, 30, 18});
  p.zero_grad();
  (pad(p, {1, 2, 1, 0}, "replicate") * from_vector<double>(seq(18, 1), {3, 6})).sum().backward();
  close(p.grad().to_vector<double>(), {18, 12, 48, 27, 15, 51});
  for (const char* mode : {"constant", "reflect", "replicate"}) {
    CAPTURE(mode);
    grad_ok(
        [&](const std::vector<Tensor>& v) {
          return pad(v[0], {1, 2, 2, 1, 0, 1}, mode) * 1.5;
        },
        {rnd({2, 3, 4})});
  }
  grad_ok([](const std::vector<Tensor>& v) { return pad(v[0], {-1, 2, 1, -1}); }, {rnd({3, 4})});
}

TEST_CASE("pad: errors name the mode, the pads and the shape") {
  Session s;
  auto x = zeros({2, 3});
  throws_with([&] { pad(x, {1, 1}, "circular"); }, {"pad", "circular", "reflect"});
  throws_with([&] { pad(x, {1}); }, {"pad", "pairs"});
  throws_with([&] { pad(x, {1, 1, 1, 1, 1, 1}); }, {"pad", "3 dims", "[2, 3]"});
  throws_with([&] { pad(x, {3, 0}, "reflect"); }, {"pad", "reflect", "(3, 0)", "size 3"});
  throws_with([&] { pad(x, {-1, 0}, "replicate"); }, {"pad", "replicate", "negative"});
  throws_with([&] { pad(x, {-2, -2}); }, {"pad", "negative size"});
  throws_with([&] { pad(x, {1, 1}, "reflect", 1.0); }, {"pad", "value", "constant"});
}

TEST_CASE("upsample_nearest2d: scale and size (torch), gradient") {
  Session s;
  auto y = upsample_nearest2d(plane(), 2.0, 2.0);
  CHECK(y.shape() == Shape{1, 1, 4, 8});
  close(y.to_vector<double>(), {1, 1, 2, 2, 3, 3, 4, 4, 1, 1, 2, 2, 3, 3, 4, 4,
                                5, 5, 6, 6, 7, 7, 8, 8, 5, 5, 6, 6, 7, 7, 8, 8});
  close(upsample_nearest2d(plane(), {3, 3}).to_vector<double>(), {1, 2, 3, 1, 2, 3, 5, 6, 7});
  auto x = plane().set_requires_grad(true);
  (upsample_nearest2d(x, {3, 5}) * from_vector<double>(seq(15, 1), {1, 1, 3, 5})).sum().backward();
  close(x.grad().to_vector<double>(), {16, 11, 13, 15, 23, 13, 14, 15});  // torch
  grad_ok([](const std::vector<Tensor>& v) { return upsample_nearest2d(v[0], 1.5, 2.5); },
          {rnd({2, 2, 3, 2})});
}

TEST_CASE("upsample_bilinear2d: sizes, scales, align_corners (torch), gradient") {
  Session s;
  close(upsample_bilinear2d(plane(), {3, 5}).to_vector<double>(),
        {1, 1.7, 2.5, 3.3, 4, 3, 3.7, 4.5, 5.3, 6, 5, 5.7, 6.5, 7.3, 8}, 1e-12);
  close(upsample_bilinear2d(plane(), {3, 5}, true).to_vector<double>(),
        {1, 1.75, 2.5, 3.25, 4, 3, 3.75, 4.5, 5.25, 6, 5, 5.75, 6.5, 7.25, 8}, 1e-12);
  // A scale maps coordinates with 1 / scale (1.7), not with the size ratio (6 / 4).
  auto y = upsample_bilinear2d(plane(), 1.7, 1.7);
  CHECK(y.shape() == Shape{1, 1, 3, 6});
  close(y.to_vector<double>(),
        {1.0, 1.3823529411764706, 1.9705882352941178, 2.5588235294117645, 3.1470588235294117,
         3.735294117647059, 2.5294117647058827, 2.9117647058823533, 3.5000000000000004,
         4.088235294117648, 4.6764705882352935, 5.264705882352942, 4.882352941176471,
         5.264705882352942, 5.852941176470589, 6.4411764705882355, 7.029411764705882,
         7.61764705882353},
        1e-12);
  auto x = plane().set_requires_grad(true);
  (upsample_bilinear2d(x, {3, 5}) * from_vector<double>(seq(15, 1), {1, 1, 3, 5})).sum().backward();
  close(x.grad().to_vector<double>(), {5.65, 7.35, 9.45, 12.55, 18.65, 19.35, 21.45, 25.55},
        1e-12);  // torch
  for (bool ac : {false, true}) {
    CAPTURE(ac);
    grad_ok(
        [&](const std::vector<Tensor>& v) {
          return upsample_bilinear2d(v[0], {5, 3}, ac);
        },
        {rnd({1, 2, 3, 4})});
    grad_ok([&](const std::vector<Tensor>& v) { return upsample_bilinear2d(v[0], 2.0, 1.5, ac); },
            {rnd({2, 1, 2, 3})});
  }
}

TEST_CASE("upsample: downsampling and align_corners gradients (torch)") {
  Session s;
  auto x = from_vector<double>(seq(20, 1), {1, 1, 4, 5});
  auto b = upsample_bilinear2d(x, 0.6, 0.6);
  CHECK(b.shape() == Shape{1, 1, 2, 3});
  close(b.to_vector<double>(), {3, 14.0 / 3, 19.0 / 3, 34.0 / 3, 13, 44.0 / 3}, 1e-12);
  close(upsample_nearest2d(x, {3, 2}).to_vector<double>(), {1, 3, 6, 8, 11, 13});
  close(upsample_nearest2d(x, 0.7, 0.7).to_vector<double>(), {1, 2, 3, 6, 7, 8});
  auto g = from_vector<double>(seq(20, 1), {1, 1, 4, 5}).set_requires_grad(true);
  (upsample_bilinear2d(g, {6, 7}, true) * from_vector<double>(seq(42, 1), {1, 1, 6, 7}))
      .sum()
      .backward();
  close(g.grad().to_vector<double>(), {6.066666666666667,  8.4,
                                       14.000000000000002, 14.000000000000002,
                                       16.333333333333332, 28.800000000000008,
                                       31.466666666666676, 43.33333333333334,
                                       37.866666666666674, 40.53333333333333,
                                       51.199999999999996, 53.866666666666674,
                                       71.33333333333334,  60.266666666666666,
                                       62.933333333333316, 63.93333333333333,
                                       66.26666666666667,  86.33333333333334,
                                       71.86666666666667,  74.19999999999999},
        1e-12);
  g.zero_grad();
  (upsample_bilinear2d(g, 0.6, 0.6) * from_vector<double>(seq(6, 1), {1, 1, 2, 3}))
      .sum()
      .backward();
  close(g.grad().to_vector<double>(),
        {4.0 / 9, 2.0 / 9, 4.0 / 3, 2.0 / 3, 4.0 / 3, 2.0 / 9, 1.0 / 9, 2.0 / 3, 1.0 / 3, 2.0 / 3,
         8.0 / 3, 4.0 / 3, 5,       2,       4,       0,       0,       0,       0,       0},
        1e-12);
}

TEST_CASE("upsample: errors name the op and the shapes") {
  Session s;
  throws_with(
      [&] {
        upsample_nearest2d(zeros({2, 3}), 2.0, 2.0);
      },
      {"upsample_nearest2d", "NCHW", "[2, 3]"});
  throws_with(
      [&] {
        upsample_bilinear2d(zeros({1, 1, 2, 2}), {0, 3});
      },
      {"upsample_bilinear2d", "[0, 3]"});
  throws_with(
      [&] {
        upsample_bilinear2d(zeros({1, 1, 2, 2}), -1.0, 2.0);
      },
      {"upsample_bilinear2d", "positive"});
  throws_with(
      [&] {
        upsample_nearest2d(from_vector<int64_t>({1}, {1, 1, 1, 1}), 2.0, 2.0);
      },
      {"upsample_nearest2d", "floating-point", "i64"});
}

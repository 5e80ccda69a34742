// NaN and infinity go through every op as IEEE arithmetic (and PyTorch) has them go: a NaN in an
// input is a NaN in every output it reaches; nothing swallows one (relu(NaN) was 0). And anomaly
// detection names the first op that produced a non-finite value.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "lethe.h"

using namespace lethe;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// x of `shape` with values in [-1, 1), element 0 replaced by `bad`.
Tensor poisoned(const Shape& shape, float bad) {
  std::vector<float> v(static_cast<size_t>(shape.numel()));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<float>(static_cast<int>(i * 37 % 19) - 9) / 10.0f;
  v[0] = bad;
  return from_vector(v, shape);
}

bool any_nan(const Tensor& t) {
  for (double v : t.to_vector<double>())
    if (std::isnan(v)) return true;
  return false;
}

struct Case {
  std::string op;
  Shape shape;
  std::function<Tensor(const Tensor&)> f;
};

}  // namespace

TEST_CASE("non-finite: a NaN in the input reaches the output of every op") {
  Session s({.seed = 1});
  const Tensor w33 = randn({3, 3}), w4 = randn({4}), w2333 = randn({2, 3, 3, 3}), ones3 = ones({3}),
               zeros3 = zeros({3});
  const Tensor table = randn({5, 3}), labels = from_vector<int64_t>({0, 1, 2, 1}, {4});
  const std::vector<Case> cases = {
      {"relu", {2, 3}, [](const Tensor& x) { return relu(x); }},
      {"gelu", {2, 3}, [](const Tensor& x) { return gelu(x); }},
      {"sigmoid", {2, 3}, [](const Tensor& x) { return sigmoid(x); }},
      {"tanh", {2, 3}, [](const Tensor& x) { return tanh(x); }},
      {"exp", {2, 3}, [](const Tensor& x) { return exp(x); }},
      {"log", {2, 3}, [](const Tensor& x) { return log(x); }},
      {"sqrt", {2, 3}, [](const Tensor& x) { return sqrt(x); }},
      {"pow", {2, 3}, [](const Tensor& x) { return pow(x, 2.0); }},
      {"neg", {2, 3}, [](const Tensor& x) { return neg(x); }},
      {"add", {2, 3}, [](const Tensor& x) { return x + x; }},
      {"mul", {2, 3}, [](const Tensor& x) { return x * 0.0; }},  // 0 * NaN = NaN
      {"div", {2, 3}, [](const Tensor& x) { return x / 2.0; }},
      {"sum", {2, 3}, [](const Tensor& x) { return x.sum(); }},
      {"mean", {2, 3}, [](const Tensor& x) { return x.mean({1}); }},
      {"max", {2, 3}, [](const Tensor& x) { return x.max(1); }},
      {"softmax", {2, 3}, [](const Tensor& x) { return softmax(x, 1); }},
      {"log_softmax", {2, 3}, [](const Tensor& x) { return log_softmax(x, 1); }},
      {"matmul", {2, 3}, [&](const Tensor& x) { return matmul(x, w33); }},
      {"linear", {2, 3}, [&](const Tensor& x) { return linear(x, w33); }},
      {"layer_norm", {2, 3}, [&](const Tensor& x) { return layer_norm(x, {3}, ones3, zeros3); }},
      {"batch_norm",
       {2, 3, 2, 2},
       [&](const Tensor& x) { return batch_norm(x, Tensor(), Tensor(), ones3, zeros3, true); }},
      {"conv2d", {1, 3, 4, 4}, [&](const Tensor& x) { return conv2d(x, w2333); }},
      {"max_pool2d",
       {1, 1, 4, 4},
       [](const Tensor& x) {
         return max_pool2d(x, {2, 2});
       }},
      {"avg_pool2d",
       {1, 1, 4, 4},
       [](const Tensor& x) {
         return avg_pool2d(x, {2, 2});
       }},
      {"adaptive_avg_pool2d",
       {1, 1, 4, 4},
       [](const Tensor& x) {
         return adaptive_avg_pool2d(x, {1, 1});
       }},
      {"dropout", {2, 3}, [](const Tensor& x) { return dropout(x, 0.5, true) + x; }},
      {"cross_entropy", {4, 3}, [&](const Tensor& x) { return cross_entropy(x, labels); }},
      {"mse_loss", {2, 3}, [](const Tensor& x) { return mse_loss(x, zeros_like(x)); }},
      {"attention",
       {1, 2, 2},
       [](const Tensor& x) { return scaled_dot_product_attention(x, x, x); }},
      {"transpose", {2, 3}, [](const Tensor& x) { return x.transpose(0, 1); }},
      {"slice", {2, 3}, [](const Tensor& x) { return x.slice(1, 0, 2); }},
      {"concat",
       {2, 3},
       [](const Tensor& x) {
         return concat({x, x}, 0);
       }},
      {"broadcast_to",
       {1, 3},
       [](const Tensor& x) {
         return broadcast_to(x, {4, 3});
       }},
      {"abs", {2, 3}, [](const Tensor& x) { return abs(x); }},
      {"log1p", {2, 3}, [](const Tensor& x) { return log1p(x); }},
      {"expm1", {2, 3}, [](const Tensor& x) { return expm1(x); }},
      {"clamp", {2, 3}, [](const Tensor& x) { return clamp(x, -0.5, 0.5); }},
      {"minimum", {2, 3}, [](const Tensor& x) { return minimum(x, zeros_like(x)); }},
      {"maximum", {2, 3}, [](const Tensor& x) { return maximum(zeros_like(x), x); }},
      {"pow_tensor", {2, 3}, [](const Tensor& x) { return pow(x, ones_like(x)); }},
      {"where", {2, 3}, [](const Tensor& x) { return where(ones_like(x), x, zeros_like(x)); }},
      {"min", {2, 3}, [](const Tensor& x) { return x.min(1); }},
      {"cumsum", {2, 3}, [](const Tensor& x) { return cumsum(x, 1); }},
      {"gather",
       {2, 3},
       [](const Tensor& x) {
         return gather(x, 1, from_vector<int64_t>({0, 2}, {2, 1}));
       }},
      {"index_select",
       {2, 3},
       [](const Tensor& x) {
         return index_select(x, 1, from_vector<int64_t>({2, 0}, {2}));
       }},
      {"scatter_add",
       {2, 3},
       [](const Tensor& x) {
         return scatter_add(zeros_like(x), 1, from_vector<int64_t>({1, 1, 0, 2, 2, 2}, {2, 3}), x);
       }},
      {"pad constant",
       {2, 3},
       [](const Tensor& x) {
         return pad(x, {1, 1});
       }},
      {"pad reflect",
       {2, 3},
       [](const Tensor& x) {
         return pad(x, {2, 1}, "reflect");
       }},
      {"pad replicate",
       {2, 3},
       [](const Tensor& x) {
         return pad(x, {1, 2, 1, 0}, "replicate");
       }},
      {"upsample_nearest2d",
       {1, 1, 2, 3},
       [](const Tensor& x) { return upsample_nearest2d(x, 2.0, 1.5); }},
      {"upsample_bilinear2d",
       {1, 1, 2, 3},
       [](const Tensor& x) {
         return upsample_bilinear2d(x, {3, 5});
       }},
  };
  for (const float bad : {kNaN, kInf, -kInf}) {
    for (const Case& c : cases) {
      CAPTURE(c.op);
      CAPTURE(bad);
      const Tensor y = c.f(poisoned(c.shape, bad));
      std::vector<double> v = y.to_vector<double>();
      bool non_finite = false;
      for (double e : v) non_finite = non_finite || !std::isfinite(e);
      // An infinity may become finite only where arithmetic says so (exp(-inf) = 0, sigmoid, tanh,
      // softmax of -inf is 0); a NaN never.
      if (std::isnan(bad))
        CHECK_MESSAGE(any_nan(y), c.op, " swallowed a NaN");
      else if (c.op == "relu" || c.op == "add" || c.op == "sum" || c.op == "matmul" ||
               c.op == "max_pool2d" || c.op == "transpose" || c.op == "concat") {
        const bool ok =
            non_finite || (c.op == "relu" && bad < 0) || (c.op == "max_pool2d" && bad < 0);
        CHECK_MESSAGE(ok, c.op, " swallowed an infinity");
      }
    }
  }
  // The gradient of relu at NaN is 0 (PyTorch's threshold_backward), and through sum it is
  // NaN-free.
  Tensor p = poisoned({2, 3}, kNaN).set_requires_grad(true);
  relu(p).sum().backward();
  CHECK(p.grad().to_vector<float>()[0] == 0.0f);
  // A NaN input to a training step leaves a NaN loss, not a finite one.
  nn::Linear fc(3, 2);
  CHECK(std::isnan(cross_entropy(fc.forward(relu(poisoned({4, 3}, kNaN))),
                                 from_vector<int64_t>({0, 1, 1, 0}, {4}))
                       .item<double>()));
}

TEST_CASE(
    "non-finite: anomaly detection names the first op that produced a NaN, and where it came "
    "from") {
  {
    Session s({.seed = 2, .detect_anomaly = true});
    Tensor x = from_vector<float>({1.0f, -1.0f, 4.0f}, {3});
    // log(-1) is the first NaN: log is named, with all-finite inputs.
    std::string msg;
    try {
      (void)(log(x) * 2.0).sum().item<double>();
    } catch (const Error& e) {
      msg = e.what();
    }
    CHECK(msg.find("anomaly detection: log (node") != std::string::npos);
    CHECK(msg.find("this op is where it started") != std::string::npos);
  }
  {
    Session s({.seed = 3, .memory_budget = "1MiB", .detect_anomaly = true});
    Tensor x = poisoned({2, 3}, kNaN);
    std::string msg;
    try {
      (void)(x * 2.0).sum().item<double>();
    } catch (const Error& e) {
      msg = e.what();
    }
    CHECK(msg.find("came in with it") != std::string::npos);
    CHECK(msg.find("a leaf") != std::string::npos);
  }
  {
    // Finite values pass untouched, with the same result as without the checks.
    Session a({.seed = 4, .detect_anomaly = true});
    const double checked = (randn({3, 3}) * 2.0).sum().item<double>();
    Session b({.seed = 4});
    CHECK(checked == (randn({3, 3}) * 2.0).sum().item<double>());
  }
}

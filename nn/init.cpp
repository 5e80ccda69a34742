#include "nn/init.h"

#include <cmath>

#include "framework/error.h"
#include "ops/creation.h"

namespace lethe::nn::init {

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Shape& s) {
  LETHE_CHECK(s.ndim() >= 2,
              "init: fan in and fan out need a tensor of at least 2 dimensions, got ", s);
  int64_t receptive = 1;
  for (int i = 2; i < s.ndim(); ++i) receptive *= s[i];
  return {s[1] * receptive, s[0] * receptive};
}

double calculate_gain(const std::string& nl, double param) {
  if (nl == "linear" || nl == "conv1d" || nl == "conv2d" || nl == "conv3d" || nl == "sigmoid")
    return 1.0;
  if (nl == "tanh") return 5.0 / 3.0;
  if (nl == "relu") return std::sqrt(2.0);
  if (nl == "leaky_relu") return std::sqrt(2.0 / (1.0 + param * param));
  if (nl == "selu") return 3.0 / 4.0;
  throw Error("init: unknown nonlinearity '" + nl +
              "' (expected linear, conv2d, sigmoid, tanh, relu, leaky_relu or selu)");
}

namespace {
void check_float(const Tensor& t, const char* fn) {
  LETHE_CHECK(t.defined(), "init::", fn, ": the tensor is undefined");
  LETHE_CHECK(is_floating(t.dtype()), "init::", fn, ": expected a floating-point tensor, got ",
              t.dtype());
}
int64_t fan(const Tensor& t, const std::string& mode) {
  auto [in, out] = calculate_fan_in_and_fan_out(t.shape());
  LETHE_CHECK(mode == "fan_in" || mode == "fan_out",
              "init: mode must be 'fan_in' or 'fan_out', got '", mode, "'");
  return mode == "fan_in" ? in : out;
}
}  // namespace

void uniform_(Tensor& t, double lo, double hi) {
  check_float(t, "uniform_");
  LETHE_CHECK(lo <= hi, "init::uniform_: expected lo <= hi, got [", lo, ", ", hi, ")");
  t.assign(uniform(t.shape(), lo, hi, t.dtype()));
}

void normal_(Tensor& t, double mean, double std) {
  check_float(t, "normal_");
  LETHE_CHECK(std >= 0, "init::normal_: std must be >= 0, got ", std);
  // Scaled on the host so that nothing is recorded on the step graph.
  Tensor z = randn(t.shape(), t.dtype());
  dispatch_float(t.dtype(), "init::normal_", [&](auto tag) {
    using T = decltype(tag);
    auto v = z.to_vector<T>();
    for (auto& x : v) x = static_cast<T>(x * std + mean);
    t.assign(from_vector<T>(v, t.shape()));
  });
}

void constant_(Tensor& t, double value) {
  check_float(t, "constant_");
  t.assign(full(t.shape(), value, t.dtype()));
}
void zeros_(Tensor& t) {
  constant_(t, 0.0);
}
void ones_(Tensor& t) {
  constant_(t, 1.0);
}

void kaiming_uniform_(Tensor& t, double a, const std::string& mode,
                      const std::string& nonlinearity) {
  check_float(t, "kaiming_uniform_");
  double std = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan(t, mode)));
  double bound = std::sqrt(3.0) * std;
  uniform_(t, -bound, bound);
}

void kaiming_normal_(Tensor& t, double a, const std::string& mode,
                     const std::string& nonlinearity) {
  check_float(t, "kaiming_normal_");
  double std = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan(t, mode)));
  normal_(t, 0.0, std);
}

void xavier_uniform_(Tensor& t, double gain) {
  check_float(t, "xavier_uniform_");
  auto [in, out] = calculate_fan_in_and_fan_out(t.shape());
  double bound = gain * std::sqrt(6.0 / static_cast<double>(in + out));
  uniform_(t, -bound, bound);
}

void xavier_normal_(Tensor& t, double gain) {
  check_float(t, "xavier_normal_");
  auto [in, out] = calculate_fan_in_and_fan_out(t.shape());
  normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(in + out)));
}

}  // namespace lethe::nn::init

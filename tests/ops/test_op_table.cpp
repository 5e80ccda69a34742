// One table of op tests: every op kind (framework/op_kind.h) is one or more entries (inputs,
// dtypes, attribute variants, tolerance, gradcheck yes/no, which input a NaN goes through), run
// against every backend present:
//   - CPU: the op's node is found in the recorded step and its kernel run again on buffers with
//     guard bytes before and after (sentinels, as ggml's test-backend-ops): a write out of bounds,
//     fatal in a static-offset arena, fails here; inputs must come back untouched and the output
//     bitwise equal to what the session computed;
//   - NaN: the same guarded run with one input all NaN must give a NaN somewhere (issue 21);
//   - gradcheck in f64 against central differences where the entry says so;
//   - CUDA against the CPU when a GPU is there (skipped with a message otherwise).
// A kind without an entry fails, and so does a kind with a CPU kernel but no CUDA kernel in a
// build with the CUDA backend.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "framework/cuda.h"
#include "framework/op_kind.h"
#include "lethe.h"
#include "ops/comm.h"
#include "optim/update_ops.h"

#if defined(LETHE_TEST_CUDA_BUILD)
namespace lethe::cuda::detail {
Backend& cuda_backend();  // framework/cuda/runtime.cpp: its kernel table needs no device
}
#endif

using namespace lethe;

namespace {

const DType f32 = DType::f32, f64 = DType::f64, i64 = DType::i64;

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// One input of an entry: floating (of the dtype under test) unless it has `ints`.
struct In {
  Shape shape;
  bool positive = false;      // values in [0.5, 1.5): log, sqrt, divisors, variances
  std::vector<int64_t> ints;  // an i64 input (indices, labels) with these values
  bool grad = true;           // differentiated (floating inputs only)
};

struct Entry {
  OpKind kind;
  std::string variant;
  std::vector<In> in;
  Fn fn;
  std::vector<DType> dtypes{f32, f64};
  double tol = 1e-5;      // CUDA against CPU in f32, relative to 1 + |cpu| (f64: 1e-11)
  bool gradcheck = true;  // f64 gradcheck of fn
  bool backward = false;  // the kind is recorded by fn's gradient: run backward to find it
  int nan_input = 0;      // input of the node that is set to NaN, then to +-Inf; -1: no check
  // IEEE arithmetic may turn an infinite input into finite outputs only (exp(-inf) = 0,
  // sigmoid(inf) = 1, 2 / inf = 0): then an infinity is only run, not required to come out.
  bool inf_may_vanish = false;
};

In x(Shape s) {
  return In{std::move(s)};
}
In pos(Shape s) {
  return In{std::move(s), true};
}
In ints(Shape s, std::vector<int64_t> v) {
  return In{std::move(s), false, std::move(v), false};
}
In fixed(Shape s) {
  return In{std::move(s), false, {}, false};
}  // no gradient
In pos_fixed(Shape s) {
  return In{std::move(s), true, {}, false};
}  // positive, no gradient (class weights)

Conv2dParams conv(int64_t s, int64_t p, int64_t d, int64_t g) {
  Conv2dParams r;
  r.stride = {s, s};
  r.padding = {p, p};
  r.dilation = {d, d};
  r.groups = g;
  return r;
}

using P2 = std::array<int64_t, 2>;

std::vector<Entry> table() {
  std::vector<Entry> t;
  auto add = [&](Entry e) { t.push_back(std::move(e)); };
  // One entry a line or two, as a table reads: clang-format would put every field on its own line.
  // clang-format off
  // ------------------------------------------------------------------ elementwise
  add({OpKind::add, "broadcast", {x({2, 3}), x({3})}, [](auto& v) { return v[0] + v[1]; }, {f32, f64}});
  add({OpKind::add, "same shape i64", {ints({4}, {1, -2, 3, 4}), ints({4}, {5, 6, -7, 8})},
       [](auto& v) { return v[0] + v[1]; }, {i64}, 0, false, false, -1});
  add({OpKind::sub, "broadcast", {x({4, 1, 3}), x({2, 3})}, [](auto& v) { return v[0] - v[1]; }});
  add({OpKind::mul, "broadcast", {x({2, 3, 4}), x({2, 1, 1})}, [](auto& v) { return v[0] * v[1]; }});
  add({OpKind::div, "broadcast", {x({3, 4}), pos({4})}, [](auto& v) { return v[0] / v[1]; }});
  add({OpKind::add_scalar, "", {x({5})}, [](auto& v) { return v[0] + 1.5; }});
  add({OpKind::mul_scalar, "", {x({5})}, [](auto& v) { return v[0] * 2.5; }});
  add({OpKind::rsub_scalar, "", {x({5})}, [](auto& v) { return 3.0 - v[0]; }});
  add({OpKind::rdiv_scalar, "", {pos({5})}, [](auto& v) { return 2.0 / v[0]; }});
  t.back().inf_may_vanish = true;
  add({OpKind::neg, "", {x({2, 3})}, [](auto& v) { return -v[0]; }});
  add({OpKind::exp, "", {x({2, 3})}, [](auto& v) { return exp(v[0]); }});
  t.back().inf_may_vanish = true;
  add({OpKind::log, "", {pos({2, 3})}, [](auto& v) { return log(v[0]); }});
  add({OpKind::sqrt, "", {pos({2, 3})}, [](auto& v) { return sqrt(v[0]); }});
  add({OpKind::pow, "exponent 2", {x({2, 3})}, [](auto& v) { return pow(v[0], 2.0); }});
  add({OpKind::pow, "exponent 3", {x({2, 3})}, [](auto& v) { return pow(v[0], 3.0); }});
  add({OpKind::pow, "exponent 0.5", {pos({2, 3})}, [](auto& v) { return pow(v[0], 0.5); }});
  add({OpKind::relu, "", {x({3, 4})}, [](auto& v) { return relu(v[0]); }});
  t.back().inf_may_vanish = true;
  add({OpKind::gelu, "none", {x({3, 4})}, [](auto& v) { return gelu(v[0], "none"); }});
  add({OpKind::gelu, "tanh", {x({3, 4})}, [](auto& v) { return gelu(v[0], "tanh"); }});
  add({OpKind::sigmoid, "", {x({3, 4})}, [](auto& v) { return sigmoid(v[0]); }});
  t.back().inf_may_vanish = true;
  add({OpKind::tanh, "", {x({3, 4})}, [](auto& v) { return tanh(v[0]); }});
  t.back().inf_may_vanish = true;
  add({OpKind::relu_backward, "", {x({3, 4})}, [](auto& v) { return relu(v[0]); }, {f32, f64}, 1e-5, true, true});
  add({OpKind::gelu_backward, "none", {x({3, 4})}, [](auto& v) { return gelu(v[0], "none"); }, {f32, f64}, 1e-5,
       true, true});
  add({OpKind::gelu_backward, "tanh", {x({3, 4})}, [](auto& v) { return gelu(v[0], "tanh"); }, {f32, f64}, 1e-5,
       true, true});
  add({OpKind::sigmoid_backward, "", {x({3, 4})}, [](auto& v) { return sigmoid(v[0]); }, {f32, f64}, 1e-5, true,
       true});
  add({OpKind::tanh_backward, "", {x({3, 4})}, [](auto& v) { return tanh(v[0]); }, {f32, f64}, 1e-5, true, true});
  add({OpKind::cast, "to the other float", {x({2, 3})},
       [](auto& v) { return cast(v[0], v[0].dtype() == f32 ? f64 : f32); }, {f32, f64}, 1e-6, false});
  add({OpKind::cast, "i64 to f32", {ints({3}, {1, -2, 7})}, [](auto& v) { return cast(v[0], f32); }, {i64}, 0,
       false, false, -1});
  add({OpKind::sum_to, "", {x({2, 3, 4})}, [](auto& v) { return sum_to(v[0], {3, 1}); }});
  add({OpKind::broadcast_to, "", {x({3, 1})}, [](auto& v) { return broadcast_to(v[0], {2, 3, 4}); }});
  add({OpKind::abs, "", {x({2, 3})}, [](auto& v) { return abs(v[0]); }});
  add({OpKind::abs, "i64", {ints({4}, {-3, 0, 2, -1})}, [](auto& v) { return abs(v[0]); }, {i64}, 0, false, false, -1});
  // sign(NaN) = 0 and sign(inf) = 1, as torch: nothing non-finite comes out.
  add({OpKind::sign, "", {x({2, 3})}, [](auto& v) { return sign(v[0]); }, {f32, f64}, 1e-6, true, false, -1});
  add({OpKind::log1p, "", {pos({2, 3})}, [](auto& v) { return log1p(v[0]); }});
  add({OpKind::expm1, "", {x({2, 3})}, [](auto& v) { return expm1(v[0]); }});
  t.back().inf_may_vanish = true;
  add({OpKind::clamp, "min and max", {x({3, 4})}, [](auto& v) { return clamp(v[0], -0.5, 0.5); }});
  t.back().inf_may_vanish = true;
  add({OpKind::clamp, "min only", {x({3, 4})}, [](auto& v) { return v[0].clamp(0.0); }});
  t.back().inf_may_vanish = true;
  add({OpKind::clamp, "max only, i64", {ints({4}, {-3, 0, 2, 7})}, [](auto& v) { return clamp(v[0], std::nullopt, 2.0); },
       {i64}, 0, false, false, -1});
  add({OpKind::minimum, "broadcast", {x({2, 3}), x({3})}, [](auto& v) { return minimum(v[0], v[1]); }});
  t.back().inf_may_vanish = true;
  add({OpKind::maximum, "broadcast", {x({2, 1}), x({2, 3})}, [](auto& v) { return maximum(v[0], v[1]); }});
  t.back().inf_may_vanish = true;
  add({OpKind::maximum, "i64", {ints({3}, {1, -5, 4}), ints({3}, {2, -6, 4})}, [](auto& v) { return maximum(v[0], v[1]); },
       {i64}, 0, false, false, -1});
  add({OpKind::pow_tensor, "broadcast", {pos({2, 3}), x({3})}, [](auto& v) { return pow(v[0], v[1]); }});
  t.back().inf_may_vanish = true;
  // ------------------------------------------------------------------ comparisons, where
  // Masks are i64 0/1: no NaN can come out, no gradient goes in.
  add({OpKind::eq, "i64, broadcast", {ints({2, 3}, {1, 2, 3, 4, 5, 6}), ints({3}, {1, 5, 3})},
       [](auto& v) { return eq(v[0], v[1]); }, {i64}, 0, false, false, -1});
  add({OpKind::eq, "scalar", {x({2, 3})}, [](auto& v) { return eq(v[0], 0.0); }, {f32, f64}, 0, false, false, -1});
  add({OpKind::ne, "broadcast", {x({2, 3}), x({3})}, [](auto& v) { return ne(v[0], v[1]); }, {f32, f64}, 0, false,
       false, -1});
  add({OpKind::lt, "broadcast", {x({2, 3}), x({2, 1})}, [](auto& v) { return lt(v[0], v[1]); }, {f32, f64}, 0, false,
       false, -1});
  add({OpKind::lt, "scalar, i64", {ints({4}, {1, 2, 3, 4})}, [](auto& v) { return v[0].lt(2.5); }, {i64}, 0, false,
       false, -1});
  add({OpKind::le, "scalar", {x({2, 3})}, [](auto& v) { return le(v[0], 0.25); }, {f32, f64}, 0, false, false, -1});
  add({OpKind::gt, "broadcast", {x({3}), x({2, 3})}, [](auto& v) { return v[0].gt(v[1]); }, {f32, f64}, 0, false,
       false, -1});
  add({OpKind::ge, "scalar", {x({2, 3})}, [](auto& v) { return ge(v[0], -0.25); }, {f32, f64}, 0, false, false, -1});
  add({OpKind::where, "i64 condition, broadcast", {ints({2, 1}, {0, 1}), x({2, 3}), x({3})},
       [](auto& v) { return where(v[0], v[1], v[2]); }, {f32, f64}, 1e-6, true, false, 1});
  add({OpKind::where, "float condition", {fixed({2, 3}), x({2, 3}), x({2, 3})},
       [](auto& v) { return where(v[0], v[1], v[2]); }, {f32, f64}, 1e-6, true, false, 1});
  // ------------------------------------------------------------------ activations
  add({OpKind::leaky_relu, "slope 0.2", {x({3, 4})}, [](auto& v) { return leaky_relu(v[0], 0.2); }});
  add({OpKind::leaky_relu_backward, "slope 0.2", {x({3, 4})}, [](auto& v) { return leaky_relu(v[0], 0.2); },
       {f32, f64}, 1e-5, true, true});
  add({OpKind::silu, "", {x({3, 4})}, [](auto& v) { return silu(v[0]); }});
  add({OpKind::silu_backward, "", {x({3, 4})}, [](auto& v) { return silu(v[0]); }, {f32, f64}, 1e-5, true, true});
  // ------------------------------------------------------------------ creation
  // full_like ignores its input's values: no NaN can go through (none to check).
  add({OpKind::full, "", {x({2, 3})}, [](auto& v) { return full_like(v[0], 2.5) + v[0]; }, {f32, f64}, 1e-6, true,
       false, -1});
  add({OpKind::copy, "", {x({2, 3})}, [](auto& v) { return (v[0] * 2.0).detach() * v[0]; }, {f32, f64}, 1e-6, false});
  // ------------------------------------------------------------------ reductions
  add({OpKind::sum, "all", {x({3, 4})}, [](auto& v) { return v[0].sum(); }});
  add({OpKind::sum, "axes 0 2 keepdim", {x({2, 3, 4})}, [](auto& v) { return v[0].sum({0, 2}, true); }});
  add({OpKind::mean, "axis 1", {x({3, 4})}, [](auto& v) { return v[0].mean({1}); }});
  add({OpKind::max, "axis 1", {x({3, 4, 2})}, [](auto& v) { return v[0].max(1); }});
  // argmax's output is an index: a NaN in, an index out (the NaN's, as PyTorch).
  add({OpKind::argmax, "axis 0 keepdim", {x({3, 4})}, [](auto& v) { return v[0].argmax(0, true); }, {f32, f64}, 0,
       false, false, -1});
  add({OpKind::max_backward, "", {x({3, 4})}, [](auto& v) { return v[0].max(1); }, {f32, f64}, 1e-5, true, true});
  add({OpKind::min, "axis 1", {x({3, 4, 2})}, [](auto& v) { return v[0].min(1); }});
  add({OpKind::min, "axis -1 keepdim", {x({3, 4})}, [](auto& v) { return min(v[0], -1, true); }});
  add({OpKind::argmin, "axis 0", {x({3, 4})}, [](auto& v) { return argmin(v[0], 0); }, {f32, f64}, 0, false, false,
       -1});
  add({OpKind::cumsum, "axis 1", {x({3, 4, 2})}, [](auto& v) { return cumsum(v[0], 1); }});
  add({OpKind::cumsum, "reverse (gradient)", {x({3, 4})}, [](auto& v) { return v[0].cumsum(0); }, {f32, f64}, 1e-5,
       true, true});
  add({OpKind::cumsum, "i64", {ints({2, 3}, {1, -2, 3, 4, 5, -6})}, [](auto& v) { return cumsum(v[0], -1); }, {i64},
       0, false, false, -1});
  // ------------------------------------------------------------------ indexing
  add({OpKind::gather, "dim 1", {x({3, 4}), ints({3, 2}, {0, 3, 1, 1, 2, 0})},
       [](auto& v) { return gather(v[0], 1, v[1]); }});
  add({OpKind::gather, "dim 0, smaller index", {x({3, 4}), ints({2, 3}, {2, 0, 1, 2, 2, 0})},
       [](auto& v) { return v[0].gather(0, v[1]); }});
  add({OpKind::scatter_add, "dim 0, repeated indices, larger src", {x({3, 4}), ints({2, 4}, {0, 2, 2, 1, 0, 2, 0, 1}),
       x({2, 5})}, [](auto& v) { return scatter_add(v[0], 0, v[1], v[2]); }});
  add({OpKind::scatter_add, "dim 1 (gather's gradient)", {x({3, 4}), ints({3, 2}, {0, 3, 1, 1, 2, 0})},
       [](auto& v) { return gather(v[0], 1, v[1]); }, {f32, f64}, 1e-5, true, true});
  add({OpKind::index_select, "dim 0, repeated", {x({4, 3}), ints({5}, {3, 0, 3, 1, 2})},
       [](auto& v) { return index_select(v[0], 0, v[1]); }});
  add({OpKind::index_select, "dim 1", {x({2, 4, 3}), ints({2}, {2, 0})},
       [](auto& v) { return v[0].index_select(1, v[1]); }});
  // ------------------------------------------------------------------ upsampling, padding
  add({OpKind::upsample_nearest2d, "scale 2", {x({2, 2, 3, 4})}, [](auto& v) { return upsample_nearest2d(v[0], 2.0, 2.0); }});
  add({OpKind::upsample_nearest2d, "size 5x3", {x({1, 2, 3, 4})},
       [](auto& v) { return upsample_nearest2d(v[0], {5, 3}); }});
  add({OpKind::upsample_nearest2d_backward, "size 5x7", {x({1, 2, 3, 4})},
       [](auto& v) { return upsample_nearest2d(v[0], {5, 7}); }, {f32, f64}, 1e-5, true, true});
  add({OpKind::upsample_bilinear2d, "size 5x7", {x({2, 1, 3, 4})},
       [](auto& v) { return upsample_bilinear2d(v[0], {5, 7}); }});
  add({OpKind::upsample_bilinear2d, "scale 1.5, align_corners", {x({1, 2, 3, 4})},
       [](auto& v) { return upsample_bilinear2d(v[0], 1.5, 1.5, true); }});
  add({OpKind::upsample_bilinear2d_backward, "", {x({1, 2, 3, 4})},
       [](auto& v) { return upsample_bilinear2d(v[0], {7, 5}); }, {f32, f64}, 1e-5, true, true});
  add({OpKind::upsample_bilinear2d_backward, "downsample, align_corners", {x({1, 1, 5, 6})},
       [](auto& v) { return upsample_bilinear2d(v[0], {3, 4}, true); }, {f32, f64}, 1e-5, true, true});
  add({OpKind::pad, "constant", {x({2, 3, 4})}, [](auto& v) { return pad(v[0], {1, 2, 0, 1}, "constant", 0.5); }});
  add({OpKind::pad, "constant, negative", {x({2, 3, 4})}, [](auto& v) { return pad(v[0], {-1, 2}); }});
  add({OpKind::pad, "reflect", {x({2, 3, 4})}, [](auto& v) { return pad(v[0], {2, 1, 1, 2}, "reflect"); }});
  add({OpKind::pad, "replicate", {x({2, 3, 4})}, [](auto& v) { return pad(v[0], {3, 1, 0, 2}, "replicate"); }});
  add({OpKind::pad_backward, "constant", {x({2, 3, 4})}, [](auto& v) { return pad(v[0], {-1, 2, 1, 0}); }, {f32, f64},
       1e-5, true, true});
  add({OpKind::pad_backward, "reflect", {x({2, 3, 4})}, [](auto& v) { return pad(v[0], {2, 3, 1, 2}, "reflect"); },
       {f32, f64}, 1e-5, true, true});
  add({OpKind::pad_backward, "replicate", {x({2, 3, 4})},
       [](auto& v) { return pad(v[0], {3, 1, 0, 2}, "replicate"); }, {f32, f64}, 1e-5, true, true});
  // ------------------------------------------------------------------ softmax, losses
  add({OpKind::softmax, "last axis", {x({3, 5})}, [](auto& v) { return softmax(v[0], -1); }});
  add({OpKind::softmax, "middle axis", {x({2, 4, 3})}, [](auto& v) { return softmax(v[0], 1); }});
  add({OpKind::log_softmax, "", {x({2, 4, 3})}, [](auto& v) { return log_softmax(v[0], 1); }});
  add({OpKind::softmax_backward, "", {x({3, 5})}, [](auto& v) { return softmax(v[0], -1); }, {f32, f64}, 1e-5, true,
       true});
  add({OpKind::log_softmax_backward, "", {x({3, 5})}, [](auto& v) { return log_softmax(v[0], -1); }, {f32, f64},
       1e-5, true, true});
  add({OpKind::cross_entropy, "mean", {x({4, 3}), ints({4}, {0, 2, 1, 2})},
       [](auto& v) { return cross_entropy(v[0], v[1]); }});
  add({OpKind::cross_entropy, "sum, spatial", {x({2, 3, 2}), ints({2, 2}, {0, 1, 2, 0})},
       [](auto& v) { return cross_entropy(v[0], v[1], "sum"); }});
  add({OpKind::cross_entropy, "none, ignore_index", {x({4, 3}), ints({4}, {0, -100, 1, 2})},
       [](auto& v) { return cross_entropy(v[0], v[1], "none"); }});
  add({OpKind::cross_entropy_backward, "mean", {x({4, 3}), ints({4}, {0, 2, 1, 2})},
       [](auto& v) { return cross_entropy(v[0], v[1]); }, {f32, f64}, 1e-5, true, true});
  add({OpKind::cross_entropy, "weight, label_smoothing, ignore_index", {x({4, 3}), ints({4}, {0, -100, 1, 2}),
       pos_fixed({3})}, [](auto& v) { return cross_entropy(v[0], v[1], "mean", -100, v[2], 0.2); }});
  add({OpKind::cross_entropy_backward, "weight, label_smoothing, spatial", {x({2, 3, 2}),
       ints({2, 2}, {0, 2, -100, 1}), pos_fixed({3})},
       [](auto& v) { return cross_entropy(v[0], v[1], "mean", -100, v[2], 0.1); }, {f32, f64}, 1e-5, true,
       true});
  add({OpKind::nll_loss, "mean, weight, ignore_index", {x({4, 3}), ints({4}, {0, -100, 1, 2}), pos_fixed({3})},
       [](auto& v) { return nll_loss(v[0], v[1], v[2]); }});
  add({OpKind::nll_loss, "none, spatial", {x({2, 3, 2}), ints({2, 2}, {0, 1, 2, 0})},
       [](auto& v) { return nll_loss(v[0], v[1], Tensor(), "none"); }});
  add({OpKind::nll_loss_backward, "sum, weight", {x({4, 3}), ints({4}, {0, 2, 1, -100}), pos_fixed({3})},
       [](auto& v) { return nll_loss(v[0], v[1], v[2], "sum"); }, {f32, f64}, 1e-5, true, true});
  add({OpKind::bce_with_logits, "pos_weight", {x({3, 4}), fixed({3, 4}), pos_fixed({4})},
       [](auto& v) { return binary_cross_entropy_with_logits(v[0], v[1], Tensor(), v[2], "none"); }});
  add({OpKind::bce_with_logits, "plain", {x({3, 4}), fixed({3, 4})},
       [](auto& v) { return binary_cross_entropy_with_logits(v[0], v[1]); }});
  add({OpKind::bce_with_logits_backward, "weight, pos_weight", {x({3, 4}), fixed({3, 4}), pos_fixed({4}), pos({3, 1})},
       [](auto& v) { return binary_cross_entropy_with_logits(v[0], v[1], v[3], v[2], "sum"); }, {f32, f64},
       1e-5, true, true});
  // ------------------------------------------------------------------ matmul
  add({OpKind::matmul, "2-d", {x({3, 4}), x({4, 2})}, [](auto& v) { return matmul(v[0], v[1]); }, {f32, f64}, 1e-5});
  add({OpKind::matmul, "broadcast batch", {x({2, 1, 3, 4}), x({3, 4, 2})}, [](auto& v) { return matmul(v[0], v[1]); },
       {f32, f64}, 1e-5});
  add({OpKind::matmul, "transposed and batch-reduced (gradient)", {x({2, 3, 4}), x({4, 2})},
       [](auto& v) { return matmul(v[0], v[1]); }, {f32, f64}, 1e-5, true, true});
  add({OpKind::linear, "bias", {x({2, 3}), x({4, 3}), x({4})}, [](auto& v) { return linear(v[0], v[1], v[2]); },
       {f32, f64}, 1e-5});
  add({OpKind::linear, "no bias", {x({2, 2, 3}), x({4, 3})}, [](auto& v) { return linear(v[0], v[1]); }, {f32, f64},
       1e-5});
  // ------------------------------------------------------------------ normalisations
  add({OpKind::layer_norm, "affine", {x({3, 4}), x({4}), x({4})},
       [](auto& v) { return layer_norm(v[0], {4}, v[1], v[2]); }, {f32, f64}, 1e-4});
  add({OpKind::layer_norm, "plain, 2 dims", {x({2, 3, 4})}, [](auto& v) { return layer_norm(v[0], {3, 4}); },
       {f32, f64}, 1e-4});
  add({OpKind::layer_norm_backward_input, "", {x({3, 4}), x({4}), x({4})},
       [](auto& v) { return layer_norm(v[0], {4}, v[1], v[2]); }, {f32, f64}, 1e-4, true, true});
  add({OpKind::layer_norm_backward_weight, "", {x({3, 4}), x({4}), x({4})},
       [](auto& v) { return layer_norm(v[0], {4}, v[1], v[2]); }, {f32, f64}, 1e-4, true, true});
  auto bn_train = [](auto& v) { return batch_norm(v[0], Tensor(), Tensor(), v[1], v[2], true); };
  add({OpKind::batch_norm_stats, "", {x({4, 3, 2}), x({3}), x({3})}, bn_train, {f32, f64}, 1e-4});
  add({OpKind::batch_norm, "training", {x({4, 3, 2}), x({3}), x({3})}, bn_train, {f32, f64}, 1e-4});
  add({OpKind::batch_norm, "eval, no affine", {x({4, 3, 2}), x({3}), pos({3})},
       [](auto& v) { return batch_norm(v[0], v[1], v[2], Tensor(), Tensor(), false); }, {f32, f64}, 1e-4, false});
  add({OpKind::batch_norm_backward_input, "", {x({4, 3, 2}), x({3}), x({3})}, bn_train, {f32, f64}, 1e-4, true,
       true});
  add({OpKind::batch_norm_backward_weight, "", {x({4, 3, 2}), x({3}), x({3})}, bn_train, {f32, f64}, 1e-4, true,
       true});
  // Updates running statistics in place (its output is an empty placeholder): guards only.
  add({OpKind::batch_norm_update_stats, "", {x({4, 3}), fixed({3}), fixed({3})},
       [](auto& v) { return batch_norm(v[0], v[1], v[2], Tensor(), Tensor(), true); }, {f32, f64}, 1e-4, false,
       false, -1});
  // ------------------------------------------------------------------ convolution, pooling
  add({OpKind::conv2d, "bias", {x({2, 3, 5, 4}), x({4, 3, 3, 3}), x({4})},
       [](auto& v) { return conv2d(v[0], v[1], v[2]); }, {f32, f64}, 1e-4});
  add({OpKind::conv2d, "stride, padding, dilation, groups", {x({1, 4, 6, 5}), x({4, 2, 2, 2})},
       [](auto& v) { return conv2d(v[0], v[1], Tensor(), conv(2, 1, 2, 2)); }, {f32, f64}, 1e-4});
  add({OpKind::conv2d_backward_input, "", {x({2, 2, 5, 4}), x({3, 2, 3, 3})},
       [](auto& v) { return conv2d(v[0], v[1], Tensor(), conv(2, 1, 1, 1)); }, {f32, f64}, 1e-4, true, true});
  add({OpKind::conv2d_backward_weight, "", {x({2, 2, 5, 4}), x({3, 2, 3, 3})},
       [](auto& v) { return conv2d(v[0], v[1], Tensor(), conv(1, 1, 1, 1)); }, {f32, f64}, 1e-4, true, true});
  add({OpKind::conv_transpose2d, "stride, padding, output_padding, groups", {x({2, 4, 3, 2}), x({4, 3, 3, 2})},
       [](auto& v) { return conv_transpose2d(v[0], v[1], Tensor(), conv(2, 1, 1, 2), P2{1, 0}); }, {f32, f64}, 1e-4});
  add({OpKind::conv_transpose2d, "dilation, bias", {x({1, 2, 3, 3}), x({2, 3, 2, 2}), x({3})},
       [](auto& v) { return conv_transpose2d(v[0], v[1], v[2], conv(1, 0, 2, 1)); }, {f32, f64}, 1e-4});
  add({OpKind::max_pool2d, "overlapping, padded", {x({2, 2, 5, 4})},
       [](auto& v) { return max_pool2d(v[0], P2{3, 3}, P2{2, 1}, P2{1, 1}); }});
  // The NaN goes in through the gradient (input 1): a NaN x picks its window's maximum.
  add({OpKind::max_pool2d_backward, "", {x({1, 2, 4, 4})}, [](auto& v) { return max_pool2d(v[0], P2{2, 2}); },
       {f32, f64}, 1e-5, true, true, 1});
  add({OpKind::avg_pool2d, "count_include_pad", {x({2, 2, 5, 4})},
       [](auto& v) { return avg_pool2d(v[0], P2{3, 2}, P2{2, 1}, P2{1, 1}); }});
  add({OpKind::avg_pool2d_backward, "", {x({1, 2, 4, 4})}, [](auto& v) { return avg_pool2d(v[0], P2{2, 2}); },
       {f32, f64}, 1e-5, true, true});
  add({OpKind::max_pool2d, "dilation, ceil_mode", {x({2, 2, 5, 6})},
       [](auto& v) { return max_pool2d(v[0], P2{2, 3}, P2{2, 2}, P2{1, 1}, P2{2, 1}, true); }});
  add({OpKind::max_pool2d_backward, "dilation, ceil_mode", {x({1, 2, 5, 6})},
       [](auto& v) { return max_pool2d(v[0], P2{2, 3}, P2{2, 2}, P2{1, 1}, P2{2, 1}, true); }, {f32, f64}, 1e-5, true,
       true, 1});
  // return_indices: i64 positions, no gradient; a NaN is its window's maximum (its index comes out).
  add({OpKind::max_pool2d_indices, "dilation, ceil_mode", {x({2, 2, 5, 6})},
       [](auto& v) { return max_pool2d_with_indices(v[0], P2{2, 3}, P2{2, 2}, P2{1, 1}, P2{2, 1}, true).second; },
       {f32, f64}, 0, false, false, -1});
  add({OpKind::avg_pool2d, "ceil_mode, count_include_pad false", {x({2, 2, 5, 6})},
       [](auto& v) { return avg_pool2d(v[0], P2{3, 3}, P2{2, 2}, P2{1, 1}, true, false); }});
  add({OpKind::avg_pool2d, "divisor_override", {x({2, 2, 5, 4})},
       [](auto& v) { return avg_pool2d(v[0], P2{2, 2}, P2{2, 1}, P2{1, 0}, false, true, 3); }});
  add({OpKind::avg_pool2d_backward, "ceil_mode, count_include_pad false", {x({1, 2, 5, 6})},
       [](auto& v) { return avg_pool2d(v[0], P2{3, 3}, P2{2, 2}, P2{1, 1}, true, false); }, {f32, f64}, 1e-5, true,
       true});
  add({OpKind::adaptive_avg_pool2d, "non-divisible", {x({2, 1, 5, 4})},
       [](auto& v) { return adaptive_avg_pool2d(v[0], P2{3, 2}); }});
  add({OpKind::adaptive_avg_pool2d_backward, "", {x({2, 1, 5, 4})},
       [](auto& v) { return adaptive_avg_pool2d(v[0], P2{3, 2}); }, {f32, f64}, 1e-5, true, true});
  // ------------------------------------------------------------------ shape ops
  add({OpKind::reshape, "of a transpose", {x({3, 4})}, [](auto& v) { return transpose(v[0], 0, 1).reshape({12}); }});
  add({OpKind::permute, "", {x({2, 3, 4})}, [](auto& v) { return permute(v[0], {2, 0, 1}); }});
  add({OpKind::slice, "strided", {x({3, 8})}, [](auto& v) { return slice(v[0], 1, 0, 7, 2); }});
  add({OpKind::slice_backward, "", {x({3, 8})}, [](auto& v) { return slice(v[0], 1, 0, 7, 2); }, {f32, f64}, 1e-5,
       true, true});
  add({OpKind::concat, "axis 1", {x({2, 3}), x({2, 2})}, [](auto& v) { return concat({v[0], v[1]}, 1); }});
  // ------------------------------------------------------------------ embedding, dropout, attention
  add({OpKind::embedding, "", {x({5, 3}), ints({2, 3}, {0, 4, 1, 0, 2, 4})},
       [](auto& v) { return embedding(v[0], v[1]); }});
  add({OpKind::embedding_backward, "", {x({5, 3}), ints({2, 3}, {0, 4, 1, 0, 2, 4})},
       [](auto& v) { return embedding(v[0], v[1]); }, {f32, f64}, 1e-5, true, true});
  add({OpKind::embedding_backward, "padding_idx", {x({5, 3}), ints({2, 3}, {0, 4, 1, 0, 2, 4})},
       [](auto& v) { return embedding(v[0], v[1], -1); }, {f32, f64}, 1e-5, false, true});
  // Dropout's mask is random: its gradient is checked by tests/ops/test_dropout.cpp.
  add({OpKind::dropout, "p 0.3", {x({6, 5})}, [](auto& v) { return dropout(v[0], 0.3, true); }, {f32, f64}, 1e-6,
       false});
  add({OpKind::dropout_backward, "", {x({6, 5})}, [](auto& v) { return dropout(v[0], 0.3, true); }, {f32, f64},
       1e-6, false, true});
  add({OpKind::causal_mask, "in attention", {x({1, 3, 4}), x({1, 3, 4}), x({1, 3, 4})},
       [](auto& v) { return scaled_dot_product_attention(v[0], v[1], v[2], true); }, {f32, f64}, 1e-5});
  // ------------------------------------------------------------------ optimizer updates (in place)
  add({OpKind::sgd_update, "momentum, nesterov", {fixed({5}), fixed({5}), fixed({5})},
       [](auto& v) {
         optim::SgdHyper h;
         h.lr = 0.1, h.momentum = 0.9, h.weight_decay = 0.01, h.nesterov = true;
         return record(std::make_shared<optim::SgdUpdateOp>(h), {v[0], v[1], v[2]});
       },
       {f32, f64}, 1e-6, false, false, -1});
  add({OpKind::adamw_update, "", {fixed({5}), fixed({5}), fixed({5}), pos({5})},
       [](auto& v) {
         optim::AdamWHyper h;
         h.step = 3;
         return record(std::make_shared<optim::AdamWUpdateOp>(h), {v[0], v[1], v[2], v[3]});
       },
       {f32, f64}, 1e-6, false, false, -1});
  // ------------------------------------------------------------------ data parallel (one rank here)
  add({OpKind::all_reduce, "two gradients", {fixed({5}), fixed({2, 3})},
       [](auto& v) { return all_reduce({v[0], v[1]}, 0); }, {f32, f64}, 1e-6, false});
  // A copy of part of its input: a NaN elsewhere in the bucket does not reach it.
  add({OpKind::bucket_slice, "", {fixed({9})}, [](auto& v) { return bucket_slice(v[0], 2, {2, 3}); }, {f32, f64},
       1e-6, false, false, -1});
  add({OpKind::adamw_update, "amsgrad", {fixed({5}), fixed({5}), fixed({5}), pos_fixed({5}), pos_fixed({5})},
       [](auto& v) {
         optim::AdamWHyper h;
         h.step = 2, h.amsgrad = true;
         return record(std::make_shared<optim::AdamWUpdateOp>(h), {v[0], v[1], v[2], v[3], v[4]});
       },
       {f32, f64}, 1e-6, false, false, -1});
  add({OpKind::rmsprop_update, "centered, momentum, weight_decay",
       {fixed({5}), fixed({5}), pos_fixed({5}), fixed({5}), fixed({5})},
       [](auto& v) {
         optim::RmspropHyper h;
         h.lr = 0.01, h.momentum = 0.9, h.weight_decay = 0.1, h.centered = true;
         return record(std::make_shared<optim::RmspropUpdateOp>(h), {v[0], v[1], v[2], v[3], v[4]});
       },
       {f32, f64}, 1e-6, false, false, -1});
  add({OpKind::rmsprop_update, "plain", {fixed({5}), fixed({5}), pos_fixed({5})},
       [](auto& v) { return record(std::make_shared<optim::RmspropUpdateOp>(optim::RmspropHyper{}), {v[0], v[1], v[2]}); },
       {f32, f64}, 1e-6, false, false, -1});
  // clang-format on
  return t;
}

std::string label(const Entry& e) {
  return std::string(op_kind_name(e.kind)) + (e.variant.empty() ? "" : " (" + e.variant + ")");
}

// ------------------------------------------------------------------ inputs

// Deterministic values in [-1, 1) (or [0.5, 1.5) when positive), different per input and element.
std::vector<double> values_of(const In& in, size_t input, bool positive) {
  std::vector<double> v(static_cast<size_t>(in.shape.numel()));
  uint64_t h = 0x9E3779B97F4A7C15ull * (input + 1);
  for (auto& e : v) {
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    const double u = static_cast<double>(h >> 11) / 9007199254740992.0;  // [0, 1)
    e = positive ? 0.5 + u : 2.0 * u - 1.0;
  }
  return v;
}

// The entry's inputs in the current session, floating ones needing a gradient when `grad`.
std::vector<Tensor> make_inputs(const Entry& e, DType t, bool grad) {
  std::vector<Tensor> r;
  for (size_t i = 0; i < e.in.size(); ++i) {
    const In& in = e.in[i];
    if (!in.ints.empty()) {
      r.push_back(from_vector(in.ints, in.shape));
      continue;
    }
    const std::vector<double> v = values_of(in, i, in.positive);
    Tensor x;
    if (t == f64) {
      x = from_vector(v, in.shape);
    } else {
      std::vector<float> f(v.begin(), v.end());
      x = from_vector(f, in.shape);
    }
    if (grad && in.grad) x.set_requires_grad(true);
    r.push_back(x);
  }
  return r;
}

// The weights of sum(y * w) that seed a backward: fixed, of y's dtype.
Tensor seed_weights(const Tensor& y) {
  std::vector<double> w = values_of(In{y.shape()}, 99, false);
  if (y.dtype() == f64) return from_vector(w, y.shape());
  return from_vector(std::vector<float>(w.begin(), w.end()), y.shape());
}

bool differentiable_output(const Tensor& y) {
  return is_floating(y.dtype());
}

// ------------------------------------------------------------------ guarded buffers

constexpr size_t kGuard = 256;       // bytes on each side (a multiple of the alignment)
constexpr uint8_t kSentinel = 0xA7;  // not a common float pattern
constexpr size_t kAlign = 64;        // as the arena

// `bytes` of payload with kGuard sentinel bytes on each side, in host memory or, given a CUDA
// session, in device memory of that session (filled and read back through copy_from_host and
// copy_to_host, which run in the order of the session's stream, as its kernels).
class Guarded {
 public:
  Guarded(size_t bytes, const uint8_t* init, uint8_t fill,
          const std::shared_ptr<SessionState>& cuda)
      : n_(bytes) {
    if (cuda) {
      image_.assign(2 * kGuard + n_, kSentinel);
      off_ = kGuard;
      // Device memory of the session: a materialised tensor's storage (64-byte aligned or more).
      const size_t words = (image_.size() + 7) / 8;
      holder_ = tensor_from_bytes(cuda, Shape{static_cast<int64_t>(words)}, DType::f64,
                                  std::vector<uint8_t>(words * 8, 0).data(), words * 8);
      dev_ = holder_.impl()->storage;
      REQUIRE(dev_ != nullptr);
      REQUIRE(reinterpret_cast<uintptr_t>(dev_->data) % kAlign == 0);
    } else {
      image_.assign(2 * kGuard + n_ + kAlign, kSentinel);
      const auto base = reinterpret_cast<uintptr_t>(image_.data()) + kGuard;
      off_ = static_cast<size_t>((base + kAlign - 1) / kAlign * kAlign -
                                 reinterpret_cast<uintptr_t>(image_.data()));
    }
    if (init)
      std::memcpy(image_.data() + off_, init, n_);
    else
      std::memset(image_.data() + off_, fill, n_);
    if (dev_) copy_from_host(*dev_, image_.data(), image_.size());
  }
  // Where the kernel reads or writes (a device pointer on CUDA).
  void* data() { return dev_ ? static_cast<uint8_t*>(dev_->data) + off_ : image_.data() + off_; }
  // The payload as the host sees it (after read_back() on CUDA).
  uint8_t* host() { return image_.data() + off_; }
  size_t size() const { return n_; }
  void read_back() {
    if (dev_) copy_to_host(*dev_, image_.data(), image_.size());
  }
  // The first guard byte that changed ("" when none did).
  std::string broken() const {
    for (size_t i = 0; i < off_; ++i)
      if (image_[i] != kSentinel) return "byte " + std::to_string(off_ - i) + " before the buffer";
    for (size_t i = off_ + n_; i < image_.size(); ++i)
      if (image_[i] != kSentinel)
        return "byte " + std::to_string(i - off_ - n_ + 1) + " after the buffer";
    return "";
  }

 private:
  std::vector<uint8_t> image_;  // guards and payload
  size_t off_ = 0, n_ = 0;
  Tensor holder_;
  std::shared_ptr<Storage> dev_;
};

std::vector<uint8_t> bytes_of(const Tensor& t) {
  std::vector<uint8_t> b(t.meta().bytes());
  auto put = [&](const auto& v) {
    if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  };
  switch (t.dtype()) {
    case DType::f32:
      put(t.to_vector<float>());
      break;
    case DType::f64:
      put(t.to_vector<double>());
      break;
    case DType::i64:
      put(t.to_vector<int64_t>());
      break;
  }
  return b;
}

bool has_nan(const std::vector<uint8_t>& p, const TensorMeta& m) {
  for (int64_t i = 0; i < m.numel(); ++i) {
    if (m.dtype == f32) {
      float f;
      std::memcpy(&f, p.data() + 4 * i, 4);
      if (std::isnan(f)) return true;
    } else if (m.dtype == f64) {
      double d;
      std::memcpy(&d, p.data() + 8 * i, 8);
      if (std::isnan(d)) return true;
    }
  }
  return false;
}

bool has_non_finite(const std::vector<uint8_t>& p, const TensorMeta& m) {
  for (int64_t i = 0; i < m.numel(); ++i) {
    double d = 0;
    if (m.dtype == f32) {
      float f;
      std::memcpy(&f, p.data() + 4 * i, 4);
      d = f;
    } else if (m.dtype == f64) {
      std::memcpy(&d, p.data() + 8 * i, 8);
    }
    if (!std::isfinite(d)) return true;
  }
  return false;
}

// Every element of v (of dtype t) set to `value`.
void poison(std::vector<uint8_t>& v, DType t, double value) {
  for (size_t k = 0; k < v.size() / dtype_size(t); ++k) {
    if (t == f32) {
      const float x = static_cast<float>(value);
      std::memcpy(v.data() + 4 * k, &x, 4);
    } else {
      std::memcpy(v.data() + 8 * k, &value, 8);
    }
  }
}

struct GuardedRun {
  std::shared_ptr<const Op> op;
  TensorMeta out_meta;
  std::vector<uint8_t> out;          // the guarded run's output
  std::vector<uint8_t> session_out;  // the session's value of the node
};

// Records the entry on device d, finds the last node of its kind (after the backward when the kind
// is a gradient's), runs the step keeping that node's inputs and output, then runs the node's
// kernel (run_kernel: the CPU's or the registered CUDA kernel) again on guarded copies of its
// inputs (input `bad_input`, when >= 0, all `bad`: NaN or an infinity), a guarded output and a
// guarded workspace. Checks every guard, and that the inputs the op does not mutate come back
// unchanged.
GuardedRun guarded_run(const Entry& e, DType t, Device d, int bad_input, double bad,
                       const std::string& what) {
  Session s({.device = d, .seed = 7});
  std::vector<Tensor> in = make_inputs(e, t, e.backward);
  Tensor y = e.fn(in);
  if (e.backward) (y * seed_weights(y)).sum().backward();
  const std::shared_ptr<Graph> g = y.impl()->graph;
  REQUIRE_MESSAGE(g != nullptr, what, ": the entry's function recorded nothing");
  int id = -1;
  for (int i = static_cast<int>(g->nodes.size()) - 1; i >= 0 && id < 0; --i)
    if (!g->nodes[static_cast<size_t>(i)].is_leaf() &&
        g->nodes[static_cast<size_t>(i)].op->kind() == e.kind)
      id = i;
  REQUIRE_MESSAGE(id >= 0, what, ": the entry's function recorded no ", op_kind_name(e.kind),
                  " node");
  const Node& n = g->nodes[static_cast<size_t>(id)];
  GuardedRun r;
  r.op = n.op;
  r.out_meta = n.meta;
  const uint64_t step = g->step;
  std::vector<TensorMeta> in_meta;
  std::vector<Tensor> keep;
  for (int i : n.inputs) {
    in_meta.push_back(g->nodes[static_cast<size_t>(i)].meta);
    keep.push_back(tensor_for_node(g, i));
  }
  Tensor out = tensor_for_node(g, id);
  s.flush();
  r.session_out = bytes_of(out);

  const std::shared_ptr<SessionState> cuda = d.is_cuda() ? y.impl()->session : nullptr;
  std::vector<std::vector<uint8_t>> sent;
  std::vector<Guarded> ins;
  ins.reserve(keep.size());
  for (size_t i = 0; i < keep.size(); ++i) {
    sent.push_back(bytes_of(keep[i]));
    if (static_cast<int>(i) == bad_input) {
      REQUIRE_MESSAGE(is_floating(in_meta[i].dtype), what, ": input ", i, " is not floating-point");
      poison(sent.back(), in_meta[i].dtype, bad);
    }
    ins.emplace_back(sent.back().size(), sent.back().data(), 0, cuda);
  }
  Guarded o(r.out_meta.bytes(), nullptr, 0xFF, cuda);  // NaN (or -1) wherever nothing is written
  const size_t ws_bytes = r.op->workspace_bytes(in_meta, r.out_meta);
  Guarded ws(ws_bytes, nullptr, 0xFF, cuda);
  KernelCall k;
  for (size_t i = 0; i < ins.size(); ++i) {
    k.inputs.push_back(ins[i].data());
    k.in_meta.push_back(&in_meta[i]);
  }
  k.output = o.data();
  k.out_meta = &r.out_meta;
  k.workspace = ws_bytes ? ws.data() : nullptr;
  k.workspace_bytes = ws_bytes;
  k.seed = 7;
  k.step = step;
  k.node = id;
  k.stream = cuda ? cuda->backend_context() : nullptr;
  run_kernel(*r.op, k, d);
  const std::vector<int> mutated = r.op->mutated_inputs();
  for (size_t i = 0; i < ins.size(); ++i) {
    ins[i].read_back();
    const std::string b = ins[i].broken();
    CHECK_MESSAGE(b.empty(), what, ": input ", i, " was written out of bounds (", b, ")");
    const bool mutates =
        std::find(mutated.begin(), mutated.end(), static_cast<int>(i)) != mutated.end();
    if (!mutates && ins[i].size() > 0)
      CHECK_MESSAGE(std::memcmp(ins[i].host(), sent[i].data(), ins[i].size()) == 0, what,
                    ": input ", i, " was changed by the kernel");
  }
  o.read_back();
  ws.read_back();
  const std::string bo = o.broken();
  CHECK_MESSAGE(bo.empty(), what, ": the output was written out of bounds (", bo, ")");
  const std::string bw = ws.broken();
  CHECK_MESSAGE(bw.empty(), what, ": the workspace was written out of bounds (", bw, ")");
  r.out.assign(o.host(), o.host() + o.size());
  return r;
}

// Without a usable CUDA device: true after saying why (or failing when LETHE_REQUIRE_CUDA is set).
bool skip_without_cuda() {
  if (cuda::is_available()) return false;
  if (cuda::device_required())
    FAIL("LETHE_REQUIRE_CUDA is set but no CUDA device is usable: " << cuda::unavailable_reason());
  MESSAGE("no CUDA device: skipped (" << cuda::unavailable_reason() << ")");
  return true;
}

// On device d, as doubles: the output, the gradients of sum(y * w) of the inputs needing one (when
// the entry differentiates), then every floating input after the step (updated in place or not).
std::vector<double> results_on(Device d, const Entry& e, DType t) {
  Session s({.device = d, .seed = 11});
  const bool grads = e.gradcheck || e.backward;
  std::vector<Tensor> in = make_inputs(e, t, grads);
  Tensor y = e.fn(in);
  bool any = false;
  for (const Tensor& v : in) any = any || v.requires_grad();
  const bool back = grads && any && differentiable_output(y);
  if (back) (y * seed_weights(y)).sum().backward();
  std::vector<double> r = y.to_vector<double>();
  if (back)
    for (const Tensor& v : in)
      if (v.requires_grad()) {
        const auto g = v.grad().to_vector<double>();
        r.insert(r.end(), g.begin(), g.end());
      }
  for (const Tensor& v : in)
    if (is_floating(v.dtype())) {
      const auto a = v.to_vector<double>();
      r.insert(r.end(), a.begin(), a.end());
    }
  return r;
}

// Whether the op's attributes read as the struct ops/attrs.h documents for its kind (what its CUDA
// kernel reads). No default: a new kind must say which struct it has.
template <typename A>
bool reads_as(const Op& op) {
  try {
    (void)op.attrs_as<A>();
    return true;
  } catch (const Error&) {
    return false;
  }
}

#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"
bool reads_documented_attrs(const Op& op) {
  switch (op.kind()) {
    case OpKind::add:
    case OpKind::sub:
    case OpKind::mul:
    case OpKind::div:
    case OpKind::neg:
    case OpKind::exp:
    case OpKind::log:
    case OpKind::sqrt:
    case OpKind::relu:
    case OpKind::sigmoid:
    case OpKind::tanh:
    case OpKind::relu_backward:
    case OpKind::sigmoid_backward:
    case OpKind::tanh_backward:
    case OpKind::copy:
    case OpKind::embedding:
    case OpKind::batch_norm_stats:
    case OpKind::adaptive_avg_pool2d_backward:
    case OpKind::abs:
    case OpKind::sign:
    case OpKind::log1p:
    case OpKind::expm1:
    case OpKind::minimum:
    case OpKind::maximum:
    case OpKind::pow_tensor:
    case OpKind::where:
      return true;
    case OpKind::clamp:
      return reads_as<ClampAttrs>(op);
    case OpKind::eq:
    case OpKind::ne:
    case OpKind::lt:
    case OpKind::le:
    case OpKind::gt:
    case OpKind::ge:
      return reads_as<CompareAttrs>(op);
    case OpKind::cumsum:
      return reads_as<CumsumAttrs>(op);
    case OpKind::gather:
    case OpKind::scatter_add:
    case OpKind::index_select:
      return reads_as<IndexAttrs>(op);
    case OpKind::upsample_nearest2d:
    case OpKind::upsample_nearest2d_backward:
    case OpKind::upsample_bilinear2d:
    case OpKind::upsample_bilinear2d_backward:
      return reads_as<UpsampleAttrs>(op);
    case OpKind::pad:
      return reads_as<PadAttrs>(op);
    case OpKind::pad_backward:
      return reads_as<PadBackwardAttrs>(op);
    case OpKind::silu:
    case OpKind::silu_backward:
    case OpKind::bce_with_logits:
    case OpKind::bce_with_logits_backward:
      return true;
    case OpKind::leaky_relu:
    case OpKind::leaky_relu_backward:
      return reads_as<ScalarAttrs>(op);
    case OpKind::add_scalar:
    case OpKind::mul_scalar:
    case OpKind::rsub_scalar:
    case OpKind::rdiv_scalar:
    case OpKind::pow:
      return reads_as<ScalarAttrs>(op);
    case OpKind::gelu:
    case OpKind::gelu_backward:
      return reads_as<GeluAttrs>(op);
    case OpKind::cast:
      return reads_as<CastAttrs>(op);
    case OpKind::sum_to:
    case OpKind::broadcast_to:
    case OpKind::reshape:
      return reads_as<ShapeAttrs>(op);
    case OpKind::full:
      return reads_as<FullAttrs>(op);
    case OpKind::sum:
    case OpKind::mean:
      return reads_as<ReduceAttrs>(op);
    case OpKind::max:
    case OpKind::argmax:
    case OpKind::min:
    case OpKind::argmin:
    case OpKind::max_backward:
      return reads_as<AxisAttrs>(op);
    case OpKind::softmax:
    case OpKind::log_softmax:
    case OpKind::softmax_backward:
    case OpKind::log_softmax_backward:
      return reads_as<SoftmaxAttrs>(op);
    case OpKind::cross_entropy:
    case OpKind::cross_entropy_backward:
    case OpKind::nll_loss:
    case OpKind::nll_loss_backward:
      return reads_as<CrossEntropyAttrs>(op);
    case OpKind::matmul:
      return reads_as<MatmulAttrs>(op);
    case OpKind::linear:
      return reads_as<LinearAttrs>(op);
    case OpKind::layer_norm:
    case OpKind::layer_norm_backward_input:
    case OpKind::layer_norm_backward_weight:
      return reads_as<LayerNormAttrs>(op);
    case OpKind::batch_norm:
    case OpKind::batch_norm_backward_input:
    case OpKind::batch_norm_backward_weight:
      return reads_as<BatchNormAttrs>(op);
    case OpKind::batch_norm_update_stats:
      return reads_as<BatchNormUpdateAttrs>(op);
    case OpKind::conv2d:
    case OpKind::conv2d_backward_input:
    case OpKind::conv2d_backward_weight:
    case OpKind::conv_transpose2d:
      return reads_as<Conv2dAttrs>(op);
    case OpKind::max_pool2d:
    case OpKind::max_pool2d_backward:
    case OpKind::max_pool2d_indices:
    case OpKind::avg_pool2d:
    case OpKind::avg_pool2d_backward:
      return reads_as<Pool2dAttrs>(op);
    case OpKind::adaptive_avg_pool2d:
      return reads_as<AdaptivePool2dAttrs>(op);
    case OpKind::permute:
      return reads_as<PermuteAttrs>(op);
    case OpKind::slice:
    case OpKind::slice_backward:
      return reads_as<SliceAttrs>(op);
    case OpKind::concat:
      return reads_as<ConcatAttrs>(op);
    case OpKind::embedding_backward:
      return reads_as<EmbeddingAttrs>(op);
    case OpKind::dropout:
    case OpKind::dropout_backward:
      return reads_as<DropoutAttrs>(op);
    case OpKind::causal_mask:
      return reads_as<CausalMaskAttrs>(op);
    case OpKind::sgd_update:
      return reads_as<optim::SgdHyper>(op);
    case OpKind::adamw_update:
      return reads_as<optim::AdamWHyper>(op);
    case OpKind::all_reduce:
      return reads_as<AllReduceAttrs>(op);
    case OpKind::bucket_slice:
      return reads_as<BucketSliceAttrs>(op);
    case OpKind::rmsprop_update:
      return reads_as<optim::RmspropHyper>(op);
  }
  return false;
}
#pragma GCC diagnostic pop

}  // namespace

TEST_CASE("op table: every op kind has an entry") {
  std::set<OpKind> covered;
  for (const Entry& e : table()) covered.insert(e.kind);
  for (OpKind k : all_op_kinds())
    CHECK_MESSAGE(covered.count(k) == 1, op_kind_name(k), " has no entry in the op table");
}

TEST_CASE("op table: every op kind with a CPU kernel has a CUDA kernel") {
#if defined(LETHE_TEST_CUDA_BUILD)
  // The backend's table is made without touching a device (cuda::init() registers the same one).
  const Backend& b = cuda::detail::cuda_backend();
  for (OpKind k : all_op_kinds())
    CHECK_MESSAGE(bool(b.kernel(k)), op_kind_name(k), " has a CPU kernel but no CUDA kernel");
#else
  MESSAGE("this build has no CUDA backend: skipped (" << cuda::unavailable_reason() << ")");
#endif
}

TEST_CASE("op table: every op's attributes read as the struct its kind documents") {
  for (const Entry& e : table()) {
    Session s;
    std::vector<Tensor> in = make_inputs(e, e.dtypes.front(), e.backward);
    Tensor y = e.fn(in);
    if (e.backward) (y * seed_weights(y)).sum().backward();
    const std::shared_ptr<Graph> g = y.impl()->graph;
    REQUIRE(g != nullptr);
    for (const Node& n : g->nodes) {
      if (n.is_leaf()) continue;
      CHECK_MESSAGE(reads_documented_attrs(*n.op), label(e), ": ", n.op->name(),
                    "'s attributes are not the struct ops/attrs.h names");
      // Another kind's struct never reads (attrs_as checks the type, not just the presence).
      if (n.op->kind() != OpKind::cast) CHECK_FALSE(reads_as<CastAttrs>(*n.op));
    }
  }
}

// The guarded run of every entry on `d`: output bitwise the session's; with a NaN input, a NaN out;
// with an infinite input, a non-finite value out (unless IEEE lets it vanish).
void guarded_checks(Device d) {
  const double inf = std::numeric_limits<double>::infinity();
  for (const Entry& e : table()) {
    for (DType t : e.dtypes) {
      const std::string what = label(e) + " " + dtype_name(t) + " on " + d.str();
      CAPTURE(what);
      const GuardedRun r = guarded_run(e, t, d, -1, 0.0, what);
      if (r.op->mutated_inputs().empty())
        CHECK_MESSAGE(r.out == r.session_out, what,
                      ": the guarded run differs from the session's value");
      if (e.nan_input < 0 || !is_floating(t)) continue;
      const std::string in = " in input " + std::to_string(e.nan_input);
      const GuardedRun nr = guarded_run(e, t, d, e.nan_input, std::nan(""), what + ", NaN" + in);
      CHECK_MESSAGE(has_nan(nr.out, nr.out_meta), what, ", NaN", in, ": the NaN was swallowed");
      for (const double v : {inf, -inf}) {
        const std::string w = what + (v > 0 ? ", +Inf" : ", -Inf") + in;
        const GuardedRun ir = guarded_run(e, t, d, e.nan_input, v, w);
        if (!e.inf_may_vanish)
          CHECK_MESSAGE(has_non_finite(ir.out, ir.out_meta), w, ": the infinity was swallowed");
      }
    }
  }
}

TEST_CASE(
    "op table: CPU kernels write inside their buffers, reproduce the session's bits, keep NaN and "
    "Inf") {
  guarded_checks(Device::cpu());
}

TEST_CASE(
    "op table: CUDA kernels write inside their buffers, reproduce the session's bits, keep NaN and "
    "Inf") {
  if (skip_without_cuda()) return;
  guarded_checks(Device::cuda(0));
}

TEST_CASE("op table: gradients match central differences in f64") {
  for (const Entry& e : table()) {
    if (!e.gradcheck) continue;
    const std::string what = label(e);
    CAPTURE(what);
    Session s({.seed = 3});
    const std::vector<Tensor> all = make_inputs(e, f64, false);
    std::vector<Tensor> floats;
    std::vector<size_t> where;
    for (size_t i = 0; i < all.size(); ++i)
      if (all[i].dtype() == f64 && e.in[i].grad) {
        floats.push_back(all[i]);
        where.push_back(i);
      }
    if (floats.empty()) continue;
    auto fn = [&](const std::vector<Tensor>& v) {
      std::vector<Tensor> full = all;
      for (size_t j = 0; j < where.size(); ++j) full[where[j]] = v[j];
      return e.fn(full);
    };
    const auto res = autograd::gradcheck(fn, floats, 1e-6, 1e-6, 1e-4);
    CHECK_MESSAGE(res.ok, what, ": ", res.message);
  }
}

TEST_CASE("op table: CUDA kernels match the CPU") {
  if (skip_without_cuda()) return;
  for (const Entry& e : table()) {
    for (DType t : e.dtypes) {
      const std::string what = label(e) + " " + dtype_name(t);
      CAPTURE(what);
      const std::vector<double> cpu = results_on(Device::cpu(), e, t);
      const std::vector<double> gpu = results_on(Device::cuda(0), e, t);
      REQUIRE(cpu.size() == gpu.size());
      const double tol = t == f64 ? 1e-11 : e.tol;
      for (size_t i = 0; i < cpu.size(); ++i) {
        const bool same = (std::isnan(cpu[i]) && std::isnan(gpu[i])) || cpu[i] == gpu[i] ||
                          std::abs(cpu[i] - gpu[i]) <= tol * (1 + std::abs(cpu[i]));
        CHECK_MESSAGE(same, what, ": element ", i, ": cpu ", cpu[i], ", cuda ", gpu[i]);
      }
    }
  }
}

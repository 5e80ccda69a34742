#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "framework/error.h"
#include "framework/random.h"
#include "framework/session.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"

namespace lethe::autograd {
namespace {

// sum(fn(x) * r) for fixed weights r: a scalar whose gradient exercises every output element.
Tensor weighted(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                const std::vector<Tensor>& xs, std::vector<double>* r) {
  Tensor y = fn(xs);
  LETHE_CHECK(y.defined(), "gradcheck: fn returned an undefined tensor");
  LETHE_CHECK(y.dtype() == DType::f64, "gradcheck: fn must return f64 (got ", dtype_name(y.dtype()),
              ")");
  if (r->empty()) {
    r->resize(static_cast<size_t>(y.numel()));
    for (size_t i = 0; i < r->size(); ++i) (*r)[i] = 0.5 + rng::uniform01(0x9e3779b9, 7, i);
  }
  LETHE_CHECK(static_cast<int64_t>(r->size()) == y.numel(), "gradcheck: fn's output changed size");
  return sum(mul(y, from_vector(*r, y.shape())));
}

}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, double eps, double atol, double rtol,
                          std::vector<bool> check) {
  if (check.empty()) check.assign(inputs.size(), true);
  LETHE_CHECK(check.size() == inputs.size(), "gradcheck: `check` has ", check.size(),
              " entries for ", inputs.size(), " inputs");
  std::vector<std::vector<double>> values;
  for (size_t i = 0; i < inputs.size(); ++i) {
    values.push_back(inputs[i].to_vector<double>());
    if (check[i])
      LETHE_CHECK(inputs[i].dtype() == DType::f64, "gradcheck: input ", i,
                  " must be f64 for finite differences (got ", dtype_name(inputs[i].dtype()), ")");
  }
  auto make_inputs = [&](bool grad) {
    std::vector<Tensor> xs;
    for (size_t i = 0; i < inputs.size(); ++i) {
      Tensor x = inputs[i].dtype() == DType::i64
                     ? from_vector(inputs[i].to_vector<int64_t>(), inputs[i].shape())
                     : from_vector(values[i], inputs[i].shape());
      if (x.dtype() != inputs[i].dtype()) x = cast(x, inputs[i].dtype());
      if (grad && check[i]) x.set_requires_grad(true);
      xs.push_back(x);
    }
    return xs;
  };
  std::vector<double> r;
  // Analytic gradients.
  std::vector<Tensor> xs = make_inputs(true);
  Tensor loss = weighted(fn, xs, &r);
  loss.backward();
  std::vector<std::vector<double>> analytic(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i)
    if (check[i])
      analytic[i] = xs[i].has_grad() ? xs[i].grad().to_vector<double>()
                                     : std::vector<double>(values[i].size(), 0.0);
  current_session()->flush();

  GradcheckResult res;
  double worst_excess = -INFINITY;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!check[i]) continue;
    for (size_t j = 0; j < values[i].size(); ++j) {
      double orig = values[i][j];
      auto eval = [&](double v) {
        values[i][j] = v;
        NoGradGuard ng;
        double f = weighted(fn, make_inputs(false), &r).item<double>();
        values[i][j] = orig;
        return f;
      };
      double numeric = (eval(orig + eps) - eval(orig - eps)) / (2 * eps);
      double a = analytic[i][j];
      double err = std::fabs(a - numeric);
      double excess = err - (atol + rtol * std::fabs(numeric));
      if (excess > worst_excess) {
        worst_excess = excess;
        res.max_abs_error = err;
        res.max_rel_error = err / std::max(std::fabs(numeric), 1e-300);
        res.worst_input = static_cast<int>(i);
        res.worst_index = static_cast<int64_t>(j);
        res.analytic = a;
        res.numeric = numeric;
      }
    }
  }
  res.ok = worst_excess <= 0;
  if (!res.ok) {
    std::ostringstream os;
    os << "gradcheck failed: input " << res.worst_input << " element " << res.worst_index
       << ": analytic " << res.analytic << " vs numeric " << res.numeric << " (abs error "
       << res.max_abs_error << ", tolerance " << atol << " + " << rtol << " * |numeric|)";
    res.message = os.str();
  }
  return res;
}

}  // namespace lethe::autograd

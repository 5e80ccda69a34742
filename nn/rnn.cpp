#include "nn/rnn.h"

#include <cmath>
#include <string>

#include "nn/init.h"
#include "ops/creation.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/shape_ops.h"

namespace lethe::nn {

LSTM::LSTM(const LSTMOptions& o) : Module("LSTM"), options_(o) {
  LETHE_CHECK(o.input_size() > 0 && o.hidden_size() > 0 && o.num_layers() > 0,
              "LSTM: input_size, hidden_size and num_layers must be positive, got ", o.input_size(),
              ", ", o.hidden_size(), ", ", o.num_layers());
  LETHE_CHECK(o.dropout() >= 0 && o.dropout() < 1, "LSTM: dropout must be in [0, 1), got ",
              o.dropout());
  const int64_t h = o.hidden_size();
  for (int64_t k = 0; k < o.num_layers(); ++k) {
    const std::string s = "_l" + std::to_string(k);
    const int64_t in = k == 0 ? o.input_size() : h;
    Layer l;
    l.weight_ih = register_parameter("weight_ih" + s, zeros({4 * h, in}, o.dtype()));
    l.weight_hh = register_parameter("weight_hh" + s, zeros({4 * h, h}, o.dtype()));
    if (o.bias()) {
      l.bias_ih = register_parameter("bias_ih" + s, zeros({4 * h}, o.dtype()));
      l.bias_hh = register_parameter("bias_hh" + s, zeros({4 * h}, o.dtype()));
    }
    layers.push_back(l);
  }
  reset_parameters();
}

void LSTM::reset_parameters() {
  const double bound = 1.0 / std::sqrt(static_cast<double>(options_.hidden_size()));
  for (Tensor& p : parameters()) init::uniform_(p, -bound, bound);
}

std::tuple<Tensor, LSTM::State> LSTM::forward(const Tensor& input, const State& state) {
  const auto& o = options_;
  const int64_t hs = o.hidden_size(), nl = o.num_layers();
  LETHE_CHECK(input.dim() == 3 && input.size(2) == o.input_size(), "LSTM: expected input ",
              o.batch_first() ? "[N, L, " : "[L, N, ", o.input_size(), "], got ", input.shape());
  const Tensor x = o.batch_first() ? transpose(input, 0, 1) : input;  // [L, N, in]
  const int64_t len = x.size(0), n = x.size(1);
  const auto& [h0, c0] = state;
  LETHE_CHECK(h0.defined() == c0.defined(), "LSTM: give both h0 and c0 or neither");
  const Shape state_shape{nl, n, hs};
  if (h0.defined())
    LETHE_CHECK(h0.shape() == state_shape && c0.shape() == state_shape, "LSTM: expected h0 and c0 ",
                state_shape, ", got ", h0.shape(), " and ", c0.shape());
  Tensor seq = x;
  std::vector<Tensor> hn, cn;
  for (int64_t k = 0; k < nl; ++k) {
    const Layer& l = layers[static_cast<size_t>(k)];
    if (k > 0 && o.dropout() > 0 && is_training()) seq = dropout(seq, o.dropout(), true);
    // The input projection of every step at once: [L, N, 4H].
    const Tensor proj = linear(seq, l.weight_ih, l.bias_ih);
    const int ki = static_cast<int>(k);
    // Without h0/c0 the zero state is left out of the first step (no constant tensors in the step).
    Tensor h = h0.defined() ? squeeze(slice(h0, 0, ki, ki + 1), 0) : Tensor();
    Tensor c = c0.defined() ? squeeze(slice(c0, 0, ki, ki + 1), 0) : Tensor();
    std::vector<Tensor> outs;
    for (int64_t t = 0; t < len; ++t) {
      Tensor gates = squeeze(slice(proj, 0, t, t + 1), 0);
      if (h.defined())
        gates = add(gates, linear(h, l.weight_hh, l.bias_hh));
      else if (l.bias_hh.defined())
        gates = add(gates, l.bias_hh);
      const Tensor i = sigmoid(slice(gates, 1, 0, hs));
      const Tensor f = sigmoid(slice(gates, 1, hs, 2 * hs));
      const Tensor g = tanh(slice(gates, 1, 2 * hs, 3 * hs));
      const Tensor og = sigmoid(slice(gates, 1, 3 * hs, 4 * hs));
      c = c.defined() ? add(mul(f, c), mul(i, g)) : mul(i, g);
      h = mul(og, tanh(c));
      outs.push_back(unsqueeze(h, 0));
    }
    seq = outs.size() == 1 ? outs[0] : concat(outs, 0);
    hn.push_back(unsqueeze(h, 0));
    cn.push_back(unsqueeze(c, 0));
  }
  const Tensor out = o.batch_first() ? transpose(seq, 0, 1) : seq;
  auto stack = [](const std::vector<Tensor>& v) { return v.size() == 1 ? v[0] : concat(v, 0); };
  return {out, State{stack(hn), stack(cn)}};
}

void LSTM::pretty_print(std::ostream& os) const {
  const auto& o = options_;
  os << "LSTM(" << o.input_size() << ", " << o.hidden_size();
  if (o.num_layers() != 1) os << ", num_layers=" << o.num_layers();
  if (!o.bias()) os << ", bias=false";
  if (o.batch_first()) os << ", batch_first=true";
  if (o.dropout() != 0) os << ", dropout=" << o.dropout();
  os << ")";
}

}  // namespace lethe::nn

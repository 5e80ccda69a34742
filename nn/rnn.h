// Recurrent layers, as torch.nn.LSTM: gates i, f, g, o; per layer k the parameters weight_ih_lk
// [4H, in], weight_hh_lk [4H, H], bias_ih_lk and bias_hh_lk [4H], uniform in ±1/sqrt(H).
//
//   auto lstm = std::make_shared<lethe::nn::LSTM>(lethe::nn::LSTMOptions(32,
//   64).num_layers(2).batch_first(true)); auto [out, state] = lstm->forward(x);          // x [N,
//   L, 32] -> out [N, L, 64] auto [h, c] = state;                           // [2, N, 64] each
//
// Composed of linear, sigmoid, tanh, slice and concat: every step is ordinary graph nodes that the
// scheduler may free and recompute.
#pragma once

#include <tuple>

#include "nn/arg.h"
#include "nn/module.h"

namespace lethe::nn {

struct LSTMOptions {
  LSTMOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  LETHE_ARG(int64_t, input_size);
  LETHE_ARG(int64_t, hidden_size);
  LETHE_ARG(int64_t, num_layers) = 1;
  LETHE_ARG(bool, bias) = true;
  LETHE_ARG(bool, batch_first) = false;
  LETHE_ARG(double, dropout) = 0.0;  // on the outputs of every layer but the last, in training
  LETHE_ARG(DType, dtype) = DType::f32;
};

class LSTM : public Module {
 public:
  using State = std::tuple<Tensor, Tensor>;  // (h, c), each [num_layers, N, H]
  explicit LSTM(const LSTMOptions& o);
  LSTM(int64_t input_size, int64_t hidden_size) : LSTM(LSTMOptions(input_size, hidden_size)) {}
  void reset_parameters();
  // x [L, N, in] ([N, L, in] with batch_first); state (h0, c0) [num_layers, N, H], zeros when
  // undefined. Returns the last layer's h at every step ([L, N, H] or [N, L, H]) and (h_n, c_n).
  std::tuple<Tensor, State> forward(const Tensor& x, const State& state = {});
  void pretty_print(std::ostream& os) const override;
  const LSTMOptions& options() const { return options_; }

  struct Layer {
    Tensor weight_ih, weight_hh, bias_ih, bias_hh;  // biases undefined without bias
  };
  std::vector<Layer> layers;

 private:
  LSTMOptions options_;
};

}  // namespace lethe::nn

// Parameter initialisers, as torch::nn::init. Each replaces the tensor's value (Tensor::assign)
// with one drawn from the session's counter-based generator, so a seeded session initialises
// identically.
//
//   lethe::nn::init::kaiming_uniform_(linear->weight, std::sqrt(5.0));   // PyTorch's Linear
//   default lethe::nn::init::zeros_(linear->bias);
#pragma once

#include <string>
#include <utility>

#include "framework/tensor.h"

namespace lethe::nn::init {

// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (as PyTorch); needs >= 2
// dims.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Shape& s);
// nonlinearity: "linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu" (param = negative
// slope, default 0.01), "selu".
double calculate_gain(const std::string& nonlinearity, double param = 0.01);

void uniform_(Tensor& t, double lo = 0.0, double hi = 1.0);
void normal_(Tensor& t, double mean = 0.0, double std = 1.0);
void constant_(Tensor& t, double value);
void zeros_(Tensor& t);
void ones_(Tensor& t);
// mode: "fan_in" or "fan_out"; a = negative slope of leaky_relu.
void kaiming_uniform_(Tensor& t, double a = 0.0, const std::string& mode = "fan_in",
                      const std::string& nonlinearity = "leaky_relu");
void kaiming_normal_(Tensor& t, double a = 0.0, const std::string& mode = "fan_in",
                     const std::string& nonlinearity = "leaky_relu");
void xavier_uniform_(Tensor& t, double gain = 1.0);
void xavier_normal_(Tensor& t, double gain = 1.0);

}  // namespace lethe::nn::init

#pragma once

#include "framework/tensor.h"

namespace lethe {

Tensor softmax(const Tensor& x, int axis = -1);
Tensor log_softmax(const Tensor& x, int axis = -1);

}  // namespace lethe

#pragma once

#include "framework/tensor.h"

namespace lethe {

// Inverted dropout. The mask is drawn from the counter-based generator keyed by (session seed,
// step, node), so recomputing the node reproduces the mask.
Tensor dropout(const Tensor& x, double p, bool training = true);

}  // namespace lethe

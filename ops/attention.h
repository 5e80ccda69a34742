#pragma once

#include "framework/tensor.h"

namespace lethe {

// q [..., Lq, d], k [..., Lk, d], v [..., Lk, dv] -> [..., Lq, dv]; softmax(q kᵀ / sqrt(d)) v, with
// the upper triangle masked when causal.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    bool causal = false);

}  // namespace lethe

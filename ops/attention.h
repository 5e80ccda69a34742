#pragma once

#include "framework/tensor.h"

namespace lethe {

// q [..., Lq, d], k [..., Lk, d], v [..., Lk, dv] -> [..., Lq, dv]; softmax(q kᵀ / sqrt(d)) v, with
// the upper triangle masked when causal and dropout_p applied to the attention weights (as
// torch.nn.functional.scaled_dot_product_attention; pass 0 outside training).
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    bool causal = false, double dropout_p = 0.0);

}  // namespace lethe

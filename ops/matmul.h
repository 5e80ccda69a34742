// Matrix products through OpenBLAS.
#pragma once

#include "framework/tensor.h"

namespace lethe {

// Batched with NumPy batch broadcasting; 1-d operands behave as in torch.matmul.
Tensor matmul(const Tensor& a, const Tensor& b);
// x·Wᵀ + b fused: x [..., in], w [out, in], b [out] (may be undefined).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());
// op(a)·op(b) for operands of at least 2 dims, op = transpose of the last two dims where asked; the
// transpose is folded into the GEMM (no copy). Batch dims broadcast as in matmul.
Tensor matmul_transposed(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b);

}  // namespace lethe

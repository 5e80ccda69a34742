// Comparisons and selection, as torch.eq ... torch.ge and torch.where.
//
//   Tensor m = lt(x, 0.0);                 // i64 0/1, x's shape
//   Tensor y = where(gt(x, y0), x, y0);    // broadcasting of all three
//
// Lethe has no bool dtype: a comparison returns an i64 mask of 0 and 1 (torch returns bool), and
// no gradient flows through it. A NaN compares unequal to everything (ne gives 1), as IEEE.
// Tensor-tensor forms broadcast and take operands of one dtype (cast one with .to() otherwise);
// the scalar forms compare a floating tensor with the scalar in the tensor's dtype and an i64
// tensor with the scalar as a double.
#pragma once

#include "framework/tensor.h"

namespace lethe {

Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double s);
Tensor ne(const Tensor& a, double s);
Tensor lt(const Tensor& a, double s);
Tensor le(const Tensor& a, double s);
Tensor gt(const Tensor& a, double s);
Tensor ge(const Tensor& a, double s);

// a where cond is nonzero, else b (cond of any dtype; a NaN cond counts as true, as torch's cast
// to bool). cond, a and b broadcast together; a and b share a dtype. Gradients go to a and b.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

}  // namespace lethe

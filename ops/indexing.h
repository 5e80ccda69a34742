// Indexing by i64 tensors, as torch.gather, torch.Tensor.scatter_add and torch.index_select.
//
//   Tensor picked = gather(scores, 1, labels.unsqueeze(1));      // [N, 1]
//   Tensor rows = index_select(table, 0, ids);                    // [ids.numel(), ...]
//   Tensor hist = scatter_add(zeros({5}), 0, bins, ones({100}));   // counts per bin
//
// Indices must lie in [0, size of x along dim) (no negative indices, as torch); an index outside
// throws lethe::Error naming the op, the index, its position and the bound, on the CPU and CUDA.
#pragma once

#include "framework/tensor.h"

namespace lethe {

// out[i][j][k] = x[index[i][j][k]][j][k] (dim 0): index has x's ndim and is no larger than x along
// the other dims; out has index's shape. Gradient to x: a scatter_add of the gradient.
Tensor gather(const Tensor& x, int dim, const Tensor& index);
// x with src[i][j][k] added at [index[i][j][k]][j][k] (dim 0); index has x's ndim, is no larger
// than src along every dim and than x along the others. Additions to one element happen in
// increasing position along dim (deterministic). Gradients: x gets the gradient, src its gather.
Tensor scatter_add(const Tensor& x, int dim, const Tensor& index, const Tensor& src);
// The slices of x at the positions of a 1-d (or 0-d) index along dim.
Tensor index_select(const Tensor& x, int dim, const Tensor& index);

}  // namespace lethe

// Padding as torch.nn.functional.pad: `pads` holds (before, after) pairs, last dim first
// ({1, 2} pads the last dim by 1 before and 2 after; {1, 1, 2, 2} also the dim before it by 2).
//
//   Tensor y = pad(x, {1, 1, 1, 1}, "reflect");     // NCHW: one pixel of reflection all around
//
// mode "constant" fills with `value` (negative pads crop, as torch); "reflect" mirrors without
// repeating the edge (each pad smaller than its dim); "replicate" repeats the edge. Any number of
// trailing dims may be padded in every mode. The gradient sums what each input element fed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "framework/tensor.h"

namespace lethe {

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, const std::string& mode = "constant",
           double value = 0.0);

}  // namespace lethe

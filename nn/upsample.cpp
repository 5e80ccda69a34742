#include "nn/upsample.h"

#include "framework/error.h"
#include "ops/upsample.h"

namespace lethe::nn {

Upsample::Upsample(const UpsampleOptions& o) : UnaryModule("Upsample"), options_(o) {
  LETHE_CHECK(o.size().has_value() != o.scale_factor().has_value(),
              "Upsample: give either size or scale_factor, not ", o.size() ? "both" : "neither");
  LETHE_CHECK(o.mode() == "nearest" || o.mode() == "bilinear",
              "Upsample: mode must be 'nearest' or 'bilinear', got '", o.mode(), "'");
  LETHE_CHECK(!o.align_corners() || o.mode() == "bilinear",
              "Upsample: align_corners is only for mode 'bilinear' (got mode '", o.mode(), "')");
  if (o.size())
    LETHE_CHECK((*o.size())[0] > 0 && (*o.size())[1] > 0, "Upsample: size must be positive");
  if (o.scale_factor())
    LETHE_CHECK((*o.scale_factor())[0] > 0 && (*o.scale_factor())[1] > 0,
                "Upsample: scale_factor must be positive");
}

Tensor Upsample::forward(const Tensor& x) {
  const UpsampleOptions& o = options_;
  const bool corners = o.align_corners().value_or(false);
  if (o.mode() == "nearest")
    return o.size() ? upsample_nearest2d(x, *o.size())
                    : upsample_nearest2d(x, (*o.scale_factor())[0], (*o.scale_factor())[1]);
  return o.size() ? upsample_bilinear2d(x, *o.size(), corners)
                  : upsample_bilinear2d(x, (*o.scale_factor())[0], (*o.scale_factor())[1], corners);
}

void Upsample::pretty_print(std::ostream& os) const {
  os << "Upsample(";
  if (options_.size())
    os << "size=(" << (*options_.size())[0] << ", " << (*options_.size())[1] << ")";
  else
    os << "scale_factor=(" << (*options_.scale_factor())[0] << ", " << (*options_.scale_factor())[1]
       << ")";
  os << ", mode='" << options_.mode() << "'";
  if (options_.align_corners())
    os << ", align_corners=" << (*options_.align_corners() ? "True" : "False");
  os << ")";
}

}  // namespace lethe::nn

// Chainable option fields in the libtorch spirit:
//
//   struct LinearOptions {
//     LinearOptions(int64_t in, int64_t out) : in_features_(in), out_features_(out) {}
//     LETHE_ARG(int64_t, in_features);
//     LETHE_ARG(bool, bias) = true;
//   };
//   auto o = LinearOptions(784, 256).bias(false);   // o.bias() == false
#pragma once

#define LETHE_ARG(T, name)          \
 public:                            \
  auto& name(const T& new_##name) { \
    this->name##_ = new_##name;     \
    return *this;                   \
  }                                 \
  const T& name() const noexcept {  \
    return name##_;                 \
  }                                 \
                                    \
 private:                           \
  T name##_

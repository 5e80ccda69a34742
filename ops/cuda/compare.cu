// CUDA kernels of ops/compare.cpp: comparisons to i64 0/1 masks (through the broadcasting kernel of
// elementwise.cuh) and where (its own kernel: the condition may have another dtype).
#include <type_traits>

#include "ops/cuda/common.cuh"
#include "ops/cuda/elementwise.cuh"
#include "ops/layout.h"

namespace lethe::cuda::detail {
namespace {

enum Cmp : int { kEq, kNe, kLt, kLe, kGt, kGe };

template <typename T>
__device__ int64_t compare_as(int k, T x, T y) {
  switch (k) {
    case kEq:
      return x == y;
    case kNe:
      return x != y;
    case kLt:
      return x < y;
    case kLe:
      return x <= y;
    case kGt:
      return x > y;
    default:
      return x >= y;
  }
}

template <typename T>
struct CompareF {
  int k;
  __device__ int64_t operator()(const T (&v)[2], int64_t) const {
    return compare_as(k, v[0], v[1]);
  }
};

// Against a scalar: in the tensor's dtype for floats, as a double for i64 (the CPU kernel's rule).
template <typename T>
struct CompareScalarF {
  int k;
  double s;
  __device__ int64_t operator()(const T (&v)[1], int64_t) const {
    if constexpr (std::is_floating_point_v<T>) return compare_as(k, v[0], static_cast<T>(s));
    return compare_as(k, static_cast<double>(v[0]), s);
  }
};

int compare_code(OpKind k) {
  switch (k) {
    case OpKind::eq:
      return kEq;
    case OpKind::ne:
      return kNe;
    case OpKind::lt:
      return kLt;
    case OpKind::le:
      return kLe;
    case OpKind::gt:
      return kGt;
    case OpKind::ge:
      return kGe;
    default:
      throw_not_in_family("compare", k);
  }
}

template <typename C, typename T>
__global__ void where_kernel(const C* cond, const T* a, const T* b, T* out, Strided<3> ix,
                             int64_t n) {
  LETHE_GRID_LOOP(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    out[i] = cond[off[0]] != C(0) ? a[off[1]] : b[off[2]];
  }
}

}  // namespace

void compare(const Op& op, const KernelCall& c) {
  const int k = compare_code(op.kind());
  const CompareAttrs& a = op.attrs_as<CompareAttrs>();
  dispatch_a(c.in_meta[0]->dtype, [&](auto tag) {
    using T = decltype(tag);
    if (a.scalar)
      launch_ew<int64_t, T, 1>(c, CompareScalarF<T>{k, a.value});
    else
      launch_ew<int64_t, T, 2>(c, CompareF<T>{k});
  });
}

void where(const Op&, const KernelCall& c) {
  const Shape& os = c.out_shape();
  const int64_t n = os.numel();
  if (n == 0) return;
  std::vector<std::vector<int64_t>> st;
  for (size_t k = 0; k < 3; ++k) st.push_back(layout::broadcast_strides(c.in_shape(k), os));
  const Strided<3> ix = make_strided<3>(os, st);
  dispatch_a(c.in_meta[0]->dtype, [&](auto ctag) {
    using C = decltype(ctag);
    dispatch_a(c.in_meta[1]->dtype, [&](auto tag) {
      using T = decltype(tag);
      where_kernel<C, T><<<grid_for(n), 256, 0, stream(c)>>>(c.in<C>(0), c.in<T>(1), c.in<T>(2),
                                                             c.out<T>(), ix, n);
      LETHE_CUDA_LAUNCH_CHECK();
    });
  });
}

}  // namespace lethe::cuda::detail

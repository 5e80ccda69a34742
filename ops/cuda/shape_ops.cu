// CUDA kernels of ops/shape_ops.cpp: reshape (a copy), permute, slice (+ backward) and concat, all
// through one strided copy (launch_copy, also broadcast_to's in elementwise.cu).
#include "ops/cuda/common.cuh"

namespace lethe::cuda::detail {
namespace {

// dst[off0(i)] = src[off1(i)] over an iteration space (element type by size only).
template <typename E>
__global__ void strided_copy(E* dst, const E* src, Strided<2> ix, int64_t n) {
  LETHE_GRID_LOOP(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    dst[off[0]] = src[off[1]];
  }
}

}  // namespace

void launch_copy(const KernelCall& c, void* dst, const void* src, const Shape& space,
                 const std::vector<int64_t>& dst_st, const std::vector<int64_t>& src_st,
                 size_t elem) {
  const int64_t n = space.numel();
  if (n == 0) return;
  Strided<2> ix = make_strided<2>(space, {dst_st, src_st});
  if (elem == 4)
    strided_copy<uint32_t><<<grid_for(n), 256, 0, stream(c)>>>(
        static_cast<uint32_t*>(dst), static_cast<const uint32_t*>(src), ix, n);
  else
    strided_copy<uint64_t><<<grid_for(n), 256, 0, stream(c)>>>(
        static_cast<uint64_t*>(dst), static_cast<const uint64_t*>(src), ix, n);
  LETHE_CUDA_LAUNCH_CHECK();
}

namespace {

size_t elem_of(const KernelCall& c) {
  return dtype_size(c.out_meta->dtype);
}

// The slice of `full` (shape fs) along axis with start/step, as strides over the slice's shape.
std::vector<int64_t> slice_strides(const Shape& fs, int axis, int64_t step) {
  std::vector<int64_t> st = fs.strides();
  st[static_cast<size_t>(axis)] *= step;
  return st;
}

}  // namespace

void reshape(const Op&, const KernelCall& c) {
  const size_t b = c.out_meta->bytes();
  if (b && c.output != c.inputs[0])
    LETHE_CUDA_CHECK(
        cudaMemcpyAsync(c.output, c.inputs[0], b, cudaMemcpyDeviceToDevice, stream(c)));
}

void permute(const Op& op, const KernelCall& c) {
  const std::vector<int>& p = op.attrs_as<PermuteAttrs>().dims;
  const std::vector<int64_t> xstr = c.in_shape(0).strides();
  std::vector<int64_t> src;
  for (int a : p) src.push_back(xstr[static_cast<size_t>(a)]);
  launch_copy(c, c.output, c.inputs[0], c.out_shape(), c.out_shape().strides(), src, elem_of(c));
}

void slice(const Op& op, const KernelCall& c) {
  const SliceAttrs& a = op.attrs_as<SliceAttrs>();
  const int axis = a.axis;
  const int64_t start = a.start, step = a.step;
  const Shape& xs = c.in_shape(0);
  const size_t e = elem_of(c);
  const char* src = static_cast<const char*>(c.inputs[0]) +
                    static_cast<size_t>(start * xs.strides()[static_cast<size_t>(axis)]) * e;
  launch_copy(c, c.output, src, c.out_shape(), c.out_shape().strides(),
              slice_strides(xs, axis, step), e);
}

void slice_backward(const Op& op, const KernelCall& c) {
  const SliceAttrs& a = op.attrs_as<SliceAttrs>();
  const int axis = a.axis;
  const int64_t start = a.start, step = a.step;
  const Shape& os = c.out_shape();
  const size_t e = elem_of(c);
  if (c.out_meta->bytes())
    LETHE_CUDA_CHECK(cudaMemsetAsync(c.output, 0, c.out_meta->bytes(), stream(c)));
  char* dst = static_cast<char*>(c.output) +
              static_cast<size_t>(start * os.strides()[static_cast<size_t>(axis)]) * e;
  launch_copy(c, dst, c.inputs[0], c.in_shape(0), slice_strides(os, axis, step),
              c.in_shape(0).strides(), e);
}

void concat(const Op& op, const KernelCall& c) {
  const int axis = op.attrs_as<ConcatAttrs>().axis;
  const Shape& os = c.out_shape();
  const size_t e = elem_of(c);
  const std::vector<int64_t> ost = os.strides();
  int64_t off = 0;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    char* dst = static_cast<char*>(c.output) +
                static_cast<size_t>(off * ost[static_cast<size_t>(axis)]) * e;
    launch_copy(c, dst, c.inputs[i], c.in_shape(i), ost, c.in_shape(i).strides(), e);
    off += c.in_shape(i)[axis];
  }
}

}  // namespace lethe::cuda::detail

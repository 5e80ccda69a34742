// CUDA kernels of ops/comm.cpp: a bucket's gradients packed and averaged over the ranks with NCCL
// (bootstrapped through MPI by dist::detail::broadcast), in the same fixed order as the CPU path:
// each rank receives every rank's share of its chunk (grouped ncclSend/ncclRecv), sums them in rank
// order, and the chunks are gathered back (ncclAllGather) — the same bits on every rank.
#include <mutex>
#include <string>

#include "dist/dist.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/kernels.h"

#if defined(LETHE_HAVE_NCCL)
#include <nccl.h>
#endif

namespace lethe::cuda::detail {

namespace {

template <typename T>
__global__ void mean_of_chunks(const T* __restrict__ in, T* __restrict__ out, int64_t chunk,
                               int world) {
  LETHE_GRID_LOOP(i, chunk) {
    T acc = in[i];
    for (int q = 1; q < world; ++q) acc += in[static_cast<int64_t>(q) * chunk + i];
    out[i] = acc / static_cast<T>(world);
  }
}

#if defined(LETHE_HAVE_NCCL)
#define LETHE_NCCL_CHECK(call)                                                                   \
  do {                                                                                           \
    const ncclResult_t r_ = (call);                                                              \
    if (r_ != ncclSuccess) {                                                                     \
      dist::detail::mark_failed();                                                               \
      throw Error(                                                                               \
          lethe::detail::concat("data parallel: ", #call, " failed: ", ncclGetErrorString(r_))); \
    }                                                                                            \
  } while (0)

// One communicator per process, made at the first all-reduce (every rank reaches it in the same
// order: buckets run in one order on every rank).
ncclComm_t communicator(int device) {
  static std::mutex mu;
  static ncclComm_t comm = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (comm) return comm;
  ncclUniqueId id{};
  if (dist::rank() == 0) LETHE_NCCL_CHECK(ncclGetUniqueId(&id));
  dist::detail::broadcast(&id, sizeof id, "the NCCL bootstrap");
  LETHE_CUDA_CHECK(cudaSetDevice(device));
  LETHE_NCCL_CHECK(ncclCommInitRank(&comm, dist::world_size(), id, dist::rank()));
  return comm;
}
#endif

}  // namespace

void all_reduce(const Op& op, const KernelCall& c) {
  if (op.kind() != OpKind::all_reduce) throw_not_in_family("all_reduce", op.kind());
  const auto& a = op.attrs_as<AllReduceAttrs>();
  char* out = static_cast<char*>(c.output);
  size_t at = 0;
  for (size_t i = 0; i + (a.ordered ? 1 : 0) < c.inputs.size(); ++i) {
    const size_t b = c.in_meta[i]->bytes();
    LETHE_CUDA_CHECK(
        cudaMemcpyAsync(out + at, c.inputs[i], b, cudaMemcpyDeviceToDevice, stream(c)));
    at += b;
  }
  LETHE_CUDA_CHECK(cudaMemsetAsync(out + at, 0, c.out_meta->bytes() - at, stream(c)));
  const int world = dist::world_size();
  if (world < 2) return;
#if defined(LETHE_HAVE_NCCL)
  const DType t = c.out_meta->dtype;
  const ncclDataType_t nt = t == DType::f32 ? ncclFloat32 : ncclFloat64;
  const size_t elem = dtype_size(t);
  const int64_t chunk = c.out_meta->numel() / world;
  ncclComm_t comm = communicator(context(c).device);
  LETHE_NCCL_CHECK(ncclGroupStart());
  for (int q = 0; q < world; ++q) {
    LETHE_NCCL_CHECK(ncclSend(out + static_cast<size_t>(q * chunk) * elem,
                              static_cast<size_t>(chunk), nt, q, comm, stream(c)));
    LETHE_NCCL_CHECK(
        ncclRecv(static_cast<char*>(c.workspace) + static_cast<size_t>(q * chunk) * elem,
                 static_cast<size_t>(chunk), nt, q, comm, stream(c)));
  }
  LETHE_NCCL_CHECK(ncclGroupEnd());
  char* mine = out + static_cast<size_t>(dist::rank() * chunk) * elem;
  if (t == DType::f32)
    mean_of_chunks<<<grid_for(chunk), 256, 0, stream(c)>>>(
        static_cast<const float*>(c.workspace), reinterpret_cast<float*>(mine), chunk, world);
  else
    mean_of_chunks<<<grid_for(chunk), 256, 0, stream(c)>>>(
        static_cast<const double*>(c.workspace), reinterpret_cast<double*>(mine), chunk, world);
  LETHE_CUDA_CHECK(cudaGetLastError());
  LETHE_NCCL_CHECK(ncclAllGather(mine, out, static_cast<size_t>(chunk), nt, comm, stream(c)));
#else
  throw Error(lethe::detail::concat(
      "data parallel on CUDA with ", world,
      " ranks needs NCCL: this build of Lethe has none (LETHE_DIST with NCCL found)"));
#endif
}

void bucket_slice(const Op& op, const KernelCall& c) {
  if (op.kind() != OpKind::bucket_slice) throw_not_in_family("bucket_slice", op.kind());
  const auto& a = op.attrs_as<BucketSliceAttrs>();
  const size_t elem = dtype_size(c.out_meta->dtype);
  LETHE_CUDA_CHECK(cudaMemcpyAsync(
      c.output, static_cast<const char*>(c.inputs[0]) + static_cast<size_t>(a.offset) * elem,
      c.out_meta->bytes(), cudaMemcpyDeviceToDevice, stream(c)));
}

}  // namespace lethe::cuda::detail

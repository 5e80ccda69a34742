// Data-parallel training over ranks that `mpirun` starts: OpenMPI for the launch, the rendezvous
// and the CPU collectives; NCCL (bootstrapped through MPI) for CUDA ranks. Built when LETHE_DIST is
// on (AUTO: when MPI is found); without it every function below runs as a single rank.
//
//   int main(int argc, char** argv) {
//     lethe::dist::init();                        // mpirun's environment; one rank without mpirun
//     lethe::Session s({.memory_budget = "0.5", .data_parallel = true});
//     auto model = ...;  lethe::optim::AdamW opt(model->parameters(), 1e-3);
//     lethe::data::DistributedSampler sampler(dataset.size(), {.seed = 1});  // this rank's share
//     ... loss.backward(); opt.step();            // gradients averaged over ranks, as PyTorch DDP
//     if (lethe::dist::rank() == 0) std::cout << loss.item() << "\n";
//     lethe::dist::finalize();
//   }
//
// With SessionOptions::data_parallel, backward() gathers the parameters' gradients, as each becomes
// final, into buckets of SessionOptions::bucket_bytes (25 MiB, as DDP) and records one all-reduce
// node per bucket in the step graph: the planner places it like any other op (its bucket is a
// buffer inside the budget, its cost comes from the bandwidth measured at init()), and the executor
// runs it on a communication stream while the rest of the backward pass goes on. The reduction
// order is fixed (rank 0's contribution first), so every rank holds bitwise the same averaged
// gradients, and the same parameters after every step. Parameters are broadcast from rank 0 when a
// data-parallel step first reads them, and every new step graph is checked to be the same on every
// rank (an error names the first node that differs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "framework/dtype.h"

namespace lethe {
class Graph;
}

namespace lethe::dist {

struct InitOptions {
  // A collective that does not complete within this many seconds (a rank died or hung)
  // throws lethe::Error on the ranks waiting for it; 0: the environment variable
  // LETHE_DIST_TIMEOUT, else 300.
  double timeout_seconds = 0;
};

// Joins the ranks `mpirun` started (MPI_Init_thread). Outside mpirun, or in a build without MPI,
// the process is one rank of one. Idempotent.
void init(const InitOptions& o = {});
// Leaves the group: MPI_Finalize, or MPI_Abort after a failed collective (the other ranks may be
// waiting in one: aborting ends them rather than leaving them to their timeout). Idempotent.
void finalize();
bool initialized();
int rank();        // 0 when not initialized
int world_size();  // 1 when not initialized
void barrier();
// Built with MPI (LETHE_DIST); NCCL for CUDA ranks.
bool built_with_mpi();
bool built_with_nccl();
double timeout_seconds();
// Bytes per second of the all-reduce (the two collectives' data volume over the elapsed time),
// probed once at init() (0 on one rank).
double allreduce_bandwidth();
// Seconds one all-reduce of `bytes` is expected to take (latency + volume / bandwidth).
double allreduce_seconds(size_t bytes);

// Elements of an all-reduce bucket of `numel` values: padded to a multiple of the world size.
int64_t bucket_elements(int64_t numel);

namespace detail {
// The all-reduce of a bucket on the CPU: `buf` holds bucket_elements(n) values (the packed
// gradients, then zeros); `scratch` as many. Afterwards `buf` holds the mean over ranks, summed in
// rank order. `tag` numbers the collective for error messages. Throws lethe::Error on timeout.
void allreduce_mean(void* buf, void* scratch, int64_t elements, DType t, const std::string& what);
// rank 0's bytes into `data` on every rank.
void broadcast(void* data, size_t bytes, const std::string& what);
// Checks that every rank recorded the same step graph (one exchange of its structural hash; the
// nodes are compared only when the hashes differ): throws lethe::Error naming the first node that
// differs. Called before every data-parallel step.
void check_same_graph(const Graph& g);
// Marks the group broken (finalize() then aborts).
void mark_failed();
bool failed();
}  // namespace detail

}  // namespace lethe::dist

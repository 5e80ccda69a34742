#include "dist/dist.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "framework/error.h"
#include "framework/graph.h"

#if defined(LETHE_HAVE_MPI)
#include <mpi.h>
#endif

namespace lethe::dist {

namespace {

struct State {
  bool initialized = false;
  bool finalized = false;
  bool owns_mpi = false;  // this library called MPI_Init
  bool failed = false;
  int rank = 0, world = 1;
  double timeout = 300;
  double bandwidth = 0;
  std::mutex mu;  // collectives are issued one at a time (MPI_THREAD_SERIALIZED is enough)
};

State& state() {
  static State s;
  return s;
}

#if defined(LETHE_HAVE_MPI)
// Launched by mpirun (OpenMPI's or PMIx's environment): only then is MPI initialised, so that a
// program run alone is one rank at once, with no MPI singleton start-up.
bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

MPI_Datatype mpi_type(DType t) {
  LETHE_CHECK(t == DType::f32 || t == DType::f64,
              "data parallel: only f32 and f64 values are reduced, got ", dtype_name(t));
  return t == DType::f32 ? MPI_FLOAT : MPI_DOUBLE;
}

// Waits for `req` until the timeout: a rank that died or hung must not hang the others.
void wait_for(MPI_Request& req, const std::string& what) {
  State& s = state();
  const auto t0 = std::chrono::steady_clock::now();
  int done = 0;
  for (int spin = 0;; ++spin) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done) return;
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (waited > s.timeout) {
      s.failed = true;
      throw Error(lethe::detail::concat(
          "data parallel: rank ", s.rank, " of ", s.world, ": ", what, " did not complete within ",
          s.timeout,
          " s: another rank died, hung or stopped taking part in the step "
          "(the limit is dist::InitOptions::timeout_seconds or LETHE_DIST_TIMEOUT)"));
    }
    if (spin > 1000)
      std::this_thread::sleep_for(std::chrono::microseconds(spin > 100000 ? 1000 : 20));
  }
}

void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  state().failed = true;
  throw Error(lethe::detail::concat("data parallel: ", call, " failed on rank ", state().rank, ": ",
                                    std::string(msg, len)));
}

void probe_bandwidth() {
  State& s = state();
  if (s.world < 2) return;
  const int64_t n = bucket_elements(int64_t{1} << 20);  // 4 MiB of f32
  std::vector<float> buf(static_cast<size_t>(n), 1.0f), scratch(static_cast<size_t>(n));
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < 4; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    detail::allreduce_mean(buf.data(), scratch.data(), n, DType::f32,
                           "the bandwidth probe at init()");
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double volume = 2.0 * static_cast<double>(n) * 4 * (s.world - 1) / s.world;
  s.bandwidth = volume / std::max(best, 1e-9);
}
#endif

}  // namespace

bool built_with_mpi() {
#if defined(LETHE_HAVE_MPI)
  return true;
#else
  return false;
#endif
}

bool built_with_nccl() {
#if defined(LETHE_HAVE_NCCL)
  return true;
#else
  return false;
#endif
}

void init(const InitOptions& o) {
  State& s = state();
  if (s.initialized) return;
  LETHE_CHECK(!s.finalized, "dist::init(): called after dist::finalize()");
  double timeout = o.timeout_seconds;
  if (timeout <= 0) {
    const char* env = std::getenv("LETHE_DIST_TIMEOUT");
    if (env != nullptr && *env) {
      char* end = nullptr;
      timeout = std::strtod(env, &end);
      LETHE_CHECK(end != env && *end == '\0' && timeout > 0,
                  "LETHE_DIST_TIMEOUT must be a positive number of seconds, got '", env, "'");
    } else {
      timeout = 300;
    }
  }
  LETHE_CHECK(timeout > 0, "dist::init(): timeout_seconds must be positive, got ",
              o.timeout_seconds);
  s.timeout = timeout;
  s.initialized = true;
#if defined(LETHE_HAVE_MPI)
  int already = 0;
  MPI_Initialized(&already);
  if (!already && !launched_by_mpirun()) return;  // one rank of one
  if (!already) {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
    s.owns_mpi = true;
    LETHE_CHECK(
        provided >= MPI_THREAD_SERIALIZED, "data parallel: the MPI library provides thread level ",
        provided,
        ", below MPI_THREAD_SERIALIZED (collectives run on the step's communication thread)");
  }
  // Errors come back as codes (check()) instead of aborting the job inside MPI.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &s.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &s.world);
  probe_bandwidth();
#endif
}

void finalize() {
  State& s = state();
  if (!s.initialized || s.finalized) return;
  s.finalized = true;
#if defined(LETHE_HAVE_MPI)
  if (!s.owns_mpi) return;
  if (s.failed) {
    // A collective failed or timed out: ranks may be waiting in one that never completes.
    MPI_Abort(MPI_COMM_WORLD, 1);
    return;
  }
  MPI_Finalize();
#endif
}

bool initialized() {
  return state().initialized;
}
int rank() {
  return state().rank;
}
int world_size() {
  return state().world;
}
double timeout_seconds() {
  return state().timeout;
}
double allreduce_bandwidth() {
  return state().bandwidth;
}

double allreduce_seconds(size_t bytes) {
  const State& s = state();
  if (s.world < 2) return 0;
  const double bw = s.bandwidth > 0 ? s.bandwidth : 1e9;
  return 20e-6 + 2.0 * static_cast<double>(bytes) * (s.world - 1) / s.world / bw;
}

int64_t bucket_elements(int64_t numel) {
  const int64_t w = world_size();
  return (numel + w - 1) / w * w;
}

void barrier() {
  State& s = state();
  if (s.world < 2) return;
#if defined(LETHE_HAVE_MPI)
  std::lock_guard<std::mutex> lock(s.mu);
  MPI_Request req;
  check(MPI_Ibarrier(MPI_COMM_WORLD, &req), "MPI_Ibarrier");
  wait_for(req, "a barrier");
#endif
}

namespace detail {

void mark_failed() {
  state().failed = true;
}
bool failed() {
  return state().failed;
}

void allreduce_mean(void* buf, void* scratch, int64_t elements, DType t, const std::string& what) {
  State& s = state();
  if (s.world < 2) return;
  LETHE_CHECK(!s.failed, "data parallel: ", what,
              ": an earlier collective failed on this rank; the ranks are no "
              "longer in step (finalize and restart)");
#if defined(LETHE_HAVE_MPI)
  LETHE_CHECK(elements % s.world == 0, "internal error: a bucket of ", elements, " values for ",
              s.world, " ranks");
  const int64_t chunk = elements / s.world;
  LETHE_CHECK(chunk <= std::numeric_limits<int>::max(), "data parallel: ", what, " has ", elements,
              " values, more than MPI counts per rank allow; use smaller buckets "
              "(SessionOptions::bucket_bytes)");
  const MPI_Datatype type = mpi_type(t);
  std::lock_guard<std::mutex> lock(s.mu);
  // Each rank receives every rank's share of its own chunk, sums them in rank order (the same bits
  // on every rank, whatever MPI's reduction algorithms), and the chunks are gathered back.
  MPI_Request req;
  check(MPI_Ialltoall(buf, static_cast<int>(chunk), type, scratch, static_cast<int>(chunk), type,
                      MPI_COMM_WORLD, &req),
        "MPI_Ialltoall");
  wait_for(req, what);
  dispatch_float(t, "all_reduce", [&](auto tag) {
    using T = decltype(tag);
    const T* in = static_cast<const T*>(scratch);
    T* out = static_cast<T*>(buf) + static_cast<int64_t>(s.rank) * chunk;
    const T inv = static_cast<T>(s.world);
    for (int64_t i = 0; i < chunk; ++i) {
      T acc = in[i];
      for (int q = 1; q < s.world; ++q) acc += in[static_cast<int64_t>(q) * chunk + i];
      out[i] = acc / inv;
    }
  });
  check(MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, static_cast<int>(chunk), type,
                       MPI_COMM_WORLD, &req),
        "MPI_Iallgather");
  wait_for(req, what);
#else
  (void)buf, (void)scratch, (void)elements, (void)t, (void)what;
#endif
}

void broadcast(void* data, size_t bytes, const std::string& what) {
  State& s = state();
  if (s.world < 2) return;
#if defined(LETHE_HAVE_MPI)
  std::lock_guard<std::mutex> lock(s.mu);
  constexpr size_t kPiece = size_t{1} << 30;
  for (size_t off = 0; off < bytes; off += kPiece) {
    MPI_Request req;
    check(
        MPI_Ibcast(static_cast<char*>(data) + off, static_cast<int>(std::min(kPiece, bytes - off)),
                   MPI_BYTE, 0, MPI_COMM_WORLD, &req),
        "MPI_Ibcast");
    wait_for(req, what);
  }
#else
  (void)data, (void)bytes, (void)what;
#endif
}

#if defined(LETHE_HAVE_MPI)
namespace {

std::string describe(const Graph& g, size_t i) {
  if (i >= g.nodes.size())
    return "absent (the graph has " + std::to_string(g.nodes.size()) + " nodes)";
  const Node& n = g.nodes[i];
  std::ostringstream os;
  os << (n.is_leaf() ? std::string("leaf") : n.op->name());
  if (!n.is_leaf() && !n.op->attrs().empty()) os << "(" << n.op->attrs() << ")";
  // Not meta.str(): ranks on different devices (cuda:0, cuda:1) record the same step.
  os << " " << dtype_name(n.meta.dtype) << n.meta.shape.str();
  if (!n.inputs.empty()) {
    os << " of nodes";
    for (int in : n.inputs) os << " " << in;
  }
  return os.str();
}

uint64_t fnv(const std::string& text, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace
#endif

void check_same_graph(const Graph& g) {
  State& s = state();
  if (s.world < 2) return;
#if defined(LETHE_HAVE_MPI)
  // A hash of every node's description (device-neutral), computed once per graph structure.
  static std::mutex cache_mu;
  static std::unordered_map<uint64_t, uint64_t> cache;
  uint64_t all = 0;
  {
    std::lock_guard<std::mutex> lock(cache_mu);
    auto [it, fresh] = cache.try_emplace(g.structural_hash(), 0);
    if (fresh) {
      uint64_t h = fnv(std::to_string(g.nodes.size()));
      for (size_t i = 0; i < g.nodes.size(); ++i) h = fnv(describe(g, i), h);
      it->second = h;
    }
    all = it->second;
  }
  std::lock_guard<std::mutex> lock(s.mu);
  std::vector<uint64_t> everyone(static_cast<size_t>(s.world));
  MPI_Request req;
  check(
      MPI_Iallgather(&all, 1, MPI_UINT64_T, everyone.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD, &req),
      "MPI_Iallgather");
  wait_for(req, "the check that every rank recorded the same step graph");
  if (std::all_of(everyone.begin(), everyone.end(), [&](uint64_t h) { return h == everyone[0]; }))
    return;
  std::vector<uint64_t> sig(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) sig[i] = fnv(describe(g, i));
  // Rank 0's node signatures to everyone; each rank finds its first difference; the smallest wins.
  uint64_t n0 = sig.size();
  check(MPI_Ibcast(&n0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD, &req), "MPI_Ibcast");
  wait_for(req, "the step graph check");
  std::vector<uint64_t> ref(static_cast<size_t>(n0));
  if (s.rank == 0) ref = sig;
  check(MPI_Ibcast(ref.data(), static_cast<int>(n0), MPI_UINT64_T, 0, MPI_COMM_WORLD, &req),
        "MPI_Ibcast");
  wait_for(req, "the step graph check");
  uint64_t first = std::max<uint64_t>(n0, sig.size());
  for (size_t i = 0; i < std::min<size_t>(n0, sig.size()); ++i)
    if (ref[i] != sig[i]) {
      first = i;
      break;
    }
  if (n0 == sig.size() && first == n0) first = std::numeric_limits<uint64_t>::max();
  uint64_t d = 0;
  check(MPI_Iallreduce(&first, &d, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD, &req),
        "MPI_Iallreduce");
  wait_for(req, "the step graph check");
  constexpr int kText = 240;
  char mine[kText] = {};
  const std::string text = describe(g, static_cast<size_t>(d));
  std::memcpy(mine, text.data(), std::min<size_t>(text.size(), kText - 1));
  std::vector<char> texts(static_cast<size_t>(kText) * static_cast<size_t>(s.world));
  check(MPI_Iallgather(mine, kText, MPI_CHAR, texts.data(), kText, MPI_CHAR, MPI_COMM_WORLD, &req),
        "MPI_Iallgather");
  wait_for(req, "the step graph check");
  LETHE_CHECK(d != std::numeric_limits<uint64_t>::max(),
              "data parallel: the ranks recorded different step graphs "
              "(their hashes differ) although every node reads alike");
  std::ostringstream os;
  os << "data parallel: the ranks recorded different step graphs (a different model, batch shape "
        "or code path on "
        "some rank); the first node that differs is node "
     << d << ":";
  for (int r = 0; r < s.world; ++r)
    os << (r ? ";" : "") << " on rank " << r << " " << (texts.data() + r * kText);
  throw Error(os.str());
#endif
}

}  // namespace detail

}  // namespace lethe::dist

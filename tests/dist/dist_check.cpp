// Data-parallel checks run under `mpirun -np 2` (tests/dist/CMakeLists.txt): each mode prints what
// it compared and exits 0 when it holds on this rank.
//   identical  5 steps with rank-dependent batches: every rank holds bitwise the same parameters
//   match      f64: 2 ranks x batch b/2 against 1 rank x batch b (a local session), within 1e-12
//   budget     data parallel under a budget bitwise equal to data parallel unlimited (CNN with BN)
//   mismatch   rank 1 records another model: the error names the first differing node
//   hang       rank 1 stops taking part at step 2: rank 0 fails within LETHE_DIST_TIMEOUT
//   die        rank 1 exits at step 2: the job ends non-zero
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "lethe.h"

using namespace lethe;

namespace {

std::shared_ptr<nn::Sequential> mlp(int64_t in, int64_t hidden, int64_t out, int layers,
                                    DType t = DType::f32) {
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Linear>(nn::LinearOptions(in, hidden).dtype(t)));
  for (int i = 0; i < layers; ++i) {
    seq->push_back(std::make_shared<nn::ReLU>());
    seq->push_back(std::make_shared<nn::Linear>(nn::LinearOptions(hidden, hidden).dtype(t)));
  }
  seq->push_back(std::make_shared<nn::ReLU>());
  seq->push_back(std::make_shared<nn::Linear>(nn::LinearOptions(hidden, out).dtype(t)));
  return seq;
}

// The parameters' bytes, in order.
std::vector<char> param_bytes(nn::Module& m) {
  std::vector<char> out;
  for (const Tensor& p : m.parameters()) {
    if (p.dtype() == DType::f32) {
      auto v = p.to_vector<float>();
      const char* b = reinterpret_cast<const char*>(v.data());
      out.insert(out.end(), b, b + v.size() * sizeof(float));
    } else {
      auto v = p.to_vector<double>();
      const char* b = reinterpret_cast<const char*>(v.data());
      out.insert(out.end(), b, b + v.size() * sizeof(double));
    }
  }
  return out;
}

// Rank 0's bytes against this rank's.
bool same_as_rank0(const std::vector<char>& mine) {
  std::vector<char> ref = mine;
  dist::detail::broadcast(ref.data(), ref.size(), "the test's comparison");
  return ref == mine;
}

// A seeded batch of `n` rows starting at row `first` of a fixed dataset.
Tensor rows(int64_t first, int64_t n, int64_t width, DType t) {
  std::vector<double> v(static_cast<size_t>(n * width));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < width; ++j)
      v[static_cast<size_t>(i * width + j)] =
          std::sin(0.37 * static_cast<double>((first + i) * width + j) + 0.1);
  Tensor x = from_vector(v, {n, width});
  return t == DType::f64 ? x : x.to(t);
}
Tensor labels(int64_t first, int64_t n, int64_t classes) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = (first + i) * 7 % classes;
  return from_vector(v, {n});
}

int fail(const std::string& what) {
  std::fprintf(stderr, "rank %d: FAILED: %s\n", dist::rank(), what.c_str());
  return 1;
}

int identical() {
  // Each rank initialises from its own seed: the broadcast from rank 0 must make them equal.
  Session s({.seed = 3 + static_cast<uint64_t>(dist::rank()),
             .data_parallel = true,
             .bucket_bytes = 4096});
  auto model = mlp(16, 32, 4, 3);
  auto params = model->parameters();
  optim::SGD opt(params, optim::SGDOptions(0.05).momentum(0.9));
  const int r = dist::rank();
  for (int step = 0; step < 5; ++step) {
    Tensor loss = cross_entropy(model->forward(rows(64 * r + step, 32, 16, DType::f32)),
                                labels(64 * r + step, 32, 4));
    loss.backward();
    opt.step();
    if (!same_as_rank0(param_bytes(*model)))
      return fail("parameters differ from rank 0's after step " + std::to_string(step));
    if (r == 0) std::printf("%s\n", s.last_report().str().c_str());
  }
  if (s.last_report().buckets < 2)
    return fail("expected several buckets, got " + std::to_string(s.last_report().buckets));
  std::printf("rank %d: parameters bitwise equal to rank 0's after each of 5 steps\n", r);
  return 0;
}

// The largest parameter difference between N ranks x batch b/N and 1 rank x batch b (a local
// session in this process), after 5 SGD steps.
double match_difference(DType t) {
  const int64_t b = 24, world = dist::world_size(), r = dist::rank();
  auto train = [&](bool data_parallel, int64_t first, int64_t n) {
    Session s({.seed = 5, .data_parallel = data_parallel, .bucket_bytes = 2048});
    auto model = mlp(8, 16, 3, 2, t);
    optim::SGD opt(model->parameters(), optim::SGDOptions(0.1));
    for (int step = 0; step < 5; ++step) {
      Tensor loss = cross_entropy(model->forward(rows(step * b + first, n, 8, t)),
                                  labels(step * b + first, n, 3));
      loss.backward();
      opt.step();
    }
    std::vector<double> out;
    for (const Tensor& p : model->parameters()) {
      auto v = p.to(DType::f64).to_vector<double>();
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  };
  const std::vector<double> dp = train(true, r * (b / world), b / world),
                            local = train(false, 0, b);
  double worst = 0;
  for (size_t i = 0; i < dp.size(); ++i) worst = std::max(worst, std::abs(dp[i] - local[i]));
  std::printf(
      "rank %d, %s: %lld ranks x batch %lld against 1 rank x batch %lld: largest difference %.3g\n",
      dist::rank(), dtype_name(t), static_cast<long long>(world), static_cast<long long>(b / world),
      static_cast<long long>(b), worst);
  return worst;
}

int match() {
  // f64: the same up to rounding (the mean of the ranks' means against one mean); f32: within the
  // tolerance README.md documents.
  const double f64 = match_difference(DType::f64), f32 = match_difference(DType::f32);
  if (!(f64 <= 1e-12)) return fail("f64 parameters differ by " + std::to_string(f64));
  if (!(f32 <= 1e-5)) return fail("f32 parameters differ by " + std::to_string(f32));
  return 0;
}

int budget() {
  auto run = [&](const std::string& budget, std::string& report) {
    Session s({.seed = 9, .memory_budget = budget, .data_parallel = true, .bucket_bytes = 1024});
    auto net = std::make_shared<nn::Sequential>();
    net->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 6, 3).padding(1)));
    net->push_back(std::make_shared<nn::BatchNorm2d>(6));
    net->push_back(std::make_shared<nn::ReLU>());
    for (int i = 0; i < 3; ++i) {
      net->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(6, 6, 3).padding(1)));
      net->push_back(std::make_shared<nn::ReLU>());
    }
    auto head = std::make_shared<nn::Linear>(6 * 12 * 12, 4);
    std::vector<Tensor> params = net->parameters();
    for (const Tensor& p : head->parameters()) params.push_back(p);
    optim::AdamW opt(params, optim::AdamWOptions(1e-2));
    const int r = dist::rank();
    for (int step = 0; step < 5; ++step) {
      Tensor x = rows(50 * r + step, 8 * 3 * 12, 12, DType::f32).reshape({8, 3, 12, 12});
      Tensor loss =
          cross_entropy(head->forward(net->forward(x).flatten(1)), labels(8 * r + step, 8, 4));
      loss.backward();
      opt.step();
    }
    report = s.last_report().str();
    std::vector<char> out;
    for (const Tensor& p : params) {
      auto v = p.to_vector<float>();
      const char* c = reinterpret_cast<const char*>(v.data());
      out.insert(out.end(), c, c + v.size() * sizeof(float));
    }
    return out;
  };
  std::string r1, r2, r3, r4;
  const std::vector<char> unlimited = run("", r1);
  const std::vector<char> half = run("0.5", r2);
  // At 0.8 the plan is made short of the budget so that no computation waits for an all-reduce
  // (the fresh layout of the plan on streams misses the budget by a little otherwise).
  const std::vector<char> roomy = run("0.8", r4);
  if (r4.find("short for them") == std::string::npos)
    return fail("at 0.8 the plan left no room for the all-reduces: " + r4);
  // The smallest budget of this rank's step (the error of too small a one names it); every rank
  // asks, so the ranks stay in step.
  std::string smallest;
  try {
    run("0.0001", r3);
  } catch (const InfeasibleBudget& e) {
    smallest = std::to_string(e.smallest_feasible_bytes) + "B";
  }
  if (smallest == "0B" || smallest.empty()) return fail("no smallest budget named");
  const std::vector<char> tight = run(smallest, r3);
  if (dist::rank() == 0)
    std::printf("unlimited: %s\n0.5: %s\n0.8: %s\n%s: %s\n", r1.c_str(), r2.c_str(), r4.c_str(),
                smallest.c_str(), r3.c_str());
  if (unlimited != half) return fail("data parallel at 0.5 differs from data parallel unlimited");
  if (unlimited != roomy)
    return fail("data parallel at 0.8 (room left for the all-reduces) differs from unlimited");
  if (unlimited != tight)
    return fail("data parallel at the smallest budget differs from data parallel unlimited");
  if (!same_as_rank0(unlimited)) return fail("ranks differ");
  std::printf(
      "rank %d: budgets 0.5, 0.8 and %s (the smallest) bitwise equal to unlimited, and to rank "
      "0's\n",
      dist::rank(), smallest.c_str());
  return 0;
}

int mismatch() {
  Session s({.seed = 1, .data_parallel = true});
  auto model = mlp(8, dist::rank() == 1 ? 12 : 16, 3, 1);
  optim::SGD opt(model->parameters(), optim::SGDOptions(0.1));
  try {
    Tensor loss = cross_entropy(model->forward(rows(0, 4, 8, DType::f32)), labels(0, 4, 3));
    loss.backward();
    opt.step();
  } catch (const Error& e) {
    const std::string what = e.what();
    std::printf("rank %d: %s\n", dist::rank(), what.c_str());
    if (what.find("different step graphs") == std::string::npos ||
        what.find("node ") == std::string::npos)
      return fail("the error does not name the differing node");
    return 0;
  }
  return fail("no error for ranks with different models");
}

// Rank 1 stops at step 2: sleeping (hang) or exiting (die); rank 0 must not wait forever.
int stop(bool die) {
  Session s({.seed = 1, .data_parallel = true});
  auto model = mlp(8, 16, 3, 1);
  optim::SGD opt(model->parameters(), optim::SGDOptions(0.1));
  const auto t0 = std::chrono::steady_clock::now();
  try {
    for (int step = 0; step < 4; ++step) {
      if (step == 2 && dist::rank() == 1) {
        if (die) _exit(3);
        std::this_thread::sleep_for(std::chrono::seconds(600));
      }
      Tensor loss = cross_entropy(model->forward(rows(step, 4, 8, DType::f32)), labels(step, 4, 3));
      loss.backward();
      opt.step();
    }
  } catch (const Error& e) {
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "rank %d: error after %.1f s: %s\n", dist::rank(), waited, e.what());
    dist::finalize();  // aborts the job: the collective failed
    return 2;
  }
  return fail("the step completed although rank 1 stopped");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  dist::init();
  if (dist::world_size() < 2 && mode != "single") {
    std::printf("dist_check %s: needs 2 ranks (run under mpirun -np 2), got %d\n", mode.c_str(),
                dist::world_size());
    return 1;
  }
  int rc = 1;
  try {
    if (mode == "identical")
      rc = identical();
    else if (mode == "match")
      rc = match();
    else if (mode == "budget")
      rc = budget();
    else if (mode == "mismatch")
      rc = mismatch();
    else if (mode == "hang")
      rc = stop(false);
    else if (mode == "die")
      rc = stop(true);
    else
      std::fprintf(stderr, "dist_check: unknown mode '%s'\n", mode.c_str());
  } catch (const std::exception& e) {
    rc = fail(e.what());
  }
  dist::finalize();
  return rc;
}

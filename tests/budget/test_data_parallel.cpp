// Data parallel on one rank (no mpirun): backward() records the gradient buckets and their
// all-reduces, which run on a communication stream; the results are bitwise those of a session
// without data parallel, unlimited and under budgets (tests/dist runs 2 ranks under mpirun).
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "lethe.h"

using namespace lethe;

namespace {

std::shared_ptr<nn::Sequential> net() {
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 4, 3).padding(1)));
  seq->push_back(std::make_shared<nn::BatchNorm2d>(4));
  seq->push_back(std::make_shared<nn::ReLU>());
  seq->push_back(std::make_shared<nn::Dropout>(0.25));
  for (int i = 0; i < 3; ++i) {
    seq->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(4, 4, 3).padding(1)));
    seq->push_back(std::make_shared<nn::ReLU>());
  }
  seq->push_back(std::make_shared<nn::Flatten>());
  seq->push_back(std::make_shared<nn::Linear>(4 * 10 * 10, 3));
  return seq;
}

struct Run {
  std::vector<std::vector<float>> state;
  std::vector<float> losses;
  std::vector<StepReport> reports;
};

Run train(const std::string& budget, bool data_parallel, size_t bucket_bytes = 1024,
          int streams = 1) {
  Session s({.seed = 11,
             .memory_budget = budget,
             .num_threads = 2,
             .streams = streams,
             .data_parallel = data_parallel,
             .bucket_bytes = bucket_bytes});
  auto m = net();
  optim::AdamW opt(m->parameters(), optim::AdamWOptions(1e-2));
  Tensor x = randn({6, 3, 10, 10});
  Tensor y = from_vector<int64_t>({0, 1, 2, 2, 1, 0}, {6});
  Run r;
  for (int i = 0; i < 6; ++i) {
    Tensor loss = cross_entropy(m->forward(x), y);
    loss.backward();
    opt.step();
    r.losses.push_back(loss.item<float>());
    r.reports.push_back(s.last_report());
    if (!budget.empty())
      CHECK_MESSAGE(s.last_report().peak_bytes <= s.last_report().budget_bytes,
                    s.last_report().str());
  }
  for (auto& p : m->parameters()) r.state.push_back(p.to_vector<float>());
  for (auto& b : m->buffers()) r.state.push_back(b.to_vector<float>());
  return r;
}

}  // namespace

TEST_CASE("data parallel: one rank is bitwise a session without it, unlimited and under budgets" *
          doctest::test_suite("executor")) {
  const Run ref = train("", false);
  // The buckets and the copies out of them are memory of the step: its smallest budget is found
  // by asking for too little.
  std::string smallest;
  try {
    train("0.0001", true, 1024, 1);
  } catch (const InfeasibleBudget& e) {
    REQUIRE(e.smallest_feasible_bytes > 0);
    smallest = std::to_string(e.smallest_feasible_bytes) + "B";
  }
  REQUIRE(!smallest.empty());
  for (const std::string budget : {std::string(), std::string("1"), std::string("0.5"), smallest})
    for (const int streams : {1, 2}) {
      CAPTURE(budget);
      CAPTURE(streams);
      const Run r = train(budget, true, 1024, streams);
      CHECK(r.losses == ref.losses);
      CHECK(r.state == ref.state);
      for (const StepReport& rep : r.reports) {
        // Every parameter's gradient went through a bucket of at most 1 KiB (or one gradient).
        CHECK(rep.buckets >= 3);
        CHECK(rep.allreduce_bytes > 0);
        // The all-reduces ran on a stream of their own beside the compute stream(s) (an unlimited
        // step computes on one).
        CHECK(rep.streams == (budget.empty() ? 2 : streams + 1));
        CHECK(rep.str().find("all-reduce") != std::string::npos);
      }
    }
}

TEST_CASE("data parallel: buckets follow bucket_bytes, one per step when it holds every gradient" *
          doctest::test_suite("executor")) {
  const Run small = train("", true, 1);
  const Run large = train("", true, size_t{25} << 20);
  const size_t params = net()->parameters().size();
  CHECK(small.reports.back().buckets == params);  // every gradient overflows a 1-byte bucket
  CHECK(large.reports.back().buckets == 1);
  CHECK(small.state == large.state);
}

TEST_CASE("data parallel: .grad() holds the averaged gradient before the step, as without it") {
  std::vector<std::vector<float>> grads[2];
  for (const bool dp : {false, true}) {
    Session s({.seed = 2, .data_parallel = dp, .bucket_bytes = 256});
    auto m = net();
    Tensor loss =
        cross_entropy(m->forward(randn({2, 3, 10, 10})), from_vector<int64_t>({0, 2}, {2}));
    loss.backward();
    for (auto& p : m->parameters()) grads[dp].push_back(p.grad().to_vector<float>());
  }
  CHECK(grads[0] == grads[1]);
}

TEST_CASE("DistributedSampler: equal shares of one seeded order, padded or cut, new each epoch") {
  using data::DistributedSampler;
  using data::DistributedSamplerOptions;
  for (const bool drop_last : {false, true})
    for (const int64_t n : {10, 11, 12, 13}) {
      CAPTURE(n);
      CAPTURE(drop_last);
      std::vector<int64_t> all;
      std::set<int64_t> distinct;
      const int64_t replicas = 4;
      for (int64_t r = 0; r < replicas; ++r) {
        DistributedSampler s(
            n, DistributedSamplerOptions().num_replicas(replicas).rank(r).seed(7).drop_last(
                   drop_last));
        const auto mine = s.indices(3);
        CHECK(static_cast<int64_t>(mine.size()) == s.size());
        CHECK(s.size() == (drop_last ? n / replicas : (n + replicas - 1) / replicas));
        CHECK(mine ==
              DistributedSampler(
                  n, DistributedSamplerOptions().num_replicas(replicas).rank(r).seed(7).drop_last(
                         drop_last))
                  .indices(3));
        CHECK(mine != s.indices(4));
        all.insert(all.end(), mine.begin(), mine.end());
        distinct.insert(mine.begin(), mine.end());
      }
      for (int64_t i : all) CHECK((i >= 0 && i < n));
      // Without drop_last every sample is seen (the padding repeats some); with it, none twice.
      if (drop_last)
        CHECK(distinct.size() == all.size());
      else
        CHECK(static_cast<int64_t>(distinct.size()) == n);
    }
  // One rank by default without mpirun: the whole dataset, in the DataLoader's shuffled order.
  DistributedSampler whole(9, DistributedSamplerOptions().seed(5));
  CHECK(whole.num_replicas() == 1);
  CHECK(whole.indices(2) == data::shuffled_order(9, 5, 2));
  CHECK_THROWS_WITH_AS(DistributedSampler(9, DistributedSamplerOptions().num_replicas(2).rank(2)),
                       doctest::Contains("rank 2 is not in [0, 2)"), Error);
}

TEST_CASE("DistributedSampler: a DataLoader iterates this rank's share") {
  std::vector<float> values(10);
  std::vector<int64_t> targets(10);
  for (int i = 0; i < 10; ++i)
    values[static_cast<size_t>(i)] = static_cast<float>(targets[static_cast<size_t>(i)] = i);
  auto ds = std::make_shared<data::TensorDataset>(values, Shape{1}, targets);
  auto sampler = std::make_shared<data::DistributedSampler>(
      10, data::DistributedSamplerOptions().num_replicas(2).rank(1).shuffle(false));
  data::DataLoader loader(ds, data::DataLoaderOptions().batch_size(2).sampler(sampler));
  CHECK(loader.size() == 3);
  std::vector<int64_t> seen;
  for (const auto& b : loader) {
    auto v = b.target.to_vector<int64_t>();
    seen.insert(seen.end(), v.begin(), v.end());
  }
  CHECK(seen == std::vector<int64_t>{1, 3, 5, 7, 9});
  CHECK_THROWS_WITH_AS(
      data::DataLoader(ds, data::DataLoaderOptions().shuffle(true).sampler(sampler)),
      doctest::Contains("mutually exclusive"), Error);
}

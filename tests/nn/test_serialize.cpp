// State dicts (PyTorch's names and order), safetensors files, and training checkpoints that resume
// bitwise under any budget.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lethe.h"

using namespace lethe;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("lethe_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

std::vector<std::vector<unsigned char>> values(const StateDict& sd) {
  std::vector<std::vector<unsigned char>> v;
  for (const auto& [k, t] : sd) v.push_back(t.to_bytes());
  return v;
}

// Every module of nn with parameters or buffers, built by `make` (called in the current session).
std::vector<std::pair<std::string, std::function<std::shared_ptr<nn::Module>()>>> modules() {
  return {
      {"Linear", [] { return std::make_shared<nn::Linear>(5, 3); }},
      {"Linear without bias",
       [] { return std::make_shared<nn::Linear>(nn::LinearOptions(5, 3).bias(false)); }},
      {"Conv2d", [] { return std::make_shared<nn::Conv2d>(nn::Conv2dOptions(4, 6, 3).groups(2)); }},
      {"BatchNorm2d", [] { return std::make_shared<nn::BatchNorm2d>(7); }},
      {"LayerNorm",
       [] {
         return std::make_shared<nn::LayerNorm>(nn::LayerNormOptions({2, 4}));
       }},
      {"Embedding", [] { return std::make_shared<nn::Embedding>(11, 4); }},
      {"MultiheadAttention", [] { return std::make_shared<nn::MultiheadAttention>(8, 2); }},
      {"TransformerBlock",
       [] {
         return std::make_shared<nn::TransformerBlock>(
             nn::TransformerBlockOptions(8, 2).mlp_ratio(2));
       }},
      {"Sequential",
       [] {
         return std::make_shared<nn::Sequential>(
             std::make_shared<nn::Conv2d>(3, 4, 3), std::make_shared<nn::BatchNorm2d>(4),
             std::make_shared<nn::ReLU>(), std::make_shared<nn::Flatten>(),
             std::make_shared<nn::Linear>(4, 2));
       }},
  };
}

}  // namespace

TEST_CASE(
    "state_dict: PyTorch's names, in PyTorch's order (own parameters, own buffers, then "
    "children)") {
  Session s;
  nn::Sequential seq(std::make_shared<nn::Conv2d>(3, 4, 3), std::make_shared<nn::BatchNorm2d>(4),
                     std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(4, 2));
  CHECK(seq.state_dict().keys() == std::vector<std::string>{"0.weight", "0.bias", "1.weight",
                                                            "1.bias", "1.running_mean",
                                                            "1.running_var", "3.weight", "3.bias"});
  nn::TransformerBlock block(nn::TransformerBlockOptions(8, 2));
  const auto keys = block.state_dict().keys();
  CHECK(keys.front() == "ln1.weight");
  CHECK(std::find(keys.begin(), keys.end(), "attn.qkv.weight") != keys.end());
  CHECK(std::find(keys.begin(), keys.end(), "fc2.bias") != keys.end());
}

TEST_CASE(
    "save/load: every module's state dict round-trips bit for bit through a safetensors file") {
  for (const auto& [name, make] : modules()) {
    CAPTURE(name);
    const std::string path = temp_path("module.safetensors");
    std::vector<std::vector<unsigned char>> saved;
    {
      Session s({.seed = 1});
      auto m = make();
      // Buffers too: give the running statistics values other than their initial ones.
      for (auto& [k, b] : m->named_buffers()) b.assign(randn(b.shape(), b.dtype()));
      save(path, m->state_dict(), {{"note", "test"}});
      saved = values(m->state_dict());
    }
    Session s({.seed = 2});  // another initialisation: every value must come from the file
    auto m = make();
    Loaded l = load(path);
    CHECK(l.metadata.at("note") == "test");
    CHECK(l.tensors.keys() == m->state_dict().keys());
    const nn::LoadStateDictResult r = m->load_state_dict(l.tensors);
    CHECK(r.ok());
    CHECK(values(m->state_dict()) == saved);
    std::remove(path.c_str());
  }
}

TEST_CASE(
    "load_state_dict: strict names missing and unexpected keys and changes nothing, non-strict "
    "reports them") {
  Session s({.seed = 3});
  nn::Linear a(4, 3), b(4, 3);
  const auto before = values(b.state_dict());
  StateDict sd;
  sd.insert("weight", a.weight);
  sd.insert("extra", a.bias);
  std::string msg;
  try {
    b.load_state_dict(sd);
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("missing keys: bias") != std::string::npos);
  CHECK(msg.find("unexpected keys: extra") != std::string::npos);
  CHECK(values(b.state_dict()) == before);
  const nn::LoadStateDictResult r = b.load_state_dict(sd, false);
  CHECK(r.missing_keys == std::vector<std::string>{"bias"});
  CHECK(r.unexpected_keys == std::vector<std::string>{"extra"});
  CHECK(b.weight.to_vector<float>() == a.weight.to_vector<float>());
  CHECK(b.bias.to_bytes() == before[1]);  // not in the state dict: left as it was
}

TEST_CASE("load_state_dict: a shape or dtype that differs is named, and nothing is loaded") {
  Session s({.seed = 4});
  nn::Linear m(4, 3);
  const auto before = values(m.state_dict());
  StateDict wrong_shape;
  wrong_shape.insert("weight", randn({3, 5}));
  wrong_shape.insert("bias", zeros({3}));
  CHECK_THROWS_WITH_AS(m.load_state_dict(wrong_shape),
                       doctest::Contains("'weight' has shape [3, 5]"), Error);
  StateDict wrong_dtype;
  wrong_dtype.insert("weight", randn({3, 4}));
  wrong_dtype.insert("bias", zeros({3}, DType::f64));
  CHECK_THROWS_WITH_AS(m.load_state_dict(wrong_dtype), doctest::Contains("'bias' is f64"), Error);
  CHECK(values(m.state_dict()) == before);
}

TEST_CASE("load_state_dict: PyTorch's num_batches_tracked is accepted by batch norm") {
  Session s;
  nn::Sequential seq(std::make_shared<nn::BatchNorm2d>(3));
  StateDict sd = seq.state_dict();
  sd.insert("0.num_batches_tracked", from_vector<int64_t>({5}, Shape{}));
  CHECK(seq.load_state_dict(sd).ok());
}

TEST_CASE("load: a dtype Lethe has no tensors of is named with its tensor") {
  const std::string path = temp_path("f16.safetensors");
  {
    // An F16 tensor "h" of 2 elements, written by hand in the format.
    const std::string header = R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})";
    std::string pad(8 - header.size() % 8, ' ');
    const uint64_t n = header.size() + (header.size() % 8 ? pad.size() : 0);
    std::ofstream f(path, std::ios::binary);
    for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
    f << header << (header.size() % 8 ? pad : "") << std::string(4, '\0');
  }
  CHECK_THROWS_WITH_AS(load(path), doctest::Contains("'h' is F16"), Error);
  std::remove(path.c_str());
}

TEST_CASE("optimizers: SGD's momentum and AdamW's moments and step counts round-trip") {
  for (int which = 0; which < 2; ++which) {
    CAPTURE(which);
    Session s({.seed = 5});
    nn::Linear m(6, 4);
    Tensor x = randn({8, 6});
    std::unique_ptr<optim::Optimizer> a, b;
    if (which == 0) {
      a = std::make_unique<optim::SGD>(m.parameters(), optim::SGDOptions(0.1).momentum(0.9));
      b = std::make_unique<optim::SGD>(m.parameters(), optim::SGDOptions(0.3).momentum(0.9));
    } else {
      a = std::make_unique<optim::AdamW>(m.parameters(), optim::AdamWOptions(1e-2));
      b = std::make_unique<optim::AdamW>(m.parameters(), optim::AdamWOptions(5e-2));
    }
    for (int i = 0; i < 2; ++i) {
      a->zero_grad();
      m.forward(x).pow(2).sum().backward();
      a->step();
    }
    const optim::OptimizerState st = a->state_dict();
    CHECK(st.fields.at("type") == (which == 0 ? "SGD" : "AdamW"));
    CHECK(st.fields.at("step_count") == "2");
    CHECK(st.tensors.size() == (which == 0 ? 2u : 4u));
    b->load_state_dict(st);
    CHECK(b->lr() == a->lr());
    CHECK(b->step_count() == 2);
    const optim::OptimizerState back = b->state_dict();
    CHECK(back.fields == st.fields);
    CHECK(values(back.tensors) == values(st.tensors));
    // The state is b's own copy, not a's tensors.
    for (const auto& [k, t] : back.tensors) CHECK(t.impl() != st.tensors.at(k).impl());
    // A state of the other type is refused.
    std::unique_ptr<optim::Optimizer> other;
    if (which == 0)
      other = std::make_unique<optim::AdamW>(m.parameters(), optim::AdamWOptions());
    else
      other = std::make_unique<optim::SGD>(m.parameters(), optim::SGDOptions(0.1));
    CHECK_THROWS_AS(other->load_state_dict(st), Error);
  }
}

namespace {

// A small CNN with batch norm and dropout over a shuffled synthetic dataset, AdamW and a schedule:
// every piece of state a resumed run needs (weights, buffers, moments, step counts, learning rate,
// dropout's random stream, the data order).
struct Trainer {
  std::shared_ptr<nn::Sequential> net;
  std::shared_ptr<optim::AdamW> opt;
  std::shared_ptr<optim::CosineWarmupLR> sched;
  std::shared_ptr<data::DataLoader> loader;
  data::DataLoader::Iterator it;
  int64_t step = 0;

  Trainer() {
    net = std::make_shared<nn::Sequential>(
        std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2, 4, 3).padding(1)),
        std::make_shared<nn::BatchNorm2d>(4), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::Dropout>(0.3), std::make_shared<nn::Flatten>(),
        std::make_shared<nn::Linear>(4 * 6 * 6, 3));
    net->train();
    opt = std::make_shared<optim::AdamW>(net->parameters(), optim::AdamWOptions(3e-2));
    sched = std::make_shared<optim::CosineWarmupLR>(*opt, 2, 12, 1e-3);
    std::vector<float> xs(40 * 2 * 6 * 6);
    for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>((i * 37 % 101) - 50) / 50.0f;
    std::vector<int64_t> ys(40);
    for (size_t i = 0; i < ys.size(); ++i) ys[i] = static_cast<int64_t>(i * 7 % 3);
    loader = std::make_shared<data::DataLoader>(
        std::make_shared<data::TensorDataset>(xs, Shape{2, 6, 6}, ys),
        data::DataLoaderOptions().batch_size(8).shuffle(true).seed(9));
    it = loader->begin();
  }
  double train_step() {
    if (it == loader->end()) it = loader->begin();
    Tensor loss = cross_entropy(net->forward(it->data), it->target);
    opt->zero_grad();
    loss.backward();
    opt->step();
    sched->step();
    ++it;
    ++step;
    return loss.item<double>();
  }
  TrainingProgress progress() const {
    return {.step = step,
            .loader_epoch = loader->epoch() - 1,
            .loader_batch = it.index(),
            .scheduler_step = sched->last_step()};
  }
  void resume(const TrainingProgress& p) {
    step = p.step;
    sched->set_step(p.scheduler_step);
    it = data::DataLoader::Iterator();  // free the current batch first: the arena has room for one
    it = loader->begin_at(p.loader_epoch, p.loader_batch);
  }
};

}  // namespace

TEST_CASE(
    "checkpoints: k steps, save, load in a new session, m more steps = k + m steps, bitwise, under "
    "any budget") {
  const int k = 4, m = 5;  // the loader has 5 batches: the resumed run crosses an epoch
  const std::string path = temp_path("resume.ckpt");
  // Budgets: unlimited, all of the activations, half of them, and the smallest the planner fits.
  std::vector<std::string> budgets = {"", "1", "0.5"};
  {
    // The smallest budget every step of the run fits: a later step can need more than the first
    // (it holds the next batch beside the kept values), so raise it to what each refusal names.
    std::string b = "0.0001";
    for (int attempt = 0; attempt < 8 && !b.empty(); ++attempt) {
      try {
        Session s({.seed = 7, .memory_budget = b});
        Trainer t;
        for (int i = 0; i < k + m; ++i) t.train_step();
        budgets.push_back(b);
        b.clear();
      } catch (const InfeasibleBudget& e) {
        REQUIRE(e.smallest_feasible_bytes > 0);
        b = std::to_string(e.smallest_feasible_bytes);
      }
    }
    REQUIRE(budgets.size() == 4);
  }
  for (const std::string& budget : budgets) {
    CAPTURE(budget);
    std::vector<double> straight;
    StateDict straight_state;
    std::vector<std::vector<unsigned char>> straight_values, straight_opt;
    {
      Session s({.seed = 7, .memory_budget = budget});
      Trainer t;
      for (int i = 0; i < k + m; ++i) straight.push_back(t.train_step());
      straight_values = values(t.net->state_dict());
      straight_opt = values(t.opt->state_dict().tensors);
    }
    std::vector<double> resumed;
    {
      Session s({.seed = 7, .memory_budget = budget});
      Trainer t;
      for (int i = 0; i < k; ++i) resumed.push_back(t.train_step());
      save_checkpoint(path, *t.net, *t.opt, t.progress());
    }
    {
      // Another seed, so other initial weights: all that matters must come from the checkpoint.
      Session s({.seed = 99, .memory_budget = budget});
      Trainer t;
      t.resume(load_checkpoint(path, *t.net, *t.opt));
      CHECK(t.step == k);
      for (int i = 0; i < m; ++i) resumed.push_back(t.train_step());
      CHECK(values(t.net->state_dict()) == straight_values);
      CHECK(values(t.opt->state_dict().tensors) == straight_opt);
    }
    REQUIRE(resumed.size() == straight.size());
    for (size_t i = 0; i < straight.size(); ++i)
      CHECK(std::memcmp(&resumed[i], &straight[i], sizeof(double)) == 0);
  }
  std::remove(path.c_str());
}

TEST_CASE(
    "checkpoints: a file of another kind, or of another model, is refused and changes nothing") {
  Session s({.seed = 8});
  const std::string weights = temp_path("weights.safetensors"), ckpt = temp_path("other.ckpt");
  nn::Linear a(4, 3);
  optim::SGD oa(a.parameters(), optim::SGDOptions(0.1));
  save(weights, a.state_dict());
  CHECK_THROWS_WITH_AS(load_checkpoint(weights, a, oa),
                       doctest::Contains("not a Lethe training checkpoint"), Error);
  save_checkpoint(ckpt, a, oa, {.step = 3});
  nn::Linear b(5, 3);
  optim::SGD ob(b.parameters(), optim::SGDOptions(0.2));
  const auto before = values(b.state_dict());
  CHECK_THROWS_WITH_AS(load_checkpoint(ckpt, b, ob), doctest::Contains("'weight' has shape [3, 4]"),
                       Error);
  CHECK(values(b.state_dict()) == before);
  CHECK(ob.lr() == 0.2);
  std::remove(weights.c_str());
  std::remove(ckpt.c_str());
}

TEST_CASE("checkpoints: a writer killed at any moment leaves the last good file intact") {
  const std::string path = temp_path("atomic.ckpt");
  Session s({.seed = 10});
  nn::Linear big(512, 1024);  // 2 MiB of weights: a write takes a while
  optim::SGD opt(big.parameters(), optim::SGDOptions(0.1));
  save_checkpoint(path, big, opt, {.step = 1});
  const auto good = values(big.state_dict());
  for (int delay_us : {0, 200, 500, 1000, 2000, 4000, 8000, 16000}) {
    CAPTURE(delay_us);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // Rewrite the file over and over with other values until killed.
      for (int i = 0;; ++i) {
        Session cs({.seed = static_cast<uint64_t>(100 + i)});
        nn::Linear other(512, 1024);
        optim::SGD o(other.parameters(), optim::SGDOptions(0.1));
        save_checkpoint(path, other, o, {.step = 2});
      }
    }
    ::usleep(static_cast<useconds_t>(delay_us));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    // Whatever the moment, the file is a complete checkpoint: the first one or one of the child's.
    nn::Linear back(512, 1024);
    optim::SGD ob(back.parameters(), optim::SGDOptions(0.1));
    const TrainingProgress p = load_checkpoint(path, back, ob);
    CHECK((p.step == 1 || p.step == 2));
    if (p.step == 1) CHECK(values(back.state_dict()) == good);
  }
  std::remove(path.c_str());
  for (const auto& e :
       std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
    if (e.path().filename().string().rfind(std::filesystem::path(path).filename().string() + ".tmp",
                                           0) == 0)
      std::filesystem::remove(e.path());  // the killed writers' temporaries
}

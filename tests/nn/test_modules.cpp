// nn modules: shapes, parameter names and counts, train/eval, initialisation statistics.
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <sstream>

#include "lethe.h"
#include "nn/nn.h"

using namespace lethe;
namespace nn = lethe::nn;

namespace {

struct Net : nn::UnaryModule {
  Net() : nn::UnaryModule("Net") {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(8, 16));
    drop = register_module("drop", std::make_shared<nn::Dropout>(0.5));
    fc2 =
        register_module("fc2", std::make_shared<nn::Linear>(nn::LinearOptions(16, 4).bias(false)));
  }
  Tensor forward(const Tensor& x) override {
    return fc2->forward(drop->forward(fc1->forward(x).relu()));
  }
  std::shared_ptr<nn::Linear> fc1, fc2;
  std::shared_ptr<nn::Dropout> drop;
};

std::vector<std::string> names(const std::vector<std::pair<std::string, Tensor>>& v) {
  std::vector<std::string> out;
  for (auto& [n, _] : v) out.push_back(n);
  return out;
}

struct Stats {
  double mean = 0, var = 0, lo = 0, hi = 0;
};
Stats stats(const Tensor& t) {
  auto v = t.to_vector<double>();
  Stats s;
  s.lo = *std::min_element(v.begin(), v.end());
  s.hi = *std::max_element(v.begin(), v.end());
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  for (double x : v) s.var += (x - s.mean) * (x - s.mean);
  s.var /= static_cast<double>(v.size());
  return s;
}

}  // namespace

TEST_CASE("Linear: shapes, parameter names and PyTorch's default initialisation bounds") {
  Session session({.seed = 7});
  nn::Linear fc(784, 256);
  CHECK(fc.weight.shape() == Shape{256, 784});
  CHECK(fc.bias.shape() == Shape{256});
  CHECK(names(fc.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(fc.num_parameters() == 784 * 256 + 256);
  CHECK(fc.weight.requires_grad());
  CHECK(fc.forward(randn({5, 784})).shape() == Shape{5, 256});
  CHECK(fc.forward(randn({2, 3, 784})).shape() == Shape{2, 3, 256});
  CHECK_THROWS_WITH_AS(fc.forward(randn({5, 100})), doctest::Contains("784"), Error);
  // kaiming_uniform(a = sqrt(5)) is uniform in ±1/sqrt(fan_in): variance bound²/3.
  const double bound = 1.0 / std::sqrt(784.0);
  Stats w = stats(fc.weight);
  CHECK(w.lo >= -bound);
  CHECK(w.hi <= bound);
  CHECK(std::fabs(w.mean) < bound * 0.02);
  CHECK(w.var == doctest::Approx(bound * bound / 3).epsilon(0.02));
  Stats b = stats(fc.bias);
  CHECK(b.lo >= -bound);
  CHECK(b.hi <= bound);
  nn::Linear nb(nn::LinearOptions(4, 3).bias(false));
  CHECK_FALSE(nb.bias.defined());
  CHECK(nb.parameters().size() == 1);
}

TEST_CASE("the same seed initialises identically, another seed differently") {
  auto init = [](uint64_t seed) {
    Session session({.seed = seed});
    return nn::Linear(16, 8).weight.to_vector<float>();
  };
  CHECK(init(1) == init(1));
  CHECK(init(1) != init(2));
}

TEST_CASE("initialisers follow their distributions") {
  Session session({.seed = 11});
  Tensor t = zeros({400, 500});
  nn::init::kaiming_normal_(t, 0.0, "fan_in", "relu");
  Stats k = stats(t);
  CHECK(std::fabs(k.mean) < 0.002);
  CHECK(std::sqrt(k.var) == doctest::Approx(std::sqrt(2.0 / 500)).epsilon(0.02));
  nn::init::kaiming_uniform_(t, 0.0, "fan_out", "relu");
  Stats ku = stats(t);
  const double kb = std::sqrt(2.0) * std::sqrt(3.0 / 400);
  CHECK(ku.hi <= kb);
  CHECK(ku.var == doctest::Approx(kb * kb / 3).epsilon(0.02));
  nn::init::xavier_uniform_(t);
  Stats xu = stats(t);
  const double xb = std::sqrt(6.0 / 900);
  CHECK(xu.lo >= -xb);
  CHECK(xu.hi <= xb);
  CHECK(xu.var == doctest::Approx(xb * xb / 3).epsilon(0.02));
  nn::init::xavier_normal_(t, 2.0);
  CHECK(std::sqrt(stats(t).var) == doctest::Approx(2.0 * std::sqrt(2.0 / 900)).epsilon(0.02));
  nn::init::normal_(t, 3.0, 0.5);
  Stats n = stats(t);
  CHECK(n.mean == doctest::Approx(3.0).epsilon(0.002));
  CHECK(std::sqrt(n.var) == doctest::Approx(0.5).epsilon(0.02));
  nn::init::uniform_(t, -2, 4);
  Stats u = stats(t);
  CHECK(u.lo >= -2);
  CHECK(u.hi < 4);
  CHECK(u.mean == doctest::Approx(1.0).epsilon(0.01));
  nn::init::ones_(t);
  CHECK(stats(t).lo == 1.0);
  nn::init::zeros_(t);
  CHECK(stats(t).hi == 0.0);
  CHECK(nn::init::calculate_fan_in_and_fan_out(Shape{32, 16, 3, 3}) ==
        std::pair<int64_t, int64_t>{144, 288});
  CHECK_THROWS_AS(nn::init::kaiming_uniform_(t, 0.0, "fan_middle"), Error);
  Tensor v = zeros({5});
  CHECK_THROWS_WITH_AS(nn::init::xavier_uniform_(v), doctest::Contains("at least 2 dimensions"),
                       Error);
}

TEST_CASE("nested modules name their parameters by path, train/eval recurses") {
  Session session({.seed = 3});
  auto net = std::make_shared<Net>();
  CHECK(names(net->named_parameters()) ==
        std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight"});
  CHECK(net->parameters(/*recurse=*/false).empty());
  CHECK(net->children().size() == 3);
  CHECK(net->num_parameters() == 8 * 16 + 16 + 16 * 4);
  CHECK(net->is_training());
  CHECK(net->drop->is_training());
  net->eval();
  CHECK_FALSE(net->is_training());
  CHECK_FALSE(net->fc1->is_training());
  CHECK_FALSE(net->drop->is_training());
  Tensor x = randn({3, 8});
  // In eval, dropout is the identity: twice the same output.
  CHECK(net->forward(x).to_vector<float>() == net->forward(x).to_vector<float>());
  net->train();
  CHECK(net->drop->is_training());
  CHECK_THROWS_WITH_AS(net->register_module("fc1", std::make_shared<nn::ReLU>()),
                       doctest::Contains("already registered"), Error);
  CHECK_THROWS_WITH_AS(net->register_parameter("a.b", zeros({1})), doctest::Contains("'.'"), Error);
}

TEST_CASE("Sequential names layers by index and chains them") {
  Session session({.seed = 5});
  auto seq = std::make_shared<nn::Sequential>(
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(12, 6),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(6, 2));
  seq->push_back(std::make_shared<nn::Tanh>());
  CHECK(seq->size() == 5);
  CHECK(names(seq->named_parameters()) ==
        std::vector<std::string>{"1.weight", "1.bias", "3.weight", "3.bias"});
  Tensor y = seq->forward(randn({4, 3, 4}));
  CHECK(y.shape() == Shape{4, 2});
  for (float v : y.to_vector<float>()) CHECK(std::fabs(v) < 1.0f);
  std::ostringstream os;
  os << *seq;
  CHECK(os.str().find("(1): Linear(in_features=12, out_features=6, bias=true)") !=
        std::string::npos);
}

TEST_CASE("Conv2d, MaxPool2d: output shapes, groups and parameter shapes") {
  Session session({.seed = 9});
  nn::Conv2d conv(nn::Conv2dOptions(3, 16, 3).stride(2).padding(1));
  CHECK(conv.weight.shape() == Shape{16, 3, 3, 3});
  CHECK(conv.bias.shape() == Shape{16});
  CHECK(conv.forward(randn({2, 3, 8, 8})).shape() == Shape{2, 16, 4, 4});
  nn::Conv2d grouped(nn::Conv2dOptions(8, 8, 3).padding(1).groups(4).bias(false));
  CHECK(grouped.weight.shape() == Shape{8, 2, 3, 3});
  CHECK_FALSE(grouped.bias.defined());
  CHECK(grouped.forward(randn({1, 8, 5, 5})).shape() == Shape{1, 8, 5, 5});
  const double bound = 1.0 / std::sqrt(27.0);
  Stats w = stats(conv.weight);
  CHECK(w.lo >= -bound);
  CHECK(w.hi <= bound);
  CHECK_THROWS_WITH_AS(nn::Conv2d(nn::Conv2dOptions(6, 4, 3).groups(4)),
                       doctest::Contains("divisible"), Error);
  nn::MaxPool2d pool(2);
  CHECK(pool.forward(randn({2, 3, 8, 6})).shape() == Shape{2, 3, 4, 3});
}

TEST_CASE("BatchNorm2d: buffers, batch statistics in training, running statistics in eval") {
  Session session({.seed = 13});
  nn::BatchNorm2d bn(nn::BatchNorm2dOptions(3).momentum(0.5));
  CHECK(names(bn.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(names(bn.named_buffers()) == std::vector<std::string>{"running_mean", "running_var"});
  CHECK(bn.buffers().size() == 2);
  Tensor x = randn({4, 3, 5, 5}) * 2.0 + 1.0;
  Tensor y = bn.forward(x);
  CHECK(y.shape() == x.shape());
  session.flush();  // runs the running-statistics update (a side effect of the step)
  auto yv = y.to_vector<double>();
  double m0 = 0;  // channel 0 of a normalised batch has mean 0
  for (int n = 0; n < 4; ++n)
    for (int i = 0; i < 25; ++i) m0 += yv[static_cast<size_t>(n * 75 + i)];
  CHECK(std::fabs(m0 / 100) < 1e-5);
  auto xv = x.to_vector<double>();
  double xm = 0;
  for (int n = 0; n < 4; ++n)
    for (int i = 0; i < 25; ++i) xm += xv[static_cast<size_t>(n * 75 + i)];
  xm /= 100;
  CHECK(bn.running_mean.to_vector<double>()[0] == doctest::Approx(0.5 * xm).epsilon(1e-5));
  bn.eval();
  auto rm = bn.running_mean.to_vector<double>();
  auto rv = bn.running_var.to_vector<double>();
  Tensor ye = bn.forward(x);
  CHECK(ye.to_vector<double>()[0] ==
        doctest::Approx((xv[0] - rm[0]) / std::sqrt(rv[0] + 1e-5)).epsilon(1e-4));
  session.flush();
  CHECK(bn.running_mean.to_vector<double>() == rm);  // eval leaves the statistics alone
}

TEST_CASE("LayerNorm, Embedding, GELU, Dropout") {
  Session session({.seed = 17});
  nn::LayerNorm ln(nn::LayerNormOptions({6}).eps(1e-6));
  CHECK(ln.weight.shape() == Shape{6});
  Tensor y = ln.forward(randn({2, 3, 6}) * 3.0 + 2.0);
  auto v = y.to_vector<double>();
  double m = 0;
  for (int i = 0; i < 6; ++i) m += v[static_cast<size_t>(i)];
  CHECK(std::fabs(m / 6) < 1e-5);
  CHECK_THROWS_WITH_AS(ln.forward(randn({2, 5})), doctest::Contains("LayerNorm"), Error);

  nn::Embedding emb(10, 4);
  Tensor e = emb.forward(from_vector<int64_t>({1, 2, 3, 9, 0, 1}, Shape{2, 3}));
  CHECK(e.shape() == Shape{2, 3, 4});
  auto ev = e.to_vector<float>(), wv = emb.weight.to_vector<float>();
  CHECK(ev[20] == wv[4]);  // element [1][2] (flat index 5) looks up row 1
  CHECK_THROWS_AS(emb.forward(from_vector<float>({1.f})), Error);

  nn::GELU gelu;
  CHECK(gelu.forward(from_vector<float>({0.f, 1.f})).to_vector<float>()[1] ==
        doctest::Approx(0.8413447).epsilon(1e-5));
  nn::Dropout drop(0.5);
  Tensor ones_t = ones({1000});
  auto dv = drop.forward(ones_t).to_vector<float>();
  int zeros_n = 0;
  for (float d : dv) {
    CHECK((d == 0.f || d == 2.f));
    zeros_n += d == 0.f;
  }
  CHECK(zeros_n > 400);
  CHECK(zeros_n < 600);
  drop.eval();
  CHECK(drop.forward(ones_t).to_vector<float>() == std::vector<float>(1000, 1.f));
  CHECK_THROWS_AS(nn::Dropout(1.0), Error);
}

TEST_CASE("MultiheadAttention and TransformerBlock: shapes, names, causality") {
  Session session({.seed = 19});
  nn::MultiheadAttention mha(nn::MultiheadAttentionOptions(16, 4));
  CHECK(names(mha.named_parameters()) ==
        std::vector<std::string>{"qkv.weight", "qkv.bias", "out_proj.weight", "out_proj.bias"});
  CHECK(mha.qkv->weight.shape() == Shape{48, 16});
  Tensor x = randn({2, 5, 16});
  CHECK(mha.forward(x).shape() == Shape{2, 5, 16});
  CHECK(mha.forward(randn({5, 16})).shape() == Shape{5, 16});
  CHECK_THROWS_WITH_AS(nn::MultiheadAttention(10, 3), doctest::Contains("multiple"), Error);

  // Causal: changing the last position leaves the outputs of earlier positions unchanged.
  auto xv = x.to_vector<float>();
  auto x2v = xv;
  for (int i = 0; i < 16; ++i) x2v[static_cast<size_t>(4 * 16 + i)] += 1.0f;  // batch 0, position 4
  Tensor x2 = from_vector<float>(x2v, x.shape());
  auto a = mha.forward(x, true).to_vector<float>();
  auto b = mha.forward(x2, true).to_vector<float>();
  for (int i = 0; i < 4 * 16; ++i)
    CHECK(a[static_cast<size_t>(i)] == doctest::Approx(b[static_cast<size_t>(i)]));
  CHECK(a[4 * 16] != doctest::Approx(b[4 * 16]));
  auto c = mha.forward(x2, false).to_vector<float>();
  CHECK(c[0] != doctest::Approx(mha.forward(x, false).to_vector<float>()[0]));

  nn::TransformerBlock block(nn::TransformerBlockOptions(16, 2).mlp_ratio(4));
  CHECK(block.forward(x).shape() == Shape{2, 5, 16});
  // ln1 32 + qkv 816 + out_proj 272 + ln2 32 + fc1 1088 + fc2 1040
  CHECK(block.num_parameters() == 3280);
  auto n = names(block.named_parameters());
  CHECK(n.front() == "ln1.weight");
  CHECK(std::find(n.begin(), n.end(), "attn.qkv.weight") != n.end());
  CHECK(n.back() == "fc2.bias");
}

TEST_CASE("gradients reach every parameter of a module, zero_grad drops them") {
  Session session({.seed = 23});
  auto net = std::make_shared<Net>();
  net->eval();
  Tensor loss = net->forward(randn({4, 8})).pow(2.0).mean();
  loss.backward();
  for (auto& [name, p] : net->named_parameters()) {
    CHECK_MESSAGE(p.has_grad(), name);
    CHECK(p.grad().shape() == p.shape());
  }
  net->zero_grad();
  for (auto& p : net->parameters()) CHECK_FALSE(p.has_grad());
}

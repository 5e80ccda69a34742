#include "scheduler/generators.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "scheduler/plan_builder.h"
#include "scheduler/planner.h"

namespace lethe::sched {
namespace {

// Appends the backward part of a training graph whose last node is its loss: a gradient for every
// value with needs_grad that some consumer's gradient reaches. It reads its consumers' gradients
// and the inputs of its own op or, for a parameter, the activations its consumers multiplied it
// with. Parameter gradients become the outputs, after the loss. weight_cost(c) is what a parameter
// gradient pays per consumer c, input_cost(v) what the gradient of a non-parameter v costs.
void append_backward(Problem& p, const std::vector<uint8_t>& is_param,
                     const std::vector<uint8_t>& needs_grad, int64_t loss_grad_bytes,
                     double loss_grad_cost, const std::function<double(NodeId)>& weight_cost,
                     const std::function<double(NodeId)>& input_cost) {
  const NodeId loss = static_cast<NodeId>(p.nodes.size()) - 1;
  std::vector<std::vector<NodeId>> consumers(static_cast<size_t>(loss) + 1);
  for (const Node& v : p.nodes) {
    for (NodeId u : v.inputs) {
      if (consumers[u].empty() || consumers[u].back() != v.id) consumers[u].push_back(v.id);
    }
  }
  std::vector<NodeId> grad(static_cast<size_t>(loss) + 1, -1);
  auto add_grad = [&](NodeId v, std::vector<NodeId> inputs, int64_t bytes, double cost) {
    std::sort(inputs.begin(), inputs.end());
    inputs.erase(std::unique(inputs.begin(), inputs.end()), inputs.end());
    Node g;
    g.id = static_cast<NodeId>(p.nodes.size());
    g.name = "g_" + p.nodes[v].name;
    g.op = "grad";
    g.bytes = bytes;
    g.cost = cost;
    g.inputs = std::move(inputs);
    p.nodes.push_back(std::move(g));
    grad[v] = p.nodes.back().id;
  };
  add_grad(loss, {loss}, loss_grad_bytes, loss_grad_cost);
  for (NodeId v = loss - 1; v >= 0; --v) {
    if (!needs_grad[v]) continue;
    std::vector<NodeId> ins;
    double cost = 0.0;
    for (NodeId c : consumers[v]) {
      if (grad[c] < 0) continue;
      ins.push_back(grad[c]);
      if (is_param[v]) {
        for (NodeId u : p.nodes[c].inputs) {
          if (u != v && !is_param[u]) ins.push_back(u);
        }
        cost += weight_cost(c);
      }
    }
    if (ins.empty()) continue;
    if (!is_param[v]) {
      for (NodeId u : p.nodes[v].inputs) ins.push_back(u);
      cost = input_cost(v);
    }
    add_grad(v, std::move(ins), p.nodes[v].bytes, cost);
    if (is_param[v]) p.outputs.push_back(grad[v]);
  }
  p.outputs.insert(p.outputs.begin(), loss);
}

class Builder {
 public:
  Builder(const std::string& name, uint64_t seed)
      : rng_{seed * 0x2545F4914F6CDD1DULL + 0x1234567ULL} {
    p_.name = name;
    // Activations of a graph share a scale (16 KiB .. 1 MiB) and vary around it.
    base_ = rng_.uniform(16.0 * 1024, 1024.0 * 1024);
  }

  Rng& rng() { return rng_; }

  NodeId resident(const std::string& name, const std::string& op, int64_t bytes) {
    Node v;
    v.id = static_cast<NodeId>(p_.nodes.size());
    v.name = name;
    v.op = op;
    v.bytes = bytes;
    v.resident = true;
    p_.nodes.push_back(v);
    is_param_.push_back(op == "param");
    forward_op_.push_back(false);
    return v.id;
  }
  NodeId input() { return resident("x", "input", align(base_)); }
  NodeId param() {
    return resident("w" + std::to_string(p_.nodes.size()), "param",
                    align(rng_.uniform(4096, 262144)));
  }

  // scale: bytes relative to the graph's base size; work: cost per byte relative to elementwise
  // ops.
  NodeId op(const std::string& op, std::vector<NodeId> inputs, double scale = 1.0,
            double work = 1.0, bool with_param = false) {
    if (with_param) inputs.push_back(param());
    Node v;
    v.id = static_cast<NodeId>(p_.nodes.size());
    v.name = op + std::to_string(v.id);
    v.op = op;
    v.bytes = align(base_ * scale * rng_.uniform(0.5, 2.0));
    v.cost = static_cast<double>(v.bytes) * 1e-9 * work * rng_.uniform(0.5, 2.0);
    v.inputs = std::move(inputs);
    p_.nodes.push_back(std::move(v));
    is_param_.push_back(false);
    forward_op_.push_back(true);
    return p_.nodes.back().id;
  }

  // Loss over every forward sink, then the backward part; returns the finished problem.
  Problem finish() {
    const int nf = static_cast<int>(p_.nodes.size());
    std::vector<uint8_t> consumed(nf, 0);
    for (const Node& v : p_.nodes) {
      for (NodeId u : v.inputs) consumed[u] = 1;
    }
    std::vector<NodeId> sinks;
    for (int v = 0; v < nf; ++v) {
      if (forward_op_[v] && !consumed[v]) sinks.push_back(v);
    }
    const NodeId loss = static_cast<NodeId>(p_.nodes.size());
    Node l;
    l.id = loss;
    l.name = "loss";
    l.op = "loss";
    l.bytes = 4;
    l.cost = 1e-6;
    l.inputs = sinks;
    p_.nodes.push_back(std::move(l));
    // requires_grad: parameters and everything computed from one.
    std::vector<uint8_t> rg(nf + 1, 0);
    for (int v = 0; v <= loss; ++v) {
      if (v < nf && is_param_[v]) rg[v] = 1;
      for (NodeId u : p_.nodes[v].inputs) rg[v] = rg[v] || rg[u];
    }
    is_param_.push_back(false);
    append_backward(
        p_, is_param_, rg, 4, 1e-6,
        [&](NodeId c) { return p_.nodes[c].cost * rng_.uniform(0.8, 1.2); },
        [&](NodeId v) { return p_.nodes[v].cost * rng_.uniform(1.0, 2.0); });
    return std::move(p_);
  }

 private:
  static int64_t align(double b) {
    return std::max<int64_t>(64, static_cast<int64_t>(b / 64.0) * 64);
  }
  Problem p_;
  Rng rng_;
  double base_;
  std::vector<uint8_t> is_param_, forward_op_;
};

void gen_chain(Builder& b, int n) {
  NodeId x = b.input();
  for (int i = 0; i < n; ++i) {
    const bool linear = i % 2 == 0 || b.rng().chance(0.3);
    x = linear ? b.op("linear", {x}, 1.0, 4.0, true) : b.op("relu", {x});
  }
}

void gen_tree(Builder& b, int n) {
  const NodeId x = b.input();
  std::vector<NodeId> level;
  const int leaves = std::max(1, (n + 1) / 2);
  for (int i = 0; i < leaves; ++i) level.push_back(b.op("embed", {x}, 0.5, 4.0, true));
  while (level.size() > 1) {
    std::vector<NodeId> up;
    for (size_t i = 0; i + 1 < level.size(); i += 2)
      up.push_back(b.op("merge", {level[i], level[i + 1]}, 1.0, 4.0, true));
    if (level.size() % 2) up.push_back(level.back());
    level = std::move(up);
  }
}

void gen_grid(Builder& b, int n, int k) {
  const NodeId x = b.input();
  const int rows = std::max(1, n / k);
  std::vector<NodeId> prev(k, x), cur(k);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < k; ++c) {
      std::vector<NodeId> ins;
      for (int d = -1; d <= 1; ++d) {
        if (c + d >= 0 && c + d < k && (r > 0 || d == 0)) ins.push_back(prev[c + d]);
      }
      cur[c] = b.op("cell", ins, 1.0 / k, 3.0, r == 0 || b.rng().chance(0.5));
    }
    prev = cur;
  }
}

void gen_layered(Builder& b, int n, int k) {
  const NodeId x = b.input();
  std::vector<std::vector<NodeId>> layers{{x}};
  int made = 0;
  while (made < n) {
    const int w = std::min(n - made, 1 + b.rng().below(std::max(1, k)));
    std::vector<NodeId> layer;
    const auto& prev = layers.back();
    for (int i = 0; i < w; ++i) {
      std::vector<NodeId> ins{prev[b.rng().below(static_cast<int>(prev.size()))]};
      const int extra = b.rng().below(3);
      for (int e = 0; e < extra; ++e) {
        // Mostly the previous layer, sometimes a skip up to three layers back.
        const int back =
            b.rng().chance(0.2) ? std::min<int>(layers.size(), 1 + b.rng().below(3)) : 1;
        const auto& src = layers[layers.size() - back];
        ins.push_back(src[b.rng().below(static_cast<int>(src.size()))]);
      }
      std::sort(ins.begin(), ins.end());
      ins.erase(std::unique(ins.begin(), ins.end()), ins.end());
      layer.push_back(
          b.op("layer", ins, 1.0 / std::sqrt(static_cast<double>(w)), 3.0, b.rng().chance(0.6)));
    }
    made += w;
    layers.push_back(std::move(layer));
  }
}

void gen_unet(Builder& b, int n) {
  NodeId x = b.input();
  const int levels = std::clamp(n / 4, 1, 6);
  const int per = std::max(1, n / (2 * levels));
  std::vector<NodeId> skips;
  double scale = 2.0;
  for (int l = 0; l < levels; ++l) {
    for (int i = 0; i < per; ++i) x = b.op("conv", {x}, scale, 6.0, true);
    skips.push_back(x);
    scale /= 2.0;
  }
  for (int l = levels - 1; l >= 0; --l) {
    scale *= 2.0;
    x = b.op("up_concat", {x, skips[l]}, scale, 6.0, true);
    for (int i = 1; i < per; ++i) x = b.op("conv", {x}, scale, 6.0, true);
  }
}

void gen_transformer(Builder& b, int n) {
  NodeId x = b.input();
  const int blocks = std::max(1, n / 14);
  for (int i = 0; i < blocks; ++i) {
    const NodeId ln1 = b.op("layernorm", {x}, 1.0, 2.0, true);
    const NodeId q = b.op("q", {ln1}, 1.0, 4.0, true);
    const NodeId k = b.op("k", {ln1}, 1.0, 4.0, true);
    const NodeId v = b.op("v", {ln1}, 1.0, 4.0, true);
    const NodeId s = b.op("scores", {q, k}, 2.0, 4.0);
    const NodeId pr = b.op("softmax", {s}, 2.0, 2.0);
    const NodeId a = b.op("attend", {pr, v}, 1.0, 4.0);
    const NodeId o = b.op("proj", {a}, 1.0, 4.0, true);
    const NodeId r1 = b.op("add", {x, o});
    const NodeId ln2 = b.op("layernorm", {r1}, 1.0, 2.0, true);
    const NodeId m1 = b.op("mlp_up", {ln2}, 4.0, 4.0, true);
    const NodeId ge = b.op("gelu", {m1}, 4.0, 1.0);
    const NodeId m2 = b.op("mlp_down", {ge}, 1.0, 4.0, true);
    x = b.op("add", {r1, m2});
  }
}

void gen_densenet(Builder& b, int n, int k) {
  NodeId x = b.input();
  const int per_block = std::max(1, k);
  const int blocks = std::max(1, n / (per_block + 1));
  for (int bl = 0; bl < blocks; ++bl) {
    std::vector<NodeId> feats{x};
    for (int i = 0; i < per_block; ++i) feats.push_back(b.op("dense_conv", feats, 0.5, 6.0, true));
    x = b.op("transition", feats, 1.0, 3.0, true);
  }
}

}  // namespace

Problem resnet_graph(int blocks_per_stage, int stages, uint64_t seed) {
  Problem p;
  p.name = "resnet-b" + std::to_string(blocks_per_stage) + "x" + std::to_string(stages) + "-s" +
           std::to_string(seed);
  std::vector<uint8_t> is_param;
  uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
  auto jitter = [&] {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return 0.8 + 0.4 * static_cast<double>(s % 1000) / 1000.0;
  };
  auto add = [&](const std::string& op, std::vector<NodeId> ins, int64_t bytes, double cost,
                 bool resident) {
    Node v;
    v.id = static_cast<NodeId>(p.nodes.size());
    v.name = op + std::to_string(v.id);
    v.op = op;
    v.bytes = std::max<int64_t>(64, bytes / 64 * 64);
    v.cost = cost;
    v.inputs = std::move(ins);
    v.resident = resident;
    p.nodes.push_back(v);
    is_param.push_back(op == "param");
    return v.id;
  };
  auto param = [&](int64_t bytes) { return add("param", {}, bytes, 0, true); };
  const int64_t base = 1 << 20;
  NodeId x = add("input", {}, base, 0, true);
  is_param.back() = false;
  int64_t act = base * 2;
  x = add("conv", {x, param(base / 16)}, act, 2.0 * jitter(), false);
  x = add("bn", {x, param(256)}, act, 0.3 * jitter(), false);
  x = add("relu", {x}, act, 0.1, false);
  for (int st = 0; st < stages; ++st) {
    if (st > 0) act /= 2;
    for (int b = 0; b < blocks_per_stage; ++b) {
      NodeId sc = x;
      if (st > 0 && b == 0) sc = add("proj", {x, param(base / 32)}, act, 0.5 * jitter(), false);
      NodeId y = add("conv", {x, param(base / 8)}, act, 2.0 * jitter(), false);
      y = add("bn", {y, param(256)}, act, 0.3 * jitter(), false);
      y = add("relu", {y}, act, 0.1, false);
      y = add("conv", {y, param(base / 8)}, act, 2.0 * jitter(), false);
      y = add("bn", {y, param(256)}, act, 0.3 * jitter(), false);
      y = add("add", {y, sc}, act, 0.1, false);
      x = add("relu", {y}, act, 0.1, false);
    }
  }
  x = add("pool", {x}, 4096, 0.05, false);
  x = add("fc", {x, param(40960)}, 64, 0.05, false);
  add("loss", {x}, 4, 1e-3, false);
  std::vector<uint8_t> needs_grad(p.nodes.size(), 1);
  needs_grad[0] = 0;  // the input batch
  // A weight gradient costs what its consumer's forward op did; any other gradient 1.5x its op.
  append_backward(
      p, is_param, needs_grad, 64, 1e-3, [&](NodeId c) { return p.nodes[c].cost; },
      [&](NodeId v) { return p.nodes[v].cost * 1.5; });
  return p;
}

std::vector<std::string> generator_families() {
  return {"chain", "tree", "grid", "layered", "unet", "transformer", "densenet"};
}

Problem generate(const std::string& family, int n, uint64_t seed, int width) {
  if (n < 1) throw Error("generate: n must be at least 1, got " + std::to_string(n));
  // Node ids are int32 and a graph is held in memory whole: 10^6 forward operations (a few million
  // nodes with the backward pass) is the documented limit.
  if (n > 1'000'000)
    throw Error("generate: n must be at most 1000000 forward operations, got " + std::to_string(n));
  if (width < 1) throw Error("generate: width must be at least 1, got " + std::to_string(width));
  Builder b(family + "-n" + std::to_string(n) + "-s" + std::to_string(seed), seed);
  if (family == "chain") {
    gen_chain(b, n);
  } else if (family == "tree") {
    gen_tree(b, n);
  } else if (family == "grid") {
    gen_grid(b, n, width);
  } else if (family == "layered") {
    gen_layered(b, n, width);
  } else if (family == "unet") {
    gen_unet(b, n);
  } else if (family == "transformer") {
    gen_transformer(b, n);
  } else if (family == "densenet") {
    gen_densenet(b, n, width);
  } else {
    std::string names;
    for (const auto& f : generator_families()) names += (names.empty() ? "" : ", ") + f;
    throw Error("unknown generator family '" + family + "'; families: " + names);
  }
  return b.finish();
}

}  // namespace lethe::sched

// The reverse walk of the tape: gradient rules append gradient nodes to the step graph.
#include <vector>

#include "framework/error.h"
#include "framework/session.h"
#include "framework/tensor.h"
#include "ops/creation.h"
#include "ops/elementwise.h"

namespace lethe {
Tensor detached_copy(const Tensor& x);  // ops/creation.cpp
}

namespace lethe {

void Tensor::backward(const Tensor& grad_output, bool retain_graph) const {
  LETHE_CHECK(defined(), "backward(): the tensor is undefined");
  const std::shared_ptr<TensorImpl>& self = impl();
  LETHE_CHECK(
      !self->detached_by_step,
      "backward(): the tensor is a result of a step that has already run (optimizer.step() or "
      "Session::flush() end a step, and the step boundary detaches its values from autograd); "
      "record the forward pass again");
  LETHE_CHECK(requires_grad(),
              "backward(): this tensor does not require a gradient: none of the values it was "
              "computed from requires one (call set_requires_grad(true) on parameters), or it was "
              "computed under no_grad");
  std::shared_ptr<Graph> g = self->graph;
  LETHE_CHECK(g != nullptr && !g->executed && self->session->graph() == g,
              "backward(): the tensor is not a pending result of the current step: its step has "
              "already run (optimizer.step() or Session::flush() end a step, and the step boundary "
              "detaches its values from autograd); record the forward pass again");
  // Refuse a second pass through nodes an earlier backward() (without retain_graph) went through,
  // before recording anything: the gradients would silently double.
  {
    const int root = self->node;
    std::vector<char> reach(static_cast<size_t>(root) + 1, 0);
    reach[static_cast<size_t>(root)] = 1;
    g->backward_done.resize(g->nodes.size(), 0);
    for (int id = root; id >= 0; --id) {
      const Node& n = g->nodes[static_cast<size_t>(id)];
      if (!reach[static_cast<size_t>(id)] || !n.requires_grad || n.is_leaf()) continue;
      LETHE_CHECK(!g->backward_done[static_cast<size_t>(id)],
                  "backward(): trying to backward through the "
                  "step a second time (",
                  n.op->name(), ", node ", id,
                  ", was already differentiated by an "
                  "earlier backward()): the gradients would be added twice. Call backward() once "
                  "per step, or "
                  "pass retain_graph = true to the earlier backward() to accumulate on purpose");
      for (int in : n.inputs) reach[static_cast<size_t>(in)] = 1;
    }
    if (!retain_graph)
      for (int id = root; id >= 0; --id)
        if (reach[static_cast<size_t>(id)]) g->backward_done[static_cast<size_t>(id)] = 1;
  }
  NoGradGuard no_grad;
  Tensor seed;
  if (grad_output.defined()) {
    LETHE_CHECK(grad_output.shape() == shape() && grad_output.dtype() == dtype(),
                "backward(): grad_output must match the tensor: expected ", meta().str(), ", got ",
                grad_output.meta().str());
    seed = grad_output;
  } else {
    LETHE_CHECK(numel() == 1,
                "backward(): a gradient can be implied only for a one-element output, "
                "got shape ",
                shape().str(), "; pass grad_output or reduce the tensor first");
    seed = gradient_seed(*this);
  }
  const int root = self->node;
  const bool data_parallel = g->session != nullptr && g->session->data_parallel();
  std::vector<Tensor> grads(static_cast<size_t>(root) + 1);
  grads[static_cast<size_t>(root)] = seed;
  for (int id = root; id >= 0; --id) {
    Tensor gout = std::move(grads[static_cast<size_t>(id)]);
    if (!gout.defined()) continue;
    // Copy what we need: recording gradient ops appends nodes and may move the node vector.
    const bool needs = g->nodes[static_cast<size_t>(id)].requires_grad;
    if (!needs) continue;
    if (g->nodes[static_cast<size_t>(id)].is_leaf()) {
      auto param = g->nodes[static_cast<size_t>(id)].handle.lock();
      if (!param) continue;  // nobody holds the parameter any more
      param->grad = param->grad ? add(Tensor(param->grad), gout).impl() : gout.impl();
      param->grad->role = StorageRole::gradient;
      if (param->grad->graph == g)
        g->nodes[static_cast<size_t>(param->grad->node)].is_gradient = true;
      // Data parallel: the gradient is final here (every node that reads the leaf lies above it).
      if (data_parallel) g->session->dp_gradient_final(param);
      continue;
    }
    std::shared_ptr<const Op> op = g->nodes[static_cast<size_t>(id)].op;
    std::vector<int> in_ids = g->nodes[static_cast<size_t>(id)].inputs;
    std::vector<Tensor> inputs;
    std::vector<bool> needs_grad;
    for (int in : in_ids) {
      inputs.push_back(tensor_for_node(g, in));
      needs_grad.push_back(g->nodes[static_cast<size_t>(in)].requires_grad);
    }
    Tensor out = tensor_for_node(g, id);
    BackwardCtx ctx{inputs, needs_grad, out, gout};
    std::vector<Tensor> gin = op->backward(ctx);
    LETHE_CHECK(gin.size() == in_ids.size(), "internal error: ", op->name(), " returned ",
                gin.size(), " gradients for ", in_ids.size(), " inputs");
    for (size_t i = 0; i < in_ids.size(); ++i) {
      if (!needs_grad[i] || !gin[i].defined()) continue;
      LETHE_CHECK(gin[i].shape() == inputs[i].shape() && gin[i].dtype() == inputs[i].dtype(),
                  "internal error: ", op->name(), " gradient ", i, " is ", gin[i].meta().str(),
                  " but its input is ", inputs[i].meta().str());
      Tensor& acc = grads[static_cast<size_t>(in_ids[i])];
      // Accumulation is an explicit node with a fixed operand order: same bits under any schedule.
      acc = acc.defined() ? add(acc, gin[i]) : gin[i];
    }
  }
  if (data_parallel) g->session->dp_end_backward();
}

Tensor Tensor::detach() const {
  LETHE_CHECK(defined(), "detach(): the tensor is undefined");
  if (impl()->graph == nullptr) {
    auto d = std::make_shared<TensorImpl>(*impl());
    d->requires_grad = false;
    d->grad.reset();
    return Tensor(d);
  }
  NoGradGuard no_grad;
  return detached_copy(*this);  // a copy recorded without gradient history
}

}  // namespace lethe

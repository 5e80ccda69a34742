// Data parallel (SessionOptions::data_parallel): gradient buckets recorded as backward() finds
// each gradient final, the cross-rank checks before a step, and parameters from rank 0.
#include <algorithm>
#include <vector>

#include "dist/dist.h"
#include "framework/error.h"
#include "framework/session.h"
#include "framework/tensor.h"
#include "ops/comm.h"

namespace lethe {

namespace {
constexpr size_t kFirstBucketBytes = size_t{1}
                                     << 20;  // torch.distributed's _DEFAULT_FIRST_BUCKET_BYTES
}

bool SessionState::data_parallel() const {
  return opts_.data_parallel;
}

void SessionState::dp_gradient_final(const std::shared_ptr<TensorImpl>& leaf) {
  const std::shared_ptr<Graph>& g = graph();
  if (dp_step_ != g->step) {
    // Buckets are numbered per step; a bucket never spans two steps.
    dp_step_ = g->step;
    dp_buckets_ = 0;
    dp_last_slice_.reset();
    dp_pending_.clear();
    dp_pending_bytes_ = 0;
  }
  const Tensor grad(leaf->grad);
  if (!is_floating(grad.dtype())) return;
  const size_t bytes = grad.meta().bytes();
  // As DDP, the first bucket of a step holds at most 1 MiB: the all-reduces start early in the
  // backward pass instead of after the first bucket_bytes of gradients.
  auto cap = [&] {
    return dp_buckets_ == 0 ? std::min(opts_.bucket_bytes, kFirstBucketBytes) : opts_.bucket_bytes;
  };
  // One dtype per bucket, and a new bucket where this gradient would overflow the current one.
  if (!dp_pending_.empty() && (Tensor(dp_pending_.front()->grad).dtype() != grad.dtype() ||
                               dp_pending_bytes_ + bytes > cap()))
    dp_emit_bucket();
  dp_pending_.push_back(leaf);
  dp_pending_bytes_ += bytes;
  if (dp_pending_bytes_ >= cap()) dp_emit_bucket();
}

void SessionState::dp_end_backward() {
  if (!dp_pending_.empty()) dp_emit_bucket();
}

void SessionState::dp_emit_bucket() {
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const auto& p : dp_pending_) grads.emplace_back(p->grad);
  const std::shared_ptr<Graph>& g = graph();
  // Ordered after the previous bucket of the step through one of its copies (kept to the end of
  // the step anyway, for the optimizer): every rank's plan runs the buckets in one order.
  std::shared_ptr<TensorImpl> previous = dp_last_slice_.lock();
  const Tensor bucket = all_reduce(grads, dp_buckets_++,
                                   previous && previous->graph == g ? Tensor(previous) : Tensor());
  int64_t offset = 0;
  for (size_t i = 0; i < dp_pending_.size(); ++i) {
    // The averaged gradient replaces the rank's own, as DDP leaves it in .grad.
    if (grads[i].impl()->graph == g)
      g->nodes[static_cast<size_t>(grads[i].impl()->node)].is_gradient = false;
    Tensor mean = bucket_slice(bucket, offset, grads[i].shape());
    offset += grads[i].numel();
    mean.impl()->role = StorageRole::gradient;
    g->nodes[static_cast<size_t>(mean.impl()->node)].is_gradient = true;
    dp_pending_[i]->grad = mean.impl();
    dp_last_slice_ = mean.impl();
  }
  dp_pending_.clear();
  dp_pending_bytes_ = 0;
}

void SessionState::dp_prepare_step(Graph& g) {
  if (!opts_.data_parallel || dist::world_size() < 2) return;
  dist::detail::check_same_graph(g);
  // Every parameter a step reads starts from rank 0's value, in node order (the same on every
  // rank).
  std::vector<char> host;
  for (const Node& n : g.nodes) {
    if (!n.is_leaf() || !n.requires_grad || !n.leaf) continue;
    auto it = dp_broadcast_.find(n.leaf.get());
    if (it != dp_broadcast_.end() && it->second.lock() == n.leaf) continue;
    Storage& st = *n.leaf;
    const size_t bytes = n.meta.bytes();
    if (st.device.is_cpu()) {
      dist::detail::broadcast(st.data, bytes, "the broadcast of the parameters from rank 0");
    } else {
      host.resize(bytes);
      copy_to_host(st, host.data(), bytes);
      dist::detail::broadcast(host.data(), bytes, "the broadcast of the parameters from rank 0");
      copy_from_host(st, host.data(), bytes);
    }
    dp_broadcast_[n.leaf.get()] = n.leaf;
  }
}

}  // namespace lethe

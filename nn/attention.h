// Multi-head self-attention: a fused qkv projection, heads split by reshape/permute,
// scaled_dot_product_attention (optionally causal), then an output projection.
//
//   auto attn = std::make_shared<lethe::nn::MultiheadAttention>(
//       lethe::nn::MultiheadAttentionOptions(256, 4).dropout(0.1).causal(true));
//   auto y = attn->forward(x);   // x [B, L, 256] -> y [B, L, 256]
//
// Parameters: "qkv.weight" [3d, d] (rows: q, k, v), "qkv.bias", "out_proj.weight", "out_proj.bias".
#pragma once

#include <memory>

#include "nn/arg.h"
#include "nn/linear.h"
#include "nn/module.h"

namespace lethe::nn {

struct MultiheadAttentionOptions {
  MultiheadAttentionOptions(int64_t embed_dim, int64_t num_heads)
      : embed_dim_(embed_dim), num_heads_(num_heads) {}
  LETHE_ARG(int64_t, embed_dim);
  LETHE_ARG(int64_t, num_heads);
  // Dropout on the attention weights while training, as torch.nn.MultiheadAttention.
  LETHE_ARG(double, dropout) = 0.0;
  LETHE_ARG(bool, bias) = true;
  LETHE_ARG(bool, causal) = false;  // default for forward(x)
  LETHE_ARG(DType, dtype) = DType::f32;
};

class MultiheadAttention : public UnaryModule {
 public:
  explicit MultiheadAttention(const MultiheadAttentionOptions& o);
  MultiheadAttention(int64_t d, int64_t heads)
      : MultiheadAttention(MultiheadAttentionOptions(d, heads)) {}
  Tensor forward(const Tensor& x) override { return forward(x, options_.causal()); }
  // x [B, L, d] (or [L, d]).
  Tensor forward(const Tensor& x, bool causal);
  void pretty_print(std::ostream& os) const override;
  const MultiheadAttentionOptions& options() const { return options_; }

  std::shared_ptr<Linear> qkv, out_proj;

 private:
  MultiheadAttentionOptions options_;
};

}  // namespace lethe::nn

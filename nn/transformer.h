// Pre-norm transformer block:
//   x = x + dropout(attn(ln1(x)));  x = x + dropout(fc2(dropout(gelu(fc1(ln2(x))))))
// with attn's dropout on its attention weights. Dropout sits where PyTorch puts it
// (torch.nn.MultiheadAttention drops the attention weights; TransformerEncoderLayer drops each
// residual branch and between the activation and the second linear), so a model ported with its
// weights trains alike; mlp_dropout(false) leaves out the one between the linears, as GPT-2 and
// nanoGPT do. TransformerEncoderLayer is post-norm with ReLU and p = 0.1 by default; this block is
// pre-norm (norm_first=True) with GELU and p = 0.0 by default.
//
//   auto block = std::make_shared<lethe::nn::TransformerBlock>(
//       lethe::nn::TransformerBlockOptions(256, 4).mlp_ratio(4).dropout(0.1).causal(true));
//   auto y = block->forward(x);   // [B, L, 256] -> [B, L, 256]
#pragma once

#include <memory>

#include "nn/activation.h"
#include "nn/arg.h"
#include "nn/attention.h"
#include "nn/linear.h"
#include "nn/norm.h"

namespace lethe::nn {

struct TransformerBlockOptions {
  TransformerBlockOptions(int64_t d_model, int64_t num_heads)
      : d_model_(d_model), num_heads_(num_heads) {}
  LETHE_ARG(int64_t, d_model);
  LETHE_ARG(int64_t, num_heads);
  LETHE_ARG(int64_t, mlp_ratio) = 4;
  LETHE_ARG(double, dropout) = 0.0;
  // Dropout also between the activation and the second linear (PyTorch's placement).
  LETHE_ARG(bool, mlp_dropout) = true;
  LETHE_ARG(double, eps) = 1e-5;
  LETHE_ARG(bool, causal) = false;
  LETHE_ARG(DType, dtype) = DType::f32;
};

class TransformerBlock : public UnaryModule {
 public:
  explicit TransformerBlock(const TransformerBlockOptions& o);
  Tensor forward(const Tensor& x) override;
  void pretty_print(std::ostream& os) const override { os << "TransformerBlock"; }
  const TransformerBlockOptions& options() const { return options_; }

  std::shared_ptr<LayerNorm> ln1, ln2;
  std::shared_ptr<MultiheadAttention> attn;
  std::shared_ptr<Linear> fc1, fc2;
  std::shared_ptr<GELU> act;
  std::shared_ptr<Dropout> drop;

 private:
  TransformerBlockOptions options_;
};

}  // namespace lethe::nn

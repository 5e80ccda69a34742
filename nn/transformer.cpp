#include "nn/transformer.h"

namespace lethe::nn {

TransformerBlock::TransformerBlock(const TransformerBlockOptions& o)
    : UnaryModule("TransformerBlock"), options_(o) {
  LETHE_CHECK(o.mlp_ratio() > 0, "TransformerBlock: mlp_ratio must be positive, got ",
              o.mlp_ratio());
  const int64_t d = o.d_model();
  ln1 = register_module(
      "ln1", std::make_shared<LayerNorm>(LayerNormOptions({d}).eps(o.eps()).dtype(o.dtype())));
  attn = register_module(
      "attn", std::make_shared<MultiheadAttention>(MultiheadAttentionOptions(d, o.num_heads())
                                                       .dropout(o.dropout())
                                                       .causal(o.causal())
                                                       .dtype(o.dtype())));
  ln2 = register_module(
      "ln2", std::make_shared<LayerNorm>(LayerNormOptions({d}).eps(o.eps()).dtype(o.dtype())));
  fc1 = register_module(
      "fc1", std::make_shared<Linear>(LinearOptions(d, o.mlp_ratio() * d).dtype(o.dtype())));
  act = register_module("act", std::make_shared<GELU>());
  fc2 = register_module(
      "fc2", std::make_shared<Linear>(LinearOptions(o.mlp_ratio() * d, d).dtype(o.dtype())));
  drop = register_module("drop", std::make_shared<Dropout>(o.dropout()));
}

Tensor TransformerBlock::forward(const Tensor& x) {
  Tensor h = x + drop->forward(attn->forward(ln1->forward(x)));
  Tensor m = act->forward(fc1->forward(ln2->forward(h)));
  if (options_.mlp_dropout()) m = drop->forward(m);
  return h + drop->forward(fc2->forward(m));
}

}  // namespace lethe::nn

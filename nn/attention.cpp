#include "nn/attention.h"

#include "ops/attention.h"
#include "ops/shape_ops.h"

namespace lethe::nn {

MultiheadAttention::MultiheadAttention(const MultiheadAttentionOptions& o)
    : UnaryModule("MultiheadAttention"), options_(o) {
  LETHE_CHECK(o.embed_dim() > 0 && o.num_heads() > 0 && o.embed_dim() % o.num_heads() == 0,
              "MultiheadAttention: embed_dim (", o.embed_dim(),
              ") must be a positive multiple of num_heads (", o.num_heads(), ")");
  LETHE_CHECK(o.dropout() >= 0 && o.dropout() < 1,
              "MultiheadAttention: dropout must be in [0, 1), got ", o.dropout());
  int64_t d = o.embed_dim();
  qkv = register_module(
      "qkv", std::make_shared<Linear>(LinearOptions(d, 3 * d).bias(o.bias()).dtype(o.dtype())));
  out_proj = register_module(
      "out_proj", std::make_shared<Linear>(LinearOptions(d, d).bias(o.bias()).dtype(o.dtype())));
}

Tensor MultiheadAttention::forward(const Tensor& x_in, bool causal) {
  const int64_t d = options_.embed_dim(), h = options_.num_heads(), hd = d / h;
  LETHE_CHECK((x_in.dim() == 3 || x_in.dim() == 2) && x_in.size(-1) == d,
              "MultiheadAttention: expected input [B, L, ", d, "] or [L, ", d, "], got ",
              x_in.shape());
  const bool batched = x_in.dim() == 3;
  Tensor x = batched ? x_in : x_in.unsqueeze(0);
  const int64_t B = x.size(0), L = x.size(1);
  // [B, L, 3d] -> [B, L, 3, h, hd] -> [3, B, h, L, hd]
  Tensor qkv_h = qkv->forward(x).reshape({B, L, 3, h, hd}).permute({2, 0, 3, 1, 4});
  auto part = [&](int64_t i) { return qkv_h.slice(0, i, i + 1).reshape({B, h, L, hd}); };
  const double p = is_training() ? options_.dropout() : 0.0;
  Tensor a = scaled_dot_product_attention(part(0), part(1), part(2), causal, p);  // [B, h, L, hd]
  a = a.permute({0, 2, 1, 3}).reshape({B, L, d});
  Tensor y = out_proj->forward(a);
  return batched ? y : y.reshape({L, d});
}

void MultiheadAttention::pretty_print(std::ostream& os) const {
  os << "MultiheadAttention(embed_dim=" << options_.embed_dim()
     << ", num_heads=" << options_.num_heads() << ", dropout=" << options_.dropout()
     << ", causal=" << (options_.causal() ? "true" : "false") << ")";
}

}  // namespace lethe::nn

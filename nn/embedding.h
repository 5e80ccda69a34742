// Lookup table: weight [num_embeddings, embedding_dim], initialised N(0, 1) as PyTorch.
//
//   auto emb = std::make_shared<lethe::nn::Embedding>(lethe::nn::EmbeddingOptions(50257, 256));
//   auto h = emb->forward(tokens);   // tokens i64 [B, T] -> h [B, T, 256]
#pragma once

#include <optional>

#include "nn/arg.h"
#include "nn/module.h"

namespace lethe::nn {

struct EmbeddingOptions {
  EmbeddingOptions(int64_t num_embeddings, int64_t embedding_dim)
      : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {}
  LETHE_ARG(int64_t, num_embeddings);
  LETHE_ARG(int64_t, embedding_dim);
  // That row starts at zeros and gets no gradient (negative counts from the end), as PyTorch.
  LETHE_ARG(std::optional<int64_t>, padding_idx) = std::nullopt;
  LETHE_ARG(DType, dtype) = DType::f32;
};

class Embedding : public UnaryModule {
 public:
  explicit Embedding(const EmbeddingOptions& o);
  Embedding(int64_t n, int64_t d) : Embedding(EmbeddingOptions(n, d)) {}
  void reset_parameters();
  Tensor forward(const Tensor& indices) override;
  void pretty_print(std::ostream& os) const override;
  const EmbeddingOptions& options() const { return options_; }

  Tensor weight;

 private:
  EmbeddingOptions options_;
};

}  // namespace lethe::nn

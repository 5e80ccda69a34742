#include "nn/embedding.h"

#include "nn/init.h"
#include "ops/creation.h"
#include "ops/embedding.h"

namespace lethe::nn {

Embedding::Embedding(const EmbeddingOptions& o) : UnaryModule("Embedding"), options_(o) {
  LETHE_CHECK(o.num_embeddings() > 0 && o.embedding_dim() > 0,
              "Embedding: num_embeddings and embedding_dim must be positive, got ", o.num_embeddings(),
              " and ", o.embedding_dim());
  weight = register_parameter("weight", zeros({o.num_embeddings(), o.embedding_dim()}, o.dtype()));
  reset_parameters();
}

void Embedding::reset_parameters() { init::normal_(weight, 0.0, 1.0); }

Tensor Embedding::forward(const Tensor& indices) {
  LETHE_CHECK(indices.dtype() == DType::i64, "Embedding: expected i64 indices, got ", indices.dtype());
  return embedding(weight, indices);
}

void Embedding::pretty_print(std::ostream& os) const {
  os << "Embedding(" << options_.num_embeddings() << ", " << options_.embedding_dim() << ")";
}

}  // namespace lethe::nn

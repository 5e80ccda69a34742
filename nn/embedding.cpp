#include "nn/embedding.h"

#include <algorithm>
#include <vector>

#include "nn/init.h"
#include "ops/creation.h"
#include "ops/embedding.h"

namespace lethe::nn {

Embedding::Embedding(const EmbeddingOptions& o) : UnaryModule("Embedding"), options_(o) {
  LETHE_CHECK(o.num_embeddings() > 0 && o.embedding_dim() > 0,
              "Embedding: num_embeddings and embedding_dim must be positive, got ",
              o.num_embeddings(), " and ", o.embedding_dim());
  if (o.padding_idx())
    LETHE_CHECK(*o.padding_idx() >= -o.num_embeddings() && *o.padding_idx() < o.num_embeddings(),
                "Embedding: padding_idx must be within num_embeddings (", o.num_embeddings(),
                "), got ", *o.padding_idx());
  weight = register_parameter("weight", zeros({o.num_embeddings(), o.embedding_dim()}, o.dtype()));
  reset_parameters();
}

void Embedding::reset_parameters() {
  init::normal_(weight, 0.0, 1.0);
  if (!options_.padding_idx()) return;
  // The padding row starts at zeros, as PyTorch.
  const int64_t n = options_.num_embeddings(), d = options_.embedding_dim();
  const int64_t r =
      *options_.padding_idx() < 0 ? *options_.padding_idx() + n : *options_.padding_idx();
  std::vector<double> v = weight.to_vector<double>();
  std::fill(v.begin() + r * d, v.begin() + (r + 1) * d, 0.0);
  weight.assign(weight.dtype() == DType::f64
                    ? from_vector(v, weight.shape())
                    : from_vector(std::vector<float>(v.begin(), v.end()), weight.shape()));
}

Tensor Embedding::forward(const Tensor& indices) {
  LETHE_CHECK(indices.dtype() == DType::i64, "Embedding: expected i64 indices, got ",
              indices.dtype());
  return embedding(weight, indices, options_.padding_idx());
}

void Embedding::pretty_print(std::ostream& os) const {
  os << "Embedding(" << options_.num_embeddings() << ", " << options_.embedding_dim();
  if (options_.padding_idx()) os << ", padding_idx=" << *options_.padding_idx();
  os << ")";
}

}  // namespace lethe::nn

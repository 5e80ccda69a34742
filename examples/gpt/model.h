// A decoder-only Transformer (GPT-style, pre-norm) and character-level text data for it.
//
//   lethe::examples::CharText text({"/usr/share/common-licenses/GPL-3"});
//   auto gpt = std::make_shared<lethe::examples::GPT>(GPTConfig{.vocab = text.vocab_size()});
//   auto [x, y] = text.batch(/*batch=*/16, /*context=*/128, /*step=*/0, /*seed=*/0);
//   auto loss = gpt->loss(x, y);
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "lethe.h"

namespace lethe::examples {

struct GPTConfig {
  int64_t vocab = 256;
  int64_t context = 128;
  int64_t layers = 4;
  int64_t d_model = 128;
  int64_t heads = 4;
  double dropout = 0.0;
};

class GPT : public nn::Module {
 public:
  explicit GPT(const GPTConfig& c) : nn::Module("GPT"), config(c) {
    tok = register_module("tok_emb", std::make_shared<nn::Embedding>(c.vocab, c.d_model));
    pos = register_module("pos_emb", std::make_shared<nn::Embedding>(c.context, c.d_model));
    for (int64_t i = 0; i < c.layers; ++i)
      blocks.push_back(register_module(
          "block" + std::to_string(i),
          std::make_shared<nn::TransformerBlock>(
              nn::TransformerBlockOptions(c.d_model, c.heads).dropout(c.dropout).causal(true))));
    ln_f =
        register_module("ln_f", std::make_shared<nn::LayerNorm>(nn::LayerNormOptions({c.d_model})));
    head = register_module("head", std::make_shared<nn::Linear>(c.d_model, c.vocab));
  }
  // idx: i64 [B, T] (T <= context) -> logits [B, T, vocab].
  Tensor forward(const Tensor& idx) {
    const int64_t t = idx.size(1);
    Tensor h = tok->forward(idx) + pos->forward(arange(t)).unsqueeze(0);
    for (auto& b : blocks) h = b->forward(h);
    return head->forward(ln_f->forward(h));
  }
  Tensor loss(const Tensor& idx, const Tensor& targets) {
    Tensor logits = forward(idx);
    const int64_t n = idx.size(0) * idx.size(1);
    return cross_entropy(logits.reshape({n, config.vocab}), targets.reshape({n}));
  }
  void pretty_print(std::ostream& os) const override {
    os << "GPT(" << config.layers << " layers, d_model " << config.d_model << ", " << config.heads
       << " heads, context " << config.context << ", vocab " << config.vocab << ")";
  }
  GPTConfig config;

 private:
  std::shared_ptr<nn::Embedding> tok, pos;
  std::vector<std::shared_ptr<nn::TransformerBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> ln_f;
  std::shared_ptr<nn::Linear> head;
};

// Bytes of one or more text files (a folder: every regular file below it, in sorted order), as a
// character vocabulary of the bytes that occur.
class CharText {
 public:
  explicit CharText(const std::vector<std::string>& paths) {
    std::vector<std::string> files;
    for (const auto& p : paths) {
      if (std::filesystem::is_directory(p)) {
        for (const auto& e : std::filesystem::recursive_directory_iterator(p))
          if (e.is_regular_file()) files.push_back(e.path().string());
      } else {
        files.push_back(p);
      }
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      if (!in) throw Error("text: cannot read " + f);
      text_.append((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    }
    if (text_.size() < 2) throw Error("text: the input has fewer than 2 characters");
    bool seen[256] = {};
    for (unsigned char c : text_) seen[c] = true;
    for (int c = 0; c < 256; ++c)
      if (seen[c]) {
        to_id_[c] = static_cast<int64_t>(chars_.size());
        chars_.push_back(static_cast<char>(c));
      }
    ids_.reserve(text_.size());
    for (unsigned char c : text_) ids_.push_back(to_id_[c]);
    files_ = files.size();
  }
  int64_t vocab_size() const { return static_cast<int64_t>(chars_.size()); }
  size_t size() const { return ids_.size(); }
  size_t files() const { return files_; }
  char decode(int64_t id) const { return chars_[static_cast<size_t>(id)]; }
  int64_t encode(char c) const { return to_id_[static_cast<unsigned char>(c)]; }
  const std::vector<int64_t>& ids() const { return ids_; }
  // Random windows of `context` + 1 characters, a pure function of (seed, step): inputs and targets
  // shifted by one, both i64 [batch, context].
  std::pair<Tensor, Tensor> batch(int64_t batch, int64_t context, int64_t step,
                                  uint64_t seed) const {
    std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(step) + 17);
    const size_t span = static_cast<size_t>(context) + 1;
    const size_t limit = ids_.size() > span ? ids_.size() - span : 0;
    std::vector<int64_t> x(static_cast<size_t>(batch * context)), y(x.size());
    for (int64_t b = 0; b < batch; ++b) {
      const size_t start = limit ? static_cast<size_t>(rng() % (limit + 1)) : 0;
      for (int64_t t = 0; t < context; ++t) {
        const size_t i = static_cast<size_t>(b * context + t);
        x[i] = ids_[(start + static_cast<size_t>(t)) % ids_.size()];
        y[i] = ids_[(start + static_cast<size_t>(t) + 1) % ids_.size()];
      }
    }
    return {from_vector(x, {batch, context}), from_vector(y, {batch, context})};
  }

 private:
  std::string text_;
  std::vector<char> chars_;
  int64_t to_id_[256] = {};
  std::vector<int64_t> ids_;
  size_t files_ = 0;
};

// Samples `n` characters after `prompt` (temperature > 0; 0 = greedy). The window always has the
// model's full context length (right-padded; causal attention makes the padding invisible to the
// position read), so every forward has one shape and plans once.
inline std::string sample_text(GPT& gpt, const CharText& text, const std::string& prompt, int64_t n,
                               double temperature, uint64_t seed) {
  NoGradGuard no_grad;
  gpt.eval();
  const int64_t ctx = gpt.config.context, vocab = gpt.config.vocab;
  std::vector<int64_t> ids;
  for (char c : prompt) ids.push_back(text.encode(c));
  if (ids.empty()) ids.push_back(text.ids().front());
  std::mt19937_64 rng(seed + 0x5eed);
  std::string out;
  for (int64_t k = 0; k < n; ++k) {
    const int64_t len = std::min<int64_t>(static_cast<int64_t>(ids.size()), ctx);
    std::vector<int64_t> window(static_cast<size_t>(ctx), ids.back());
    std::copy(ids.end() - len, ids.end(), window.begin());
    Tensor logits =
        gpt.forward(from_vector(window, {1, ctx})).slice(1, len - 1, len).reshape({vocab});
    std::vector<float> l = logits.to_vector<float>();
    int64_t next = 0;
    if (temperature <= 0) {
      next = std::max_element(l.begin(), l.end()) - l.begin();
    } else {
      const float mx = *std::max_element(l.begin(), l.end());
      std::vector<double> p(l.size());
      for (size_t i = 0; i < l.size(); ++i) p[i] = std::exp((l[i] - mx) / temperature);
      std::discrete_distribution<int64_t> d(p.begin(), p.end());
      next = d(rng);
    }
    ids.push_back(next);
    out += text.decode(next);
  }
  gpt.train();
  return out;
}

}  // namespace lethe::examples

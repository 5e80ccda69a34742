// Saving and loading tensors, modules and whole training runs as safetensors files (the format of
// Hugging Face's `safetensors`: the Python package loads what Lethe writes into torch tensors with
// the same names, and Lethe loads what it writes).
//
//   lethe::save("mlp.safetensors", model->state_dict());               // weights, PyTorch names
//   model->load_state_dict(lethe::load("mlp.safetensors").tensors);    // strict by default
//
//   // A training checkpoint: model, optimizer, the session's random state, the step and the data
//   // position, written atomically (a crash mid-save leaves the last good file in place).
//   lethe::save_checkpoint("run.ckpt", *model, opt, {.step = step, .loader_epoch = e, .loader_batch
//   = b}); lethe::TrainingProgress p = lethe::load_checkpoint("run.ckpt", *model, opt);   // then
//   go on at p.step
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "framework/state_dict.h"
#include "nn/module.h"
#include "optim/optimizer.h"

namespace lethe {

// Writes `tensors` (f32 -> F32, f64 -> F64, i64 -> I64) and `metadata` (safetensors' __metadata__)
// to `path` atomically: a temporary file, flushed to disk, then renamed over `path`.
void save(const std::string& path, const StateDict& tensors,
          const std::map<std::string, std::string>& metadata = {});

struct Loaded {
  StateDict tensors;                            // on the host (CPU), in the file's order
  std::map<std::string, std::string> metadata;  // __metadata__
};
// Reads a safetensors file. Tensors are host (CPU) tensors outside any training session's budget
// (as torch's map_location="cpu"); load_state_dict copies them where they belong. A malformed file,
// or a dtype Lethe has no tensors of (F16, BF16, I32, ...), throws naming the file and the tensor.
Loaded load(const std::string& path);

// Where a training run stands, beside the model's and the optimizer's state.
struct TrainingProgress {
  int64_t step = 0;            // optimizer steps taken
  int64_t loader_epoch = 0;    // the data loader's epoch of the next batch
  int64_t loader_batch = 0;    // and that batch's index within the epoch
  int64_t scheduler_step = 0;  // the learning-rate schedule's step
  std::map<std::string, std::string>
      extra{};  // anything else the program wants back (saved as "extra.<key>")
};

// Model ("model.<name>"), optimizer ("optimizer.<...>"), the random state of the model's session
// (seed, steps run, next initialiser stream) and `progress`, in one safetensors file, atomically.
void save_checkpoint(const std::string& path, const nn::Module& model, const optim::Optimizer& opt,
                     const TrainingProgress& progress);
// Restores all of it (strictly: every key must match) into `model` and `opt`, and the random state
// into the model's session, so that the next step is bitwise the step an uninterrupted run would
// have taken. Call it between steps; returns the progress to resume the data and the schedule from.
TrainingProgress load_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer& opt);

}  // namespace lethe

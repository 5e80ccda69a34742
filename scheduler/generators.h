// Deterministic generators of training graphs for tests and benchmarks: a forward graph (the batch
// and the parameters resident) and its backward built the usual way — one gradient node per forward
// node that needs one, depending on the gradients of its consumers (summed) and on the node's own
// inputs; a parameter's gradient depends on its consumers' gradients and their other inputs.
// Outputs: the loss and every parameter gradient.
//
//   Problem p = generate("transformer", 60, /*seed=*/7);
//   for (const std::string& f : generator_families()) ...
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "scheduler/problem.h"

namespace lethe::sched {

// chain, tree, grid, layered, unet, transformer, densenet.
std::vector<std::string> generator_families();

// n: number of forward operations (about; families round to whole blocks), the graph has about 2n
// + parameters nodes. width: grid width, layered maximum layer width, dense block size. The same
// (family, n, seed, width) gives the same graph on every platform (own RNG, no std distributions).
// Throws Error for an unknown family or n < 1.
Problem generate(const std::string& family, int n, uint64_t seed, int width = 4);

// A ResNet-style training graph: a stem, `stages` stages of `blocks_per_stage` residual blocks
// (conv-bn-relu-conv-bn-add-relu, a strided projection on the shortcut at each stage change, the
// activations halving per stage), pooling and a classifier, with its backward; the parameter
// gradients are the outputs. resnet_graph(2, 4, 1) has 207 nodes.
Problem resnet_graph(int blocks_per_stage, int stages, uint64_t seed);

}  // namespace lethe::sched

// Counter-based random numbers (Philox4x32-10, Salmon et al. SC'11). A value depends only on
// (seed, stream, index), never on thread timing or on how many values were drawn before, so a
// recomputed dropout mask equals the first one and CPU and GPU draw the same numbers.
//
//   float u = lethe::rng::uniform01(seed, stream, i);   // element i of stream `stream`
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define LETHE_HD __host__ __device__ __forceinline__
#else
#define LETHE_HD inline
#endif

namespace lethe::rng {

struct Words {
  uint32_t x[4];
};

LETHE_HD uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// Philox4x32 with 10 rounds: counter c (128 bits), key k (64 bits).
LETHE_HD Words philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                      uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = mulhilo(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Words{{c0, c1, c2, c3}};
}

// The 32 random bits of element `index` in `stream` under `seed`.
LETHE_HD uint32_t bits(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t block = index >> 2;
  Words w = philox(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                   static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32),
                   static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return w.x[index & 3];
}

// Uniform in [0, 1) with 24 bits, exactly representable in f32 (so f32 and f64 agree).
LETHE_HD double uniform01(uint64_t seed, uint64_t stream, uint64_t index) {
  return static_cast<double>(bits(seed, stream, index) >> 8) * (1.0 / 16777216.0);
}

// Standard normal by Box-Muller on elements (2i, 2i+1) of the stream; computed in double.
LETHE_HD double normal(uint64_t seed, uint64_t stream, uint64_t index) {
  double u1 = (static_cast<double>(bits(seed, stream, 2 * index) >> 8) + 1.0) * (1.0 / 16777217.0);
  double u2 = uniform01(seed, stream, 2 * index + 1);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

// Streams: dropout masks use (step, node); tensor creation uses a per-session counter in a
// disjoint range (top bit set) so the two never collide.
LETHE_HD uint64_t op_stream(uint64_t step, uint64_t node) {
  return ((step & 0x7FFFFFFFull) << 32) | (node & 0xFFFFFFFFull);
}
LETHE_HD uint64_t creation_stream(uint64_t counter) {
  return (1ull << 63) | counter;
}

}  // namespace lethe::rng

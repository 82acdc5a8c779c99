// rng.h - the one seeded random number generator of the project.
//
// splitmix64: tiny, fast, and its whole state is one uint64 that checkpoints
// store, which is what exact resume needs. Weights are always initialised on
// the host from this generator, so every backend starts from the same weights.
// hash64 derives independent streams (a batch index, an image index) from a
// seed without carrying state, so data can be regenerated in any order.
#ifndef RNG_H
#define RNG_H

#include <math.h>
#include <stdint.h>

// hash64 also runs in CUDA kernels (dropout masks identical on CPU and GPU)
#ifdef __CUDACC__
#define RNG_HOST_DEVICE __host__ __device__
#else
#define RNG_HOST_DEVICE
#endif

typedef struct {
    uint64_t state;
} Rng;

static inline RNG_HOST_DEVICE uint64_t splitmix64_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void rng_seed(Rng *r, uint64_t seed) { r->state = seed; }

static inline uint64_t rng_u64(Rng *r) {
    r->state += 0x9e3779b97f4a7c15ULL;
    return splitmix64_mix(r->state);
}

static inline uint32_t rng_u32(Rng *r) { return (uint32_t)(rng_u64(r) >> 32); }

// uniform in [0, 1) with 53 random bits
static inline double rng_uniform(Rng *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

// uniform integer in [0, n), n > 0, without modulo bias
static inline uint64_t rng_below(Rng *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do { x = rng_u64(r); } while (x >= limit);
    return x % n;
}

// standard normal by Box-Muller (one of the pair; keeps the state one word)
static inline double rng_normal(Rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

// a seed for stream `b` of seed `a`
static inline RNG_HOST_DEVICE uint64_t hash64(uint64_t a, uint64_t b) {
    return splitmix64_mix(splitmix64_mix(a + 0x9e3779b97f4a7c15ULL) ^ (b * 0xd6e8feb86659fd93ULL));
}

#endif

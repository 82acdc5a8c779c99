// zero.h - the data-parallel optimizer step, with the optimizer state whole on
// every process or sharded over them (--zero=1, ZeRO stage 1).
//
// Without sharding every process all-reduces the gradients and updates every
// parameter (the same step everywhere). With it, the flat buffers are cut into
// one contiguous range of whole optimizer slices per process, balanced by
// size: the gradients are reduce-scattered (each process gets the sum of its
// range), each process keeps m and v for its range only and updates it, and
// the parameters are all-gathered. Because a slice never spans two ranges,
// SET-Adam's per-slice statistics (sum v, sum v^2, min) are a single process's
// and need no reduction. Checkpoints hold the whole m and v (gathered to rank
// 0; a load keeps each process's range), so they load under any process count.
// --zero=1 runs on the CPU backends (host memory); without it the gradients
// are summed by the backend's collective (NCCL on a GPU) or by MPI.
#ifndef ZERO_H
#define ZERO_H

#include "optim.h"
#include "params.h"

typedef struct {
    int on;                    // --zero=1
    size_t lo, n;              // this process's range [lo, lo + n) of the flat buffers
    int first, count;          // its slices
    ParamSlice *slices;        // those slices, offsets from lo
    int *counts, *displs;      // every process's n and lo (for the collectives)
    real *scratch;             // n floats: the reduce-scatter's result
} Zero;

// The ranges over dist_size() processes (on = 0: every process has everything).
// Dies naming --zero when a model is too large for MPI's int counts.
void zero_init(Zero *z, int on, const ParamLayout *layout);
void zero_free(Zero *z);
// The optimizer with state for this process's range.
void zero_optim_init(const Zero *z, Optimizer *o, const Backend *be);
// Sums the gradients over the processes (all of them, or this range's) and
// returns the global gradient norm; the optimizer's clip uses it.
float zero_grads(Zero *z, Optimizer *o, real *grads, size_t num_params);
// One update of this process's range, then every process has every parameter.
void zero_update(Zero *z, Optimizer *o, real *params, const real *grads, const ParamLayout *layout, float lr);
// m and v of the whole model, for a checkpoint: with sharding gathered (every
// process calls it; on rank 0 *m and *v point at buffers to free with
// zero_state_free), without it the optimizer's own.
void zero_state_gather(const Zero *z, const Optimizer *o, size_t num_params, real **m, real **v);
void zero_state_free(const Zero *z, real *m, real *v);
// The whole m and v buffers a checkpoint load fills (zero_state_scatter then
// keeps this process's range).
void zero_state_for_load(const Zero *z, const Optimizer *o, size_t num_params, real **m, real **v);
void zero_state_scatter(const Zero *z, Optimizer *o, real *m, real *v);

#endif

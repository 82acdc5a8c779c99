// dist.h - data parallelism over processes: the few collectives the trainers
// need, on MPI (`mpirun -np N ./train_gpt ...`).
//
// Every rank holds the whole model and the same optimizer state; each runs
// its share of every batch (rows r*B/N .. (r+1)*B/N-1 of the global batch),
// the gradients are summed over ranks before the optimizer step, so every rank
// takes the same step. Only rank 0 writes files and the console.
// Built without MPI (no mpicc when `make` ran), or run without mpirun, it is
// one process of size 1 and every collective below is the identity (or a copy).
#ifndef DIST_H
#define DIST_H

#include <stddef.h>

#include "../ops.h"
#include "layer_stats.h"

// MPI_Init (when built with MPI); on ranks other than 0, stdout goes to /dev/null
void dist_init(int *argc, char ***argv);
void dist_finalize(void);
int dist_rank(void);
int dist_size(void);
static inline int dist_is_root(void) { return dist_rank() == 0; }
// "MPI (Open MPI v4.1.4), rank 0 of 2" or "single process (built without MPI)"
const char *dist_describe(void);

// in-place sum over ranks, every rank gets the result (host memory)
void dist_sum_double(double *buf, int n);
// the per-layer diagnostic of every process's share, added up and finished:
// the whole batch's (s[layers], each process's own on entry)
void dist_sum_layer_stats(LayerStat *s, int layers);
// --zero=1's collectives over a flat buffer cut into one range per rank
// (counts[r] elements at displs[r]; host memory):
// recv (counts[rank]) = the sum over ranks of send's range of this rank
void dist_reduce_scatter_real(const real *send, real *recv, const int *counts);
// every rank's range of buf from its owner, in place
void dist_allgather_real(real *buf, const int *counts, const int *displs);
// rank 0's all (the whole buffer) from every rank's `mine` (counts[rank] elements)
void dist_gather_real(const real *mine, real *all, const int *counts, const int *displs);
// the largest value over ranks (a stop signal seen by any rank)
int dist_max_int(int v);
void dist_barrier(void);
// What a data-parallel run needs, as usage errors naming the flag: --batch (the
// global batch) divisible by the process count; on a GPU, a backend with a
// collective (NCCL) and no --zero=1. Then the backend's communicator (NCCL's,
// its id sent from rank 0 with MPI_Bcast), when it has one.
void dist_setup_run(int batch, const Backend *be, const char *device_flag, int zero);
// buf (n, the backend's memory) summed over the processes, in place: the
// backend's collective (NCCL) on device memory, MPI on the CPU backends' host memory
void dist_sum_buffer(const Backend *be, real *buf, size_t n);
// a device buffer from rank 0 to every process (through the host on a GPU)
void dist_broadcast_buffer(const Backend *be, real *buf, size_t n);

#endif

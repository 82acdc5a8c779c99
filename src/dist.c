// dist.c - see dist.h. Every MPI return code is checked; a failed collective
// is fatal for the job (MPI_Abort), so no rank waits for one that is gone.
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#ifdef HAVE_MPI
#include <mpi.h>

static int rank = 0, size = 1, started = 0;

static void check(int rc, const char *call) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    fprintf(stderr, "error: %s failed on rank %d: %s\n", call, rank, text);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

// started by mpirun (Open MPI) or another PMI launcher: a plain run does not
// initialise MPI at all (no singleton start-up, nothing for leak checkers)
static int launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

void dist_init(int *argc, char ***argv) {
    if (!launched()) return;
    check(MPI_Init(argc, argv), "MPI_Init");
    started = 1;
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size), "MPI_Comm_size");
    if (rank != 0 && !freopen("/dev/null", "w", stdout)) die("rank %d: cannot silence stdout", rank);
    die_usage_quiet(rank != 0);
}

void dist_finalize(void) {
    if (started) MPI_Finalize();
    started = 0;
}

int dist_rank(void) { return rank; }
int dist_size(void) { return size; }
int dist_launched(void) { return started; }

const char *dist_describe(void) {
    static char text[MPI_MAX_LIBRARY_VERSION_STRING + 64];
    char version[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int len = 0;
    MPI_Get_library_version(version, &len);
    for (int i = 0; version[i]; i++)
        if (version[i] == ',' || version[i] == '\n') version[i] = 0;   // "Open MPI v4.1.4"
    if (started) snprintf(text, sizeof text, "MPI (%s), rank %d of %d", version, rank, size);
    else snprintf(text, sizeof text, "one process (%s; not started by mpirun)", version);
    return text;
}

void dist_sum_real(real *buf, size_t n) {
    if (size == 1) return;
    const MPI_Datatype t = sizeof(real) == sizeof(double) ? MPI_DOUBLE : MPI_FLOAT;
    for (size_t done = 0; done < n;) {   // MPI counts are int
        const int count = n - done > (1u << 30) ? 1 << 30 : (int)(n - done);
        check(MPI_Allreduce(MPI_IN_PLACE, buf + done, count, t, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
        done += (size_t)count;
    }
}

void dist_sum_double(double *buf, int n) {
    if (size > 1) check(MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
}

static MPI_Datatype real_type(void) { return sizeof(real) == sizeof(double) ? MPI_DOUBLE : MPI_FLOAT; }

void dist_reduce_scatter_real(const real *send, real *recv, const int *counts) {
    if (size == 1) {   // (also without mpirun, when MPI was never started)
        memcpy(recv, send, (size_t)counts[0] * sizeof(real));
        return;
    }
    check(MPI_Reduce_scatter(send, recv, counts, real_type(), MPI_SUM, MPI_COMM_WORLD), "MPI_Reduce_scatter");
}

void dist_allgather_real(real *buf, const int *counts, const int *displs) {
    if (size == 1) return;
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, real_type(), buf, counts, displs, real_type(), MPI_COMM_WORLD),
          "MPI_Allgatherv");
}

void dist_gather_real(const real *mine, real *all, const int *counts, const int *displs) {
    if (size == 1) {
        memmove(all + displs[0], mine, (size_t)counts[0] * sizeof(real));
        return;
    }
    check(MPI_Gatherv(mine, counts[rank], real_type(), all, counts, displs, real_type(), 0, MPI_COMM_WORLD),
          "MPI_Gatherv");
}

int dist_max_int(int v) {
    if (size > 1) check(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    return v;
}

void dist_broadcast(void *buf, size_t bytes) {
    for (size_t done = 0; size > 1 && done < bytes;) {
        const int count = bytes - done > (1u << 30) ? 1 << 30 : (int)(bytes - done);
        check(MPI_Bcast((char *)buf + done, count, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
        done += (size_t)count;
    }
}

void dist_barrier(void) {
    if (size > 1) check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

#else   // one process

void dist_init(int *argc, char ***argv) { (void)argc, (void)argv; }
void dist_finalize(void) {}
int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }
int dist_launched(void) { return 0; }
const char *dist_describe(void) { return "single process (built without MPI)"; }
void dist_sum_real(real *buf, size_t n) { (void)buf, (void)n; }
void dist_sum_double(double *buf, int n) { (void)buf, (void)n; }
int dist_max_int(int v) { return v; }
void dist_reduce_scatter_real(const real *send, real *recv, const int *counts) {
    memcpy(recv, send, (size_t)counts[0] * sizeof(real));
}
void dist_allgather_real(real *buf, const int *counts, const int *displs) { (void)buf, (void)counts, (void)displs; }
void dist_gather_real(const real *mine, real *all, const int *counts, const int *displs) {
    memmove(all + displs[0], mine, (size_t)counts[0] * sizeof(real));
}
void dist_broadcast(void *buf, size_t bytes) { (void)buf, (void)bytes; }
void dist_barrier(void) {}

#endif

void dist_setup_run(int batch, const Backend *be, const char *device_flag, int zero) {
    const int n = dist_size();
    if (batch % n) die_usage("--batch=%d does not divide by the %d processes (--batch is the global batch)", batch, n);
    const int on_device = strcmp(be->name, "cpu") && strcmp(be->name, "ref");
    if (on_device && zero)   // (its collectives work on host memory)
        die_usage("--zero=1 with --device=%s: the sharded optimizer runs on the CPU backends only", device_flag);
    if (!dist_launched()) return;   // a plain run (under mpirun, even -np 1 joins the collective)
    if (on_device && !be->allreduce_sum && n > 1)
        die_usage("--device=%s: data parallelism over %d processes on the GPU needs NCCL, which this build lacks "
                  "(give --device=cpu)", device_flag, n);
    if (be->comm_init) {
        char id[128] = {0};
        if (dist_is_root()) be->comm_id(id);
        dist_broadcast(id, sizeof id);
        be->comm_init(id, dist_rank(), n);
    }
}

void dist_sum_buffer(const Backend *be, real *buf, size_t n) {
    // under mpirun the backend's collective runs at any process count (-np 1
    // on one GPU goes through NCCL, as tests/test_gpu_runs.sh checks)
    if (be->allreduce_sum && dist_launched()) be->allreduce_sum(buf, n);
    else if (dist_size() > 1) dist_sum_real(buf, n);
}

void dist_broadcast_buffer(const Backend *be, real *buf, size_t n) {
    if (dist_size() == 1) return;
    if (!be->allreduce_sum) {   // host memory
        dist_broadcast(buf, n * sizeof(real));
        return;
    }
    real *host = xmalloc(n * sizeof(real));
    be->download(host, buf, n * sizeof(real));
    dist_broadcast(host, n * sizeof(real));
    be->upload(buf, host, n * sizeof(real));
    free(host);
}

void dist_sum_layer_stats(LayerStat *s, int layers) {
    if (dist_size() == 1) return;
    for (int l = 0; l < layers; l++) {
        dist_sum_double(s[l].sums, LAYER_SUMS);
        layer_stat_finish(&s[l]);
    }
}

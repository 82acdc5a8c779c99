// dist.c - see dist.h. Each collective is written once: one process (size 1,
// whether built without MPI or run without mpirun) takes the local branch; the
// MPI calls exist only in builds with MPI. Every MPI return code is checked; a
// failed collective is fatal for the job (MPI_Abort), so no rank waits for one
// that is gone.
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#ifdef HAVE_MPI
#include <mpi.h>
#endif

static int rank = 0, size = 1, started = 0;

#ifdef HAVE_MPI
static void check(int rc, const char *call) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    fprintf(stderr, "error: %s failed on rank %d: %s\n", call, rank, text);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

static MPI_Datatype real_type(void) { return sizeof(real) == sizeof(double) ? MPI_DOUBLE : MPI_FLOAT; }

// started by mpirun (Open MPI) or another PMI launcher: a plain run does not
// initialise MPI at all (no singleton start-up, nothing for leak checkers)
static int launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}
#endif

void dist_init(int *argc, char ***argv) {
#ifdef HAVE_MPI
    if (!launched()) return;
    check(MPI_Init(argc, argv), "MPI_Init");
    started = 1;
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size), "MPI_Comm_size");
    if (rank != 0 && !freopen("/dev/null", "w", stdout)) die("rank %d: cannot silence stdout", rank);
    die_usage_quiet(rank != 0);
#else
    (void)argc, (void)argv;
#endif
}

void dist_finalize(void) {
#ifdef HAVE_MPI
    if (started) MPI_Finalize();
#endif
    started = 0;
}

int dist_rank(void) { return rank; }
int dist_size(void) { return size; }

const char *dist_describe(void) {
#ifdef HAVE_MPI
    static char text[MPI_MAX_LIBRARY_VERSION_STRING + 64];
    char version[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int len = 0;
    MPI_Get_library_version(version, &len);
    for (int i = 0; version[i]; i++)
        if (version[i] == ',' || version[i] == '\n') version[i] = 0;   // "Open MPI v4.1.4"
    if (started) snprintf(text, sizeof text, "MPI (%s), rank %d of %d", version, rank, size);
    else snprintf(text, sizeof text, "one process (%s; not started by mpirun)", version);
    return text;
#else
    return "single process (built without MPI)";
#endif
}

// in-place sum over ranks of host memory (MPI counts are int: in pieces)
static void sum_real(real *buf, size_t n) {
    if (size == 1) return;
#ifdef HAVE_MPI
    for (size_t done = 0; done < n;) {
        const int count = n - done > (1u << 30) ? 1 << 30 : (int)(n - done);
        check(MPI_Allreduce(MPI_IN_PLACE, buf + done, count, real_type(), MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce");
        done += (size_t)count;
    }
#else
    (void)buf, (void)n;
#endif
}

void dist_sum_double(double *buf, int n) {
    if (size == 1) return;
#ifdef HAVE_MPI
    check(MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
#else
    (void)buf, (void)n;
#endif
}

void dist_reduce_scatter_real(const real *send, real *recv, const int *counts) {
    if (size == 1) {
        memcpy(recv, send, (size_t)counts[0] * sizeof(real));
        return;
    }
#ifdef HAVE_MPI
    check(MPI_Reduce_scatter(send, recv, counts, real_type(), MPI_SUM, MPI_COMM_WORLD), "MPI_Reduce_scatter");
#endif
}

void dist_allgather_real(real *buf, const int *counts, const int *displs) {
    if (size == 1) return;
#ifdef HAVE_MPI
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, real_type(), buf, counts, displs, real_type(), MPI_COMM_WORLD),
          "MPI_Allgatherv");
#else
    (void)buf, (void)counts, (void)displs;
#endif
}

void dist_gather_real(const real *mine, real *all, const int *counts, const int *displs) {
    if (size == 1) {
        memmove(all + displs[0], mine, (size_t)counts[0] * sizeof(real));
        return;
    }
#ifdef HAVE_MPI
    check(MPI_Gatherv(mine, counts[rank], real_type(), all, counts, displs, real_type(), 0, MPI_COMM_WORLD),
          "MPI_Gatherv");
#endif
}

int dist_max_int(int v) {
#ifdef HAVE_MPI
    if (size > 1) check(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
    return v;
}

// bytes of buf from rank 0 to every rank
static void broadcast(void *buf, size_t bytes) {
    if (size == 1) return;
#ifdef HAVE_MPI
    for (size_t done = 0; done < bytes;) {
        const int count = bytes - done > (1u << 30) ? 1 << 30 : (int)(bytes - done);
        check(MPI_Bcast((char *)buf + done, count, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
        done += (size_t)count;
    }
#else
    (void)buf, (void)bytes;
#endif
}

void dist_barrier(void) {
#ifdef HAVE_MPI
    if (size > 1) check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
}

void dist_setup_run(int batch, const Backend *be, const char *device_flag, int zero) {
    if (batch % size)
        die_usage("--batch=%d does not divide by the %d processes (--batch is the global batch)", batch, size);
    const int on_device = strcmp(be->name, "cpu") && strcmp(be->name, "ref");
    if (on_device && zero)   // (its collectives work on host memory)
        die_usage("--zero=1 with --device=%s: the sharded optimizer runs on the CPU backends only", device_flag);
    if (!started) return;   // a plain run (under mpirun, even -np 1 joins the collective)
    if (on_device && !be->allreduce_sum && size > 1)
        die_usage("--device=%s: data parallelism over %d processes on the GPU needs NCCL, which this build lacks "
                  "(give --device=cpu)", device_flag, size);
    if (be->comm_init) {
        char id[128] = {0};
        if (rank == 0) be->comm_id(id);
        broadcast(id, sizeof id);
        be->comm_init(id, rank, size);
    }
}

void dist_sum_buffer(const Backend *be, real *buf, size_t n) {
    // under mpirun the backend's collective runs at any process count (-np 1
    // on one GPU goes through NCCL, as tests/test_gpu_runs.sh checks)
    if (be->allreduce_sum && started) be->allreduce_sum(buf, n);
    else sum_real(buf, n);
}

void dist_broadcast_buffer(const Backend *be, real *buf, size_t n) {
    if (size == 1) return;
    if (!be->allreduce_sum) {   // host memory
        broadcast(buf, n * sizeof(real));
        return;
    }
    real *host = xmalloc(n * sizeof(real));
    be->download(host, buf, n * sizeof(real));
    broadcast(host, n * sizeof(real));
    be->upload(buf, host, n * sizeof(real));
    free(host);
}

void dist_sum_layer_stats(LayerStat *s, int layers) {
    if (size == 1) return;
    for (int l = 0; l < layers; l++) {
        dist_sum_double(s[l].sums, LAYER_SUMS);
        layer_stat_finish(&s[l]);
    }
}

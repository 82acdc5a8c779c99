// sgemm.c - the machine's single-precision matmul rate through OpenBLAS's
// cblas_sgemm: the yardstick bench/cpu.sh measures the trainers against.
//
//   sgemm [REPS] SHAPE...        SHAPE = MxNxK[:nt]
//
// Each shape is C[M,N] = A[M,K] B[K,N] (row-major), or with ":nt"
// C = A[M,K] W[N,K]^T - the layout of a Linear layer, x W^T with W stored
// (out, in). One untimed call, then REPS timed calls (default 5); prints the
// best rate, 2 M N K / seconds, one line per shape:
//
//   sgemm 2048x2048x2048 nn 123.4 GFLOP/s (best of 5, 2 threads, core Haswell)
//
// Threads: OpenBLAS's own count (OMP_NUM_THREADS for the OpenMP build).
// Not part of the trainers; built by bench/cpu.sh with -lopenblas.
#define _POSIX_C_SOURCE 199309L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// OpenBLAS extensions (declared in its cblas.h; repeated here in case the
// header is another implementation's)
int openblas_get_num_threads(void);
char *openblas_get_corename(void);

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// values in [-1, 1): no denormals, no overflow
static float *random_matrix(size_t n, unsigned *state) {
    float *p = malloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "sgemm: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        p[i] = (float)((*state >> 8) / 8388608.0 - 1.0);
    }
    return p;
}

int main(int argc, char **argv) {
    int first = 1, reps = 5;
    if (argc > 1 && !strchr(argv[1], 'x')) {
        reps = atoi(argv[1]);
        first = 2;
    }
    if (reps < 1 || first >= argc) {
        fprintf(stderr, "usage: sgemm [REPS] MxNxK[:nt]...\n");
        return 2;
    }
    unsigned state = 1;
    for (int a = first; a < argc; a++) {
        int m, n, k, used = 0;
        if (sscanf(argv[a], "%dx%dx%d%n", &m, &n, &k, &used) != 3 || m < 1 || n < 1 || k < 1 ||
            (argv[a][used] && strcmp(argv[a] + used, ":nt"))) {
            fprintf(stderr, "sgemm: bad shape '%s' (expected MxNxK or MxNxK:nt)\n", argv[a]);
            return 2;
        }
        const int nt = argv[a][used] != 0;
        float *A = random_matrix((size_t)m * k, &state);
        float *B = random_matrix((size_t)k * n, &state);
        float *C = random_matrix((size_t)m * n, &state);
        double best = 1e30;
        for (int r = 0; r <= reps; r++) {   // r = 0: the untimed call (threads, caches, pages)
            double t0 = now_seconds();
            if (nt)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, A, k, B, k, 0.0f, C, n);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A, k, B, n, 0.0f, C, n);
            double t = now_seconds() - t0;
            if (r > 0 && t < best) best = t;
        }
        printf("sgemm %dx%dx%d %s %.1f GFLOP/s (best of %d, %d threads, core %s)\n", m, n, k,
               nt ? "nt" : "nn", 2.0 * m * n * k / best / 1e9, reps, openblas_get_num_threads(),
               openblas_get_corename());
        free(A);
        free(B);
        free(C);
    }
    return 0;
}

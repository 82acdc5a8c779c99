// cpu_gemm.c - SGEMM for the fast CPU backend: OpenBLAS, or a blocked kernel.
//
// gemm() cuts C into tiles (bottom of the file) and runs each tile as one
// single-threaded GEMM: cblas_sgemm with HAVE_CBLAS (OpenBLAS's OpenMP build
// runs on one thread inside a parallel region, so its threads and ours never
// oversubscribe the cores), else the fallback below, the usual three-level
// blocking (Goto's): for each NC-wide column block and KC-deep slice of K, B
// is packed into NR-wide panels, then MC-row blocks of A into MR-row panels,
// and an MR x NR register-tile kernel runs over them. The kernel is written
// with GCC vector extensions, so -march decides the instruction set.
#include "cpu_gemm.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_CBLAS
#include <cblas.h>
#include <stdio.h>

// one tile, on the calling thread (OpenBLAS's OpenMP build runs single-threaded
// inside a parallel region)
static void gemm_tile(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char *gemm_library(void) {
    static char name[128];
    int par = openblas_get_parallel();
    snprintf(name, sizeof name, "%s (%s)", openblas_get_config(),
             par == 2 ? "openmp" : par == 1 ? "pthread: threads may fight OpenMP's" : "serial");
    return name;
}

#else  // the project's own blocked kernel

#include "src/common.h"

enum { MR = 6, NR = 16, KC = 256, MC = 96, NC = 1024 };
typedef float vecNR __attribute__((vector_size(NR * sizeof(float))));

// c[0:mr, 0:nr] += alpha * a_panel (MR x kc) b_panel (kc x NR): the register tile.
// Where time goes: kc * MR broadcast-FMAs of an NR-wide vector.
static void kernel(int kc, const float *restrict a, const float *restrict b, float *c, int ldc,
                   int mr, int nr, float alpha) {
    vecNR acc[MR];
    memset(acc, 0, sizeof acc);
    for (int k = 0; k < kc; k++) {
        vecNR bv;
        memcpy(&bv, b + (size_t)k * NR, sizeof bv);
        for (int i = 0; i < MR; i++) acc[i] += a[k * MR + i] * bv;
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) c[(size_t)i * ldc + j] += alpha * acc[i][j];
}

// op(B)[pc:pc+kc, jc:jc+nc] into NR-wide panels, zero-padded: bp[panel][k][NR]
static void pack_b(float *bp, const float *B, int ldb, int trans_b, int pc, int kc, int jc, int nc) {
    const int panels = (nc + NR - 1) / NR;
    for (int p = 0; p < panels; p++) {
        float *dst = bp + (size_t)p * kc * NR;
        for (int k = 0; k < kc; k++) {
            for (int j = 0; j < NR; j++) {
                int col = jc + p * NR + j;
                dst[k * NR + j] = p * NR + j >= nc ? 0
                                  : trans_b ? B[(size_t)col * ldb + pc + k]
                                            : B[(size_t)(pc + k) * ldb + col];
            }
        }
    }
}

// op(A)[ic:ic+mc, pc:pc+kc] into MR-row panels, zero-padded: ap[panel][k][MR]
static void pack_a(float *ap, const float *A, int lda, int trans_a, int ic, int mc, int pc, int kc) {
    for (int p = 0; p < (mc + MR - 1) / MR; p++) {
        float *dst = ap + (size_t)p * kc * MR;
        for (int k = 0; k < kc; k++) {
            for (int i = 0; i < MR; i++) {
                int row = ic + p * MR + i;
                dst[k * MR + i] = p * MR + i >= mc ? 0
                                  : trans_a ? A[(size_t)(pc + k) * lda + row]
                                            : A[(size_t)row * lda + pc + k];
            }
        }
    }
}

static void gemm_tile(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (beta != 1.0f) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
    }
    if (K <= 0 || alpha == 0.0f) return;
    // pack buffers as large as this call's blocks (attention's tile GEMMs are small)
    const size_t kmax = K < KC ? K : KC;
    const size_t nmax = ((N < NC ? N : NC) + NR - 1) / NR * NR, mmax = ((M < MC ? M : MC) + MR - 1) / MR * MR;
    float *bp = xmalloc(kmax * nmax * sizeof(float));
    float *ap = xmalloc(kmax * mmax * sizeof(float));
    for (int jc = 0; jc < N; jc += NC) {
        const int nc = N - jc < NC ? N - jc : NC;
        for (int pc = 0; pc < K; pc += KC) {
            const int kc = K - pc < KC ? K - pc : KC;
            pack_b(bp, B, ldb, trans_b, pc, kc, jc, nc);
            for (int ic = 0; ic < M; ic += MC) {
                const int mc = M - ic < MC ? M - ic : MC;
                pack_a(ap, A, lda, trans_a, ic, mc, pc, kc);
                for (int jp = 0; jp < nc; jp += NR) {
                    for (int ip = 0; ip < mc; ip += MR) {
                        kernel(kc, ap + (size_t)(ip / MR) * kc * MR, bp + (size_t)(jp / NR) * kc * NR,
                               C + (size_t)(ic + ip) * ldc + jc + jp, ldc,
                               mc - ip < MR ? mc - ip : MR, nc - jp < NR ? nc - jp : NR, alpha);
                    }
                }
            }
        }
    }
    free(bp);
    free(ap);
}

const char *gemm_library(void) {
    return "the project's blocked SGEMM (OpenBLAS not found at build time)";
}

#endif

// ----------------------------------------------------------------------------
// Threads: C is cut into tiles whose size depends on the shape alone, and each
// tile is one single-threaded GEMM over the whole of K. So each element is
// summed by one thread in the order of one tile's GEMM, whatever the number
// of threads, and there is one parallel region per call (OpenBLAS's own
// threading pays a fork and a barrier per K slice, which dominates the small
// GEMMs of small models). Packing costs a tile's share of A and B once per
// tile: tiles of at least 256 x 256 (16 of them where the shape allows;
// more cost packing, fewer leave cores idle) keep it a small fraction.

enum { MIN_TILE = 256, WANT_TILES = 16 };

static int round_up16(int x) { return (x + 15) / 16 * 16; }

void gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    // inside a parallel region, even a team of one thread (omp_in_parallel()
    // would say 0 there), the caller has split the work already
    if (omp_get_level() > 0) {
        gemm_tile(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    // halve the longer side of the tile until there are enough tiles
    int tm = M, tn = N;
    for (;;) {
        const long tiles = (long)((M + tm - 1) / tm) * ((N + tn - 1) / tn);
        if (tiles >= WANT_TILES) break;
        if (tm >= tn && tm >= 2 * MIN_TILE) tm = round_up16((tm + 1) / 2);
        else if (tn >= 2 * MIN_TILE) tn = round_up16((tn + 1) / 2);
        else if (tm >= 2 * MIN_TILE) tm = round_up16((tm + 1) / 2);
        else break;
    }
    const int mt = (M + tm - 1) / tm, nt = (N + tn - 1) / tn;
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < mt * nt; t++) {
        const int i0 = (t / nt) * tm, j0 = (t % nt) * tn;
        const int m = M - i0 < tm ? M - i0 : tm, n = N - j0 < tn ? N - j0 : tn;
        const float *a = trans_a ? A + i0 : A + (size_t)i0 * lda;
        const float *b = trans_b ? B + (size_t)j0 * ldb : B + j0;
        gemm_tile(trans_a, trans_b, m, n, K, alpha, a, lda, b, ldb, beta, C + (size_t)i0 * ldc + j0, ldc);
    }
}

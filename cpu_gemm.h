// cpu_gemm.h - the fast CPU backend's one GEMM entry point.
//
// C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C, row-major with leading
// dimensions (elements between rows), op(X) = X or X^T. With OpenBLAS found
// at build time (the Makefile defines HAVE_CBLAS) the multiplies are
// cblas_sgemm's; without it, the blocked kernel in cpu_gemm.c. Called outside
// an OpenMP parallel region it runs on all threads, inside one on the calling
// thread; either way each element of C is summed over K in an order set by
// the shape alone, so results do not depend on the number of threads.
#ifndef CPU_GEMM_H
#define CPU_GEMM_H

void gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);

// "openblas 0.3.21 (openmp)", or the fallback kernel's name: for the banner
const char *gemm_library(void);

#endif

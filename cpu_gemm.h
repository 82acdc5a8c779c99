// cpu_gemm.h - the fast CPU backend's one GEMM entry point.
//
// C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C, row-major with leading
// dimensions (elements between rows), op(X) = X or X^T. With OpenBLAS found
// at build time (the Makefile defines HAVE_CBLAS) this is cblas_sgemm; without
// it, the blocked kernel in cpu_gemm.c. Both run on many threads when called
// outside an OpenMP parallel region and on the calling thread inside one, and
// each element of C is summed over K in an order that does not depend on the
// number of threads of the caller's region.
#ifndef CPU_GEMM_H
#define CPU_GEMM_H

void gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);

// "openblas 0.3.21 (openmp)", or the fallback kernel's name: for the banner
const char *gemm_library(void);

#endif

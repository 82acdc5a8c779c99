// matmul_bf16.cu - the matmul op on tensor cores: bf16 operands, fp32
// accumulation and fp32 results, through cuBLASLt (backend_cuda_bf16's
// matmul_forward / matmul_backward).
//
// The math is layers.c's: out = inp W^T + b, dinp = dout W (overwritten),
// dW += dout^T inp, db += colsum(dout). Row-major X (R x K) is column-major
// X^T, so
//   forward   out^T (OC x N) = W (op T of the C x OC column-major W^T) inp^T,
//             the bias added in the GEMM's epilogue;
//   backward  dinp^T (C x N) = W^T dout^T (beta 0),  dW^T (C x OC) += inp^T dout
//             accumulated in fp32 in place (beta 1); db by layers.cu's fp32
//             column sum.
// The model keeps fp32 weights, activations and gradients; each call rounds
// the operands it needs to bf16 into scratch (inp and W forward, dout and W
// or inp backward). That costs a pass over each operand - a few ms per step
// for GPT-2 124M against the GEMMs' tens - and keeps every GEMM on the tensor
// cores without a second copy of the weights to keep in step with the
// optimizer. Precision: each product's operands carry bf16's rounding
// (relative 2^-8), the sums are fp32.
#include <cublasLt.h>

#include "cuda_common.h"
#include "mma.cuh"

enum { CONVERT_BLOCK = 256, LT_WORKSPACE = 32 << 20 };

// out = bf16(in), round to nearest even
__global__ void to_bf16_kernel(bf16 *out, const float *in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn(in[i]);
}

static cublasLtHandle_t g_lt;
static void *buf_ws, *buf_a, *buf_b;
static size_t cap_ws, cap_a, cap_b;

// x rounded to bf16 in one of the two scratch buffers (slot 0 or 1)
static const bf16 *as_bf16(const float *x, size_t n, int slot) {
    bf16 *out = (bf16 *)cuda_grow(slot ? &buf_b : &buf_a, slot ? &cap_b : &cap_a, n * sizeof(bf16));
    to_bf16_kernel<<<grid_for(n, CONVERT_BLOCK), CONVERT_BLOCK, 0, cuda_stream()>>>(out, x, n);
    CUDA_LAUNCH_CHECK();
    return out;
}

// the largest power of two up to 256 that p is aligned to: cuBLASLt's
// heuristic assumes 256-byte operands unless told, and D is often an offset
// into a larger buffer
static uint32_t lt_alignment(const void *p) {
    uint32_t a = 256;
    while ((uintptr_t)p % a) a /= 2;
    return a;
}

// The algorithms cublasLtMatmulAlgoGetHeuristic chose, by what its choice
// depends on (the shapes, transposes, leading dimensions, epilogue and the
// operands' alignments), so that a training step asks it once per matmul
// shape rather than at every call (each query costs tens of microseconds of
// host time). A model has a few dozen shapes; past LT_CACHE the heuristic is
// asked every time.
enum { LT_CACHE = 256 };
typedef struct {
    cublasOperation_t ta, tb;
    int m, n, k, lda, ldb, bias;
    uint32_t align[4];   // A, B, D, bias (0: none)
} LtKey;
static LtKey lt_keys[LT_CACHE];
static cublasLtMatmulAlgo_t lt_algos[LT_CACHE];
static int lt_cached;

static int lt_key_equal(const LtKey *a, const LtKey *b) {
    return a->ta == b->ta && a->tb == b->tb && a->m == b->m && a->n == b->n && a->k == b->k &&
           a->lda == b->lda && a->ldb == b->ldb && a->bias == b->bias &&
           !memcmp(a->align, b->align, sizeof a->align);
}
static const cublasLtMatmulAlgo_t *lt_cached_algo(const LtKey *key) {
    for (int i = 0; i < lt_cached; i++)
        if (lt_key_equal(&lt_keys[i], key)) return &lt_algos[i];
    return NULL;
}
static const cublasLtMatmulAlgo_t *lt_cache_algo(const LtKey *key, const cublasLtMatmulAlgo_t *algo) {
    if (lt_cached == LT_CACHE) return algo;
    lt_keys[lt_cached] = *key;
    lt_algos[lt_cached] = *algo;
    return &lt_algos[lt_cached++];
}

// column-major D (m x n, fp32) = op(A) op(B) + beta D (+ bias per row), A and B bf16:
// op(A) is m x k, op(B) k x n; lda/ldb are the stored matrices' leading dimensions
static void lt_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                    const bf16 *A, int lda, const bf16 *B, int ldb, float beta, float *D,
                    const float *bias) {
    if (!g_lt) CUBLAS_CHECK(cublasLtCreate(&g_lt));
    void *ws = cuda_grow(&buf_ws, &cap_ws, LT_WORKSPACE);
    cublasLtMatmulDesc_t desc;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (bias) {
        const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        const cudaDataType_t bias_type = CUDA_R_32F;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                    sizeof epi));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                    &bias_type, sizeof bias_type));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                    sizeof bias));
    }
    cublasLtMatrixLayout_t la, lb, ld;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, ta == CUBLAS_OP_N ? m : k,
                                            ta == CUBLAS_OP_N ? k : m, lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, tb == CUBLAS_OP_N ? k : n,
                                            tb == CUBLAS_OP_N ? n : k, ldb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, m, n, m));
    const size_t ws_bytes = LT_WORKSPACE;
    const uint32_t align[4] = {lt_alignment(A), lt_alignment(B), lt_alignment(D), lt_alignment(D)};
    // the heuristic's choice depends only on what the key holds: asked (with
    // the preference it reads) once per key
    const LtKey key = {ta, tb, m, n, k, lda, ldb, bias != NULL,
                       {align[0], align[1], align[2], bias ? lt_alignment(bias) : 0}};
    const cublasLtMatmulAlgo_t *algo = lt_cached_algo(&key);
    cublasLtMatmulHeuristicResult_t heur;   // (algo may point into it when the cache is full)
    if (!algo) {
        cublasLtMatmulPreference_t pref;
        CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof ws_bytes));
        const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
        for (int i = 0; i < 4; i++)
            CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &align[i],
                                                              sizeof align[i]));
        int found = 0;
        CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(g_lt, desc, la, lb, ld, ld, pref, 1, &heur,
                                                    &found));
        CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
        if (found < 1) {
            fprintf(stderr, "error: cublasLtMatmulAlgoGetHeuristic found no bf16 algorithm for "
                    "m=%d n=%d k=%d\n", m, n, k);
            exit(1);
        }
        algo = lt_cache_algo(&key, &heur.algo);
    }
    const float one = 1.0f;
    CUBLAS_CHECK(cublasLtMatmul(g_lt, desc, &one, A, la, B, lb, &beta, D, ld, D, ld, algo, ws,
                                ws_bytes, cuda_stream()));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(la));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lb));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(ld));
    CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
}

void matmul_forward_bf16(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    if (C <= 0) {   // no products: the bias alone, as the fp32 op does
        matmul_forward_cuda(out, inp, weight, bias, N, C, OC);
        return;
    }
    const bf16 *w = as_bf16(weight, (size_t)OC * C, 0), *x = as_bf16(inp, (size_t)N * C, 1);
    lt_gemm(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, w, C, x, C, 0.0f, out, bias);
}

void matmul_backward_bf16(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC) {
    if (N <= 0 || OC <= 0 || C <= 0) {   // no products: the fp32 op's dinp = 0 and dbias
        matmul_backward_cuda(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
        return;
    }
    if (dinp || dweight) {
        const bf16 *g = as_bf16(dout, (size_t)N * OC, 0);
        if (dinp) {
            const bf16 *w = as_bf16(weight, (size_t)OC * C, 1);
            lt_gemm(CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, w, C, g, OC, 0.0f, dinp, NULL);
        }
        if (dweight) {
            const bf16 *x = as_bf16(inp, (size_t)N * C, 1);
            lt_gemm(CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, x, C, g, OC, 1.0f, dweight, NULL);
        }
    }
    if (dbias) matmul_backward_cuda(NULL, NULL, dbias, dout, inp, weight, N, C, OC);
}

// matmul and GELU in one op, as the fp32 table's (the model's MLP)
void matmul_gelu_forward_bf16(float *pre, float *out, const float *inp, const float *weight,
                              const float *bias, int N, int C, int OC) {
    matmul_forward_bf16(pre, inp, weight, bias, N, C, OC);
    gelu_forward_cuda(out, pre, (size_t)N * OC);
}

void matmul_bf16_shutdown(void) {
    if (g_lt) CUBLAS_CHECK(cublasLtDestroy(g_lt));
    g_lt = NULL;
    lt_cached = 0;
}

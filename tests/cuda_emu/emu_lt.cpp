// emu_lt.cpp - the emulated cuBLASLt (what it computes and checks is in
// cublasLt.h) and the device attributes of cudaDeviceGetAttribute. The GEMM
// itself, the span checks and the counts are emu.cpp's, shared through the
// declarations below.
#include "cuda_runtime.h"
#include "cublas_v2.h"
#include "cublasLt.h"
#include "cuda_bf16.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <vector>

// emu.cpp: the cuBLAS GEMM (D = alpha op(A) op(B) + beta C + bias, as
// CUDA_EMU_GEMM says), its span checks (abort unless inside one allocation /
// unless host memory), and the counts of CUDA_EMU_STATS
void emu_gemm(int tf32, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
              float alpha, const float *A, int lda, const float *B, int ldb, float beta,
              const float *C, int ldc, float *D, int ldd, const float *bias);
void emu_check_device_span(const void *p, size_t bytes, const char *what);
void emu_check_host_span(const void *p, size_t bytes, const char *what);
void emu_count_gemm(void);
void emu_count_handle(int delta);

[[noreturn]] void emu_vdie(const char *fmt, va_list ap);   // emu.cpp
[[noreturn]] static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emu_vdie(fmt, ap);
}

// cublas_api.h's CUBLAS_STATUS_NOT_SUPPORTED, which the emulated cublas_v2.h may lack
static const cublasStatus_t NOT_SUPPORTED = CUBLAS_STATUS_NOT_SUPPORTED;

// ----------------------------------------------------------------------------
// descriptors

struct cublasLtContext {
    int live;
};

struct EmuLtMatmulDesc {
    int32_t compute, scale, pointer_mode, transa, transb, transc;
    uint32_t epilogue;
    const void *bias;
    int32_t bias_type;
};

struct EmuLtMatrixLayout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};

enum { PREF_ALIGN_A, PREF_ALIGN_B, PREF_ALIGN_C, PREF_ALIGN_D };

struct EmuLtMatmulPreference {
    uint32_t search;
    uint64_t max_workspace;
    uint32_t align[4];   // what the caller promises of A, B, C, D's pointers
};

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasLtContext{1};
    emu_count_handle(1);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    emu_count_handle(-1);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    *desc = new EmuLtMatmulDesc{(int32_t)compute, (int32_t)scale, CUBLASLT_POINTER_MODE_HOST,
                                CUBLAS_OP_N, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT,
                                NULL, -1};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    delete desc;
    return CUBLAS_STATUS_SUCCESS;
}

// copies the attribute's value if sizeInBytes is its type's size, as cuBLASLt checks
template <typename T>
static cublasStatus_t set_value(T *field, const void *buf, size_t bytes) {
    if (!buf || bytes != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(field, buf, sizeof(T));
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t bytes) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: return set_value(&desc->compute, buf, bytes);
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return set_value(&desc->scale, buf, bytes);
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: return set_value(&desc->pointer_mode, buf, bytes);
    case CUBLASLT_MATMUL_DESC_TRANSA: return set_value(&desc->transa, buf, bytes);
    case CUBLASLT_MATMUL_DESC_TRANSB: return set_value(&desc->transb, buf, bytes);
    case CUBLASLT_MATMUL_DESC_TRANSC: return set_value(&desc->transc, buf, bytes);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return set_value(&desc->epilogue, buf, bytes);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return set_value(&desc->bias, buf, bytes);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return set_value(&desc->bias_type, buf, bytes);
    }
    die("cublasLtMatmulDescSetAttribute: attribute %d is not emulated", (int)attr);
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
    if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
    *layout = new EmuLtMatrixLayout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    delete layout;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    *pref = new EmuLtMatmulPreference{CUBLASLT_SEARCH_BEST_FIT, 0, {256, 256, 256, 256}};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t bytes) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    uint32_t *align = pref->align;
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_SEARCH_MODE: return set_value(&pref->search, buf, bytes);
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
        return set_value(&pref->max_workspace, buf, bytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return set_value(&align[PREF_ALIGN_A], buf, bytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return set_value(&align[PREF_ALIGN_B], buf, bytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return set_value(&align[PREF_ALIGN_C], buf, bytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return set_value(&align[PREF_ALIGN_D], buf, bytes);
    }
    die("cublasLtMatmulPreferenceSetAttribute: attribute %d is not emulated", (int)attr);
}

// ----------------------------------------------------------------------------
// the problem a descriptor and four layouts describe

struct Problem {
    cublasOperation_t ta, tb;
    int m, n, k, lda, ldb, ldc, ldd;
    size_t a_elem;   // bytes of an A or B element: 2 (bf16) or 4 (fp32)
    int tf32, bias;
};

static int fits_int(uint64_t v) { return v <= (uint64_t)INT_MAX; }

static cublasStatus_t describe(const EmuLtMatmulDesc *d, const EmuLtMatrixLayout *A,
                               const EmuLtMatrixLayout *B, const EmuLtMatrixLayout *C,
                               const EmuLtMatrixLayout *D, Problem *p) {
    if (!d || !A || !B || !C || !D) return CUBLAS_STATUS_INVALID_VALUE;
    // the arguments' rules
    if ((d->transa != CUBLAS_OP_N && d->transa != CUBLAS_OP_T) ||
        (d->transb != CUBLAS_OP_N && d->transb != CUBLAS_OP_T))
        return CUBLAS_STATUS_INVALID_VALUE;
    const EmuLtMatrixLayout *all[4] = {A, B, C, D};
    for (const EmuLtMatrixLayout *l : all)
        if (l->ld < 1 || (uint64_t)l->ld < l->rows) return CUBLAS_STATUS_INVALID_VALUE;
    const uint64_t m = D->rows, n = D->cols;
    const uint64_t am = d->transa == CUBLAS_OP_N ? A->rows : A->cols;
    const uint64_t k = d->transa == CUBLAS_OP_N ? A->cols : A->rows;
    const uint64_t bk = d->transb == CUBLAS_OP_N ? B->rows : B->cols;
    const uint64_t bn = d->transb == CUBLAS_OP_N ? B->cols : B->rows;
    if (am != m || bk != k || bn != n || C->rows != m || C->cols != n)
        return CUBLAS_STATUS_INVALID_VALUE;
    // what the emulator computes
    const int fp32_in = A->type == CUDA_R_32F && B->type == CUDA_R_32F;
    const int bf16_in = A->type == CUDA_R_16BF && B->type == CUDA_R_16BF;
    if (!(d->compute == CUBLAS_COMPUTE_32F && (fp32_in || bf16_in)) &&
        !(d->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && fp32_in))
        return NOT_SUPPORTED;
    if (d->scale != CUDA_R_32F || C->type != CUDA_R_32F || D->type != CUDA_R_32F)
        return NOT_SUPPORTED;
    if (d->pointer_mode != CUBLASLT_POINTER_MODE_HOST || d->transc != CUBLAS_OP_N)
        return NOT_SUPPORTED;
    if (d->epilogue != CUBLASLT_EPILOGUE_DEFAULT && d->epilogue != CUBLASLT_EPILOGUE_BIAS)
        return NOT_SUPPORTED;
    if (d->epilogue == CUBLASLT_EPILOGUE_BIAS && d->bias_type != -1 && d->bias_type != CUDA_R_32F)
        return NOT_SUPPORTED;
    for (const EmuLtMatrixLayout *l : all)
        if (!fits_int(l->rows) || !fits_int(l->cols) || !fits_int((uint64_t)l->ld))
            return NOT_SUPPORTED;
    *p = Problem{(cublasOperation_t)d->transa, (cublasOperation_t)d->transb, (int)m, (int)n,
                 (int)k, (int)A->ld, (int)B->ld, (int)C->ld, (int)D->ld,
                 (size_t)(bf16_in ? 2 : 4), d->compute == CUBLAS_COMPUTE_32F_FAST_TF32,
                 d->epilogue == CUBLASLT_EPILOGUE_BIAS};
    return CUBLAS_STATUS_SUCCESS;
}

// ----------------------------------------------------------------------------
// the heuristic: one algorithm, which records what it assumes

enum : uint64_t { ALGO_MAGIC = 0x454d554c54414c47ull };   // "EMULTALG"
enum { ALGO_MAGIC_WORD, ALGO_WORKSPACE, ALGO_ALIGN, ALGO_BIAS_ALIGN };
static const size_t ALGO_MAX_WORKSPACE = 1 << 20;

// the largest power of two up to 256 that divides p (256 for NULL)
static uint32_t alignment_of(const void *p) {
    uint32_t a = 1;
    while (a < 256 && !((uintptr_t)p & a)) a <<= 1;
    return a;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t Adesc,
                                              cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc,
                                              cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[],
                                              int *returned) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (requested <= 0 || !results || !returned || !pref) return CUBLAS_STATUS_INVALID_VALUE;
    *returned = 0;
    Problem p;
    cublasStatus_t st = describe(desc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    cublasLtMatmulHeuristicResult_t r;
    memset(&r, 0, sizeof r);
    r.algo.data[ALGO_MAGIC_WORD] = ALGO_MAGIC;
    r.algo.data[ALGO_WORKSPACE] = pref->max_workspace < ALGO_MAX_WORKSPACE ? pref->max_workspace
                                                                           : ALGO_MAX_WORKSPACE;
    for (int i = 0; i < 4; i++)   // 16 bits each: the alignment assumed of A, B, C, D
        r.algo.data[ALGO_ALIGN] |= (uint64_t)std::min<uint32_t>(pref->align[i], 256) << (16 * i);
    // the bias pointer set now (cuBLASLt chooses for its alignment); none: nothing assumed
    r.algo.data[ALGO_BIAS_ALIGN] = p.bias && desc->bias ? alignment_of(desc->bias) : 1;
    r.workspaceSize = (size_t)r.algo.data[ALGO_WORKSPACE];
    r.state = CUBLAS_STATUS_SUCCESS;
    r.wavesCount = 1.0f;
    results[0] = r;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

// ----------------------------------------------------------------------------
// the matmul

// bytes spanned by a column-major rows x cols matrix of `elem`-byte elements
static size_t span_bytes(int rows, int cols, int ld, size_t elem) {
    if (rows <= 0 || cols <= 0) return 0;
    return ((size_t)(cols - 1) * ld + rows) * elem;
}

static int overlap(const void *a, size_t na, const void *b, size_t nb) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return na && nb && x < y + nb && y < x + na;
}

static void check_alignment(const void *p, uint32_t need, const char *what, const char *pref) {
    if (alignment_of(p) < need)
        die("cublasLtMatmul: %s (%p) is not %u-byte aligned, as the algorithm from "
            "cublasLtMatmulAlgoGetHeuristic assumes%s%s", what, p, need,
            pref ? ": lower CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_" : "", pref ? pref : "");
}

// the stored matrix as floats: bf16 converted (exactly), fp32 as it is
static const float *as_floats(const void *X, size_t elem, size_t count, std::vector<float> &tmp) {
    if (elem == 4) return (const float *)X;
    const __nv_bfloat16 *x = (const __nv_bfloat16 *)X;
    tmp.resize(count);
    for (size_t i = 0; i < count; i++) tmp[i] = __bfloat162float(x[i]);
    return tmp.data();
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                              const void *alpha_p, const void *A, cublasLtMatrixLayout_t Adesc,
                              const void *B, cublasLtMatrixLayout_t Bdesc, const void *beta_p,
                              const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo,
                              void *workspace, size_t workspace_bytes, cudaStream_t) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    Problem p;
    cublasStatus_t st = describe(desc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (!alpha_p || !beta_p) return CUBLAS_STATUS_INVALID_VALUE;
    emu_check_host_span(alpha_p, sizeof(float), "cublasLtMatmul: alpha (host pointer mode)");
    emu_check_host_span(beta_p, sizeof(float), "cublasLtMatmul: beta (host pointer mode)");
    const float alpha = *(const float *)alpha_p, beta = *(const float *)beta_p;
    // the algorithm: from the heuristic (NULL: cuBLASLt picks one that fits these pointers)
    size_t ws_need = 0;
    uint64_t align = 0, bias_align = 1;
    if (algo) {
        if (algo->data[ALGO_MAGIC_WORD] != ALGO_MAGIC) return CUBLAS_STATUS_INVALID_VALUE;
        ws_need = (size_t)algo->data[ALGO_WORKSPACE];
        align = algo->data[ALGO_ALIGN];
        bias_align = algo->data[ALGO_BIAS_ALIGN];
    }
    if (workspace_bytes < ws_need) return CUBLAS_STATUS_INVALID_VALUE;
    // in place: C and D the same matrix, with the same layout
    if (C == D && p.ldc != p.ldd) return CUBLAS_STATUS_INVALID_VALUE;
    if (p.bias && !desc->bias) return CUBLAS_STATUS_INVALID_VALUE;
    if (workspace_bytes)
        emu_check_device_span(workspace, workspace_bytes, "cublasLtMatmul: the workspace");
    if (!p.m || !p.n) return CUBLAS_STATUS_SUCCESS;

    const int reads_ab = p.k > 0 && alpha != 0.0f, reads_c = beta != 0.0f;
    const int arows = p.ta == CUBLAS_OP_N ? p.m : p.k, acols = p.ta == CUBLAS_OP_N ? p.k : p.m;
    const int brows = p.tb == CUBLAS_OP_N ? p.k : p.n, bcols = p.tb == CUBLAS_OP_N ? p.n : p.k;
    const size_t a_bytes = reads_ab ? span_bytes(arows, acols, p.lda, p.a_elem) : 0;
    const size_t b_bytes = reads_ab ? span_bytes(brows, bcols, p.ldb, p.a_elem) : 0;
    const size_t c_bytes = reads_c ? span_bytes(p.m, p.n, p.ldc, 4) : 0;
    const size_t d_bytes = span_bytes(p.m, p.n, p.ldd, 4);
    const float *bias = p.bias ? (const float *)desc->bias : NULL;
    const size_t bias_bytes = bias ? (size_t)p.m * 4 : 0;
    // every operand inside one allocation, aligned as the algorithm assumes
    if (reads_ab) {
        emu_check_device_span(A, a_bytes, "cublasLtMatmul: A");
        emu_check_device_span(B, b_bytes, "cublasLtMatmul: B");
        check_alignment(A, p.a_elem, "A", NULL);
        check_alignment(B, p.a_elem, "B", NULL);
        check_alignment(A, (align >> 0) & 0xffff, "A", "A_BYTES");
        check_alignment(B, (align >> 16) & 0xffff, "B", "B_BYTES");
    }
    if (reads_c) {
        emu_check_device_span(C, c_bytes, "cublasLtMatmul: C");
        check_alignment(C, 4, "C", NULL);
        check_alignment(C, (align >> 32) & 0xffff, "C", "C_BYTES");
    }
    emu_check_device_span(D, d_bytes, "cublasLtMatmul: D");
    check_alignment(D, 4, "D", NULL);
    check_alignment(D, (align >> 48) & 0xffff, "D", "D_BYTES");
    if (bias) {
        emu_check_device_span(bias, bias_bytes, "cublasLtMatmul: the bias (epilogue)");
        check_alignment(bias, 4, "the bias", NULL);
        if (alignment_of(bias) < bias_align)
            die("cublasLtMatmul: the bias (%p) is less aligned than the one "
                "cublasLtMatmulAlgoGetHeuristic chose the algorithm for (%u bytes)", (void *)bias,
                (unsigned)bias_align);
    }
    // D written while A, B, the bias (or C, unless it is D) are read: on a GPU, a race
    if (overlap(D, d_bytes, A, a_bytes)) die("cublasLtMatmul: D overlaps A");
    if (overlap(D, d_bytes, B, b_bytes)) die("cublasLtMatmul: D overlaps B");
    if (overlap(D, d_bytes, bias, bias_bytes)) die("cublasLtMatmul: D overlaps the bias");
    if (C != D && overlap(D, d_bytes, C, c_bytes)) die("cublasLtMatmul: D partly overlaps C");
    const void *ops[5] = {A, B, C, bias, D};
    const size_t sizes[5] = {a_bytes, b_bytes, c_bytes, bias_bytes, d_bytes};
    const char *names[5] = {"A", "B", "C", "the bias", "D"};
    for (int i = 0; i < 5; i++)
        if (overlap(workspace, ws_need, ops[i], sizes[i]))
            die("cublasLtMatmul: the algorithm's workspace overlaps %s", names[i]);

    emu_count_gemm();
    if (ws_need) memset(workspace, 0xff, ws_need);   // the algorithm's scratch
    std::vector<float> ta, tb;
    const float *af = reads_ab ? as_floats(A, p.a_elem, a_bytes / p.a_elem, ta) : NULL;
    const float *bf = reads_ab ? as_floats(B, p.a_elem, b_bytes / p.a_elem, tb) : NULL;
    // C not read when beta is 0: D stands in for it (emu_gemm reads it only when beta is not 0)
    emu_gemm(p.tf32, p.ta, p.tb, p.m, p.n, reads_ab ? p.k : 0, alpha, af, p.lda, bf, p.ldb, beta,
             reads_c ? (const float *)C : (const float *)D, reads_c ? p.ldc : p.ldd, (float *)D,
             p.ldd, bias);
    return CUBLAS_STATUS_SUCCESS;
}

// ----------------------------------------------------------------------------
// device attributes: compute capability from CUDA_EMU_SM (default 90: 9.0),
// 132 multiprocessors (an H100's)

static int emulated_sm(void) {
    const char *e = getenv("CUDA_EMU_SM");
    if (!e) return 90;
    char *end = NULL;
    long sm = strtol(e, &end, 10);
    if (!*e || *end || sm < 10 || sm > 1000)
        die("CUDA_EMU_SM=%s: expected a compute capability such as 80 or 90", e);
    return (int)sm;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device) {
    int n = 0;
    cudaGetDeviceCount(&n);
    if (!n) return cudaErrorNoDevice;
    if (device < 0 || device >= n) return cudaErrorInvalidDevice;
    if (!value) return cudaErrorInvalidValue;
    switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = emulated_sm() / 10; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = emulated_sm() % 10; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *value = 132; return cudaSuccess;
    default: break;
    }
    die("cudaDeviceGetAttribute: attribute %d is not emulated", (int)attr);
}

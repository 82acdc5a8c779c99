// cublasLt.h (emulated) - the part of cuBLASLt a bf16 matmul uses, with the
// real header's names, signatures and enum values, computed on the CPU by
// tests/cuda_emu/emu_lt.cpp through the same GEMM as the emulated cuBLAS
// (emu.cpp: summed in double, or under CUDA_EMU_GEMM=float in fp32 in a
// shuffled order per element).
//
// What it computes: column-major D = alpha op(A) op(B) + beta C, plus with
// CUBLASLT_EPILOGUE_BIAS an fp32 bias (rows(D) long, device memory) added to
// every column; C is not read when beta is 0 and may be D itself (then with
// D's layout). Compute type CUBLAS_COMPUTE_32F (or CUBLAS_COMPUTE_32F_FAST_TF32
// with fp32 A and B: A and B rounded to TF32 first), scale type CUDA_R_32F with
// alpha and beta in host memory; A and B both CUDA_R_16BF or both CUDA_R_32F,
// C and D CUDA_R_32F; one matrix per layout (no batches), column order.
// cublasLtMatmulAlgoGetHeuristic and cublasLtMatmul return
// CUBLAS_STATUS_NOT_SUPPORTED (15) for anything else (other types, epilogues,
// pointer modes), CUBLAS_STATUS_INVALID_VALUE for what real cuBLASLt rejects:
// layouts whose shapes do not fit op(A) m x k, op(B) k x n, C and D m x n,
// a leading dimension below its row count, an attribute set with the wrong
// size, an in-place C == D with another layout, a workspace smaller than the
// algorithm asked for.
//
// What aborts with a message (on a GPU: a fault or wrong results): an operand,
// the bias or the workspace outside one cudaMalloc allocation; D overlapping
// A, B or the bias, or partly overlapping C; alpha or beta in device memory;
// an operand less aligned than the heuristic was told to assume
// (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES, 256 unless set), or a
// bias less aligned than the one the heuristic saw. The heuristic returns one
// algorithm asking for min(1 MiB, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) of
// workspace, which every cublasLtMatmul with it fills with 0xff bytes, as a
// GPU's algorithm leaves it holding anything. Each cublasLtMatmul with m, n > 0
// counts as one GEMM in CUDA_EMU_STATS; a live handle counts as unfreed.
#ifndef CUDA_EMU_CUBLASLT_H
#define CUDA_EMU_CUBLASLT_H

#include <stddef.h>
#include <stdint.h>

#include "cublas_v2.h"
#include "library_types.h"

// cublas_api.h's compute types (the real cublasLt.h gets them from there)
#ifndef CUDA_EMU_HAVE_COMPUTE_TYPE
#define CUDA_EMU_HAVE_COMPUTE_TYPE 1
typedef enum {
    CUBLAS_COMPUTE_16F = 64,
    CUBLAS_COMPUTE_16F_PEDANTIC = 65,
    CUBLAS_COMPUTE_32F = 68,
    CUBLAS_COMPUTE_32F_PEDANTIC = 69,
    CUBLAS_COMPUTE_32F_FAST_16F = 74,
    CUBLAS_COMPUTE_32F_FAST_16BF = 75,
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
    CUBLAS_COMPUTE_64F = 70,
    CUBLAS_COMPUTE_64F_PEDANTIC = 71,
    CUBLAS_COMPUTE_32I = 72,
    CUBLAS_COMPUTE_32I_PEDANTIC = 73,
} cublasComputeType_t;
#endif

typedef struct cublasLtContext *cublasLtHandle_t;
typedef struct EmuLtMatmulDesc *cublasLtMatmulDesc_t;
typedef struct EmuLtMatrixLayout *cublasLtMatrixLayout_t;
typedef struct EmuLtMatmulPreference *cublasLtMatmulPreference_t;

typedef struct {
    uint64_t data[8];
} cublasLtMatmulAlgo_t;

typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

// the attributes emulated, each with the type (and size) the real header gives it
typedef enum {
    CUBLASLT_MATMUL_DESC_COMPUTE_TYPE = 0,     // int32_t (cublasComputeType_t)
    CUBLASLT_MATMUL_DESC_SCALE_TYPE = 1,       // int32_t (cudaDataType_t)
    CUBLASLT_MATMUL_DESC_POINTER_MODE = 2,     // int32_t (cublasLtPointerMode_t)
    CUBLASLT_MATMUL_DESC_TRANSA = 3,           // int32_t (cublasOperation_t)
    CUBLASLT_MATMUL_DESC_TRANSB = 4,           // int32_t
    CUBLASLT_MATMUL_DESC_TRANSC = 5,           // int32_t, CUBLAS_OP_N only
    CUBLASLT_MATMUL_DESC_EPILOGUE = 7,         // uint32_t (cublasLtEpilogue_t)
    CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,     // const void *
    CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26,  // int32_t (cudaDataType_t), -1: D's type
} cublasLtMatmulDescAttributes_t;

typedef enum {
    CUBLASLT_POINTER_MODE_HOST = 0,
    CUBLASLT_POINTER_MODE_DEVICE = 1,
} cublasLtPointerMode_t;

// DEFAULT and BIAS are emulated; the others are named so code compiles
typedef enum {
    CUBLASLT_EPILOGUE_DEFAULT = 1,
    CUBLASLT_EPILOGUE_RELU = 2,
    CUBLASLT_EPILOGUE_BIAS = 4,
    CUBLASLT_EPILOGUE_RELU_BIAS = 6,
    CUBLASLT_EPILOGUE_GELU = 32,
    CUBLASLT_EPILOGUE_GELU_BIAS = 36,
    CUBLASLT_EPILOGUE_BGRADA = 256,
    CUBLASLT_EPILOGUE_BGRADB = 512,
} cublasLtEpilogue_t;

typedef enum {
    CUBLASLT_SEARCH_BEST_FIT = 0,
} cublasLtMatmulSearch_t;

typedef enum {
    CUBLASLT_MATMUL_PREF_SEARCH_MODE = 0,             // uint32_t
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,     // uint64_t, default 0
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,   // uint32_t, default 256
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8,
} cublasLtMatmulPreferenceAttributes_t;

cublasStatus_t cublasLtCreate(cublasLtHandle_t *lightHandle);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle);

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc,
                                        cublasComputeType_t computeType,
                                        cudaDataType_t scaleType);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc,
                                              cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t sizeInBytes);

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout);

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t sizeInBytes);

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle,
                                              cublasLtMatmulDesc_t operationDesc,
                                              cublasLtMatrixLayout_t Adesc,
                                              cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc,
                                              cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t preference,
                                              int requestedAlgoCount,
                                              cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                              int *returnAlgoCount);

cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc,
                              const void *alpha, const void *A, cublasLtMatrixLayout_t Adesc,
                              const void *B, cublasLtMatrixLayout_t Bdesc, const void *beta,
                              const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo,
                              void *workspace, size_t workspaceSizeInBytes, cudaStream_t stream);

#endif

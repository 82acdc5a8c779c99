// cuda_common.h - what the CUDA backend's files share: error checks, the one
// cuBLAS handle, the stream, grow-only scratch buffers, block reductions, and
// the declarations of the ops that backend_cuda.cu puts in its table.
//
// Every op runs on the default (legacy) stream, so ops are ordered with each
// other and with cudaMemcpy; none of them waits for the device on the host.
#ifndef CUDA_COMMON_H
#define CUDA_COMMON_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <curand.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "ops.h"
}
#include "src/rng.h"   // hash64, host and device: the dropout masks

// ----------------------------------------------------------------------------
// error checks: "error: <call> failed: <reason> at file:line", then exit(1)

#define CUDA_CHECK(call)                                                              \
    do {                                                                              \
        cudaError_t cuda_check_err_ = (call);                                         \
        if (cuda_check_err_ != cudaSuccess) {                                         \
            fflush(stdout);                                                           \
            fprintf(stderr, "error: %s failed: %s at %s:%d\n", #call,                 \
                    cudaGetErrorString(cuda_check_err_), __FILE__, __LINE__);         \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

#define CUBLAS_CHECK(call)                                                            \
    do {                                                                              \
        cublasStatus_t cublas_check_st_ = (call);                                     \
        if (cublas_check_st_ != CUBLAS_STATUS_SUCCESS) {                              \
            fflush(stdout);                                                           \
            fprintf(stderr, "error: %s failed: %s at %s:%d\n", #call,                 \
                    cublasGetStatusString(cublas_check_st_), __FILE__, __LINE__);     \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static inline const char *curand_status_string(curandStatus_t st) {
    switch (st) {
    case CURAND_STATUS_SUCCESS: return "success";
    case CURAND_STATUS_VERSION_MISMATCH: return "header and library versions differ";
    case CURAND_STATUS_NOT_INITIALIZED: return "generator not initialized";
    case CURAND_STATUS_ALLOCATION_FAILED: return "memory allocation failed";
    case CURAND_STATUS_TYPE_ERROR: return "wrong generator type";
    case CURAND_STATUS_OUT_OF_RANGE: return "argument out of range";
    case CURAND_STATUS_LENGTH_NOT_MULTIPLE: return "length not a multiple of dimension";
    case CURAND_STATUS_DOUBLE_PRECISION_REQUIRED: return "GPU lacks double precision";
    case CURAND_STATUS_LAUNCH_FAILURE: return "kernel launch failure";
    case CURAND_STATUS_PREEXISTING_FAILURE: return "preexisting failure";
    case CURAND_STATUS_INITIALIZATION_FAILED: return "initialization failed";
    case CURAND_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CURAND_STATUS_INTERNAL_ERROR: return "internal error";
    default: return "unknown cuRAND status";
    }
}

#define CURAND_CHECK(call)                                                            \
    do {                                                                              \
        curandStatus_t curand_check_st_ = (call);                                     \
        if (curand_check_st_ != CURAND_STATUS_SUCCESS) {                              \
            fflush(stdout);                                                           \
            fprintf(stderr, "error: %s failed: %s at %s:%d\n", #call,                 \
                    curand_status_string(curand_check_st_), __FILE__, __LINE__);      \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

// after every kernel launch: a bad launch configuration fails here, at its line
#define CUDA_LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

// ----------------------------------------------------------------------------
// the process-wide handle and stream (backend_cuda.cu)

// created on first use; math mode fp32 (no TF32) unless TRAIN_TF32=1 or cuda_set_tf32(1)
cublasHandle_t cuda_cublas(void);
// 1: let cuBLAS use TF32 tensor cores for fp32 GEMMs; 0 (default): exact fp32
void cuda_set_tf32(int enable);
// every op runs on this stream: the legacy default stream
static inline cudaStream_t cuda_stream(void) { return 0; }

static inline size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

// A grow-only device scratch buffer: reallocated only when a call needs more
// than any call before it (the first step, or a larger shape), never per step.
// Every buffer grown here is remembered, and freed by cuda_shutdown.
void *cuda_grow(void **buf, size_t *cap, size_t bytes);

// The end of a run (the backend's `shutdown`): frees every scratch buffer, the
// pinned memory, events and the cuBLAS handle, then resets the device, so that
// compute-sanitizer's leak check sees only what the caller forgot to free.
void cuda_shutdown(void);
// layers.cu's part of it: what it holds outside cuda_grow
void layers_cuda_shutdown(void);

// Grid size for a grid-stride loop over n elements with `block` threads.
static inline unsigned grid_for(size_t n, unsigned block, size_t max_blocks = 65536) {
    size_t g = ceil_div(n, block);
    if (g > max_blocks) g = max_blocks;
    return g ? (unsigned)g : 1u;
}

// ----------------------------------------------------------------------------
// warp and block reductions (blockDim.x a multiple of 32, every thread calls)

template <typename F>
static __device__ __forceinline__ F warp_sum(F v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename F>
static __device__ __forceinline__ F warp_max(F v) {
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

template <typename F>
static __device__ __forceinline__ F warp_min(F v) {
    for (int o = 16; o > 0; o >>= 1) v = fmin(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// sum over the block in a fixed order; every thread gets the result.
// `sh` holds 33 values of shared memory; it may be reused right after.
template <typename F>
static __device__ F block_sum(F v, F *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();   // an earlier reduction may still be reading sh
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        F w = lane < nwarps ? sh[lane] : (F)0;
        w = warp_sum(w);
        if (lane == 0) sh[32] = w;
    }
    __syncthreads();
    return sh[32];
}

// minimum over the block; every thread gets the result
template <typename F>
static __device__ F block_min(F v, F *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_min(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        F w = lane < nwarps ? sh[lane] : sh[0];
        w = warp_min(w);
        if (lane == 0) sh[32] = w;
    }
    __syncthreads();
    return sh[32];
}

// ----------------------------------------------------------------------------
// attention's masks and scale, shared by attention.cu and flash_attention.cu

// may query row i attend to key j?
static __device__ __forceinline__ bool attn_allowed(int mask, int i, int j) {
    return mask == MASK_CAUSAL ? j <= i : (mask == MASK_DIAG ? j != i : true);
}

// s: exp(log_temp) for LSA, else the fixed scale
static __device__ __forceinline__ float attn_scale(const float *log_temp, float scale) {
    return log_temp ? expf(log_temp[0]) : scale;
}

// ----------------------------------------------------------------------------
// the ops (layers.cu, attention.cu, variants.cu), gathered into a table by backend_cuda.cu

void *cuda_alloc(size_t bytes);
void cuda_free(void *p);
void cuda_upload(void *dst_dev, const void *src_host, size_t bytes);
void cuda_download(void *dst_host, const void *src_dev, size_t bytes);
void cuda_copy(void *dst_dev, const void *src_dev, size_t bytes);
void cuda_zero(void *p, size_t bytes);
void cuda_synchronize(void);

void embed_forward_cuda(float *out, const int *tokens, const float *wte, const float *wpe, int B,
                        int T, int C);
void embed_backward_cuda(float *dwte, float *dwpe, const float *dout, const int *tokens,
                         const int *tokens_host, int B, int T, int C);
void layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, int N, int C);
void layernorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const float *mean,
                             const float *rstd, int N, int C);
void matmul_forward_cuda(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC);
void matmul_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC);
void gelu_forward_cuda(float *out, const float *inp, size_t n);
void gelu_backward_cuda(float *dinp, const float *inp, const float *dout, size_t n);
void add_forward_cuda(float *out, const float *a, const float *b, size_t n);
void xent_forward_cuda(float *losses, float *probs, int *argmax, const float *logits,
                       const int *targets, int N, int V, int Vp, float smoothing);
void xent_forward_backward_cuda(float *losses, int *argmax, float *logits, const int *targets,
                                int N, int V, int Vp, float smoothing, float scale);
void sumsq_cuda(float *out, const float *x, size_t n);
void adamw_update_cuda(float *params, const float *grads, float *m, float *v,
                       const ParamSlice *slices, int nslices, const OptimArgs *args,
                       const float *gnorm_sq);
void setadam_update_cuda(float *params, const float *grads, float *m, float *v,
                         const ParamSlice *slices, int nslices, const OptimArgs *args,
                         const float *gnorm_sq);

void patchify_forward_cuda(float *out, const float *images, int B, int C, int H, int W, int P,
                           int shifts);
void cls_pos_forward_cuda(float *out, const float *x, const float *cls, const float *pos, int B,
                          int Np, int D);
void cls_pos_backward_cuda(float *dx, float *dcls, float *dpos, const float *dout, int B, int Np,
                           int D);
void dropout_forward_cuda(float *out, float *mask, const float *inp, size_t n, float p,
                          uint64_t seed, uint64_t first);
void dropout_backward_cuda(float *dinp, const float *dout, const float *mask, size_t n);
void cls_select_forward_cuda(float *out, const float *x, int B, int T, int D);
void cls_select_backward_cuda(float *dx, const float *dout, int B, int T, int D);

size_t attention_saved_floats_cuda(int B, int NH, int T);
void attention_forward_cuda(float *y, float *saved, const float *qkv, int B, int T, int C, int NH,
                            const AttnArgs *args);
void attention_backward_cuda(float *dqkv, const float *dy, const float *qkv, const float *y,
                             const float *saved, int B, int T, int C, int NH,
                             const AttnArgs *args);
// attention.cu's pieces the flash kernels reuse: D = rowsum(dY o Y) per (b,
// h, t) into a scratch buffer (returned), and dlog_temp += s sum(partial)
const float *attention_rowdot_cuda(const float *dy, const float *y, int B, int T, int C, int NH);
void attention_dt_finish_cuda(float *dlog_temp, const double *partial, int np,
                              const AttnArgs *args);
// matmul_bf16.cu: matmul_forward/backward with bf16 operands (cuBLASLt), fp32 tensors
void matmul_forward_bf16(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC);
void matmul_gelu_forward_bf16(float *pre, float *out, const float *inp, const float *weight,
                              const float *bias, int N, int C, int OC);
void matmul_backward_bf16(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC);
void matmul_bf16_shutdown(void);
// flash_attention.cu: the same op on tensor cores in bf16; `saved` is the row logsumexp
size_t flash_attention_saved_floats_cuda(int B, int NH, int T);
void flash_attention_forward_cuda(float *y, float *saved, const float *qkv, int B, int T, int C,
                                  int NH, const AttnArgs *args);
void flash_attention_backward_cuda(float *dqkv, const float *dy, const float *qkv, const float *y,
                                   const float *saved, int B, int T, int C, int NH,
                                   const AttnArgs *args);
// ...with AttentionX fused into its kernels (ops.h's attention_variant_forward/backward)
void flash_attention_variant_forward_cuda(float *out, float *y, float *saved, const float *qkv,
                                          int B, int T, int C, int NH, const AttnArgs *aa,
                                          const VariantArgs *va);
void flash_attention_variant_backward_cuda(float *dqkv, float *dy, const float *dout,
                                           const float *qkv, const float *y, const float *saved,
                                           int B, int T, int C, int NH, const AttnArgs *aa,
                                           const VariantArgs *va);
void variant_forward_cuda(float *out, const float *y, const float *qkv, int N, int C, int NH,
                          const VariantArgs *args);
void variant_backward_cuda(float *dy, float *dqkv, const float *dout, const float *y,
                           const float *qkv, int N, int C, int NH, const VariantArgs *args);
// dgamma[k] += the sum of the terms of coefficient k, in a fixed order: term r
// belongs to head r % NH when per_head, else every term to gamma[0] (rows of
// variant_backward's per-row terms, or flash attention's per-block partials)
void variant_dgamma_sum_cuda(float *dgamma, const float *term, size_t rows, int NH, int per_head);
void variant_dgamma_sum_cuda(float *dgamma, const double *term, size_t rows, int NH, int per_head);

#endif

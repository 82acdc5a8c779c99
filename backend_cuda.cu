// backend_cuda.cu - the CUDA backend's op table, the process-wide cuBLAS
// handle, and the registry of scratch buffers. backend_cuda() returns NULL
// (with a reason) when no usable GPU is found, so callers fall back to the CPU
// (see backend_select in backend.c).
//
// cuBLAS runs fp32 GEMMs in full fp32 by default (results comparable with the
// CPU reference); TRAIN_TF32=1 in the environment, or cuda_set_tf32(1), lets
// it use TF32 tensor cores instead.
#include "cuda_common.h"

#include <string.h>

#ifdef HAVE_NCCL
#include <nccl.h>

#define NCCL_CHECK(call)                                                                   \
    do {                                                                                   \
        ncclResult_t nccl_check_r_ = (call);                                               \
        if (nccl_check_r_ != ncclSuccess) {                                                \
            fflush(stdout);                                                                \
            fprintf(stderr, "error: %s failed: %s at %s:%d\n", #call,                      \
                    ncclGetErrorString(nccl_check_r_), __FILE__, __LINE__);                \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

// data parallelism over processes, one GPU each: the communicator of them all
static ncclComm_t g_nccl;

static size_t nccl_comm_id(void *id) {
    ncclUniqueId u;
    NCCL_CHECK(ncclGetUniqueId(&u));
    memcpy(id, &u, sizeof u);
    return sizeof u;
}

static void nccl_comm_init(const void *id, int rank, int size) {
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    NCCL_CHECK(ncclCommInitRank(&g_nccl, size, u, rank));
}

// in place on the backend's stream: later kernels (the optimizer) wait for it
static void nccl_allreduce_sum(float *buf, size_t n) {
    NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, g_nccl, cuda_stream()));
}
#endif

static cublasHandle_t g_cublas;
static int g_tf32 = -1;   // -1: not decided yet (read TRAIN_TF32 on first use)

static void apply_math_mode(void) {
    CUBLAS_CHECK(cublasSetMathMode(g_cublas, g_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                    : CUBLAS_DEFAULT_MATH));
}

// the new handle's stream and math mode
static void configure_cublas(void) {
    CUBLAS_CHECK(cublasSetStream(g_cublas, cuda_stream()));
    if (g_tf32 < 0) {
        const char *e = getenv("TRAIN_TF32");
        g_tf32 = e && !strcmp(e, "1");
    }
    apply_math_mode();
}

cublasHandle_t cuda_cublas(void) {
    if (!g_cublas) {
        CUBLAS_CHECK(cublasCreate(&g_cublas));
        configure_cublas();
    }
    return g_cublas;
}

void cuda_set_tf32(int enable) {
    g_tf32 = enable ? 1 : 0;
    if (g_cublas) apply_math_mode();
}

// ----------------------------------------------------------------------------
// scratch buffers, and the end of a run

enum { MAX_SCRATCH = 32 };
static struct { void **buf; size_t *cap; } g_scratch[MAX_SCRATCH];
static int g_nscratch;

static void remember_scratch(void **buf, size_t *cap) {
    for (int i = 0; i < g_nscratch; i++)
        if (g_scratch[i].buf == buf) return;
    if (g_nscratch == MAX_SCRATCH) {
        fprintf(stderr, "error: more than %d CUDA scratch buffers: raise MAX_SCRATCH\n",
                MAX_SCRATCH);
        exit(1);
    }
    g_scratch[g_nscratch].buf = buf;
    g_scratch[g_nscratch].cap = cap;
    g_nscratch++;
}

// ----------------------------------------------------------------------------
// device memory accounting (the table's peak_memory): the bytes the table's
// alloc and cuda_grow hold now and held at most, and the whole device's use
// (cudaMemGetInfo) sampled after each of those allocations

static size_t g_mem_now, g_mem_peak, g_mem_total, g_mem_used_peak;
struct LiveAlloc { void *p; size_t bytes; };
static LiveAlloc *g_live;   // the table's allocations not yet freed
static size_t g_nlive, g_live_cap;

static void sample_device_use(void) {
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
        cudaGetLastError();   // a number we go without, not an error of the run
        return;
    }
    g_mem_total = total_bytes;
    if (total_bytes - free_bytes > g_mem_used_peak) g_mem_used_peak = total_bytes - free_bytes;
}

static void count_alloc(size_t bytes) {
    g_mem_now += bytes;
    if (g_mem_now > g_mem_peak) g_mem_peak = g_mem_now;
    sample_device_use();
}

static void *tracked_alloc(size_t bytes) {
    void *p = cuda_alloc(bytes);
    if (g_nlive == g_live_cap) {
        g_live_cap = g_live_cap ? 2 * g_live_cap : 64;
        g_live = (LiveAlloc *)realloc(g_live, g_live_cap * sizeof *g_live);
        if (!g_live) { fprintf(stderr, "error: out of host memory\n"); exit(1); }
    }
    g_live[g_nlive++] = LiveAlloc{p, bytes};
    count_alloc(bytes);
    return p;
}

static void tracked_free(void *p) {
    if (!p) return;
    for (size_t i = g_nlive; i-- > 0;)
        if (g_live[i].p == p) {
            g_mem_now -= g_live[i].bytes;
            g_live[i] = g_live[--g_nlive];
            break;
        }
    cuda_free(p);
}

static size_t peak_memory_cuda(size_t *device_total, size_t *device_used) {
    sample_device_use();
    if (device_total) *device_total = g_mem_total;
    if (device_used) *device_used = g_mem_used_peak;
    return g_mem_peak;
}

void *cuda_grow(void **buf, size_t *cap, size_t bytes) {
    if (bytes > *cap) {
        if (*buf) {
            // queued kernels may still read the old buffer
            CUDA_CHECK(cudaDeviceSynchronize());
            CUDA_CHECK(cudaFree(*buf));
            g_mem_now -= *cap;
        }
        *buf = NULL;
        CUDA_CHECK(cudaMalloc(buf, bytes));
        *cap = bytes;
        count_alloc(bytes);
        remember_scratch(buf, cap);
    }
    return *buf;
}

void cuda_shutdown(void) {
    CUDA_CHECK(cudaDeviceSynchronize());
    for (int i = 0; i < g_nscratch; i++) {
        CUDA_CHECK(cudaFree(*g_scratch[i].buf));
        g_mem_now -= *g_scratch[i].cap;
        *g_scratch[i].buf = NULL;
        *g_scratch[i].cap = 0;
    }
    g_nscratch = 0;
    free(g_live);   // (empty: the caller has freed what it allocated)
    g_live = NULL;
    g_nlive = g_live_cap = 0;
    layers_cuda_shutdown();
    matmul_bf16_shutdown();
    if (g_cublas) CUBLAS_CHECK(cublasDestroy(g_cublas));
    g_cublas = NULL;
#ifdef HAVE_NCCL
    if (g_nccl) NCCL_CHECK(ncclCommDestroy(g_nccl));   // before the device it lives on is reset
    g_nccl = NULL;
#endif
    CUDA_CHECK(cudaDeviceReset());
}

// p[0] = 42: proves that this build's kernels run on the device found
__global__ void probe_kernel(int *p) { p[0] = 42; }

static Backend g_table;
static const Backend *g_result;
static int g_tried;
static char g_why[256];

// The fused ops of ops.h as their parts, one kernel after the other (a fused
// kernel for each is the GPU speed work's; the results are the same).
static void residual_layernorm_forward_cuda(float *res, float *out, float *mean, float *rstd,
                                            const float *a, const float *b, const float *weight,
                                            const float *bias, int N, int C) {
    add_forward_cuda(res, a, b, (size_t)N * C);
    layernorm_forward_cuda(out, mean, rstd, res, weight, bias, N, C);
}

static void matmul_gelu_forward_cuda(float *pre, float *out, const float *inp,
                                     const float *weight, const float *bias, int N, int C, int OC) {
    matmul_forward_cuda(pre, inp, weight, bias, N, C, OC);
    gelu_forward_cuda(out, pre, (size_t)N * OC);
}

static const Backend *fail(const char **why, const char *what, cudaError_t err) {
    snprintf(g_why, sizeof g_why, "no usable CUDA device: %s%s%s", what,
             err != cudaSuccess ? ": " : "", err != cudaSuccess ? cudaGetErrorString(err) : "");
    if (why) *why = g_why;
    return NULL;
}

// Finds and initialises the GPU once; later calls return the same answer.
static const Backend *init_cuda(const char **why) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) return fail(why, "cudaGetDeviceCount failed", err);
    if (count < 1) return fail(why, "cudaGetDeviceCount found no device", cudaSuccess);
    // one GPU per process of a node: the launcher's local rank (Open MPI, MPICH, torchrun's name)
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (!local) local = getenv("MPI_LOCALRANKID");
    if (!local) local = getenv("LOCAL_RANK");
    const int device = local ? atoi(local) % count : 0;
    if ((err = cudaSetDevice(device)) != cudaSuccess) return fail(why, "cudaSetDevice failed", err);
    int *probe = NULL, answer = 0;
    if ((err = cudaMalloc((void **)&probe, sizeof(int))) != cudaSuccess)
        return fail(why, "cudaMalloc failed", err);
    probe_kernel<<<1, 1>>>(probe);
    const char *failed = "a test kernel's launch failed (built for another GPU?)";
    err = cudaGetLastError();
    if (err == cudaSuccess) {
        failed = "cudaMemcpy of a test kernel's result failed";
        err = cudaMemcpy(&answer, probe, sizeof(int), cudaMemcpyDeviceToHost);
    }
    cudaFree(probe);
    if (err != cudaSuccess) return fail(why, failed, err);
    if (answer != 42) return fail(why, "a test kernel returned a wrong value", cudaSuccess);
    cublasStatus_t st = g_cublas ? CUBLAS_STATUS_SUCCESS : cublasCreate(&g_cublas);
    if (st != CUBLAS_STATUS_SUCCESS) {
        g_cublas = NULL;
        snprintf(g_why, sizeof g_why, "no usable CUDA device: cublasCreate failed: %s",
                 cublasGetStatusString(st));
        if (why) *why = g_why;
        return NULL;
    }
    configure_cublas();

    Backend *b = &g_table;
    memset(b, 0, sizeof *b);
    b->name = "cuda";
    b->alloc = tracked_alloc;
    b->free = tracked_free;
    b->upload = cuda_upload;
    b->download = cuda_download;
    b->copy = cuda_copy;
    b->zero = cuda_zero;
    b->synchronize = cuda_synchronize;
    b->shutdown = cuda_shutdown;
    b->peak_memory = peak_memory_cuda;
    b->embed_forward = embed_forward_cuda;
    b->embed_backward = embed_backward_cuda;
    b->layernorm_forward = layernorm_forward_cuda;
    b->layernorm_backward = layernorm_backward_cuda;
    b->residual_layernorm_forward = residual_layernorm_forward_cuda;
    b->matmul_forward = matmul_forward_cuda;
    b->matmul_gelu_forward = matmul_gelu_forward_cuda;
    b->matmul_backward = matmul_backward_cuda;
    b->gelu_forward = gelu_forward_cuda;
    b->gelu_backward = gelu_backward_cuda;
    b->add_forward = add_forward_cuda;
    b->attention_saved_floats = attention_saved_floats_cuda;
    b->attention_forward = attention_forward_cuda;
    b->attention_backward = attention_backward_cuda;
    b->variant_forward = variant_forward_cuda;
    b->variant_backward = variant_backward_cuda;
    b->xent_forward = xent_forward_cuda;
    b->xent_forward_backward = xent_forward_backward_cuda;
    b->sumsq = sumsq_cuda;
    b->adamw_update = adamw_update_cuda;
    b->setadam_update = setadam_update_cuda;
    b->patchify_forward = patchify_forward_cuda;
    b->cls_pos_forward = cls_pos_forward_cuda;
    b->cls_pos_backward = cls_pos_backward_cuda;
    b->dropout_forward = dropout_forward_cuda;
    b->dropout_backward = dropout_backward_cuda;
    b->cls_select_forward = cls_select_forward_cuda;
    b->cls_select_backward = cls_select_backward_cuda;
#ifdef HAVE_NCCL
    b->comm_id = nccl_comm_id;
    b->comm_init = nccl_comm_init;
    b->allreduce_sum = nccl_allreduce_sum;
#endif
    return b;
}

extern "C" const Backend *backend_cuda(const char **why) {
    if (!g_tried) {
        g_tried = 1;
        g_result = init_cuda(why);
    } else if (!g_result && why) {
        *why = g_why;
    }
    return g_result;
}

// The CUDA backend with its bf16 tensor-core kernels (--dtype=bf16): the
// matmuls (cuBLASLt, matmul_bf16.cu) and the attention core (flash_attention.cu,
// with AttentionX fused into it); every other op is the fp32 table's, and every tensor stays fp32.
static Backend g_table_bf16;

extern "C" const Backend *backend_cuda_bf16(const char **why) {
    const Backend *fp32 = backend_cuda(why);
    if (!fp32) return NULL;
    // mma.sync with bf16 operands, ldmatrix and cp.async: compute capability 8.0 (A100) and later
    int device = 0, major = 0, minor = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    if (major < 8) {
        snprintf(g_why, sizeof g_why, "the bf16 tensor-core kernels need compute capability 8.0 "
                 "or later; this GPU's is %d.%d", major, minor);
        if (why) *why = g_why;
        return NULL;
    }
    if (!g_table_bf16.name) {
        g_table_bf16 = *fp32;
        g_table_bf16.name = "cuda-bf16";
        g_table_bf16.matmul_forward = matmul_forward_bf16;
        g_table_bf16.matmul_gelu_forward = matmul_gelu_forward_bf16;
        g_table_bf16.matmul_backward = matmul_backward_bf16;
        g_table_bf16.attention_saved_floats = flash_attention_saved_floats_cuda;
        g_table_bf16.attention_forward = flash_attention_forward_cuda;
        g_table_bf16.attention_backward = flash_attention_backward_cuda;
        g_table_bf16.attention_variant_forward = flash_attention_variant_forward_cuda;
        g_table_bf16.attention_variant_backward = flash_attention_variant_backward_cuda;
    }
    return &g_table_bf16;
}

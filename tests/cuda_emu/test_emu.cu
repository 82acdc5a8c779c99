// test_emu.cu - the CUDA emulator checked on its own: CUDA's semantics that the
// backend relies on (thread coordinates, __syncthreads, warp shuffles, cuBLAS's
// column-major GEMM), and each of the faults it promises to report. Built from
// this file by the same translate.py as the backend (make test-gpu-emu).
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "mma.cuh"
#include "tests/test.h"

static void *dev_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        fprintf(stderr, "test_emu: cudaMalloc failed\n");
        exit(1);
    }
    return p;
}

// Runs fn in a child process: did it abort (or, for a sanitizer's report, exit
// non-zero), with `needle` in what it printed?
static int aborts_with(void (*fn)(void), const char *needle) {
    int pipefd[2];
    if (pipe(pipefd)) return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        fn();
        _exit(0);
    }
    close(pipefd[1]);
    char buf[4096];
    size_t got = 0;
    ssize_t r;
    while ((r = read(pipefd[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    buf[got] = 0;
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int died = (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) ||
               (WIFEXITED(status) && WEXITSTATUS(status) != 0);
    int ok = died && strstr(buf, needle);
    if (!ok) fprintf(stderr, "test_emu: expected an abort naming '%s'; the child said: %s\n", needle, buf);
    return ok;
}

// ----------------------------------------------------------------------------
// coordinates: every thread of a 3-D grid of 3-D blocks writes its own slot

__global__ void coords_kernel(int *out) {
    unsigned b = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    unsigned t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    unsigned n = blockDim.x * blockDim.y * blockDim.z;
    out[b * n + t] = (int)(b * 10000 + threadIdx.z * 100 + threadIdx.y * 10 + threadIdx.x);
}

static void test_coordinates(void) {
    dim3 grid(3, 2, 2), block(4, 3, 2);
    const int n = 12 * 24;
    int *d = (int *)dev_alloc(n * sizeof(int)), h[n];
    coords_kernel<<<grid, block>>>(d);
    CHECK(cudaGetLastError() == cudaSuccess, "coords: launch failed");
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    int ok = 1;
    for (int b = 0; b < 12; b++)
        for (int z = 0; z < 2; z++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 4; x++)
                    ok &= h[b * 24 + (z * 3 + y) * 4 + x] == b * 10000 + z * 100 + y * 10 + x;
    CHECK(ok, "coords: a thread saw wrong threadIdx/blockIdx");
    cudaFree(d);
}

// ----------------------------------------------------------------------------
// __syncthreads: a shared-memory tree sum per block; with and without the barrier

// out[block] = sum of in over the block's 256 elements (tree in shared memory)
__global__ void tree_sum_kernel(int *out, const int *in, int barrier) {
    __shared__ int sh[256];
    int t = threadIdx.x;
    sh[t] = in[blockIdx.x * 256 + t];
    if (barrier) __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if (t < s) sh[t] += sh[t + s];
        if (barrier) __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = sh[0];
}

static void test_barrier(void) {
    const int nb = 4;
    int h[nb * 256], sums[nb], want[nb] = {0};
    for (int i = 0; i < nb * 256; i++) {
        h[i] = (i * 7919) % 1000;
        want[i / 256] += h[i];
    }
    int *in = (int *)dev_alloc(sizeof h), *out = (int *)dev_alloc(sizeof sums);
    cudaMemcpy(in, h, sizeof h, cudaMemcpyHostToDevice);
    tree_sum_kernel<<<nb, 256>>>(out, in, 1);
    cudaMemcpy(sums, out, sizeof sums, cudaMemcpyDeviceToHost);
    CHECK(!memcmp(sums, want, sizeof sums), "barrier: tree sums wrong with barriers");
    // without the barriers, a thread reads its partner's slot before the partner
    // has written it: in even blocks (threads upwards) that is every read of sh[t + s]
    tree_sum_kernel<<<nb, 256>>>(out, in, 0);
    cudaMemcpy(sums, out, sizeof sums, cudaMemcpyDeviceToHost);
    CHECK(sums[0] != want[0] && sums[2] != want[2], "barrier: a missing barrier went unnoticed");
    cudaFree(in);
    cudaFree(out);
}

// shared memory starts as 0xff bytes in every block: a read before any write shows
__global__ void shared_unwritten_kernel(float *out) {
    __shared__ float sh[32];
    if (threadIdx.x == 0) out[blockIdx.x] = sh[5];
    __syncthreads();
    sh[threadIdx.x] = 1.0f;
}

static void test_shared_poison(void) {
    float *d = (float *)dev_alloc(2 * sizeof(float)), h[2];
    shared_unwritten_kernel<<<2, 32>>>(d);
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    CHECK(h[0] != h[0] && h[1] != h[1], "shared memory: an unwritten read gave %g, %g, not NaN",
          h[0], h[1]);
    cudaFree(d);
}

// ----------------------------------------------------------------------------
// shuffles: xor butterflies over 32 lanes and over segments of 8, for 4 and 8 bytes

__global__ void shuffle_kernel(int *xor5, double *xor3w8, float *sum) {
    int lane = threadIdx.x & 31;
    xor5[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x * 3, 5);
    xor3w8[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 0.5 + threadIdx.x, 3, 8);
    float v = (float)lane;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    sum[threadIdx.x] = v;
}

static void test_shuffle(void) {
    int *a = (int *)dev_alloc(64 * sizeof(int)), ha[64];
    double *b = (double *)dev_alloc(64 * sizeof(double)), hb[64];
    float *c = (float *)dev_alloc(64 * sizeof(float)), hc[64];
    shuffle_kernel<<<1, 64>>>(a, b, c);
    cudaMemcpy(ha, a, sizeof ha, cudaMemcpyDeviceToHost);
    cudaMemcpy(hb, b, sizeof hb, cudaMemcpyDeviceToHost);
    cudaMemcpy(hc, c, sizeof hc, cudaMemcpyDeviceToHost);
    int ok_a = 1, ok_b = 1, ok_c = 1;
    for (int t = 0; t < 64; t++) {
        int lane = t & 31, base = t - lane;
        ok_a &= ha[t] == (base + (lane ^ 5)) * 3;
        ok_b &= hb[t] == 0.5 + base + (lane ^ 3);
        ok_c &= hc[t] == 496.0f;   // 0 + 1 + ... + 31
    }
    CHECK(ok_a, "shuffle: xor 5 over a warp");
    CHECK(ok_b, "shuffle: xor 3 within segments of 8 lanes, doubles");
    CHECK(ok_c, "shuffle: butterfly sum");
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
}

// lanes 0-15 shuffle while 16-31 wait at __syncthreads: undefined on a GPU, reported here
__global__ void divergent_shuffle_kernel(int *out) {
    if (threadIdx.x < 16) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
    else __syncthreads();
}
static void run_divergent_shuffle(void) {
    int *d = (int *)dev_alloc(32 * sizeof(int));
    divergent_shuffle_kernel<<<1, 32>>>(d);
}

// lane 31 leaves before its warp's shuffle
__global__ void exited_lane_kernel(int *out) {
    if (threadIdx.x == 31) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
}
static void run_exited_lane(void) {
    int *d = (int *)dev_alloc(32 * sizeof(int));
    exited_lane_kernel<<<1, 32>>>(d);
}

// a block of 48 threads has no lanes 16-31 in its second warp
static void run_missing_lanes(void) {
    int *a = (int *)dev_alloc(64 * sizeof(int));
    double *b = (double *)dev_alloc(64 * sizeof(double));
    float *c = (float *)dev_alloc(64 * sizeof(float));
    shuffle_kernel<<<1, 48>>>(a, b, c);
}

// ----------------------------------------------------------------------------
// races, caught by CUDA_EMU_RACECHECK=1 (both orders from one snapshot, compared)

// every thread writes the same word: the last writer wins
__global__ void write_race_kernel(int *out) { out[0] = (int)threadIdx.x; }
// out[i] = out[i + 1], in place: whether the neighbour has moved yet depends on the order
__global__ void shift_race_kernel(int *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i + 1 < n) out[i] = out[i + 1];
}

static int *race_buffer(void) {
    int h[64];
    for (int i = 0; i < 64; i++) h[i] = i;
    int *d = (int *)dev_alloc(sizeof h);
    cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice);
    setenv("CUDA_EMU_RACECHECK", "1", 1);
    return d;
}
static void run_write_race(void) { write_race_kernel<<<1, 32>>>(race_buffer()); }
static void run_shift_race_threads(void) { shift_race_kernel<<<1, 64>>>(race_buffer(), 64); }
static void run_shift_race_blocks(void) { shift_race_kernel<<<63, 1>>>(race_buffer(), 64); }   // one thread a block

// the tree sum with its barriers is race-free: the check passes it
static void test_racecheck_passes(void) {
    int h[256], sum = 0, got = -1;
    for (int i = 0; i < 256; i++) sum += h[i] = i % 7;
    int *in = (int *)dev_alloc(sizeof h), *out = (int *)dev_alloc(sizeof(int));
    cudaMemcpy(in, h, sizeof h, cudaMemcpyHostToDevice);
    setenv("CUDA_EMU_RACECHECK", "1", 1);
    tree_sum_kernel<<<1, 256>>>(out, in, 1);
    unsetenv("CUDA_EMU_RACECHECK");
    cudaMemcpy(&got, out, sizeof got, cudaMemcpyDeviceToHost);
    CHECK(got == sum, "racecheck: the tree sum gave %d, not %d", got, sum);
    cudaFree(in);
    cudaFree(out);
}

// ----------------------------------------------------------------------------
// launches and memory

__global__ void fill_kernel(int *out, int value) { out[threadIdx.x] = value; }

static void test_launch_errors(void) {
    int *d = (int *)dev_alloc(1024 * sizeof(int)), h = 0;
    cudaMemset(d, 0, 1024 * sizeof(int));
    CHECK(cudaGetLastError() == cudaSuccess, "launch: an error before any launch");
    fill_kernel<<<1, 1025>>>(d, 7);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "launch: 1025 threads accepted");
    CHECK(cudaGetLastError() == cudaSuccess, "launch: cudaGetLastError did not clear the error");
    fill_kernel<<<0, 32>>>(d, 7);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "launch: an empty grid accepted");
    fill_kernel<<<dim3(1, 65536), 32>>>(d, 7);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "launch: grid.y 65536 accepted");
    cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost);
    CHECK(h == 0, "launch: an invalid launch ran");
    fill_kernel<<<1, 1024>>>(d, 7);
    cudaMemcpy(&h, d + 1023, sizeof h, cudaMemcpyDeviceToHost);
    CHECK(cudaGetLastError() == cudaSuccess && h == 7, "launch: 1024 threads did not run");
    cudaFree(d);
}

#if defined(__SANITIZE_ADDRESS__)
// a kernel writing one element past its buffer: AddressSanitizer (make
// test-sanitize builds the emulator with it) sees it as it would on the host
static void run_kernel_past_end(void) {
    int *d = (int *)dev_alloc(31 * sizeof(int));
    fill_kernel<<<1, 32>>>(d, 1);
}
#endif

static void run_host_pointer_argument(void) {
    static int host[32];
    fill_kernel<<<1, 32>>>(host, 1);
}

static void run_memcpy_past_end(void) {
    char h[17];
    void *d = dev_alloc(16);
    cudaMemcpy(h, d, 17, cudaMemcpyDeviceToHost);
}

static void run_memcpy_swapped(void) {
    char h[16] = {0};
    void *d = dev_alloc(16);
    cudaMemcpy(d, h, 16, cudaMemcpyDeviceToHost);   // kind says the source is on the device
}

static void run_double_free(void) {
    void *d = dev_alloc(16);
    cudaFree(d);
    cudaFree(d);
}

static void test_memory(void) {
    size_t free0, total;
    CHECK(cudaMemGetInfo(&free0, &total) == cudaSuccess && free0 <= total, "memory: cudaMemGetInfo");
    float *d = (float *)dev_alloc(1 << 20), h[3];
    size_t free1;
    cudaMemGetInfo(&free1, &total);
    CHECK(free0 - free1 == (1 << 20), "memory: a 1 MiB allocation took %zu bytes", free0 - free1);
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    CHECK(h[0] != h[0] && h[2] != h[2], "memory: fresh cudaMalloc memory is not NaN-filled");
    void *big = NULL;
    CHECK(cudaMalloc(&big, total) == cudaErrorMemoryAllocation && !big,
          "memory: an allocation larger than what is free succeeded");
    cudaFree(d);
    cudaMemGetInfo(&free1, &total);
    CHECK(free1 == free0, "memory: cudaFree did not give the memory back");
}

// ----------------------------------------------------------------------------
// cuBLAS: C = alpha op(A) op(B) + beta C, column-major, against the definition

static void gemm_reference(int ta, int tb, int m, int n, int k, float alpha, const float *A,
                           int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int l = 0; l < k; l++)
                acc += (double)(ta ? A[l + i * lda] : A[i + l * lda]) *
                       (tb ? B[j + l * ldb] : B[l + j * ldb]);
            C[i + j * ldc] = (float)(alpha * acc + (beta != 0.0f ? beta * C[i + j * ldc] : 0.0));
        }
}

static void test_gemm(cublasHandle_t h) {
    const int m = 5, n = 7, k = 3, batch = 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int beta_zero = 0; beta_zero < 2; beta_zero++) {
                const int lda = (ta ? k : m) + 2, ldb = (tb ? n : k) + 1, ldc = m + 3;
                const int acols = ta ? m : k, bcols = tb ? k : n;
                const long long sA = (long long)lda * acols + 4, sB = (long long)ldb * bcols,
                                sC = (long long)ldc * n + 1;
                const size_t nA = sA * batch, nB = sB * batch, nC = sC * batch;
                float *A = (float *)malloc(nA * 4), *B = (float *)malloc(nB * 4),
                      *C = (float *)malloc(nC * 4), *R = (float *)malloc(nC * 4);
                for (size_t i = 0; i < nA; i++) A[i] = (float)((i * 37) % 11) - 5;
                for (size_t i = 0; i < nB; i++) B[i] = (float)((i * 53) % 13) - 6;
                for (size_t i = 0; i < nC; i++) C[i] = beta_zero ? NAN : (float)(i % 5);
                memcpy(R, C, nC * 4);
                const float alpha = 0.5f, beta = beta_zero ? 0.0f : 2.0f;
                for (int b = 0; b < batch; b++)
                    gemm_reference(ta, tb, m, n, k, alpha, A + b * sA, lda, B + b * sB, ldb, beta,
                                   R + b * sC, ldc);
                float *dA = (float *)dev_alloc(nA * 4), *dB = (float *)dev_alloc(nB * 4),
                      *dC = (float *)dev_alloc(nC * 4);
                cudaMemcpy(dA, A, nA * 4, cudaMemcpyHostToDevice);
                cudaMemcpy(dB, B, nB * 4, cudaMemcpyHostToDevice);
                cudaMemcpy(dC, C, nC * 4, cudaMemcpyHostToDevice);
                cublasOperation_t oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
                cublasStatus_t st = cublasSgemmStridedBatched(h, oa, ob, m, n, k, &alpha, dA, lda, sA, dB,
                                                              ldb, sB, &beta, dC, ldc, sC, batch);
                cudaMemcpy(C, dC, nC * 4, cudaMemcpyDeviceToHost);
                // compare the written elements; the padding must be untouched (NaN stays NaN)
                int ok = st == CUBLAS_STATUS_SUCCESS;
                for (size_t i = 0; i < nC; i++)
                    ok &= C[i] == R[i] || (C[i] != C[i] && R[i] != R[i]);
                CHECK(ok, "gemm ta=%d tb=%d beta=%g: differs from the definition", ta, tb, beta);
                free(A); free(B); free(C); free(R);
                cudaFree(dA); cudaFree(dB); cudaFree(dC);
            }
    // cuBLAS's argument rules
    const float one = 1.0f;
    float *d = (float *)dev_alloc(64 * 4);
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 2, &one, d, 3, d, 2, &one, d, 4) ==
          CUBLAS_STATUS_INVALID_VALUE, "gemm: lda below m accepted");
    CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, 4, 2, 3, &one, d, 2, d, 3, &one, d, 4) ==
          CUBLAS_STATUS_INVALID_VALUE, "gemm: lda below k (transposed A) accepted");
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 2, &one, d, 4, d, 2, &one, d, 3) ==
          CUBLAS_STATUS_INVALID_VALUE, "gemm: ldc below m accepted");
    CHECK(cublasSgemm(NULL, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, d, 1, d, 1, &one, d, 1) ==
          CUBLAS_STATUS_NOT_INITIALIZED, "gemm: a NULL handle accepted");
    cudaFree(d);
}

static void run_gemm_past_end(void) {
    cublasHandle_t h;
    cublasCreate(&h);
    const float one = 1.0f;
    float *a = (float *)dev_alloc(12 * 4), *c = (float *)dev_alloc(16 * 4);
    // A is 4 x 4 with lda 4: 16 floats, but its allocation holds 12
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, a, 4, c, 4, &one, c, 4);
}

// ----------------------------------------------------------------------------
// the `unfreed` count of CUDA_EMU_STATS: what is live at cudaDeviceReset and at
// exit. Counted in a fresh process (this program run with --leave-unfreed),
// since the stats file is registered at a process's first cudaMalloc.

static cudaEvent_t g_kept_event;   // static: still reachable for LeakSanitizer

static int leave_unfreed(void) {
    void *a = NULL, *b = NULL, *pinned = NULL;
    cublasHandle_t h;
    cudaMalloc(&a, 64);
    cudaMalloc(&b, 64);
    cudaFree(b);
    cudaMallocHost(&pinned, 16);
    cudaFreeHost(pinned);
    cublasCreate(&h);
    cublasDestroy(h);
    cudaEventCreateWithFlags(&g_kept_event, 0);
    cudaDeviceReset();   // a and the event: 2 unfreed
    cudaMalloc(&a, 64);  // live at exit: 1 more
    return 0;
}

// Runs this test binary again as `test_emu MODE` with CUDA_EMU_STATS set, and
// reads the counts it wrote at exit: out[i] is the count named keys[i] (0 if
// absent). Returns whether the child exited 0.
static int child_stats(const char *mode, const char *const *keys, unsigned long long *out, int n) {
    char path[] = "/tmp/test_emu_stats_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    close(fd);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("CUDA_EMU_STATS", path, 1);
        execl("/proc/self/exe", "test_emu", mode, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    for (int i = 0; i < n; i++) out[i] = 0;
    char key[32];
    unsigned long long v;
    FILE *f = fopen(path, "r");
    while (f && fscanf(f, "%31s %llu", key, &v) == 2)
        for (int i = 0; i < n; i++)
            if (!strcmp(key, keys[i])) out[i] = v;
    if (f) fclose(f);
    unlink(path);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void test_unfreed_counted(void) {
    const char *keys[] = {"mallocs", "frees", "unfreed"};
    unsigned long long c[3];
    CHECK(child_stats("--leave-unfreed", keys, c, 3), "the --leave-unfreed run failed");
    CHECK(c[0] == 3 && c[1] == 1, "stats: %llu mallocs and %llu frees, expected 3 and 1", c[0], c[1]);
    CHECK(c[2] == 3, "stats: %llu unfreed, expected 3 (2 at cudaDeviceReset, 1 at exit)", c[2]);
}

// CUDA_EMU_GEMM: in double every element is exact; in float the order of the
// k terms changes from element to element (a sum whose fp32 result depends on
// it: +2^24 and -2^24 among 62 ones) but a repeated call gives the same bits.
static void test_gemm_order(cublasHandle_t h) {
    const int k = 64, n = 64;
    float a[64], *b = (float *)malloc((size_t)k * n * 4), c1[64], c2[64];
    for (int l = 0; l < k; l++) a[l] = 1.0f;
    a[0] = 16777216.0f, a[1] = -16777216.0f;
    for (int i = 0; i < k * n; i++) b[i] = 1.0f;
    float *da = (float *)dev_alloc(k * 4), *db = (float *)dev_alloc((size_t)k * n * 4), *dc = (float *)dev_alloc(n * 4);
    cudaMemcpy(da, a, k * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(db, b, (size_t)k * n * 4, cudaMemcpyHostToDevice);
    const float one = 1.0f, zero = 0.0f;
    // C (1 x n) = a (1 x k) B (k x n)
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, n, k, &one, da, 1, db, k, &zero, dc, 1);
    cudaMemcpy(c1, dc, n * 4, cudaMemcpyDeviceToHost);
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, n, k, &one, da, 1, db, k, &zero, dc, 1);
    cudaMemcpy(c2, dc, n * 4, cudaMemcpyDeviceToHost);
    int exact = 0, distinct = 0, same = !memcmp(c1, c2, sizeof c1);
    for (int j = 0; j < n; j++) {
        exact += c1[j] == 62.0f;
        distinct += j > 0 && c1[j] != c1[0];
    }
    const char *mode = getenv("CUDA_EMU_GEMM");
    if (mode && !strcmp(mode, "float")) {
        CHECK(exact < n && distinct > 0, "CUDA_EMU_GEMM=float: %d of %d sums exact, %d unlike the first: "
              "no fp32 accumulation in a shuffled order", exact, n, distinct);
        CHECK(same, "CUDA_EMU_GEMM=float: a repeated GEMM gave other bits");
    } else {
        CHECK(exact == n, "CUDA_EMU_GEMM=double: %d of %d sums exact", exact, n);
    }
    free(b);
    cudaFree(da); cudaFree(db); cudaFree(dc);
}

// ----------------------------------------------------------------------------
// tensor cores (mma.cuh): D = A B for A 16x16 and B 16x16 (two 16x8 tiles),
// A and B in shared memory read by ldmatrix, B once K-major through ldmatrix
// and once row-major through ldmatrix.trans; D written from the C layout. The
// fragments ldmatrix returns are also compared with the ones the layout table
// in mma.cuh says each lane holds.

__global__ void mma_kernel(float *d, float *d_trans, int *layout_ok, const bf16 *a,
                           const bf16 *b) {
    __shared__ __align__(16) bf16 sa[16][16], sb[16][16], sbt[16][16];
    const int l = threadIdx.x, g = l / 4, t = l % 4;
    for (int i = l; i < 256; i += 32) {
        sa[i / 16][i % 16] = a[i];
        sb[i / 16][i % 16] = b[i];          // B[k][n]
        sbt[i % 16][i / 16] = b[i];         // B^T[n][k]
    }
    __syncthreads();
    uint32_t fa[4], fb[4], fbt[4];
    ldmatrix_x4(fa, &sa[l % 8 + (l / 8 % 2) * 8][l / 16 * 8]);
    ldmatrix_x4(fbt, &sbt[l % 8 + l / 16 * 8][l / 8 % 2 * 8]);   // {tile 0: b0, b1, tile 1: b0, b1}
    ldmatrix_x4_trans(fb, &sb[l % 8 + (l / 8 % 2) * 8][l / 16 * 8]);
    // the table: a = {A[g][2t..], A[g+8][2t..], A[g][2t+8..], A[g+8][2t+8..]}, b = {B[2t..][n], B[2t+8..][n]}
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        const int row = g + (i & 1) * 8, col = 2 * t + (i / 2) * 8;
        ok &= fa[i] == pack_bf16x2(__bfloat162float(sa[row][col]), __bfloat162float(sa[row][col + 1]));
        const int k = 2 * t + (i & 1) * 8, n = g + (i / 2) * 8;
        const uint32_t want = pack_bf16x2(__bfloat162float(sb[k][n]), __bfloat162float(sb[k + 1][n]));
        ok &= fbt[i] == want && fb[i] == want;
    }
    layout_ok[l] = ok;
    for (int tile = 0; tile < 2; tile++) {
        float acc[4] = {0, 0, 0, 0}, acc2[4] = {0, 0, 0, 0};
        mma_bf16_16816(acc, fa, &fbt[2 * tile], acc);
        mma_bf16_16816(acc2, fa, &fb[2 * tile], acc2);
        for (int i = 0; i < 4; i++) {
            const int row = g + (i / 2) * 8, col = tile * 8 + 2 * t + (i & 1);
            d[row * 16 + col] = acc[i];
            d_trans[row * 16 + col] = acc2[i];
        }
    }
}

static void test_mma(void) {
    bf16 ha[256], hb[256];
    float fa[256], fb[256];
    unsigned s = 7;
    for (int i = 0; i < 256; i++) {
        s = s * 1103515245u + 12345u;
        ha[i] = __float2bfloat16_rn((float)((s >> 8) % 2001) / 1000.0f - 1.0f);
        s = s * 1103515245u + 12345u;
        hb[i] = __float2bfloat16_rn((float)((s >> 8) % 2001) / 250.0f - 4.0f);
        fa[i] = __bfloat162float(ha[i]);
        fb[i] = __bfloat162float(hb[i]);
    }
    bf16 *da = (bf16 *)dev_alloc(sizeof ha), *db = (bf16 *)dev_alloc(sizeof hb);
    float *dd = (float *)dev_alloc(256 * sizeof(float)), *dt = (float *)dev_alloc(256 * sizeof(float));
    int *dok = (int *)dev_alloc(32 * sizeof(int));
    cudaMemcpy(da, ha, sizeof ha, cudaMemcpyHostToDevice);
    cudaMemcpy(db, hb, sizeof hb, cudaMemcpyHostToDevice);
    mma_kernel<<<1, 32>>>(dd, dt, dok, da, db);
    float hd[256], ht[256];
    int hok[32];
    cudaMemcpy(hd, dd, sizeof hd, cudaMemcpyDeviceToHost);
    cudaMemcpy(ht, dt, sizeof ht, cudaMemcpyDeviceToHost);
    cudaMemcpy(hok, dok, sizeof hok, cudaMemcpyDeviceToHost);
    int layout = 1;
    for (int l = 0; l < 32; l++) layout &= hok[l] == 1;
    CHECK(layout, "mma: ldmatrix's fragments are not the ones the layout table names");
    double worst = 0;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) {
            double want = 0, mag = 0;
            for (int k = 0; k < 16; k++) {
                want += (double)fa[i * 16 + k] * fb[k * 16 + j];
                mag += fabs((double)fa[i * 16 + k] * fb[k * 16 + j]);
            }
            worst = fmax(worst, fabs(hd[i * 16 + j] - want) / (mag + 1e-30));
            worst = fmax(worst, fabs(ht[i * 16 + j] - want) / (mag + 1e-30));
        }
    // 16 exact products summed in fp32: at most 16 roundings of 2^-24 of the magnitude
    CHECK(worst < 16 * 6e-8, "mma: D = A B off by %.3g of sum |a b|", worst);
    // bf16 conversion: round to nearest even, NaN kept a NaN
    CHECK(__bfloat162float(__float2bfloat16_rn(1.0f + 1.0f / 256)) == 1.0f &&
          __bfloat162float(__float2bfloat16_rn(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256 &&
          __bfloat162float(__float2bfloat16_rn(-1.0f - 1.5f / 256)) == -1.0f - 2.0f / 256 &&
          isnan(__bfloat162float(__float2bfloat16_rn(NAN))), "bf16: rounding to nearest even");
    cudaFree(da); cudaFree(db); cudaFree(dd); cudaFree(dt); cudaFree(dok);
}

// cp.async: 2 groups of 16-byte copies; after wait<1> the first group has
// landed and (in the emulator, which completes copies as late as allowed) the
// second has not; after wait<0> both have
__global__ void cp_async_kernel(float *out, const float *in) {
    __shared__ __align__(16) float buf[64];
    const int l = threadIdx.x;   // 8 threads, each 2 copies of 4 floats
    buf[l * 4] = -1.0f;
    buf[32 + l * 4] = -1.0f;
    cp_async_16(&buf[l * 4], &in[l * 4]);
    cp_async_commit();
    cp_async_16(&buf[32 + l * 4], &in[32 + l * 4]);
    cp_async_commit();
    cp_async_wait<1>();
    out[l] = buf[l * 4];
    out[8 + l] = buf[32 + l * 4];
    cp_async_wait<0>();
    out[16 + l] = buf[32 + l * 4];
}

static void test_cp_async(void) {
    float h[64], got[24];
    for (int i = 0; i < 64; i++) h[i] = (float)i;
    float *din = (float *)dev_alloc(sizeof h), *dout = (float *)dev_alloc(sizeof got);
    cudaMemcpy(din, h, sizeof h, cudaMemcpyHostToDevice);
    cp_async_kernel<<<1, 8>>>(dout, din);
    cudaMemcpy(got, dout, sizeof got, cudaMemcpyDeviceToHost);
    int first = 1, late = 1, second = 1;
    for (int l = 0; l < 8; l++) {
        first &= got[l] == (float)(l * 4);
        late &= got[8 + l] == -1.0f;
        second &= got[16 + l] == (float)(32 + l * 4);
    }
    CHECK(first, "cp.async: wait_group 1 did not complete the older group");
    CHECK(late, "cp.async: the newer group landed before its wait (the emulator defers it)");
    CHECK(second, "cp.async: wait_group 0 did not complete every group");
    cudaFree(din);
    cudaFree(dout);
}

__global__ void cp_async_unwaited_kernel(const float *in) {
    __shared__ __align__(16) float buf[4];
    cp_async_16(buf, in);
    cp_async_commit();
}
static void run_cp_async_unwaited(void) {
    float *d = (float *)dev_alloc(64);
    cp_async_unwaited_kernel<<<1, 1>>>(d);
}
__global__ void cp_async_misaligned_kernel(const float *in) {
    __shared__ __align__(16) float buf[8];
    cp_async_16(buf, in + 1);
    cp_async_commit();
    cp_async_wait<0>();
}
static void run_cp_async_misaligned(void) {
    float *d = (float *)dev_alloc(64);
    cp_async_misaligned_kernel<<<1, 1>>>(d);
}
// lanes 0-15 at one mma, 16-31 at a shuffle
__global__ void divergent_mma_kernel(float *out) {
    uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
    float c[4] = {0, 0, 0, 0};
    if (threadIdx.x < 16) mma_bf16_16816(c, a, b, c);
    else c[0] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
    out[threadIdx.x] = c[0];
}
static void run_divergent_mma(void) {
    float *d = (float *)dev_alloc(32 * sizeof(float));
    divergent_mma_kernel<<<1, 32>>>(d);
}
// ldmatrix from global memory
__global__ void ldmatrix_global_kernel(uint32_t *out, const bf16 *in) {
    uint32_t r[4];
    ldmatrix_x4(r, in + threadIdx.x * 8);
    out[threadIdx.x] = r[0];
}
static void run_ldmatrix_global(void) {
    bf16 *d = (bf16 *)dev_alloc(256 * sizeof(bf16));
    ldmatrix_global_kernel<<<1, 32>>>((uint32_t *)d, d);
}

// ----------------------------------------------------------------------------
// cuBLASLt (emu_lt.cpp): D = alpha op(A) op(B) + beta C (+ bias per row), A and
// B bf16 or fp32, C and D fp32, through the calls matmul_bf16.cu makes

#include <cublasLt.h>

#include <vector>

// one matmul: everything but the operands defaults to matmul_bf16.cu's choices
struct LtCall {
    cudaDataType_t atype = CUDA_R_16BF, btype = CUDA_R_16BF, ctype = CUDA_R_32F, dtype = CUDA_R_32F;
    cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
    cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
    int m = 0, n = 0, k = 0, lda = 1, ldb = 1, ldc = 1, ldd = 1;
    const void *A = NULL, *B = NULL;
    const float *C = NULL;
    float *D = NULL;
    float alpha = 1.0f, beta = 0.0f;
    const float *bias = NULL;
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;   // BIAS when bias is set
    void *ws = NULL;
    size_t ws_pref = 0, ws_given = 0;   // the preference's maximum; what cublasLtMatmul gets
    uint32_t align = 0;                 // the preferences' minimum alignments (0: the default 256)
    int null_algo = 0;
};

// the status of the first call that fails, or of cublasLtMatmul
static cublasStatus_t lt_call(cublasLtHandle_t lt, const LtCall &c) {
    cublasLtMatmulDesc_t desc;
    cublasStatus_t st = cublasLtMatmulDescCreate(&desc, c.compute, CUDA_R_32F);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &c.ta, sizeof c.ta);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &c.tb, sizeof c.tb);
    const cublasLtEpilogue_t epi = c.bias ? CUBLASLT_EPILOGUE_BIAS : c.epilogue;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    if (c.bias) {
        const cudaDataType_t bt = CUDA_R_32F;
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt);
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &c.bias, sizeof c.bias);
    }
    cublasLtMatrixLayout_t la, lb, lc, ld;
    cublasLtMatrixLayoutCreate(&la, c.atype, c.ta == CUBLAS_OP_N ? c.m : c.k, c.ta == CUBLAS_OP_N ? c.k : c.m, c.lda);
    cublasLtMatrixLayoutCreate(&lb, c.btype, c.tb == CUBLAS_OP_N ? c.k : c.n, c.tb == CUBLAS_OP_N ? c.n : c.k, c.ldb);
    cublasLtMatrixLayoutCreate(&lc, c.ctype, c.m, c.n, c.ldc);
    cublasLtMatrixLayoutCreate(&ld, c.dtype, c.m, c.n, c.ldd);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    const uint64_t ws_pref = c.ws_pref;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_pref, sizeof ws_pref);
    if (c.align) {
        const cublasLtMatmulPreferenceAttributes_t which[4] = {
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
        for (int i = 0; i < 4; i++) cublasLtMatmulPreferenceSetAttribute(pref, which[i], &c.align, sizeof c.align);
    }
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    st = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, ld, pref, 1, &heur, &found);
    if (st == CUBLAS_STATUS_SUCCESS && (found != 1 || heur.state != CUBLAS_STATUS_SUCCESS ||
                                        heur.workspaceSize > c.ws_pref))
        st = CUBLAS_STATUS_EXECUTION_FAILED;   // not what a heuristic may return
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmul(lt, desc, &c.alpha, c.A, la, c.B, lb, &c.beta, c.C, lc, c.D, ld,
                            c.null_algo ? NULL : &heur.algo, c.ws, c.ws_given, 0);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(desc);
    return st;
}

static float lt_uniform(uint32_t *s) {
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) % 20001) / 10000.0f - 1.0f;
}

// a column-major rows x cols matrix with leading dimension ld, its padding NaN;
// host values in `vals` (bf16-rounded when bf16), device copy returned
static void *lt_matrix(int rows, int cols, int ld, int is_bf16, uint32_t *seed, std::vector<double> &vals) {
    const size_t n = (size_t)ld * (cols - 1) + rows + 3;   // 3 past the end, NaN too
    vals.assign(n, NAN);
    std::vector<bf16> hb(n, __float2bfloat16_rn(NAN));
    std::vector<float> hf(n, NAN);
    for (int j = 0; j < cols; j++)
        for (int i = 0; i < rows; i++) {
            const size_t at = i + (size_t)j * ld;
            const float x = lt_uniform(seed) * 2.0f;
            hb[at] = __float2bfloat16_rn(x);
            hf[at] = x;
            vals[at] = is_bf16 ? __bfloat162float(hb[at]) : x;
        }
    void *d = dev_alloc(n * (is_bf16 ? 2 : 4));
    cudaMemcpy(d, is_bf16 ? (const void *)hb.data() : (const void *)hf.data(), n * (is_bf16 ? 2 : 4),
               cudaMemcpyHostToDevice);
    return d;
}

static int lt_float_mode(void) {
    const char *e = getenv("CUDA_EMU_GEMM");
    return e && !strcmp(e, "float");
}

// every transpose pair, two shapes, beta 0 (C NaN) and 1 (C apart from D, or D
// itself), with and without the bias, against double on the operands' values
static void test_lt_matmul(cublasLtHandle_t lt, int bf16_in) {
    const int shapes[2][3] = {{7, 5, 33}, {64, 48, 96}};
    void *ws = dev_alloc(4 << 20);
    uint32_t seed = bf16_in ? 11 : 12;
    int cases = 0, failed = 0;
    double worst = 0;
    for (int s = 0; s < 2; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int mode = 0; mode < 3; mode++)   // beta 0 | beta 1, C apart | beta 1, in place
                    for (int with_bias = 0; with_bias < 2; with_bias++) {
                        const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                        LtCall c;
                        c.atype = c.btype = bf16_in ? CUDA_R_16BF : CUDA_R_32F;
                        c.ta = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
                        c.tb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
                        c.m = m, c.n = n, c.k = k;
                        const int arows = ta ? k : m, acols = ta ? m : k, brows = tb ? n : k, bcols = tb ? k : n;
                        c.lda = arows + 3, c.ldb = brows + 1;
                        c.ldd = m + 1;
                        c.ldc = mode == 2 ? c.ldd : m + 2;
                        c.beta = mode ? 1.0f : 0.0f;
                        c.alpha = mode == 1 ? 0.5f : 1.0f;
                        std::vector<double> a, b, cv, dv, bv;
                        c.A = lt_matrix(arows, acols, c.lda, bf16_in, &seed, a);
                        c.B = lt_matrix(brows, bcols, c.ldb, bf16_in, &seed, b);
                        float *dC = (float *)lt_matrix(m, n, c.ldc, 0, &seed, cv);
                        if (mode == 0) {   // C is not read: all NaN
                            std::vector<float> nan(cv.size(), NAN);
                            cudaMemcpy(dC, nan.data(), nan.size() * 4, cudaMemcpyHostToDevice);
                        }
                        float *dD = mode == 2 ? dC : (float *)lt_matrix(m, n, c.ldd, 0, &seed, dv);
                        if (mode != 2) {   // D's old values do not matter: NaN
                            std::vector<float> nan(dv.size(), NAN);
                            cudaMemcpy(dD, nan.data(), nan.size() * 4, cudaMemcpyHostToDevice);
                        }
                        c.C = dC, c.D = dD;
                        float *dbias = NULL;
                        if (with_bias) dbias = (float *)lt_matrix(m, 1, m, 0, &seed, bv);
                        c.bias = dbias;
                        c.ws = ws, c.ws_pref = c.ws_given = 4 << 20;
                        const cublasStatus_t st = lt_call(lt, c);
                        const size_t nd = (size_t)c.ldd * (n - 1) + m + 3;
                        std::vector<float> got(nd);
                        cudaMemcpy(got.data(), dD, nd * 4, cudaMemcpyDeviceToHost);
                        int ok = st == CUBLAS_STATUS_SUCCESS;
                        for (int j = 0; j < n; j++)
                            for (int i = 0; i < m; i++) {
                                double acc = 0, mag = 0;
                                for (int l = 0; l < k; l++) {
                                    const double x = ta ? a[l + (size_t)i * c.lda] : a[i + (size_t)l * c.lda];
                                    const double y = tb ? b[j + (size_t)l * c.ldb] : b[l + (size_t)j * c.ldb];
                                    acc += x * y;
                                    mag += fabs(x * y);
                                }
                                double want = c.alpha * acc;
                                mag *= c.alpha;
                                if (mode) {
                                    want += c.beta * cv[i + (size_t)j * c.ldc];
                                    mag += fabs(cv[i + (size_t)j * c.ldc]);
                                }
                                if (with_bias) want += bv[i], mag += fabs(bv[i]);
                                const double err = fabs(got[i + (size_t)j * c.ldd] - want) / (mag + 1e-30);
                                // double: one rounding; float: one per term, in any order
                                const double tol = lt_float_mode() ? (k + 4) * 6e-8 : 6e-8;
                                if (!(err <= tol)) ok = 0;
                                if (err > worst) worst = err;
                            }
                        // D's padding (and past its end) untouched
                        for (int j = 0; j < n && mode != 2; j++)
                            for (int i = m; i < c.ldd && (size_t)i + (size_t)j * c.ldd < nd; i++)
                                ok &= got[i + (size_t)j * c.ldd] != got[i + (size_t)j * c.ldd];
                        for (size_t i = nd - 3; i < nd; i++) ok &= got[i] != got[i];
                        cases++;
                        if (!ok) {
                            failed++;
                            fprintf(stderr, "cuBLASLt %s: m=%d n=%d k=%d ta=%d tb=%d mode=%d bias=%d: "
                                    "status %d, worst error %.3g\n", bf16_in ? "bf16" : "fp32", m, n, k,
                                    ta, tb, mode, with_bias, (int)st, worst);
                        }
                        cudaFree((void *)c.A);
                        cudaFree((void *)c.B);
                        cudaFree(dC);
                        if (mode != 2) cudaFree(dD);
                        cudaFree(dbias);
                    }
    CHECK(!failed, "cuBLASLt %s: %d of %d matmuls differ from the reference (worst %.3g of sum |terms|)",
          bf16_in ? "bf16" : "fp32", failed, cases, worst);
    cudaFree(ws);
}

// CUDA_EMU_GEMM=float reaches cuBLASLt too: the +2^24 / -2^24 sum of test_gemm_order in bf16
static void test_lt_order(cublasLtHandle_t lt) {
    const int k = 64, n = 64;
    std::vector<bf16> a(k, __float2bfloat16_rn(1.0f)), b((size_t)k * n, __float2bfloat16_rn(1.0f));
    a[0] = __float2bfloat16_rn(16777216.0f), a[1] = __float2bfloat16_rn(-16777216.0f);
    bf16 *da = (bf16 *)dev_alloc(k * 2), *db = (bf16 *)dev_alloc((size_t)k * n * 2);
    float *dd = (float *)dev_alloc(n * 4);
    cudaMemcpy(da, a.data(), k * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(db, b.data(), (size_t)k * n * 2, cudaMemcpyHostToDevice);
    LtCall c;
    c.m = 1, c.n = n, c.k = k, c.lda = 1, c.ldb = k, c.ldc = c.ldd = 1;
    c.A = da, c.B = db, c.C = c.D = dd;
    float d1[64], d2[64];
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_SUCCESS, "cuBLASLt order: first matmul");
    cudaMemcpy(d1, dd, sizeof d1, cudaMemcpyDeviceToHost);
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_SUCCESS, "cuBLASLt order: second matmul");
    cudaMemcpy(d2, dd, sizeof d2, cudaMemcpyDeviceToHost);
    int exact = 0, distinct = 0;
    for (int j = 0; j < n; j++) exact += d1[j] == 62.0f, distinct += j && d1[j] != d1[0];
    if (lt_float_mode()) {
        CHECK(exact < n && distinct > 0, "cuBLASLt, CUDA_EMU_GEMM=float: %d of %d sums exact, %d "
              "unlike the first: no fp32 accumulation in a shuffled order", exact, n, distinct);
        CHECK(!memcmp(d1, d2, sizeof d1), "cuBLASLt, CUDA_EMU_GEMM=float: a repeated matmul gave other bits");
    } else {
        CHECK(exact == n, "cuBLASLt, CUDA_EMU_GEMM=double: %d of %d sums exact", exact, n);
    }
    cudaFree(da); cudaFree(db); cudaFree(dd);
}

// the statuses real cuBLASLt gives for misuse (INVALID_VALUE) and what the
// emulator does not compute (NOT_SUPPORTED); a good call in between, to show
// each failing call differs from it in one thing
static void test_lt_misuse(cublasLtHandle_t lt) {
    const int m = 4, n = 3, k = 5;
    bf16 *A = (bf16 *)dev_alloc(64 * 2), *B = (bf16 *)dev_alloc(64 * 2);
    float *D = (float *)dev_alloc(64 * 4), *bias = (float *)dev_alloc(16 * 4);
    void *ws = dev_alloc(1 << 20);
    cudaMemset(A, 0, 64 * 2);
    cudaMemset(B, 0, 64 * 2);
    cudaMemset(bias, 0, 16 * 4);
    LtCall good;
    good.m = m, good.n = n, good.k = k, good.lda = m, good.ldb = k, good.ldc = good.ldd = m;
    good.A = A, good.B = B, good.C = good.D = D;
    good.ws = ws, good.ws_pref = good.ws_given = 1 << 20;
    CHECK(lt_call(lt, good) == CUBLAS_STATUS_SUCCESS, "cuBLASLt misuse: the good call failed");
    LtCall c = good;
    c.bias = bias;
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_SUCCESS, "cuBLASLt misuse: the good call with a bias failed");
    c = good, c.null_algo = 1;
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_SUCCESS, "cuBLASLt misuse: a NULL algo (cuBLASLt picks) failed");
    c = good, c.ws_pref = c.ws_given = 0, c.ws = NULL;
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_SUCCESS, "cuBLASLt misuse: no workspace failed");
    c = good, c.lda = m - 1;
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_INVALID_VALUE, "cuBLASLt misuse: lda below A's rows accepted");
    c = good, c.ldd = c.ldc = m - 1;
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_INVALID_VALUE, "cuBLASLt misuse: ldd below m accepted");
    c = good, c.ldc = m + 1;   // C == D with another layout
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_INVALID_VALUE, "cuBLASLt misuse: in place with ldc != ldd accepted");
    c = good, c.ws_given = (1 << 20) - 1;   // less than the heuristic's algorithm asked for
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_INVALID_VALUE, "cuBLASLt misuse: a workspace below the algorithm's accepted");
    c = good, c.epilogue = CUBLASLT_EPILOGUE_BIAS;   // and no bias pointer
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_INVALID_VALUE, "cuBLASLt misuse: the bias epilogue without a bias accepted");
    c = good, c.atype = c.btype = CUDA_R_16F;
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_NOT_SUPPORTED, "cuBLASLt: fp16 operands not reported unsupported");
    c = good, c.btype = CUDA_R_32F;
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_NOT_SUPPORTED, "cuBLASLt: bf16 A with fp32 B not reported unsupported");
    c = good, c.ctype = c.dtype = CUDA_R_16BF;
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_NOT_SUPPORTED, "cuBLASLt: a bf16 D not reported unsupported");
    c = good, c.compute = CUBLAS_COMPUTE_64F;
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_NOT_SUPPORTED, "cuBLASLt: compute 64F not reported unsupported");
    c = good, c.epilogue = CUBLASLT_EPILOGUE_GELU;
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_NOT_SUPPORTED, "cuBLASLt: the GELU epilogue not reported unsupported");
    c = good, c.m = 0;
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_SUCCESS, "cuBLASLt: m = 0 is not a no-op");

    // layouts that do not fit together, attributes of the wrong size, bad arguments
    cublasLtMatmulDesc_t desc;
    CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS,
          "cublasLtMatmulDescCreate");
    const cublasOperation_t op = CUBLAS_OP_T;
    const int64_t op64 = CUBLAS_OP_T;
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    const uint64_t epi64 = CUBLASLT_EPILOGUE_BIAS;
    const int32_t bt = CUDA_R_32F;
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op, sizeof op) == CUBLAS_STATUS_SUCCESS &&
          cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op64, sizeof op64) == CUBLAS_STATUS_INVALID_VALUE &&
          cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op, 2) == CUBLAS_STATUS_INVALID_VALUE &&
          cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, NULL, sizeof op) == CUBLAS_STATUS_INVALID_VALUE,
          "cublasLtMatmulDescSetAttribute: a transpose of the wrong size accepted");
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi64, sizeof epi64) == CUBLAS_STATUS_INVALID_VALUE &&
          cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, 4) == CUBLAS_STATUS_INVALID_VALUE &&
          cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, 8) == CUBLAS_STATUS_INVALID_VALUE &&
          cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi) == CUBLAS_STATUS_SUCCESS,
          "cublasLtMatmulDescSetAttribute: an epilogue attribute of the wrong size accepted");
    const cublasOperation_t opn = CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opn, sizeof opn);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    const uint32_t ws32 = 1 << 20;
    const uint64_t ws64 = 1 << 20;
    CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws32, sizeof ws32) == CUBLAS_STATUS_INVALID_VALUE &&
          cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws64, sizeof ws64) == CUBLAS_STATUS_SUCCESS,
          "cublasLtMatmulPreferenceSetAttribute: a 4-byte workspace size accepted");
    // op(A) m x k (A stored N), op(B) k x n (B stored N), D m x n
    cublasLtMatrixLayout_t la, lb, lb_bad, ld, lc_bad;
    cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, m, k, m);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, k, n, k);
    cublasLtMatrixLayoutCreate(&lb_bad, CUDA_R_16BF, k + 1, n, k + 1);   // k + 1 rows
    cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, m, n, m);
    cublasLtMatrixLayoutCreate(&lc_bad, CUDA_R_32F, m, n + 1, m);       // C wider than D
    cublasLtMatmulHeuristicResult_t heur;
    int found = -1;
    // the bias pointer: set on the descriptor (the epilogue is BIAS)
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    CHECK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 1, &heur, &found) == CUBLAS_STATUS_SUCCESS &&
          found == 1 && heur.workspaceSize <= (1 << 20), "cublasLtMatmulAlgoGetHeuristic: the good layouts");
    found = -1;
    CHECK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb_bad, ld, ld, pref, 1, &heur, &found) ==
          CUBLAS_STATUS_INVALID_VALUE && found == 0, "cuBLASLt misuse: op(B) with k + 1 rows accepted");
    CHECK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc_bad, ld, pref, 1, &heur, &found) ==
          CUBLAS_STATUS_INVALID_VALUE, "cuBLASLt misuse: C of another shape than D accepted");
    CHECK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 0, &heur, &found) ==
          CUBLAS_STATUS_INVALID_VALUE, "cuBLASLt misuse: requestedAlgoCount 0 accepted");
    CHECK(cublasLtMatmulAlgoGetHeuristic(NULL, desc, la, lb, ld, ld, pref, 1, &heur, &found) ==
          CUBLAS_STATUS_NOT_INITIALIZED, "cuBLASLt misuse: a NULL handle accepted");
    const float one = 1.0f, zero = 0.0f;
    CHECK(cublasLtMatmul(lt, desc, &one, A, la, B, lb_bad, &zero, D, ld, D, ld, NULL, NULL, 0, 0) ==
          CUBLAS_STATUS_INVALID_VALUE, "cuBLASLt misuse: cublasLtMatmul with op(B) k + 1 rows accepted");
    cublasLtMatmulAlgo_t zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    CHECK(cublasLtMatmul(lt, desc, &one, A, la, B, lb, &zero, D, ld, D, ld, &zeroed, NULL, 0, 0) ==
          CUBLAS_STATUS_INVALID_VALUE, "cuBLASLt misuse: an algo not from the heuristic accepted");
    CHECK(cublasLtMatmul(lt, desc, &one, A, la, B, lb, &zero, D, ld, D, ld, &heur.algo, ws, 1 << 20, 0) ==
          CUBLAS_STATUS_SUCCESS, "cuBLASLt: the good matmul with the bias");
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lb_bad);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatrixLayoutDestroy(lc_bad);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatmulDescDestroy(desc);

    // the heuristic assumes 256-byte aligned operands unless told otherwise
    c = good, c.C = c.D = D + 4, c.align = 16;
    CHECK(lt_call(lt, c) == CUBLAS_STATUS_SUCCESS, "cuBLASLt: D 16-byte aligned, with the preference saying 16");
    cudaFree(A); cudaFree(B); cudaFree(D); cudaFree(bias); cudaFree(ws);
}

// what aborts: each run in a child by aborts_with
static LtCall lt_small_call(void) {
    LtCall c;
    c.m = 4, c.n = 4, c.k = 4, c.lda = c.ldb = c.ldc = c.ldd = 4;
    c.A = dev_alloc(16 * 2), c.B = dev_alloc(16 * 2);
    c.D = (float *)dev_alloc(16 * 4), c.C = c.D;
    return c;
}
static void lt_run_child(const LtCall &c) {
    cublasLtHandle_t lt;
    cublasLtCreate(&lt);
    lt_call(lt, c);
}
static void run_lt_a_past_end(void) {
    LtCall c = lt_small_call();
    c.A = dev_alloc(15 * 2);   // A is 4 x 4: 16 bf16
    lt_run_child(c);
}
static void run_lt_bias_past_end(void) {
    LtCall c = lt_small_call();
    c.bias = (float *)dev_alloc(3 * 4);   // 4 rows
    lt_run_child(c);
}
static void run_lt_workspace_host(void) {
    static char host[1 << 10];
    LtCall c = lt_small_call();
    c.ws = host, c.ws_pref = c.ws_given = sizeof host;
    lt_run_child(c);
}
static void run_lt_d_misaligned(void) {
    LtCall c = lt_small_call();
    float *d = (float *)dev_alloc(32 * 4);
    c.C = c.D = d + 1;   // 4-byte aligned; the preferences say 256
    lt_run_child(c);
}
static void run_lt_d_overlaps_a(void) {
    LtCall c = lt_small_call();
    float *d = (float *)dev_alloc(64 * 4);
    c.atype = c.btype = CUDA_R_32F;
    c.A = d, c.B = d + 32, c.C = c.D = d + 8;   // D (floats 8-23) inside A (0-15)
    c.align = 4;
    lt_run_child(c);
}

// CUDA_EMU_STATS: a cuBLASLt matmul is one GEMM (none for an empty one), a live handle is unfreed
static cublasLtHandle_t g_kept_lt;
static int lt_stats_child(void) {
    cublasLtHandle_t lt;
    cublasLtCreate(&lt);
    LtCall c = lt_small_call();
    cudaMemset((void *)c.A, 0, 32);
    cudaMemset((void *)c.B, 0, 32);
    lt_call(lt, c);
    lt_call(lt, c);
    c.n = 0;
    lt_call(lt, c);
    cublasLtDestroy(lt);
    cudaFree((void *)c.A); cudaFree((void *)c.B); cudaFree(c.D);
    cublasLtCreate(&g_kept_lt);   // live at exit: 1 unfreed
    return 0;
}
static void test_lt_stats(void) {
    const char *keys[] = {"gemms", "unfreed"};
    unsigned long long c[2];
    CHECK(child_stats("--lt-stats", keys, c, 2), "the --lt-stats run failed");
    CHECK(c[0] == 2 && c[1] == 1, "cuBLASLt stats: %llu gemms and %llu unfreed, expected 2 and 1",
          c[0], c[1]);
}

// compute capability from CUDA_EMU_SM (default 90), 132 multiprocessors
static void test_device_attributes(void) {
    int major = -1, minor = -1, sms = -1;
    CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) == cudaSuccess &&
          cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0) == cudaSuccess &&
          cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0) == cudaSuccess &&
          major == 9 && minor == 0 && sms == 132,
          "cudaDeviceGetAttribute: %d.%d with %d SMs, expected 9.0 with 132", major, minor, sms);
    setenv("CUDA_EMU_SM", "86", 1);
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0);
    unsetenv("CUDA_EMU_SM");
    CHECK(major == 8 && minor == 6, "cudaDeviceGetAttribute: CUDA_EMU_SM=86 gave %d.%d", major, minor);
    CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 1) == cudaErrorInvalidDevice,
          "cudaDeviceGetAttribute: device 1 of 1 accepted");
}
static void run_bad_sm(void) {
    int v;
    setenv("CUDA_EMU_SM", "nine", 1);
    cudaDeviceGetAttribute(&v, cudaDevAttrComputeCapabilityMajor, 0);
}

static void test_lt(void) {
    cublasLtHandle_t lt;
    CHECK(cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS, "cublasLtCreate");
    test_lt_matmul(lt, 1);
    test_lt_matmul(lt, 0);
    test_lt_order(lt);
    test_lt_misuse(lt);
    CHECK(cublasLtDestroy(lt) == CUBLAS_STATUS_SUCCESS, "cublasLtDestroy");
    test_lt_stats();
    CHECK(aborts_with(run_lt_a_past_end, "cublasLtMatmul: A: 32 bytes"),
          "cuBLASLt: an A past the end of its allocation was not reported");
    CHECK(aborts_with(run_lt_bias_past_end, "cublasLtMatmul: the bias (epilogue)"),
          "cuBLASLt: a bias past the end of its allocation was not reported");
    CHECK(aborts_with(run_lt_workspace_host, "cublasLtMatmul: the workspace"),
          "cuBLASLt: a workspace in host memory was not reported");
    CHECK(aborts_with(run_lt_d_misaligned, "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES"),
          "cuBLASLt: a D less aligned than the heuristic assumed was not reported");
    CHECK(aborts_with(run_lt_d_overlaps_a, "D overlaps A"),
          "cuBLASLt: a D overlapping A was not reported");
    test_device_attributes();
    CHECK(aborts_with(run_bad_sm, "CUDA_EMU_SM=nine"), "CUDA_EMU_SM=nine was not reported");
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--leave-unfreed")) return leave_unfreed();
    if (argc > 1 && !strcmp(argv[1], "--lt-stats")) return lt_stats_child();
    test_coordinates();
    test_barrier();
    test_shared_poison();
    test_shuffle();
    test_launch_errors();
    test_memory();
    cublasHandle_t h;
    CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, "cublasCreate");
    test_gemm(h);
    test_gemm_order(h);
    cublasDestroy(h);
    test_mma();
    test_cp_async();
    CHECK(aborts_with(run_cp_async_unwaited, "cp.async copies never waited for"),
          "a thread leaving with cp.async copies pending was not reported");
    CHECK(aborts_with(run_cp_async_misaligned, "cp.async: source"),
          "a misaligned cp.async source was not reported");
    CHECK(aborts_with(run_divergent_mma, "different shuffles or warp-wide instructions"),
          "an mma.sync reached by half a warp was not reported");
    CHECK(aborts_with(run_ldmatrix_global, "ldmatrix: lane 0's row address"),
          "an ldmatrix from global memory was not reported");

    CHECK(aborts_with(run_divergent_shuffle, "which is at __syncthreads"),
          "a shuffle with lanes at __syncthreads was not reported");
    CHECK(aborts_with(run_exited_lane, "lane 31 of warp 0, which is exited"),
          "a shuffle naming an exited lane was not reported");
    CHECK(aborts_with(run_missing_lanes, "which the block (48 threads) does not have"),
          "a shuffle naming lanes the block lacks was not reported");
    test_racecheck_passes();
    test_unfreed_counted();
    CHECK(aborts_with(run_write_race, "write_race_kernel (launched at"),
          "racecheck: threads writing one word went unnoticed");
    CHECK(aborts_with(run_shift_race_threads, "a race: byte"),
          "racecheck: a read-write race between threads went unnoticed");
    CHECK(aborts_with(run_shift_race_blocks, "a race: byte"),
          "racecheck: a read-write race between blocks went unnoticed");
    CHECK(aborts_with(run_host_pointer_argument, "argument 1"),
          "a host pointer passed to a kernel was not reported");
    CHECK(aborts_with(run_memcpy_past_end, "not inside one cudaMalloc allocation"),
          "a copy past the end of an allocation was not reported");
    CHECK(aborts_with(run_memcpy_swapped, "not inside one cudaMalloc allocation"),
          "a copy with the wrong direction was not reported");
    CHECK(aborts_with(run_double_free, "not a live cudaMalloc allocation"),
          "a double cudaFree was not reported");
    CHECK(aborts_with(run_gemm_past_end, "cublasSgemm: A of batch item 0"),
          "a GEMM operand past the end of its allocation was not reported");
#if defined(__SANITIZE_ADDRESS__)
    CHECK(aborts_with(run_kernel_past_end, "heap-buffer-overflow"),
          "AddressSanitizer did not see a kernel write past its buffer");
#else
    printf("test_emu: skipped: a kernel writing past its buffer (needs AddressSanitizer: make "
           "test-sanitize)\n");
#endif
    test_lt();
    return test_summary("test_emu");
}

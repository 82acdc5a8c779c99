// cuda_runtime.h (emulated) - the part of the CUDA runtime and device language
// that attention.cu, layers.cu and backend_cuda.cu use, run on the CPU, so the
// CUDA backend's kernels can be checked where no GPU is (`make test-gpu-emu`).
//
// How a launch runs: tests/cuda_emu/translate.py rewrites `k<<<grid, block>>>(args)`
// into emu_launch(...) below. Blocks run one after another; the threads of a
// block run as fibers (one stack each) on one CPU thread. A fiber runs until it
// reaches __syncthreads() or a warp shuffle; the scheduler releases a barrier
// when every live thread of the block (or every lane the shuffle's mask names)
// has arrived, and reports a deadlock - a barrier in divergent code - otherwise.
//
// What it checks beyond running the code (each failure names the kernel and the
// launch site, then aborts):
//   - launch configurations: CUDA's limits on grid and block sizes;
//   - every pointer argument of a kernel lies in memory from cudaMalloc;
//   - cudaMemcpy/cudaMemset and cuBLAS operands lie inside one allocation
//     (cuBLAS spans computed from m, n, k, the leading dimensions and strides);
//   - cuBLAS's argument rules (leading dimensions at least the row count);
//   - shuffles: every lane of the mask is alive and at the same shuffle;
//   - static shared memory above 48 KiB.
// Races: a fiber runs until it blocks, and even blocks run their threads in
// ascending order, odd blocks descending, so a missing barrier often shows up
// as a wrong value. With CUDA_EMU_RACECHECK=1 every launch runs twice from the
// same snapshot of the buffers its pointer arguments point into: blocks and
// threads all ascending, then all descending; any byte that differs means the
// result depends on the order threads run in - a race between threads or
// blocks - and is reported. What it cannot tell: races the two orders happen
// to resolve alike, the memory model, timing, and anything about real GPU
// hardware. Fresh cudaMalloc memory and each
// block's shared memory are filled with 0xff bytes (NaN as floats), so a read
// of never-written memory shows up in the results.
//
// Environment: CUDA_EMU_STATS=FILE writes, at exit, how many allocations,
// frees, launches, GEMMs and waits for the device the run made;
// CUDA_EMU_MEMORY_MIB sets the device's memory (4096); CUDA_EMU_DEVICES=0
// hides the device.
#ifndef CUDA_EMU_RUNTIME_H
#define CUDA_EMU_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <tuple>
#include <type_traits>
#include <utility>

#define CUDA_EMULATED 1

// ----------------------------------------------------------------------------
// the device language: qualifiers become plain C++

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __constant__
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;

// the running thread's coordinates (set by the scheduler before it resumes a fiber)
extern dim3 emu_threadIdx, emu_blockIdx, emu_blockDim, emu_gridDim;
#define threadIdx emu_threadIdx
#define blockIdx emu_blockIdx
#define blockDim emu_blockDim
#define gridDim emu_gridDim
#define warpSize 32

void emu_syncthreads(void);
#define __syncthreads() emu_syncthreads()

// this lane's `bytes` from `in` go to lane (lane ^ lane_mask); `out` receives that lane's
void emu_shuffle_xor(unsigned mask, const void *in, void *out, size_t bytes, int lane_mask,
                     int width);

template <typename T>
static inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
    static_assert(sizeof(T) <= 8, "emulated shuffles move at most 8 bytes");
    T out;
    emu_shuffle_xor(mask, &var, &out, sizeof(T), lane_mask, width);
    return out;
}

// A warp-wide instruction (mma.sync, ldmatrix): each lane passes its own
// operands in `mine`; when all 32 lanes of the warp have arrived at the same
// instruction, op runs once with every lane's pointer (lanes[l] is lane l's
// `mine`) and writes each lane's results there, before any lane goes on.
typedef void (*EmuWarpOp)(void *const lanes[32]);
void emu_warp_collective(EmuWarpOp op, void *mine);

// The tensor-core and asynchronous-copy instructions that mma.cuh wraps, with
// the operand layouts of the PTX ISA (emu.cpp cites the tables):
//   D = A B + C, A 16x16 and B 16x8 bf16 in a warp's fragments, C and D fp32
void emu_mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]);
//   four 8x8 matrices of 16-bit elements from shared memory; lane l names row
//   l % 8 of matrix l / 8; trans: each lane gets the transposed fragments
void emu_ldmatrix_x4(uint32_t r[4], const void *row, int trans);
//   cp.async.cg 16 bytes global -> shared; the copy happens, at the latest the
//   emulator allows, when a cp.async.wait_group says it must be complete
void emu_cp_async_16(void *shared_dst, const void *global_src);
void emu_cp_async_commit(void);
void emu_cp_async_wait(int pending_groups);
// is p inside this block's shared memory?
int emu_is_shared(const void *p, size_t bytes);

// static __shared__ arrays: translate.py turns each declaration into a
// reference to this block's shared memory, in declaration order
void *emu_shared(size_t bytes, size_t align);

// CUDA's integer min, as device code calls it
template <typename T>
static inline T min(T a, T b) { return a < b ? a : b; }

// ----------------------------------------------------------------------------
// the runtime API

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
} cudaError_t;

typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
} cudaMemcpyKind;

typedef struct EmuStream *cudaStream_t;
typedef struct EmuEvent *cudaEvent_t;
#define cudaEventDefault 0u
#define cudaEventDisableTiming 2u

const char *cudaGetErrorString(cudaError_t err);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
enum cudaDeviceAttr {
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
};
// CUDA_EMU_SM (default 90) gives the compute capability; 132 multiprocessors (emu_lt.cpp)
cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaDeviceReset(void);
cudaError_t cudaMalloc(void **ptr, size_t bytes);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMallocHost(void **ptr, size_t bytes);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = 0);
cudaError_t cudaMemset(void *ptr, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t stream = 0);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventDestroy(cudaEvent_t event);

// ----------------------------------------------------------------------------
// kernel launches: `k<<<grid, block, smem, stream>>>(args)` becomes
// emu_launch(EmuLaunch("k", __FILE__, __LINE__, grid, block, smem, stream), k, args)

struct EmuLaunch {
    const char *kernel, *file;
    int line;
    dim3 grid, block;
    size_t shared_bytes;
    EmuLaunch(const char *kernel_, const char *file_, int line_, dim3 grid_, dim3 block_,
              size_t shared_bytes_ = 0, cudaStream_t stream = 0)
        : kernel(kernel_), file(file_), line(line_), grid(grid_), block(block_),
          shared_bytes(shared_bytes_) {
        (void)stream;   // one stream: everything runs in order
    }
};

// 0 when the configuration is valid; otherwise the launch error is recorded
// for cudaGetLastError and nothing runs
int emu_launch_invalid(const EmuLaunch &launch);
// aborts unless p is NULL or points into (or one past) a cudaMalloc allocation
void emu_check_kernel_pointer(const EmuLaunch &launch, int arg, const void *p);
// runs body(ctx) once for every thread of the grid; `buffers` are the kernel's
// pointer arguments (what CUDA_EMU_RACECHECK=1 snapshots and compares)
void emu_run_grid(const EmuLaunch &launch, void (*body)(void *), void *ctx,
                  const void *const *buffers, int nbuffers);

template <typename T>
static inline void emu_check_kernel_arg(const EmuLaunch &launch, int arg, const T &value,
                                        const void **buffers, int *nbuffers) {
    if constexpr (std::is_pointer<T>::value) {
        emu_check_kernel_pointer(launch, arg, (const void *)value);
        if (value) buffers[(*nbuffers)++] = (const void *)value;
    } else {
        (void)launch, (void)arg, (void)value, (void)buffers, (void)nbuffers;
    }
}

template <typename... Params, typename... Args>
static void emu_launch(const EmuLaunch &launch, void (*kernel)(Params...), Args &&...args) {
    static_assert(sizeof...(Params) == sizeof...(Args), "kernel launched with a wrong argument count");
    if (emu_launch_invalid(launch)) return;
    // the arguments are converted to the parameter types once, at the launch, as CUDA does
    struct Call {
        void (*kernel)(Params...);
        std::tuple<typename std::decay<Params>::type...> args;
    } call{kernel, std::tuple<typename std::decay<Params>::type...>(std::forward<Args>(args)...)};
    const void *buffers[sizeof...(Params) + 1];
    int nbuffers = 0;
    std::apply([&](const auto &...a) {
        int i = 0;
        (emu_check_kernel_arg(launch, i++, a, buffers, &nbuffers), ...);
    }, call.args);
    emu_run_grid(launch, [](void *ctx) {
        Call *c = (Call *)ctx;
        std::apply(c->kernel, c->args);
    }, &call, buffers, nbuffers);
}

#endif

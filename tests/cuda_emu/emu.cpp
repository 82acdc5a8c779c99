// emu.cpp - the CUDA emulator's runtime: device memory, the fiber scheduler
// that runs a kernel's threads, and the cuBLAS GEMMs. What it emulates and what
// it checks is in cuda_runtime.h.
#include "cuda_runtime.h"
#include "cublas_v2.h"

#include <errno.h>
#include <stdint.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

dim3 emu_threadIdx, emu_blockIdx, emu_blockDim, emu_gridDim;

// "cuda_emu: <message>" on stderr, then abort (emu_lt.cpp reports through it too)
[[noreturn]] void emu_vdie(const char *fmt, va_list ap) {
    fflush(stdout);
    fprintf(stderr, "cuda_emu: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    abort();
}

[[noreturn]] static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emu_vdie(fmt, ap);
}

// ----------------------------------------------------------------------------
// device memory: malloc'd blocks, registered so that every use can be checked.
// The registries are never destroyed: C++ destructors at exit would run before
// LeakSanitizer looks, and every block still registered would look leaked.

static std::map<uintptr_t, size_t> &g_device = *new std::map<uintptr_t, size_t>;   // base -> bytes
static std::map<uintptr_t, size_t> &g_pinned = *new std::map<uintptr_t, size_t>;   // cudaMallocHost
static size_t g_device_used;
static cudaError_t g_last_error = cudaSuccess;

// What a run asked of the device, written at exit to the file CUDA_EMU_STATS
// names: tests check that a training step allocates nothing and waits for the
// device only as often as it must. `waits`: calls after which the host has
// waited for the device (cudaMemcpy, cudaMemset, cudaDeviceSynchronize,
// cudaEventSynchronize, cudaMalloc, cudaFree, cudaDeviceReset); the async
// calls are not counted. `unfreed`: device and pinned allocations, events and
// cuBLAS handles still live at cudaDeviceReset or at exit (what
// compute-sanitizer's leak check would report).
static struct {
    unsigned long long mallocs, frees, waits, launches, gemms, unfreed;
} g_stats;
static unsigned long long g_live_events, g_live_handles;

static unsigned long long live_objects(void) {
    return g_device.size() + g_pinned.size() + g_live_events + g_live_handles;
}

static void write_stats(void) {
    const char *path = getenv("CUDA_EMU_STATS");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (!f) return;
    fprintf(f, "mallocs %llu\nfrees %llu\nwaits %llu\nlaunches %llu\ngemms %llu\nunfreed %llu\n",
            g_stats.mallocs, g_stats.frees, g_stats.waits, g_stats.launches, g_stats.gemms,
            g_stats.unfreed + live_objects());
    fclose(f);
}

static void count_stats_at_exit(void) {
    static int registered;
    if (!registered && getenv("CUDA_EMU_STATS")) atexit(write_stats);
    registered = 1;
}

// the emulated GPU's memory: CUDA_EMU_MEMORY_MIB (default 4096)
static size_t device_total(void) {
    static size_t total;
    if (!total) {
        const char *e = getenv("CUDA_EMU_MEMORY_MIB");
        long mib = e ? atol(e) : 4096;
        total = (size_t)(mib > 0 ? mib : 4096) << 20;
    }
    return total;
}

// the allocation holding [p, p + bytes), or NULL (a span of 0 bytes may sit at the end)
static const std::pair<const uintptr_t, size_t> *find_block(const std::map<uintptr_t, size_t> &m,
                                                             const void *p, size_t bytes) {
    uintptr_t a = (uintptr_t)p;
    auto it = m.upper_bound(a);
    if (it == m.begin()) return NULL;
    --it;
    if (a - it->first > it->second || bytes > it->second - (a - it->first)) return NULL;
    return &*it;
}

static int is_device(const void *p, size_t bytes) { return find_block(g_device, p, bytes) != NULL; }

static void check_device_span(const void *p, size_t bytes, const char *what) {
    if (!is_device(p, bytes))
        die("%s: %zu bytes at %p are not inside one cudaMalloc allocation", what, bytes, p);
}

static void check_host_span(const void *p, size_t bytes, const char *what) {
    if (bytes && is_device(p, 1))
        die("%s: %p is device memory where host memory was expected", what, p);
}

const char *cudaGetErrorString(cudaError_t err) {
    switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    }
    return "unrecognized error code";
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return g_last_error; }

// CUDA_EMU_DEVICES=0 emulates a machine without a GPU
cudaError_t cudaGetDeviceCount(int *count) {
    const char *e = getenv("CUDA_EMU_DEVICES");
    *count = e ? atoi(e) : 1;
    return *count > 0 ? cudaSuccess : cudaErrorNoDevice;
}

cudaError_t cudaSetDevice(int device) {
    int n = 0;
    cudaGetDeviceCount(&n);
    return device >= 0 && device < n ? cudaSuccess : cudaErrorInvalidDevice;
}

cudaError_t cudaGetDevice(int *device) {
    int n = 0;
    cudaGetDeviceCount(&n);
    if (!n) return cudaErrorNoDevice;
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    g_stats.waits++;
    return cudaSuccess;
}

// destroys everything the process still holds on the device, counted as unfreed
cudaError_t cudaDeviceReset(void) {
    g_stats.waits++;
    g_stats.unfreed += live_objects();
    for (auto &b : g_device) free((void *)b.first);
    for (auto &b : g_pinned) free((void *)b.first);
    g_device.clear();
    g_pinned.clear();
    g_device_used = 0;
    g_live_events = g_live_handles = 0;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **ptr, size_t bytes) {
    if (!ptr) return cudaErrorInvalidValue;
    *ptr = NULL;
    count_stats_at_exit();
    g_stats.mallocs++;
    g_stats.waits++;
    if (bytes > device_total() - g_device_used) return cudaErrorMemoryAllocation;
    void *p = NULL;
    if (posix_memalign(&p, 256, bytes ? bytes : 1)) return cudaErrorMemoryAllocation;
    memset(p, 0xff, bytes);   // a GPU's fresh memory holds anything: here NaN
    g_device[(uintptr_t)p] = bytes;
    g_device_used += bytes;
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr) {
    if (!ptr) return cudaSuccess;
    auto it = g_device.find((uintptr_t)ptr);
    if (it == g_device.end()) die("cudaFree(%p): not a live cudaMalloc allocation", ptr);
    g_stats.frees++;
    g_stats.waits++;
    g_device_used -= it->second;
    g_device.erase(it);
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **ptr, size_t bytes) {
    if (!ptr) return cudaErrorInvalidValue;
    *ptr = malloc(bytes ? bytes : 1);
    if (!*ptr) return cudaErrorMemoryAllocation;
    g_pinned[(uintptr_t)*ptr] = bytes;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *ptr) {
    if (!ptr) return cudaSuccess;
    auto it = g_pinned.find((uintptr_t)ptr);
    if (it == g_pinned.end()) die("cudaFreeHost(%p): not a live cudaMallocHost allocation", ptr);
    g_pinned.erase(it);
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    *total_bytes = device_total();
    *free_bytes = device_total() - g_device_used;
    return cudaSuccess;
}

// cudaMemcpy without the count (cudaMemcpyAsync shares it)
static cudaError_t copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (!bytes) return cudaSuccess;
    switch (kind) {
    case cudaMemcpyHostToDevice:
        check_device_span(dst, bytes, "cudaMemcpy host to device: the destination");
        check_host_span(src, bytes, "cudaMemcpy host to device: the source");
        break;
    case cudaMemcpyDeviceToHost:
        check_device_span(src, bytes, "cudaMemcpy device to host: the source");
        check_host_span(dst, bytes, "cudaMemcpy device to host: the destination");
        break;
    case cudaMemcpyDeviceToDevice:
        check_device_span(dst, bytes, "cudaMemcpy device to device: the destination");
        check_device_span(src, bytes, "cudaMemcpy device to device: the source");
        break;
    default: return cudaErrorInvalidMemcpyDirection;
    }
    memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    g_stats.waits++;
    return copy(dst, src, bytes, kind);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
    return copy(dst, src, bytes, kind);
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t) {
    if (!bytes) return cudaSuccess;
    check_device_span(ptr, bytes, "cudaMemset");
    memset(ptr, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemset(void *ptr, int value, size_t bytes) {
    g_stats.waits++;
    return cudaMemsetAsync(ptr, value, bytes);
}

// events: every operation has finished when it returns, so an event is a token
struct EmuEvent {};

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned) {
    *event = new EmuEvent{};
    g_live_events++;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
    return event ? cudaSuccess : cudaErrorInvalidValue;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    g_stats.waits++;
    return event ? cudaSuccess : cudaErrorInvalidValue;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
    if (!event) return cudaErrorInvalidValue;
    delete event;
    g_live_events--;
    return cudaSuccess;
}

// ----------------------------------------------------------------------------
// fibers: one stack per thread of a block, switched by hand (x86-64) or by
// swapcontext elsewhere

enum { STACK_BYTES = 256 << 10 };

#if defined(__x86_64__)
// saves the callee-saved registers on the current stack, stores the stack
// pointer in *save, and resumes the stack `load` (left there by an earlier call)
extern "C" void emu_switch(void **save, void *load);
__asm__(".text\n"
        ".globl emu_switch\n"
        ".type emu_switch, @function\n"
        "emu_switch:\n"
        "    pushq %rbp\n    pushq %rbx\n    pushq %r12\n    pushq %r13\n    pushq %r14\n"
        "    pushq %r15\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    popq %r15\n    popq %r14\n    popq %r13\n    popq %r12\n    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size emu_switch, .-emu_switch\n");
#else
#include <ucontext.h>
#endif

enum FiberState { READY, AT_SYNC, AT_SHUFFLE, DONE };

struct Fiber {
    char *stack;
#if defined(__x86_64__)
    void *sp;
#else
    ucontext_t ctx;
#endif
    void *asan_fake;
    FiberState state;
    dim3 tid;
    unsigned shared_next;   // this thread's next __shared__ declaration
    // a pending shuffle, or (op set) a warp-wide instruction with its operands at ctx
    unsigned mask;
    int lane_mask, width;
    size_t bytes;
    unsigned char in[8], out[8];
    EmuWarpOp op;
    void *ctx;
    // cp.async copies not yet made: (group, shared dst, global src); `group`
    // counts commits, so a copy of group g is committed once groups > g
    struct Copy { unsigned long long group; void *dst; const void *src; };
    std::vector<Copy> copies;
    unsigned long long groups;
};

// die() with the running kernel, its launch site and the block first
#define DIE_IN_KERNEL(fmt, ...)                                                               \
    die("kernel %s (launched at %s:%d), block (%u,%u,%u): " fmt, g_launch->kernel,          \
        g_launch->file, g_launch->line, emu_blockIdx.x, emu_blockIdx.y, emu_blockIdx.z,      \
        __VA_ARGS__)

enum { MAX_THREADS = 1024 };
static Fiber *g_fibers[MAX_THREADS];
static unsigned g_nfibers;
static Fiber *g_cur;   // the running fiber; NULL on the scheduler
#if defined(__x86_64__)
static void *g_sched_sp;
#else
static ucontext_t g_sched_ctx;
#endif
static void *g_sched_fake;
static const void *g_sched_stack_bottom;
static size_t g_sched_stack_size;
static void (*g_body)(void *);
static void *g_body_ctx;
static const EmuLaunch *g_launch;

// AddressSanitizer must be told when the stack changes under it
static inline void asan_leave(void **fake, const void *to_bottom, size_t to_size) {
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(fake, to_bottom, to_size);
#else
    (void)fake, (void)to_bottom, (void)to_size;
#endif
}
static inline void asan_arrive(void *fake, const void **from_bottom, size_t *from_size) {
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, from_bottom, from_size);
#else
    (void)fake, (void)from_bottom, (void)from_size;
#endif
}

// on a fiber: back to the scheduler
static void yield_to_scheduler(void) {
    Fiber *f = g_cur;
    asan_leave(&f->asan_fake, g_sched_stack_bottom, g_sched_stack_size);
#if defined(__x86_64__)
    emu_switch(&f->sp, g_sched_sp);
#else
    swapcontext(&f->ctx, &g_sched_ctx);
#endif
    asan_arrive(f->asan_fake, NULL, NULL);
}

// a fiber's whole life: run one CUDA thread, report done, wait for the next
static void fiber_main(void) {
    asan_arrive(NULL, &g_sched_stack_bottom, &g_sched_stack_size);
    for (;;) {
        g_body(g_body_ctx);
        if (!g_cur->copies.empty())
            DIE_IN_KERNEL("thread (%u,%u,%u) exited with %zu cp.async copies never waited for",
                          g_cur->tid.x, g_cur->tid.y, g_cur->tid.z, g_cur->copies.size());
        g_cur->state = DONE;
        yield_to_scheduler();
    }
}

static Fiber *new_fiber(void) {
    Fiber *f = new Fiber();
    // a guard page below the stack turns an overflow into a crash, not corruption
    long page = sysconf(_SC_PAGESIZE);
    char *m = (char *)mmap(NULL, STACK_BYTES + page, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) die("mmap of a fiber stack failed: %s", strerror(errno));
    mprotect(m, page, PROT_NONE);
    f->stack = m + page;
#if defined(__x86_64__)
    // the frame emu_switch pops: six registers, then fiber_main as the return
    // address, above it a dummy return address for fiber_main (which never returns)
    uintptr_t *top = (uintptr_t *)(((uintptr_t)f->stack + STACK_BYTES) & ~(uintptr_t)15);
    top[-1] = 0;
    top[-2] = (uintptr_t)fiber_main;
    for (int i = 3; i <= 8; i++) top[-i] = 0;
    f->sp = &top[-8];
#else
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = STACK_BYTES;
    f->ctx.uc_link = NULL;
    makecontext(&f->ctx, fiber_main, 0);
#endif
    f->state = DONE;
    return f;
}

// on the scheduler: run fiber f until it blocks or finishes
static void resume(Fiber *f) {
    g_cur = f;
    emu_threadIdx = f->tid;
    asan_leave(&g_sched_fake, f->stack, STACK_BYTES);
#if defined(__x86_64__)
    emu_switch(&g_sched_sp, f->sp);
#else
    swapcontext(&g_sched_ctx, &f->ctx);
#endif
    asan_arrive(g_sched_fake, NULL, NULL);
    g_cur = NULL;
}

// ----------------------------------------------------------------------------
// barriers and shuffles

void emu_syncthreads(void) {
    if (!g_cur) die("__syncthreads() called outside a kernel");
    g_cur->state = AT_SYNC;
    yield_to_scheduler();
}

void emu_shuffle_xor(unsigned mask, const void *in, void *out, size_t bytes, int lane_mask,
                     int width) {
    Fiber *f = g_cur;
    if (!f) die("a warp shuffle called outside a kernel");
    if (width <= 0 || width > 32 || (width & (width - 1)))
        DIE_IN_KERNEL("shuffle width %d is not a power of two up to 32", width);
    f->mask = mask;
    f->lane_mask = lane_mask;
    f->width = width;
    f->bytes = bytes;
    f->op = NULL;
    memcpy(f->in, in, bytes);
    f->state = AT_SHUFFLE;
    yield_to_scheduler();
    memcpy(out, f->out, bytes);
}

void emu_warp_collective(EmuWarpOp op, void *mine) {
    Fiber *f = g_cur;
    if (!f) die("a warp-wide instruction called outside a kernel");
    f->mask = 0xffffffffu;   // mma.sync, ldmatrix: .aligned, every lane of the warp
    f->lane_mask = 0;
    f->width = 32;
    f->bytes = 0;
    f->op = op;
    f->ctx = mine;
    f->state = AT_SHUFFLE;
    yield_to_scheduler();
}

static const char *state_name(FiberState s) {
    switch (s) {
    case READY: return "running";
    case AT_SYNC: return "at __syncthreads";
    case AT_SHUFFLE: return "at a shuffle";
    case DONE: return "exited";
    }
    return "?";
}

// the pending shuffle of warp w: every lane its mask names must be at it (all
// fibers have blocked or exited by now, so a missing lane never comes)
static void resolve_shuffle(unsigned nthreads, unsigned w) {
    Fiber *first = NULL;
    for (unsigned l = 0; l < 32 && w * 32 + l < nthreads; l++)
        if (g_fibers[w * 32 + l]->state == AT_SHUFFLE) {
            first = g_fibers[w * 32 + l];
            break;
        }
    const unsigned mask = first->mask;
    for (unsigned l = 0; l < 32; l++) {
        unsigned t = w * 32 + l;
        int named = (mask >> l) & 1;
        if (t >= nthreads) {
            if (named)
                DIE_IN_KERNEL("shuffle mask 0x%08x names lane %u of warp %u, which the block "
                              "(%u threads) does not have", mask, l, w, nthreads);
            continue;
        }
        Fiber *f = g_fibers[t];
        if (named && f->state != AT_SHUFFLE)
            DIE_IN_KERNEL("shuffle mask 0x%08x names lane %u of warp %u, which is %s", mask, l, w,
                          state_name(f->state));
        if (f->state == AT_SHUFFLE &&
            (f->mask != mask || f->lane_mask != first->lane_mask || f->width != first->width ||
             f->bytes != first->bytes || f->op != first->op || !named))
            DIE_IN_KERNEL("the lanes of warp %u meet at different shuffles or warp-wide "
                          "instructions", w);
    }
    if (first->op) {   // a warp-wide instruction: all 32 lanes are here
        void *lanes[32];
        for (unsigned l = 0; l < 32; l++) lanes[l] = g_fibers[w * 32 + l]->ctx;
        first->op(lanes);
        for (unsigned l = 0; l < 32; l++) g_fibers[w * 32 + l]->state = READY;
        return;
    }
    for (unsigned l = 0; l < 32; l++) {
        if (!((mask >> l) & 1)) continue;
        unsigned src = l ^ (unsigned)first->lane_mask;
        // outside this lane's segment of `width` lanes: its own value
        if (src / first->width != l / first->width) src = l;
        if (!((mask >> src) & 1))
            DIE_IN_KERNEL("lane %u of warp %u reads lane %u, which the mask 0x%08x leaves out", l,
                          w, src, mask);
        Fiber *f = g_fibers[w * 32 + l];
        memcpy(f->out, g_fibers[w * 32 + src]->in, f->bytes);
        f->state = READY;
    }
}

// every fiber of the block has blocked or exited: release what can go on
static int release(unsigned nthreads) {
    int released = 0;
    for (unsigned w = 0; w * 32 < nthreads; w++)
        for (unsigned l = 0; l < 32 && w * 32 + l < nthreads; l++)
            if (g_fibers[w * 32 + l]->state == AT_SHUFFLE) {
                resolve_shuffle(nthreads, w);
                released = 1;
                break;
            }
    if (released) return 1;
    // no shuffle pending: a block barrier completes when every live thread is at it
    // (threads that have exited count as arrived, as on the hardware since Volta)
    int live = 0;
    for (unsigned t = 0; t < nthreads; t++)
        if (g_fibers[t]->state == AT_SYNC) {
            g_fibers[t]->state = READY;
            live = 1;
        }
    return live;
}

// ----------------------------------------------------------------------------
// static shared memory: one arena per block, filled with 0xff at its first use

enum { SHARED_LIMIT = 48 << 10 };
static unsigned char g_shared[SHARED_LIMIT] __attribute__((aligned(64)));
enum { MAX_SHARED_DECLS = 64 };
struct SharedDecl { size_t offset, bytes; };
static SharedDecl g_shared_decls[MAX_SHARED_DECLS];
static unsigned g_nshared;
static size_t g_shared_used;

void *emu_shared(size_t bytes, size_t align) {
    Fiber *f = g_cur;
    if (!f) die("a __shared__ declaration outside a kernel");
    unsigned k = f->shared_next++;
    if (k < g_nshared) {
        if (g_shared_decls[k].bytes != bytes)
            DIE_IN_KERNEL("threads declare different __shared__ arrays (%zu and %zu bytes)",
                          g_shared_decls[k].bytes, bytes);
        return g_shared + g_shared_decls[k].offset;
    }
    size_t off = (g_shared_used + align - 1) / align * align;
    if (off + bytes > SHARED_LIMIT)
        DIE_IN_KERNEL("%zu bytes of static shared memory, over the 48 KiB limit", off + bytes);
    memset(g_shared + off, 0xff, bytes);
    if (g_nshared == MAX_SHARED_DECLS) DIE_IN_KERNEL("over %d __shared__ declarations", MAX_SHARED_DECLS);
    g_shared_decls[g_nshared++] = {off, bytes};
    g_shared_used = off + bytes;
    return g_shared + off;
}

int emu_is_shared(const void *p, size_t bytes) {
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)g_shared;
    return a >= lo && a - lo <= g_shared_used && bytes <= g_shared_used - (a - lo);
}

// ----------------------------------------------------------------------------
// tensor cores and asynchronous copies (mma.cuh's helpers), with the operand
// layouts of the PTX ISA, "Warp-level matrix instructions": lane l of a warp
// is in group g = l / 4 at position t = l % 4 within it (groupID and
// threadID_in_group there); a .b32 register holding two 16-bit elements has
// the lower-numbered one in its low half.

static float bf16_lo(uint32_t r) { uint32_t u = r << 16; float f; memcpy(&f, &u, 4); return f; }
static float bf16_hi(uint32_t r) { uint32_t u = r & 0xffff0000u; float f; memcpy(&f, &u, 4); return f; }

struct MmaOperands { float *d; const uint32_t *a, *b; const float *c; };

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, the fragments of
// "Matrix Fragments for mma.m16n8k16 with floating point type":
//   A (16x16, 4 regs a0..a7): row g for a0,a1,a4,a5 and g+8 for a2,a3,a6,a7;
//                             col 2t + (i & 1), plus 8 for a4..a7;
//   B (16x8, 2 regs b0..b3):  row (k) 2t + (i & 1), plus 8 for b2,b3; col (n) g;
//   C, D (16x8, c0..c3):      row g for c0,c1 and g+8 for c2,c3; col 2t + (i & 1).
// The products of bf16 values are exact in fp32; each D element sums its 16
// products and C in fp32, k ascending (CUDA_EMU_GEMM=float: in a shuffled
// order, as the hardware's adder tree fixes none we may rely on).
static int gemm_float_mode(void);
static uint64_t splitmix(uint64_t *s);

static void mma_op(void *const lanes[32]) {
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++) {
        const MmaOperands *o = (const MmaOperands *)lanes[l];
        const int g = l / 4, t = l % 4;
        for (int i = 0; i < 8; i++) {
            const int row = g + ((i >> 1) & 1) * 8, col = 2 * t + (i & 1) + (i >= 4) * 8;
            const uint32_t r = o->a[i / 2];
            A[row][col] = i & 1 ? bf16_hi(r) : bf16_lo(r);
        }
        for (int i = 0; i < 4; i++) {
            const uint32_t r = o->b[i / 2];
            B[2 * t + (i & 1) + (i >= 2) * 8][g] = i & 1 ? bf16_hi(r) : bf16_lo(r);
        }
    }
    float D[32][4];
    const int shuffled = gemm_float_mode();
    for (int l = 0; l < 32; l++) {
        const MmaOperands *o = (const MmaOperands *)lanes[l];
        const int g = l / 4, t = l % 4;
        for (int i = 0; i < 4; i++) {
            const int row = g + (i >= 2) * 8, col = 2 * t + (i & 1);
            int order[16];
            for (int k = 0; k < 16; k++) order[k] = k;
            if (shuffled) {   // the order is a function of the element and its operands
                uint32_t cbits;
                memcpy(&cbits, &o->c[i], 4);
                uint64_t seed = ((uint64_t)(row * 8 + col) << 32 | cbits) ^ 0x5851f42d4c957f2dull;
                for (int k = 0; k < 16; k++) {
                    uint32_t ab;
                    memcpy(&ab, &A[row][k], 4);
                    seed = seed * 31 + ab;
                }
                for (int k = 15; k > 0; k--) std::swap(order[k], order[splitmix(&seed) % (uint64_t)(k + 1)]);
            }
            float acc = o->c[i];
            for (int q = 0; q < 16; q++) acc += A[row][order[q]] * B[order[q]][col];
            D[l][i] = acc;
        }
    }
    // every lane's C is read before any D is written: d may alias c
    for (int l = 0; l < 32; l++) memcpy(((MmaOperands *)lanes[l])->d, D[l], sizeof D[l]);
}

void emu_mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
    MmaOperands mine = {d, a, b, c};
    emu_warp_collective(mma_op, &mine);
}

struct LdmatrixOperands { uint32_t *r; const void *row; int trans; };

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lanes 8i..8i+7 give the
// addresses of rows 0..7 of matrix i (16 bytes each, 16-byte aligned, in
// shared memory); register r[i] of lane l gets, of matrix i, the elements
// (row g, cols 2t and 2t+1) - or with .trans (rows 2t and 2t+1, col g).
static void ldmatrix_op(void *const lanes[32]) {
    const LdmatrixOperands *first = (const LdmatrixOperands *)lanes[0];
    uint16_t M[4][8][8];
    for (int l = 0; l < 32; l++) {
        const LdmatrixOperands *o = (const LdmatrixOperands *)lanes[l];
        if (o->trans != first->trans)
            DIE_IN_KERNEL("%s", "the lanes of a warp meet at ldmatrix with and without .trans");
        if (((uintptr_t)o->row & 15) || !emu_is_shared(o->row, 16))
            DIE_IN_KERNEL("ldmatrix: lane %d's row address %p is not 16 bytes of this block's "
                          "shared memory at a 16-byte boundary", l, o->row);
        memcpy(M[l / 8][l % 8], o->row, 16);
    }
    for (int l = 0; l < 32; l++) {
        LdmatrixOperands *o = (LdmatrixOperands *)lanes[l];
        const int g = l / 4, t = l % 4;
        for (int i = 0; i < 4; i++) {
            uint32_t lo, hi;
            if (first->trans) lo = M[i][2 * t][g], hi = M[i][2 * t + 1][g];
            else lo = M[i][g][2 * t], hi = M[i][g][2 * t + 1];
            o->r[i] = lo | hi << 16;
        }
    }
}

void emu_ldmatrix_x4(uint32_t r[4], const void *row, int trans) {
    LdmatrixOperands mine = {r, row, trans};
    emu_warp_collective(ldmatrix_op, &mine);
}

// cp.async.cg.shared.global [dst], [src], 16: queued, made when a wait needs it
void emu_cp_async_16(void *dst, const void *src) {
    Fiber *f = g_cur;
    if (!f) die("cp.async called outside a kernel");
    if (((uintptr_t)dst & 15) || !emu_is_shared(dst, 16))
        DIE_IN_KERNEL("cp.async: destination %p is not 16 bytes of this block's shared memory "
                      "at a 16-byte boundary", dst);
    if (((uintptr_t)src & 15) || !is_device(src, 16))
        DIE_IN_KERNEL("cp.async: source %p is not 16 bytes of one cudaMalloc allocation at a "
                      "16-byte boundary", src);
    f->copies.push_back({f->groups, dst, src});
}

// cp.async.commit_group: the copies issued since the last commit form a group
void emu_cp_async_commit(void) {
    if (!g_cur) die("cp.async.commit_group called outside a kernel");
    g_cur->groups++;
}

// cp.async.wait_group n: all but the n most recent committed groups complete
// (copies not yet committed stay pending, as the PTX ISA says)
void emu_cp_async_wait(int n) {
    Fiber *f = g_cur;
    if (!f) die("cp.async.wait_group called outside a kernel");
    std::vector<Fiber::Copy> left;
    for (const Fiber::Copy &c : f->copies)
        if (c.group + (unsigned long long)n < f->groups) memcpy(c.dst, c.src, 16);
        else left.push_back(c);
    f->copies.swap(left);
}

// ----------------------------------------------------------------------------
// launches

int emu_launch_invalid(const EmuLaunch &L) {
    const dim3 g = L.grid, b = L.block;
    const unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    int bad = !g.x || !g.y || !g.z || !b.x || !b.y || !b.z || g.x > 2147483647u ||
              g.y > 65535 || g.z > 65535 || b.x > 1024 || b.y > 1024 || b.z > 64 ||
              threads > MAX_THREADS;
    if (L.shared_bytes) die("kernel %s (%s:%d): dynamic shared memory is not emulated", L.kernel,
                            L.file, L.line);
    if (bad) {
        if (getenv("CUDA_EMU_VERBOSE"))
            fprintf(stderr, "cuda_emu: kernel %s (%s:%d): invalid configuration grid (%u,%u,%u) "
                    "block (%u,%u,%u)\n", L.kernel, L.file, L.line, g.x, g.y, g.z, b.x, b.y, b.z);
        g_last_error = cudaErrorInvalidConfiguration;
    }
    return bad;
}

void emu_check_kernel_pointer(const EmuLaunch &L, int arg, const void *p) {
    if (p && !is_device(p, 0))
        die("kernel %s (launched at %s:%d): argument %d (%p) does not point into device memory",
            L.kernel, L.file, L.line, arg + 1, p);
}

// the order of blocks and of threads within a block
enum Order { MIXED, ASCENDING, DESCENDING };

static void run_blocks(const EmuLaunch &L, enum Order order);

// CUDA_EMU_RACECHECK=1: run the grid in both orders from one snapshot and compare
static int racecheck(void) {
    const char *e = getenv("CUDA_EMU_RACECHECK");
    return e && !strcmp(e, "1");
}

void emu_run_grid(const EmuLaunch &L, void (*body)(void *), void *ctx,
                  const void *const *buffers, int nbuffers) {
    if (g_cur) die("kernel %s launched from inside a kernel", L.kernel);
    g_stats.launches++;
    g_launch = &L;
    g_body = body;
    g_body_ctx = ctx;
    if (!racecheck()) {
        run_blocks(L, MIXED);
        g_launch = NULL;
        return;
    }
    // the whole allocations the arguments point into, each once
    std::map<uintptr_t, size_t> blocks;
    for (int i = 0; i < nbuffers; i++) {
        auto b = find_block(g_device, buffers[i], 0);
        if (b) blocks[b->first] = b->second;
    }
    std::vector<std::vector<unsigned char>> before, after;
    for (auto &b : blocks) before.emplace_back((unsigned char *)b.first, (unsigned char *)b.first + b.second);
    run_blocks(L, ASCENDING);
    int k = 0;
    for (auto &b : blocks) {
        after.emplace_back((unsigned char *)b.first, (unsigned char *)b.first + b.second);
        memcpy((void *)b.first, before[k++].data(), b.second);
    }
    run_blocks(L, DESCENDING);
    k = 0;
    for (auto &b : blocks) {
        const unsigned char *now = (const unsigned char *)b.first, *then = after[k++].data();
        for (size_t i = 0; i < b.second; i++)
            if (now[i] != then[i])
                die("kernel %s (launched at %s:%d): a race: byte %zu of the %zu-byte buffer at %p "
                    "differs between running blocks and threads in ascending and in descending "
                    "order", L.kernel, L.file, L.line, i, b.second, (void *)b.first);
    }
    g_launch = NULL;
}

static void run_blocks(const EmuLaunch &L, enum Order order) {
    const unsigned nthreads = L.block.x * L.block.y * L.block.z;
    while (g_nfibers < nthreads) g_fibers[g_nfibers++] = new_fiber();
    emu_blockDim = L.block;
    emu_gridDim = L.grid;
    for (unsigned t = 0; t < nthreads; t++) {
        Fiber *f = g_fibers[t];
        f->tid = dim3(t % L.block.x, t / L.block.x % L.block.y, t / (L.block.x * L.block.y));
    }
    const unsigned long long nblocks = (unsigned long long)L.grid.x * L.grid.y * L.grid.z;
    for (unsigned long long nblock = 0; nblock < nblocks; nblock++) {
        const unsigned long long b = order == DESCENDING ? nblocks - 1 - nblock : nblock;
        emu_blockIdx = dim3((unsigned)(b % L.grid.x), (unsigned)(b / L.grid.x % L.grid.y),
                            (unsigned)(b / ((unsigned long long)L.grid.x * L.grid.y)));
        g_nshared = 0;
        g_shared_used = 0;
        for (unsigned t = 0; t < nthreads; t++) {
            g_fibers[t]->state = READY;
            g_fibers[t]->shared_next = 0;
            g_fibers[t]->copies.clear();
            g_fibers[t]->groups = 0;
        }
        // MIXED: even blocks run their threads upwards, odd ones downwards
        const int down = order == DESCENDING || (order == MIXED && (nblock & 1));
        for (;;) {
            for (unsigned k = 0; k < nthreads; k++) {
                Fiber *f = g_fibers[down ? nthreads - 1 - k : k];
                if (f->state == READY) resume(f);
            }
            int done = 1;
            for (unsigned t = 0; t < nthreads && done; t++) done = g_fibers[t]->state == DONE;
            if (done) break;
            if (!release(nthreads)) DIE_IN_KERNEL("%s", "deadlock: no barrier can complete");
        }
    }
}

// ----------------------------------------------------------------------------
// cuBLAS: column-major GEMMs in double precision

struct EmuCublas { int math; };

const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "unknown cuBLAS status";
}

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
    *handle = new EmuCublas{0};
    g_live_handles++;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    g_live_handles--;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t) {
    return handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_DEFAULT_MATH && mode != CUBLAS_TF32_TENSOR_OP_MATH)
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

// bytes spanned by a column-major matrix of `cols` columns of `rows` used rows
static size_t matrix_bytes(int rows, int cols, int ld) {
    if (rows <= 0 || cols <= 0) return 0;
    return ((size_t)(cols - 1) * ld + rows) * sizeof(float);
}

static cublasStatus_t gemm_check(cublasHandle_t handle, cublasOperation_t ta,
                                 cublasOperation_t tb, int m, int n, int k, int lda, int ldb,
                                 int ldc) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    const int arows = ta == CUBLAS_OP_N ? m : k, brows = tb == CUBLAS_OP_N ? k : n;
    if (lda < (arows > 1 ? arows : 1) || ldb < (brows > 1 ? brows : 1) || ldc < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

// How the emulated GEMMs sum, from CUDA_EMU_GEMM:
//   double (the default)  every product exact, summed in double, rounded once:
//                         the oracle, so a test measures the kernels' own error
//   float                 as a GPU does: fp32 fused multiply-adds over k in a
//                         shuffled order, a different order for every output
//                         element, so tests meet fp32 accumulation and no
//                         fixed order; the order is a function of the shape and
//                         the element (as cuBLAS repeats its algorithm for the
//                         same problem), so a repeated GEMM gives the same bits
// With the handle in CUBLAS_TF32_TENSOR_OP_MATH, A and B are first rounded to
// TF32 (10 mantissa bits, to nearest even), as tensor cores read them; the
// backend turns TF32 on only with TRAIN_TF32=1, which the tests force to 0.
static int gemm_float_mode(void) {
    static int mode = -1;
    if (mode < 0) {
        const char *e = getenv("CUDA_EMU_GEMM");
        if (e && strcmp(e, "float") && strcmp(e, "double"))
            die("CUDA_EMU_GEMM=%s: expected float or double", e);
        mode = e && !strcmp(e, "float");
    }
    return mode;
}

static float to_tf32(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;   // finite: round
    memcpy(&x, &u, 4);
    return x;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// D = alpha op(A) op(B) + beta C (+ bias[i] in row i), C read only when beta
// is not 0; C and D may be the same matrix (ldc == ldd). cublasSgemm passes D = C
// and no bias; emu_lt.cpp (cuBLASLt) calls it too, with its operands as floats.
void emu_gemm(int tf32, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
              float alpha, const float *A, int lda, const float *B, int ldb, float beta,
              const float *C, int ldc, float *D, int ldd, const float *bias) {
    const int fp32 = gemm_float_mode();
    std::vector<int> order(k > 0 ? k : 0);
    uint64_t shape = ((uint64_t)m * 1000003u + (uint64_t)n) * 1000003u + (uint64_t)k;
    shape = shape * 4 + (uint64_t)(ta == CUBLAS_OP_T) * 2 + (uint64_t)(tb == CUBLAS_OP_T);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double acc = 0;
            float facc = 0;
            if (alpha != 0.0f && fp32) {   // this element's order of the k terms
                uint64_t seed = shape ^ (((uint64_t)j << 32) | (uint64_t)i) * 0x9e3779b97f4a7c15ull;
                for (int l = 0; l < k; l++) order[l] = l;
                for (int l = k - 1; l > 0; l--) std::swap(order[l], order[splitmix(&seed) % (uint64_t)(l + 1)]);
            }
            if (alpha != 0.0f)
                for (int q = 0; q < k; q++) {
                    const int l = fp32 ? order[q] : q;
                    float a = ta == CUBLAS_OP_N ? A[i + (size_t)l * lda] : A[l + (size_t)i * lda];
                    float b = tb == CUBLAS_OP_N ? B[l + (size_t)j * ldb] : B[j + (size_t)l * ldb];
                    if (tf32) a = to_tf32(a), b = to_tf32(b);
                    if (fp32) facc = fmaf(a, b, facc);
                    else acc += (double)a * b;
                }
            const float *c = &C[i + (size_t)j * ldc];
            float *d = &D[i + (size_t)j * ldd];
            if (fp32) {
                float r = alpha * facc;
                if (beta != 0.0f) r = fmaf(beta, *c, r);   // C is not read when beta is 0
                if (bias) r += bias[i];
                *d = r;
            } else {
                double r = (double)alpha * acc;
                if (beta != 0.0f) r += (double)beta * *c;
                if (bias) r += bias[i];
                *d = (float)r;
            }
        }
}

static void gemm_spans(const char *call, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                       int k, const float *A, int lda, long long sA, const float *B, int ldb,
                       long long sB, const float *C, int ldc, long long sC, int batch,
                       int reads_ab) {
    char what[128];
    for (int b = 0; b < batch; b++) {
        if (reads_ab) {
            snprintf(what, sizeof what, "%s: A of batch item %d", call, b);
            check_device_span(A + b * sA, ta == CUBLAS_OP_N ? matrix_bytes(m, k, lda)
                                                            : matrix_bytes(k, m, lda), what);
            snprintf(what, sizeof what, "%s: B of batch item %d", call, b);
            check_device_span(B + b * sB, tb == CUBLAS_OP_N ? matrix_bytes(k, n, ldb)
                                                            : matrix_bytes(n, k, ldb), what);
        }
        snprintf(what, sizeof what, "%s: C of batch item %d", call, b);
        check_device_span(C + b * sC, matrix_bytes(m, n, ldc), what);
    }
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb,
                           int m, int n, int k, const float *alpha, const float *A, int lda,
                           const float *B, int ldb, const float *beta, float *C, int ldc) {
    return cublasSgemmStridedBatched(handle, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C,
                                     ldc, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const float *alpha, const float *A, int lda,
                                         long long sA, const float *B, int ldb, long long sB,
                                         const float *beta, float *C, int ldc, long long sC,
                                         int batch) {
    cublasStatus_t st = gemm_check(handle, ta, tb, m, n, k, lda, ldb, ldc);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (batch < 0 || !alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    check_host_span(alpha, sizeof(float), "cublasSgemm: alpha (host pointer mode)");
    check_host_span(beta, sizeof(float), "cublasSgemm: beta (host pointer mode)");
    if (!m || !n || !batch) return CUBLAS_STATUS_SUCCESS;
    const int reads_ab = k > 0 && *alpha != 0.0f;
    gemm_spans("cublasSgemm", ta, tb, m, n, k, A, lda, sA, B, ldb, sB, C, ldc, sC, batch, reads_ab);
    g_stats.gemms++;
    for (int b = 0; b < batch; b++)
        emu_gemm(handle->math == CUBLAS_TF32_TENSOR_OP_MATH, ta, tb, m, n, reads_ab ? k : 0, *alpha,
                 A + b * sA, lda, B + b * sB, ldb, *beta, C + b * sC, ldc, C + b * sC, ldc, NULL);
    return CUBLAS_STATUS_SUCCESS;
}

// what emu_lt.cpp (cuBLASLt) shares with the code above; declared there
void emu_check_device_span(const void *p, size_t bytes, const char *what) {
    check_device_span(p, bytes, what);
}
void emu_check_host_span(const void *p, size_t bytes, const char *what) {
    check_host_span(p, bytes, what);
}
void emu_count_gemm(void) { g_stats.gemms++; }
void emu_count_handle(int delta) { g_live_handles += delta; }

// mma.cuh - the tensor-core and asynchronous-copy instructions the kernels use,
// each behind one small inline helper. With nvcc they are the PTX instructions
// (sm_80 and later); in the CUDA emulator (tests/cuda_emu) they are C++ that
// implements the operand layouts exactly as the PTX ISA documents them
// (emu.cpp cites the tables), so a kernel written against these helpers is
// checked on the CPU with the fragments it will meet on a GPU.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating
// point type"), lane l in group g = l / 4 at t = l % 4:
//   A 16x16 bf16, row-major, 4 regs: {A[g][2t..], A[g+8][2t..], A[g][2t+8..], A[g+8][2t+8..]}
//   B 16x8  bf16, "col",     2 regs: {B[2t..][g], B[2t+8..][g]}   (k pairs in one reg)
//   C 16x8  fp32,            4 floats: C[g][2t], C[g][2t+1], C[g+8][2t], C[g+8][2t+1]
// where X[r][c..] is the pair (X[r][c], X[r][c+1]), or for B (B[k][n], B[k+1][n]).
// Two C tiles side by side (16x16) are, converted to bf16, exactly an A fragment:
// the trick flash attention uses to feed P to its second GEMM without shared memory.
#ifndef MMA_CUH
#define MMA_CUH

#include <cuda_bf16.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

// fully unrolled loops over a thread's fragments, so that they stay in registers
#if defined(CUDA_EMULATED)
#define UNROLL
#else
#define UNROLL _Pragma("unroll")
#endif

// two floats as the bf16 pair of one register: lo in the low half
static __device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    const bf16 l = __float2bfloat16_rn(lo), h = __float2bfloat16_rn(hi);
    uint16_t a, b;
    memcpy(&a, &l, 2);
    memcpy(&b, &h, 2);
    return (uint32_t)a | (uint32_t)b << 16;
}

#if defined(CUDA_EMULATED)

// d = a b + c over one warp (d may alias c)
static __device__ __forceinline__ void mma_bf16_16816(float d[4], const uint32_t a[4],
                                                      const uint32_t b[2], const float c[4]) {
    emu_mma_bf16_16816(d, a, b, c);
}
// four 8x8 b16 matrices from shared memory; this lane gives row (lane % 8) of matrix lane / 8
static __device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *row) {
    emu_ldmatrix_x4(r, row, 0);
}
static __device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void *row) {
    emu_ldmatrix_x4(r, row, 1);
}
static __device__ __forceinline__ void cp_async_16(void *shared_dst, const void *global_src) {
    emu_cp_async_16(shared_dst, global_src);
}
static __device__ __forceinline__ void cp_async_commit(void) { emu_cp_async_commit(); }
template <int N>
static __device__ __forceinline__ void cp_async_wait(void) { emu_cp_async_wait(N); }

#else

static __device__ __forceinline__ void mma_bf16_16816(float d[4], const uint32_t a[4],
                                                      const uint32_t b[2], const float c[4]) {
#if __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
                   "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
    __trap();   // the backend runs these kernels only on sm_80 and later
#endif
}
static __device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *row) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
static __device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void *row) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
static __device__ __forceinline__ void cp_async_16(void *shared_dst, const void *global_src) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(shared_dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(addr), "l"(global_src));
}
static __device__ __forceinline__ void cp_async_commit(void) {
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
static __device__ __forceinline__ void cp_async_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

#endif
#endif

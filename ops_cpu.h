// ops_cpu.h - what the two CPU backends share (internal to attention*.c and layers*.c).
//
// backend_ref (layers.c, attention.c) is the oracle: naive loops, double
// accumulators, bit-identical for any thread count. backend_cpu (layers_fast.c,
// attention_fast.c) is the fast one: float, SGEMM through cpu_gemm.h, blocked
// attention, fused passes. Ops where the reference is already as fast as
// memory allows (copies, patches, dropout, ...) are the same function in both
// tables; they are declared here.
#ifndef OPS_CPU_H
#define OPS_CPU_H

#include "ops.h"

void *cpu_alloc(size_t bytes);
void cpu_free(void *p);
void cpu_copy(void *dst, const void *src, size_t bytes);
void cpu_zero(void *p, size_t bytes);
void cpu_synchronize(void);
// the global-norm clipping factor min(1, clip / ||g||) (1 when clip is 0 or gnorm_sq NULL)
double clip_factor(const real *gnorm_sq, float clip);

void embed_forward_ref(real *out, const int *tokens, const real *wte, const real *wpe, int B, int T,
                       int C);
void add_forward_ref(real *out, const real *a, const real *b, size_t n);
void sumsq_ref(real *out, const real *x, size_t n);
void patchify_forward_ref(real *out, const real *images, int B, int C, int H, int W, int P,
                          int shifts);
void cls_pos_forward_ref(real *out, const real *x, const real *cls, const real *pos, int B, int Np,
                         int D);
void cls_pos_backward_ref(real *dx, real *dcls, real *dpos, const real *dout, int B, int Np, int D);
void dropout_forward_ref(real *out, real *mask, const real *inp, size_t n, float p, uint64_t seed,
                         uint64_t first);
void dropout_backward_ref(real *dinp, const real *dout, const real *mask, size_t n);
void cls_select_forward_ref(real *out, const real *x, int B, int T, int D);
void cls_select_backward_ref(real *dx, const real *dout, int B, int T, int D);

size_t attention_saved_floats_ref(int B, int NH, int T);
void attention_forward_ref(real *y, real *saved, const real *qkv, int B, int T, int C, int NH,
                           const AttnArgs *args);
void attention_backward_ref(real *dqkv, const real *dy, const real *qkv, const real *y,
                            const real *saved, int B, int T, int C, int NH, const AttnArgs *args);
void variant_forward_ref(real *out, const real *y, const real *qkv, int N, int C, int NH,
                         const VariantArgs *args);
void variant_backward_ref(real *dy, real *dqkv, const real *dout, const real *y, const real *qkv,
                          int N, int C, int NH, const VariantArgs *args);

// the fast backend's scratch: slot k grows to at least `floats` and stays
// until fast_scratch_free (the backend's shutdown). Host thread only.
enum { SCRATCH_ATTN, SCRATCH_REDUCE, SCRATCH_SLOTS };
float *fast_scratch(int slot, size_t floats);
void fast_scratch_free(void);

size_t attention_saved_floats_fast(int B, int NH, int T);
void attention_forward_fast(real *y, real *saved, const real *qkv, int B, int T, int C, int NH,
                            const AttnArgs *args);
void attention_backward_fast(real *dqkv, const real *dy, const real *qkv, const real *y,
                             const real *saved, int B, int T, int C, int NH, const AttnArgs *args);
void variant_forward_fast(real *out, const real *y, const real *qkv, int N, int C, int NH,
                          const VariantArgs *args);
void variant_backward_fast(real *dy, real *dqkv, const real *dout, const real *y, const real *qkv,
                           int N, int C, int NH, const VariantArgs *args);

#endif

// layers_fast.c - the fast CPU backend (`--device=cpu`): every op of ops.h.
//
// The math of each op is written above its reference in layers.c; this file
// computes the same in float, with the matmuls in SGEMM (cpu_gemm.h),
// vectorised exp/erfc (cpu_math.h), and fused passes where memory traffic
// dominates: bias + GELU, residual add + LayerNorm, softmax + cross-entropy in
// place over the logits, the AdamW step in one pass. Attention is in
// attention_fast.c. The tests (tests/test_fast.c) hold every op to the
// reference.
//
// Determinism: every reduction over rows (bias and LayerNorm gradients, the
// embedding's scatter-add, SET-Adam's statistics) is summed in fixed chunks and
// the chunks in a fixed order, so those do not depend on the thread count;
// OpenBLAS's SGEMM may split its work by the thread count, so results are
// bit-identical run to run for the same thread count (README).
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_gemm.h"
#include "cpu_math.h"
#include "ops_cpu.h"
#include "src/common.h"

#ifdef __cplusplus
#error "C only"
#endif

// ----------------------------------------------------------------------------
// scratch: grow-only buffers, freed at shutdown

static float *scratch_buf[SCRATCH_SLOTS];
static size_t scratch_len[SCRATCH_SLOTS];

float *fast_scratch(int slot, size_t floats) {
    if (floats > scratch_len[slot]) {
        free(scratch_buf[slot]);
        scratch_buf[slot] = xmalloc(floats * sizeof(float));
        scratch_len[slot] = floats;
    }
    return scratch_buf[slot];
}

void fast_scratch_free(void) {
    for (int k = 0; k < SCRATCH_SLOTS; k++) {
        free(scratch_buf[k]);
        scratch_buf[k] = NULL;
        scratch_len[k] = 0;
    }
}

static void fast_shutdown(void) { fast_scratch_free(); }

// Column sums in fixed chunks of ROWS_PER_CHUNK rows: part[k][c] = sum of rows
// in chunk k of f(row, c). Then out[c] += sum_k part[k][c] in k order.
enum { ROWS_PER_CHUNK = 64 };

static int num_chunks(int N) { return (N + ROWS_PER_CHUNK - 1) / ROWS_PER_CHUNK; }

// out[c] += sum_k part[k * C + c]
static void add_chunk_sums(real *out, const float *part, int nchunks, int C) {
    #pragma omp parallel for
    for (int c = 0; c < C; c++) {
        float acc = 0;
        for (int k = 0; k < nchunks; k++) acc += part[(size_t)k * C + c];
        out[c] += acc;
    }
}

// out[c] += sum_n x[n, c]: the bias gradient of a Linear layer (x: N x C)
static void column_sums(real *out, const real *x, int N, int C) {
    const int nchunks = num_chunks(N);
    float *part = fast_scratch(SCRATCH_REDUCE, (size_t)nchunks * C);
    #pragma omp parallel for
    for (int k = 0; k < nchunks; k++) {
        float *p = part + (size_t)k * C;
        memset(p, 0, C * sizeof(float));
        const int end = (k + 1) * ROWS_PER_CHUNK < N ? (k + 1) * ROWS_PER_CHUNK : N;
        for (int n = k * ROWS_PER_CHUNK; n < end; n++) {
            const real *xn = x + (size_t)n * C;
            #pragma omp simd
            for (int c = 0; c < C; c++) p[c] += xn[c];
        }
    }
    add_chunk_sums(out, part, nchunks, C);
}

// ----------------------------------------------------------------------------
// embedding backward: dwte[tokens[b,t],:] += dout[b,t,:];  dwpe[t,:] += sum_b dout[b,t,:]
// Threads own column ranges; within one, positions are added in order.

static void embed_backward_fast(real *dwte, real *dwpe, const real *dout, const int *tokens,
                                const int *tokens_host, int B, int T, int C) {
    (void)tokens_host;
    enum { COLS = 64 };
    #pragma omp parallel for
    for (int c0 = 0; c0 < C; c0 += COLS) {
        const int c1 = c0 + COLS < C ? c0 + COLS : C;
        for (int bt = 0; bt < B * T; bt++) {
            const real *d = dout + (size_t)bt * C;
            if (dwte) {
                real *g = dwte + (size_t)tokens[bt] * C;
                for (int c = c0; c < c1; c++) g[c] += d[c];
            }
            if (dwpe) {
                real *g = dwpe + (size_t)(bt % T) * C;
                for (int c = c0; c < c1; c++) g[c] += d[c];
            }
        }
    }
}

// ----------------------------------------------------------------------------
// LayerNorm (math in layers.c), one row per iteration, two passes for the
// statistics; residual_layernorm_forward adds the residual in the same pass.

static inline void layernorm_row(real *o, real *mean, real *rstd, const real *x, const real *w,
                                 const real *b, int C) {
    float s = 0;
    #pragma omp simd reduction(+ : s)
    for (int c = 0; c < C; c++) s += x[c];
    const float m = s / C;
    float v = 0;
    #pragma omp simd reduction(+ : v)
    for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    const float r = 1.0f / sqrtf(v / C + 1e-5f);
    if (b) {
        #pragma omp simd
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * w[c] + b[c];
    } else {
        #pragma omp simd
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * w[c];
    }
    *mean = m;
    *rstd = r;
}

static void layernorm_forward_fast(real *out, real *mean, real *rstd, const real *inp,
                                   const real *weight, const real *bias, int N, int C) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++)
        layernorm_row(out + (size_t)n * C, mean + n, rstd + n, inp + (size_t)n * C, weight, bias, C);
}

// res = a + b;  out = LayerNorm(res)
static void residual_layernorm_forward_fast(real *res, real *out, real *mean, real *rstd,
                                            const real *a, const real *b, const real *weight,
                                            const real *bias, int N, int C) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        real *r = res + (size_t)n * C;
        const real *an = a + (size_t)n * C, *bn = b + (size_t)n * C;
        #pragma omp simd
        for (int c = 0; c < C; c++) r[c] = an[c] + bn[c];
        layernorm_row(out + (size_t)n * C, mean + n, rstd + n, r, weight, bias, C);
    }
}

// Without contracted multiply-adds: dxhat - mean(dxhat) must cancel exactly
// where it does in exact arithmetic (C = 1), not leave the rounding of d w.
__attribute__((optimize("fp-contract=off")))
static void layernorm_backward_fast(real *dinp, real *dweight, real *dbias, const real *dout,
                                    const real *inp, const real *weight, const real *mean,
                                    const real *rstd, int N, int C) {
    const int nchunks = num_chunks(N);
    const int want_params = dweight || dbias;
    // per chunk k: sum dout * xhat in part[k], sum dout in part[nchunks + k] (C each)
    float *part = want_params ? fast_scratch(SCRATCH_REDUCE, (size_t)nchunks * 2 * C) : NULL;
    #pragma omp parallel for
    for (int k = 0; k < nchunks; k++) {
        float *pw = part ? part + (size_t)k * C : NULL, *pb = pw ? part + (size_t)(nchunks + k) * C : NULL;
        if (pw) {
            memset(pw, 0, C * sizeof(float));
            memset(pb, 0, C * sizeof(float));
        }
        const int end = (k + 1) * ROWS_PER_CHUNK < N ? (k + 1) * ROWS_PER_CHUNK : N;
        for (int n = k * ROWS_PER_CHUNK; n < end; n++) {
            const real *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            const float m = mean[n], r = rstd[n];
            if (pw) {
                #pragma omp simd
                for (int c = 0; c < C; c++) {
                    pw[c] += d[c] * ((x[c] - m) * r);
                    pb[c] += d[c];
                }
            }
            if (!dinp) continue;
            float sum_dxhat = 0, sum_dxhat_xhat = 0;
            #pragma omp simd reduction(+ : sum_dxhat, sum_dxhat_xhat)
            for (int c = 0; c < C; c++) {
                const float dxhat = d[c] * weight[c];
                sum_dxhat += dxhat;
                sum_dxhat_xhat += dxhat * ((x[c] - m) * r);
            }
            const float mean_dxhat = sum_dxhat / C, mean_dxhat_xhat = sum_dxhat_xhat / C;
            real *dx = dinp + (size_t)n * C;
            #pragma omp simd
            for (int c = 0; c < C; c++) {
                const float xhat = (x[c] - m) * r;
                dx[c] += r * (d[c] * weight[c] - mean_dxhat - xhat * mean_dxhat_xhat);
            }
        }
    }
    if (dweight) add_chunk_sums(dweight, part, nchunks, C);
    if (dbias) add_chunk_sums(dbias, part + (size_t)nchunks * C, nchunks, C);
}

// ----------------------------------------------------------------------------
// matmul: out = inp W^T + b in one SGEMM with the bias broadcast into out
// first (beta = 1); backward: dinp = dout W (beta 0: overwritten), dW += dout^T inp,
// db += column sums.

static void matmul_forward_fast(real *out, const real *inp, const real *weight, const real *bias,
                                int N, int C, int OC) {
    if (bias) {
        #pragma omp parallel for
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, OC * sizeof(real));
    }
    gemm(0, 1, N, OC, C, 1.0f, inp, C, weight, C, bias ? 1.0f : 0.0f, out, OC);
}

static void matmul_backward_fast(real *dinp, real *dweight, real *dbias, const real *dout,
                                 const real *inp, const real *weight, int N, int C, int OC) {
    if (dinp) gemm(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, 0.0f, dinp, C);
    if (dweight) gemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) column_sums(dbias, dout, N, OC);
}

// ----------------------------------------------------------------------------
// GELU: Phi(x) = erfc(-x / sqrt 2) / 2;  out = x Phi(x);  d/dx = Phi(x) + x phi(x);
// backward overwrites dinp = dout d/dx. erfc keeps Phi accurate for x << 0,
// where 1 + erf(x / sqrt 2) would cancel.

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

static inline float gelu_fast(float x) { return 0.5f * x * erfc_fast(-x * INV_SQRT2); }

// Elementwise loops run over fixed chunks, each vectorised on its own: then
// which elements take the vector body and which the scalar tail (whose
// multiply-adds the compiler may fuse differently) is set by n alone, not by
// how many threads share the loop.
enum { EW_CHUNK = 4096 };

static void gelu_forward_fast(real *out, const real *inp, size_t n) {
    const size_t nchunks = (n + EW_CHUNK - 1) / EW_CHUNK;
    #pragma omp parallel for
    for (size_t k = 0; k < nchunks; k++) {
        const size_t i1 = (k + 1) * EW_CHUNK < n ? (k + 1) * EW_CHUNK : n;
        #pragma omp simd
        for (size_t i = k * EW_CHUNK; i < i1; i++) out[i] = gelu_fast(inp[i]);
    }
}

static void gelu_backward_fast(real *dinp, const real *inp, const real *dout, size_t n) {
    const size_t nchunks = (n + EW_CHUNK - 1) / EW_CHUNK;
    #pragma omp parallel for
    for (size_t k = 0; k < nchunks; k++) {
        const size_t i1 = (k + 1) * EW_CHUNK < n ? (k + 1) * EW_CHUNK : n;
        #pragma omp simd
        for (size_t i = k * EW_CHUNK; i < i1; i++) {
            const float x = inp[i];
            const float cdf = 0.5f * erfc_fast(-x * INV_SQRT2);
            const float pdf = INV_SQRT_2PI * exp_fast(-0.5f * x * x);
            dinp[i] = (cdf + x * pdf) * dout[i];
        }
    }
}

// pre = inp W^T + b (one SGEMM, as matmul_forward), then out = GELU(pre) row
// block by row block right after, while the block is still in cache.
static void matmul_gelu_forward_fast(real *pre, real *out, const real *inp, const real *weight,
                                     const real *bias, int N, int C, int OC) {
    enum { ROWS = 32 };
    #pragma omp parallel for schedule(static)
    for (int n0 = 0; n0 < N; n0 += ROWS) {
        const int rows = N - n0 < ROWS ? N - n0 : ROWS;
        real *p = pre + (size_t)n0 * OC, *o = out + (size_t)n0 * OC;
        if (bias)
            for (int r = 0; r < rows; r++) memcpy(p + (size_t)r * OC, bias, OC * sizeof(real));
        gemm(0, 1, rows, OC, C, 1.0f, inp + (size_t)n0 * C, C, weight, C, bias ? 1.0f : 0.0f, p, OC);
        #pragma omp simd
        for (size_t i = 0; i < (size_t)rows * OC; i++) o[i] = gelu_fast(p[i]);
    }
}

// ----------------------------------------------------------------------------
// softmax cross-entropy (math in layers.c), one row per iteration, in place

// One row: the loss and argmax of logits z, and out = the probabilities, or
// with `grad` the gradient scale (p - (1-ls) onehot(t) - ls/V). Three passes
// over the row (max; e^(z - max) written to out; the last scaled in place),
// which stays in the cache between them. z may alias out.
static inline void xent_row(real *loss, int *argmax, real *out, const real *z, int t, int V,
                            int Vp, float smoothing, int grad, float scale) {
    float maxz = -INFINITY;
    int best = 0;
    for (int k = 0; k < V; k++) {
        if (z[k] > maxz) {
            maxz = z[k];
            best = k;
        }
    }
    const int valid = t >= 0 && t < V;
    const float zt = valid ? z[t] : 0;
    float sum = 0, sum_z = 0;
    // z may alias out: e^(z - max) overwrites z as it is read
    #pragma omp simd reduction(+ : sum, sum_z)
    for (int k = 0; k < V; k++) {
        const float zk = z[k];
        sum_z += zk;
        const float e = exp_fast(zk - maxz);
        out[k] = e;
        sum += e;
    }
    const float inv = 1.0f / sum, logsum = maxz + logf(sum);
    float l = 0;
    if (valid) {
        l = (1.0f - smoothing) * (logsum - zt);
        if (smoothing != 0) l += smoothing * (logsum - sum_z / V);
    }
    *loss = l;
    if (argmax) *argmax = best;
    if (!grad) {
        #pragma omp simd
        for (int k = 0; k < V; k++) out[k] *= inv;
    } else if (valid) {
        const float sp = scale * inv, su = scale * smoothing / (float)V;
        #pragma omp simd
        for (int k = 0; k < V; k++) out[k] = out[k] * sp - su;
        out[t] -= scale * (1.0f - smoothing);
    } else {
        memset(out, 0, V * sizeof(real));
    }
    for (int k = V; k < Vp; k++) out[k] = 0;
}

static void xent_forward_fast(real *losses, real *probs, int *argmax, const real *logits,
                              const int *targets, int N, int V, int Vp, float smoothing) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++)
        xent_row(losses + n, argmax ? argmax + n : NULL, probs + (size_t)n * Vp,
                 logits + (size_t)n * Vp, targets ? targets[n] : -1, V, Vp, smoothing, 0, 0);
}

static void xent_forward_backward_fast(real *losses, int *argmax, real *logits, const int *targets,
                                       int N, int V, int Vp, float smoothing, float scale) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++)
        xent_row(losses + n, argmax ? argmax + n : NULL, logits + (size_t)n * Vp,
                 logits + (size_t)n * Vp, targets[n], V, Vp, smoothing, 1, scale);
}

// ----------------------------------------------------------------------------
// optimizers (math in layers.c and ../shared/spec/setadam.md)

// AdamW: one pass over every slice, m, v and the parameter updated together
static void adamw_update_fast(real *params, const real *grads, real *m, real *v,
                              const ParamSlice *slices, int nslices, const OptimArgs *a,
                              const real *gnorm_sq) {
    const float gscale = (float)clip_factor(gnorm_sq, a->clip);
    const float b1 = a->beta1, b2 = a->beta2, lr = a->lr, eps = a->eps;
    const float inv_bc1 = (float)(1.0 / (1.0 - pow(a->beta1, a->t)));
    const float inv_bc2 = (float)(1.0 / (1.0 - pow(a->beta2, a->t)));
    #pragma omp parallel
    for (int s = 0; s < nslices; s++) {
        const float wd = slices[s].decay ? a->wd : 0.0f;
        const size_t off = slices[s].offset, d = slices[s].size;
        const size_t nchunks = (d + EW_CHUNK - 1) / EW_CHUNK;
        #pragma omp for schedule(static) nowait
        for (size_t k = 0; k < nchunks; k++) {
            const size_t i0 = off + k * EW_CHUNK, i1 = i0 + EW_CHUNK < off + d ? i0 + EW_CHUNK : off + d;
            #pragma omp simd
            for (size_t i = i0; i < i1; i++) {
                const float g = grads[i] * gscale;
                const float mi = b1 * m[i] + (1 - b1) * g, vi = b2 * v[i] + (1 - b2) * g * g;
                m[i] = mi;
                v[i] = vi;
                params[i] -= lr * ((mi * inv_bc1) / (sqrtf(vi * inv_bc2) + eps) + wd * params[i]);
            }
        }
    }
}

// SET-Adam: pass 1 updates m, v and each slice's sum v, sum v^2, min v (fixed
// chunks, so the sums do not depend on the thread count); pass 2 the parameters.
static void setadam_update_fast(real *params, const real *grads, real *m, real *v,
                                const ParamSlice *slices, int nslices, const OptimArgs *a,
                                const real *gnorm_sq) {
    const float gscale = (float)clip_factor(gnorm_sq, a->clip);
    const float b1 = a->beta1, b2 = a->beta2;
    const double bc1 = 1.0 - pow(a->beta1, a->t), bc2 = 1.0 - pow(a->beta2, a->t);
    for (int s = 0; s < nslices; s++) {
        const size_t off = slices[s].offset, d = slices[s].size;
        if (d == 0) continue;
        const int nchunks = (int)((d + EW_CHUNK - 1) / EW_CHUNK);
        double *part = (double *)fast_scratch(SCRATCH_REDUCE, (size_t)nchunks * 6);
        #pragma omp parallel for
        for (int k = 0; k < nchunks; k++) {
            const size_t i0 = off + (size_t)k * EW_CHUNK, i1 = i0 + EW_CHUNK < off + d ? i0 + EW_CHUNK : off + d;
            double sv = 0, sv2 = 0;
            float vmin = INFINITY;
            for (size_t i = i0; i < i1; i++) {
                const float g = grads[i] * gscale;
                m[i] = b1 * m[i] + (1 - b1) * g;
                const float vi = b2 * v[i] + (1 - b2) * g * g;
                v[i] = vi;
                sv += vi;
                sv2 += (double)vi * vi;
                vmin = vi < vmin ? vi : vmin;
            }
            part[3 * k] = sv;
            part[3 * k + 1] = sv2;
            part[3 * k + 2] = vmin;
        }
        double sum_v = 0, sum_v2 = 0, vmin = INFINITY;
        for (int k = 0; k < nchunks; k++) {
            sum_v += part[3 * k];
            sum_v2 += part[3 * k + 1];
            vmin = part[3 * k + 2] < vmin ? part[3 * k + 2] : vmin;
        }
        const double c = sum_v2 > 0 ? sum_v * sum_v / ((double)d * sum_v2) : 1.0;
        const float cs = (float)(c / bc2), eps = a->eps, lr_bc1 = (float)(a->lr / bc1);
        const float shift = (float)(a->tau * sqrt(c * vmin / bc2 + a->eps));
        const float lr_wd = slices[s].decay && a->wd > 0 ? a->lr * a->wd : 0.0f;
        #pragma omp parallel for
        for (int k = 0; k < nchunks; k++) {
            const size_t i0 = off + (size_t)k * EW_CHUNK, i1 = i0 + EW_CHUNK < off + d ? i0 + EW_CHUNK : off + d;
            #pragma omp simd
            for (size_t i = i0; i < i1; i++) {
                const float wt = sqrtf(cs * v[i] + eps) - shift;
                params[i] -= lr_bc1 * m[i] / wt + lr_wd * params[i];
            }
        }
    }
}

// ----------------------------------------------------------------------------
// the table: ops the reference already does at memory speed are shared

const Backend backend_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .synchronize = cpu_synchronize,
    .shutdown = fast_shutdown,
    .embed_forward = embed_forward_ref,
    .embed_backward = embed_backward_fast,
    .layernorm_forward = layernorm_forward_fast,
    .layernorm_backward = layernorm_backward_fast,
    .residual_layernorm_forward = residual_layernorm_forward_fast,
    .matmul_forward = matmul_forward_fast,
    .matmul_gelu_forward = matmul_gelu_forward_fast,
    .matmul_backward = matmul_backward_fast,
    .gelu_forward = gelu_forward_fast,
    .gelu_backward = gelu_backward_fast,
    .add_forward = add_forward_ref,
    .attention_saved_floats = attention_saved_floats_fast,
    .attention_forward = attention_forward_fast,
    .attention_backward = attention_backward_fast,
    .variant_forward = variant_forward_fast,
    .variant_backward = variant_backward_fast,
    .xent_forward = xent_forward_fast,
    .xent_forward_backward = xent_forward_backward_fast,
    .sumsq = sumsq_ref,
    .adamw_update = adamw_update_fast,
    .setadam_update = setadam_update_fast,
    .patchify_forward = patchify_forward_ref,
    .cls_pos_forward = cls_pos_forward_ref,
    .cls_pos_backward = cls_pos_backward_ref,
    .dropout_forward = dropout_forward_ref,
    .dropout_backward = dropout_backward_ref,
    .cls_select_forward = cls_select_forward_ref,
    .cls_select_backward = cls_select_backward_ref,
};

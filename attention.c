// attention.c - CPU reference of the multi-head attention core.
//
// The math (../shared/spec/attentionx.md), one head, rows i, columns j:
//   S = s Q K^T + M,  P = softmax_row(S),  Y = P V
// The variant's transform O = f(Y, V) comes after it, as its own op
// (variants.c); the core's backward takes its dY = dL/dY:
//   dV = P^T dY,  dP = dY V^T
//   D_i = sum_k dY_ik Y_ik
//   dS = P o (dP - D),  dQ = s dS K,  dK = s dS^T Q
//   LSA (s = exp(t)): dt = sum_ij dS_ij s (Q K^T)_ij over unmasked entries
// The CUDA kernels are in attention.cu. The reference keeps P (B, NH, T, T)
// as the saved softmax state and works one (batch, head) per OpenMP task, so
// no two tasks write the same gradient and results do not depend on threads.
#include <math.h>
#include <stdlib.h>

#include "ops_cpu.h"
#include "src/common.h"

size_t attention_saved_floats_ref(int B, int NH, int T) { return (size_t)B * NH * T * T; }

// may query row i attend to key j?
static inline int attn_allowed(int mask, int i, int j) {
    switch (mask) {
    case MASK_CAUSAL: return j <= i;
    case MASK_DIAG: return j != i;
    default: return 1;
    }
}

static double attn_scale(const AttnArgs *a) {
    return a->log_temp ? exp((double)a->log_temp[0]) : (double)a->scale;
}

void attention_forward_ref(real *y, real *saved, const real *qkv, int B, int T, int C,
                           int NH, const AttnArgs *args) {
    const int hs = C / NH;
    const size_t row = 3 * (size_t)C;   // qkv row stride
    const double s = attn_scale(args);
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const real *base = qkv + (size_t)b * T * row + (size_t)h * hs;
            real *P = saved + ((size_t)b * NH + h) * T * T;
            for (int i = 0; i < T; i++) {
                const real *q = base + i * row;
                real *p = P + (size_t)i * T;
                // scores and their max over the allowed keys
                double maxs = -INFINITY;
                for (int j = 0; j < T; j++) {
                    if (!attn_allowed(args->mask, i, j)) continue;
                    const real *k = base + j * row + C;
                    double dot = 0;
                    for (int c = 0; c < hs; c++) dot += (double)q[c] * k[c];
                    p[j] = (real)(s * dot);
                    if (s * dot > maxs) maxs = s * dot;
                }
                double sum = 0;
                for (int j = 0; j < T; j++) {
                    if (!attn_allowed(args->mask, i, j)) continue;
                    sum += exp((double)p[j] - maxs);
                }
                // a row with no allowed key (diagonal mask, T = 1) attends to nothing
                for (int j = 0; j < T; j++)
                    p[j] = attn_allowed(args->mask, i, j) ? (real)(exp((double)p[j] - maxs) / sum) : 0;
                // y_i = sum_j P_ij v_j
                real *yi = y + ((size_t)b * T + i) * C + (size_t)h * hs;
                for (int c = 0; c < hs; c++) {
                    double acc = 0;
                    for (int j = 0; j < T; j++) acc += (double)p[j] * base[j * row + 2 * C + c];
                    yi[c] = (real)acc;
                }
            }
        }
    }
}

void attention_backward_ref(real *dqkv, const real *dy, const real *qkv, const real *y,
                            const real *saved, int B, int T, int C, int NH, const AttnArgs *args) {
    const int hs = C / NH;
    const size_t row = 3 * (size_t)C;
    const double s = attn_scale(args);
    // per-(b, h) partial sums of dt, added up in a fixed order after the loop
    double *dt_partial = args->dlog_temp ? xcalloc((size_t)B * NH, sizeof(double)) : NULL;
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const real *base = qkv + (size_t)b * T * row + (size_t)h * hs;
            real *dbase = dqkv + (size_t)b * T * row + (size_t)h * hs;
            const real *P = saved + ((size_t)b * NH + h) * T * T;
            double dt = 0;
            for (int i = 0; i < T; i++) {
                const real *g = dy + ((size_t)b * T + i) * C + (size_t)h * hs;
                const real *yi = y + ((size_t)b * T + i) * C + (size_t)h * hs;
                const real *q = base + i * row;
                real *dq = dbase + i * row;
                const real *p = P + (size_t)i * T;
                double D = 0;
                for (int c = 0; c < hs; c++) D += (double)g[c] * yi[c];
                for (int j = 0; j < T; j++) {
                    if (!attn_allowed(args->mask, i, j)) continue;
                    const real *k = base + j * row + C, *v = base + j * row + 2 * C;
                    real *dk = dbase + j * row + C, *dv = dbase + j * row + 2 * C;
                    double dp = 0;
                    for (int c = 0; c < hs; c++) dp += (double)g[c] * v[c];
                    double ds = p[j] * (dp - D);
                    for (int c = 0; c < hs; c++) {
                        dq[c] += (real)(s * ds * k[c]);
                        dk[c] += (real)(s * ds * q[c]);
                        dv[c] += (real)(p[j] * g[c]);
                    }
                    if (dt_partial) {
                        double qk = 0;
                        for (int c = 0; c < hs; c++) qk += (double)q[c] * k[c];
                        dt += ds * s * qk;
                    }
                }
            }
            if (dt_partial) dt_partial[(size_t)b * NH + h] = dt;
        }
    }
    if (dt_partial) {
        double dt = 0;
        for (int k = 0; k < B * NH; k++) dt += dt_partial[k];
        args->dlog_temp[0] += (real)dt;
        free(dt_partial);
    }
}

// variants_fast.c - the attention variants' output transforms for the fast CPU
// backend: variants.c's math (../shared/spec/variants.md) in float, one pass
// over the rows, vectorised within a head.
//
// Each (row, head) is independent; dgamma's terms are kept per (row, head) and
// summed in row order afterwards, so results do not depend on threads.
#include <string.h>

#include "ops_cpu.h"

#ifdef __cplusplus
#error "C only"
#endif

static inline float gamma_of(const VariantArgs *a, int h) { return a->gamma[a->per_head ? h : 0]; }

static inline float dot(const float *a, const float *b, int n) {
    float s = 0;
    #pragma omp simd reduction(+ : s)
    for (int c = 0; c < n; c++) s += a[c] * b[c];
    return s;
}

// O = y - gamma v (x), y - gamma (y.v / (v.v + 1e-6)) v (xsa): cost one read of
// y and v, one write of O
void variant_forward_fast(real *out, const real *y, const real *qkv, int N, int C, int NH,
                          const VariantArgs *args) {
    const int hs = C / NH;
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        for (int h = 0; h < NH; h++) {
            const size_t at = (size_t)n * C + (size_t)h * hs;
            const float *yr = y + at, *v = qkv + (size_t)n * 3 * C + 2 * (size_t)C + (size_t)h * hs;
            float *o = out + at;
            if (args->kind != ATTN_X && args->kind != ATTN_XSA) {   // std: a copy
                memcpy(o, yr, (size_t)hs * sizeof(float));
                continue;
            }
            float k = gamma_of(args, h);
            if (args->kind == ATTN_XSA) k *= dot(yr, v, hs) / (dot(v, v, hs) + 1e-6f);
            #pragma omp simd
            for (int c = 0; c < hs; c++) o[c] = yr[c] - k * v[c];
        }
    }
}

// dY, the direct dV and dgamma from G = dout (variants.c has the formulas)
void variant_backward_fast(real *dy, real *dqkv, const real *dout, const real *y, const real *qkv,
                           int N, int C, int NH, const VariantArgs *args) {
    const int hs = C / NH;
    double *dg = args->dgamma ? (double *)fast_scratch(SCRATCH_REDUCE, 2 * (size_t)N * NH) : NULL;
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        for (int h = 0; h < NH; h++) {
            const size_t at = (size_t)n * C + (size_t)h * hs;
            const size_t vat = (size_t)n * 3 * C + 2 * (size_t)C + (size_t)h * hs;
            const float *g = dout + at, *yr = y + at, *v = qkv + vat;
            float *dv = dqkv + vat, *d = dy + at;
            const float gm = gamma_of(args, h);
            float term = 0;
            if (args->kind == ATTN_X) {
                term = -dot(g, v, hs);
                #pragma omp simd
                for (int c = 0; c < hs; c++) dv[c] -= gm * g[c];
                if (d != g) memcpy(d, g, (size_t)hs * sizeof(float));
            } else if (args->kind == ATTN_XSA) {
                const float gv = dot(g, v, hs), n2 = dot(v, v, hs) + 1e-6f, k = dot(yr, v, hs) / n2;
                const float a = gm * gv / n2;
                term = -k * gv;
                #pragma omp simd
                for (int c = 0; c < hs; c++) {
                    const float gc = g[c];   // read before d (which may be g) is written
                    dv[c] -= gm * k * gc + a * (yr[c] - 2 * k * v[c]);
                    d[c] = gc - a * v[c];
                }
            } else if (d != g) {
                memcpy(d, g, (size_t)hs * sizeof(float));
            }
            if (dg) dg[(size_t)n * NH + h] = term;
        }
    }
    if (dg) {
        const int G = args->per_head ? NH : 1;
        for (int k = 0; k < G; k++) {
            double s = 0;
            for (size_t r = 0; r < (size_t)N; r++) {
                if (args->per_head) s += dg[r * NH + k];
                else
                    for (int h = 0; h < NH; h++) s += dg[r * NH + h];
            }
            args->dgamma[k] += (float)s;
        }
    }
}

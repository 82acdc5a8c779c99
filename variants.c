// variants.c - CPU reference of the attention variants' output transforms
// (../shared/spec/variants.md), applied after the attention core.
//
// One row is one head of one token: y (the core's P V), v (the token's value),
// g = dL/dO, all of head size hs; gamma is the row's coefficient.
//   std   O = y                                dY = g
//   x     O = y - gamma v                      dY = g,  dV += -gamma g,
//                                              dgamma += -g.v
//   xsa   n2 = v.v + 1e-6,  c = y.v / n2,  O = y - gamma c v
//         dY = g - gamma (g.v / n2) v
//         dV += -gamma (c g + (g.v) (y - 2 c v) / n2),   dgamma += -c (g.v)
// Dot products in double. dgamma's per-row terms are kept per (row, head) and
// summed in row order afterwards, so results do not depend on threads.
// The fast CPU version is variants_fast.c, the CUDA one variants.cu.
#include <stdlib.h>
#include <string.h>

#include "ops_cpu.h"
#include "src/common.h"

// the coefficient of head h
static inline double gamma_of(const VariantArgs *a, int h) {
    return (double)a->gamma[a->per_head ? h : 0];
}

void variant_forward_ref(real *out, const real *y, const real *qkv, int N, int C, int NH,
                         const VariantArgs *args) {
    const int hs = C / NH;
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        for (int h = 0; h < NH; h++) {
            const size_t at = (size_t)n * C + (size_t)h * hs;
            const real *yr = y + at, *v = qkv + (size_t)n * 3 * C + 2 * (size_t)C + (size_t)h * hs;
            real *o = out + at;
            switch (args->kind) {
            case ATTN_X: {
                // in real arithmetic, so gamma 0 gives y exactly (as std)
                const real g = (real)gamma_of(args, h);
                for (int c = 0; c < hs; c++) o[c] = yr[c] - g * v[c];
                break;
            }
            case ATTN_XSA: {
                double yv = 0, vv = 0;
                for (int c = 0; c < hs; c++) yv += (double)yr[c] * v[c], vv += (double)v[c] * v[c];
                const double k = gamma_of(args, h) * yv / (vv + 1e-6);
                for (int c = 0; c < hs; c++) o[c] = (real)(yr[c] - k * v[c]);
                break;
            }
            default: memcpy(o, yr, (size_t)hs * sizeof(real));
            }
        }
    }
}

void variant_backward_ref(real *dy, real *dqkv, const real *dout, const real *y, const real *qkv,
                          int N, int C, int NH, const VariantArgs *args) {
    const int hs = C / NH;
    // per-(row, head) terms of dL/dgamma
    double *dg = args->dgamma ? xcalloc((size_t)N * NH, sizeof(double)) : NULL;
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        for (int h = 0; h < NH; h++) {
            const size_t at = (size_t)n * C + (size_t)h * hs;
            const size_t vat = (size_t)n * 3 * C + 2 * (size_t)C + (size_t)h * hs;
            const real *g = dout + at, *yr = y + at, *v = qkv + vat;
            real *dv = dqkv + vat, *d = dy + at;
            const double gm = gamma_of(args, h);
            double term = 0;
            switch (args->kind) {
            case ATTN_X: {
                double gv = 0;
                for (int c = 0; c < hs; c++) gv += (double)g[c] * v[c];
                const real gr = (real)gm;
                for (int c = 0; c < hs; c++) {
                    dv[c] -= gr * g[c];
                    d[c] = g[c];
                }
                term = -gv;
                break;
            }
            case ATTN_XSA: {
                double yv = 0, vv = 0, gv = 0;
                for (int c = 0; c < hs; c++) {
                    yv += (double)yr[c] * v[c];
                    vv += (double)v[c] * v[c];
                    gv += (double)g[c] * v[c];
                }
                const double n2 = vv + 1e-6, k = yv / n2;
                for (int c = 0; c < hs; c++) {
                    const double gc = g[c];   // read before d (which may be g) is written
                    dv[c] = (real)(dv[c] - gm * (k * gc + gv * (yr[c] - 2 * k * v[c]) / n2));
                    d[c] = (real)(gc - gm * (gv / n2) * v[c]);
                }
                term = -k * gv;
                break;
            }
            default:
                if (d != g) memcpy(d, g, (size_t)hs * sizeof(real));
            }
            if (dg) dg[(size_t)n * NH + h] = term;
        }
    }
    if (dg) {
        const int G = args->per_head ? NH : 1;
        double *sum = xcalloc((size_t)G, sizeof(double));
        for (size_t r = 0; r < (size_t)N * NH; r++) sum[args->per_head ? (int)(r % NH) : 0] += dg[r];
        for (int k = 0; k < G; k++) args->dgamma[k] += (real)sum[k];
        free(sum);
        free(dg);
    }
}

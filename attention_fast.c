// attention_fast.c - blocked (flash-style) attention for the fast CPU backend.
//
// The math is attention.c's. Per (batch, head), queries in blocks of at most
// QB rows and keys in tiles of at most KB columns:
//   forward:  S = s Q_i K_j^T (SGEMM), online softmax over the tiles (running
//             row max m and sum l, Y rescaled when m grows), Y_i += P V_j (SGEMM);
//             at the end Y_i /= l and the row's logsumexp lse = m + log l is kept.
//   backward: D_i = rowsum(G_i o Y_i); per tile, recompute S and
//             P = exp(S - lse), dP = G_i V_j^T, dS = P o (dP - D_i), and
//             dV_j += P^T G_i, dQ_i += s dS K_j, dK_j += s dS^T Q_i (all SGEMM).
// No T x T tensor exists: the saved state is lse (B, NH, T), and each thread's
// scratch is a few QB x KB tiles, so memory grows linearly in T. With the
// causal mask, key tiles right of a query block's diagonal are never touched,
// and only the tile that crosses the diagonal is masked element by element.
// Q, K, V, dQ, dK, dV are read in place in the fused (B, T, 3C) rows through
// the GEMMs' leading dimensions: no head split or merge copies.
//
// Each (batch, head) is one OpenMP task that writes only its own head's
// columns, in a fixed order, so results do not depend on the thread count.
// The variant's transform (AttentionX's O = Y - gamma V, ...) is its own op
// (variants_fast.c), applied after the core, so the core never knows it.
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_gemm.h"
#include "cpu_math.h"
#include "ops_cpu.h"

#ifdef __cplusplus
#error "C only"
#endif

enum { QB = 64, KB = 256 };

size_t attention_saved_floats_fast(int B, int NH, int T) { return (size_t)B * NH * T; }

static float attn_scale(const AttnArgs *a) {
    return a->log_temp ? expf(a->log_temp[0]) : a->scale;
}

// Query blocks of near-equal size (T = 65 gives 33 + 32, not 64 + 1).
static int query_block(int T) {
    int nblocks = (T + QB - 1) / QB;
    return (T + nblocks - 1) / nblocks;
}

// Which columns of the key tile [k0, k0 + kn) query row i may see: columns
// jj >= *first_bad are masked (causal), and so is column *diag (diagonal mask,
// -1 when none). Returns 0 when the whole row of the tile is masked.
static int row_mask(int mask, int i, int k0, int kn, int *first_bad, int *diag) {
    *first_bad = kn;
    *diag = -1;
    if (mask == MASK_CAUSAL) {
        *first_bad = i - k0 + 1 < kn ? i - k0 + 1 : kn;
        return *first_bad > 0;
    }
    if (mask == MASK_DIAG && i >= k0 && i < k0 + kn) *diag = i - k0;
    return !(kn == 1 && *diag == 0);
}

// the last key (exclusive) that query block [q0, q0 + qn) may attend to
static int key_end(int mask, int q0, int qn, int T) { return mask == MASK_CAUSAL ? q0 + qn : T; }

// ----------------------------------------------------------------------------
// forward: Y and lse of one (batch, head). S is a QB x KB scratch tile; m, l QB each.

static void attn_head_forward(float *y, float *lse, const float *Q, const float *K, const float *V,
                              int T, int hs, int ldq, int ldy, float s, int mask, float *S, float *m,
                              float *l) {
    const int qb = query_block(T);
    for (int q0 = 0; q0 < T; q0 += qb) {
        const int qn = T - q0 < qb ? T - q0 : qb, kend = key_end(mask, q0, qn, T);
        for (int i = 0; i < qn; i++) {
            memset(y + (size_t)(q0 + i) * ldy, 0, hs * sizeof(float));
            m[i] = -INFINITY;
            l[i] = 0;
        }
        for (int k0 = 0; k0 < kend; k0 += KB) {
            const int kn = kend - k0 < KB ? kend - k0 : KB;
            gemm(0, 1, qn, kn, hs, s, Q + (size_t)q0 * ldq, ldq, K + (size_t)k0 * ldq, ldq, 0, S, kn);
            for (int i = 0; i < qn; i++) {
                float *row = S + (size_t)i * kn;
                int first_bad, diag;
                if (!row_mask(mask, q0 + i, k0, kn, &first_bad, &diag)) {
                    memset(row, 0, kn * sizeof(float));
                    continue;
                }
                float mt = -INFINITY;
                for (int j = 0; j < first_bad; j++)
                    if (j != diag && row[j] > mt) mt = row[j];
                const float mnew = mt > m[i] ? mt : m[i];
                float sum = 0;
                #pragma omp simd reduction(+ : sum)
                for (int j = 0; j < kn; j++) {
                    float p = (j >= first_bad || j == diag) ? 0.0f : exp_fast(row[j] - mnew);
                    row[j] = p;
                    sum += p;
                }
                const float corr = m[i] == -INFINITY ? 0.0f : exp_fast(m[i] - mnew);
                if (corr != 1.0f) {
                    float *yi = y + (size_t)(q0 + i) * ldy;
                    for (int c = 0; c < hs; c++) yi[c] *= corr;
                }
                l[i] = l[i] * corr + sum;
                m[i] = mnew;
            }
            gemm(0, 0, qn, hs, kn, 1.0f, S, kn, V + (size_t)k0 * ldq, ldq, 1.0f,
                 y + (size_t)q0 * ldy, ldy);
        }
        // a row with no allowed key (diagonal mask, T = 1) attends to nothing: Y = 0
        for (int i = 0; i < qn; i++) {
            float *yi = y + (size_t)(q0 + i) * ldy;
            const float inv = l[i] > 0 ? 1.0f / l[i] : 0.0f;
            for (int c = 0; c < hs; c++) yi[c] *= inv;
            lse[q0 + i] = l[i] > 0 ? m[i] + logf(l[i]) : INFINITY;
        }
    }
}

// ----------------------------------------------------------------------------
// backward of one (batch, head): accumulates dQ, dK, dV; returns dL/dt's share
// (LSA: sum_ij dS_ij S_ij, S = s Q K^T) when want_dt. Scratch: S, P, dP tiles, D (T).

static double attn_head_backward(float *dQ, float *dK, float *dV, const float *G, const float *Y,
                                 const float *lse, const float *Q, const float *K, const float *V,
                                 int T, int hs, int ldq, int ldy, float s, int mask, int want_dt,
                                 float *S, float *P, float *dP, float *D) {
    for (int i = 0; i < T; i++) {
        const float *g = G + (size_t)i * ldy, *yi = Y + (size_t)i * ldy;
        float d = 0;
        for (int c = 0; c < hs; c++) d += g[c] * yi[c];
        D[i] = d;
    }
    double dt = 0;
    const int qb = query_block(T);
    for (int q0 = 0; q0 < T; q0 += qb) {
        const int qn = T - q0 < qb ? T - q0 : qb, kend = key_end(mask, q0, qn, T);
        for (int k0 = 0; k0 < kend; k0 += KB) {
            const int kn = kend - k0 < KB ? kend - k0 : KB;
            gemm(0, 1, qn, kn, hs, s, Q + (size_t)q0 * ldq, ldq, K + (size_t)k0 * ldq, ldq, 0, S, kn);
            gemm(0, 1, qn, kn, hs, 1.0f, G + (size_t)q0 * ldy, ldy, V + (size_t)k0 * ldq, ldq, 0, dP,
                 kn);
            for (int i = 0; i < qn; i++) {
                const float *srow = S + (size_t)i * kn;
                float *prow = P + (size_t)i * kn, *dsrow = dP + (size_t)i * kn;
                const float lse_i = lse[q0 + i], D_i = D[q0 + i];
                int first_bad, diag;
                const int any = row_mask(mask, q0 + i, k0, kn, &first_bad, &diag) && lse_i != INFINITY;
                #pragma omp simd
                for (int j = 0; j < kn; j++) {
                    float p = (!any || j >= first_bad || j == diag) ? 0.0f : exp_fast(srow[j] - lse_i);
                    prow[j] = p;
                    dsrow[j] = p * (dsrow[j] - D_i);
                }
                if (want_dt) {
                    double acc = 0;
                    for (int j = 0; j < kn; j++) acc += (double)dsrow[j] * srow[j];
                    dt += acc;
                }
            }
            gemm(1, 0, kn, hs, qn, 1.0f, P, kn, G + (size_t)q0 * ldy, ldy, 1.0f,
                 dV + (size_t)k0 * ldq, ldq);
            gemm(0, 0, qn, hs, kn, s, dP, kn, K + (size_t)k0 * ldq, ldq, 1.0f,
                 dQ + (size_t)q0 * ldq, ldq);
            gemm(1, 0, kn, hs, qn, s, dP, kn, Q + (size_t)q0 * ldq, ldq, 1.0f,
                 dK + (size_t)k0 * ldq, ldq);
        }
    }
    return dt;
}

// ----------------------------------------------------------------------------
// the ops: one (batch, head) per task; per-thread tiles from the scratch pool

enum { FWD_TILE = QB * KB + 2 * QB, BWD_TILE = 3 * QB * KB };

void attention_forward_fast(real *y, real *saved, const real *qkv, int B, int T, int C,
                            int NH, const AttnArgs *args) {
    const int hs = C / NH, nthreads = omp_get_max_threads();
    const float s = attn_scale(args);
    float *pool = fast_scratch(SCRATCH_ATTN, (size_t)nthreads * FWD_TILE);
    #pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float *S = pool + (size_t)omp_get_thread_num() * FWD_TILE;
            const real *Q = qkv + (size_t)b * T * 3 * C + (size_t)h * hs;
            attn_head_forward(y + (size_t)b * T * C + (size_t)h * hs, saved + ((size_t)b * NH + h) * T,
                              Q, Q + C, Q + 2 * C, T, hs, 3 * C, C, s, args->mask, S, S + QB * KB,
                              S + QB * KB + QB);
        }
    }
}

void attention_backward_fast(real *dqkv, const real *dy, const real *qkv, const real *y,
                             const real *saved, int B, int T, int C, int NH, const AttnArgs *args) {
    const int hs = C / NH, nthreads = omp_get_max_threads();
    const float s = attn_scale(args);
    const size_t per_thread = BWD_TILE + (size_t)T;
    float *pool = fast_scratch(SCRATCH_ATTN, (size_t)nthreads * per_thread);
    // per-(b, h) shares of dL/dt, added in a fixed order after the loop
    double *dt_part = args->dlog_temp ? (double *)fast_scratch(SCRATCH_REDUCE, 2 * (size_t)B * NH) : NULL;
    #pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float *S = pool + (size_t)omp_get_thread_num() * per_thread;
            const size_t qoff = (size_t)b * T * 3 * C + (size_t)h * hs;
            const size_t yoff = (size_t)b * T * C + (size_t)h * hs;
            const real *Q = qkv + qoff;
            real *dQ = dqkv + qoff;
            double dt = attn_head_backward(dQ, dQ + C, dQ + 2 * C, dy + yoff, y + yoff,
                                           saved + ((size_t)b * NH + h) * T, Q, Q + C, Q + 2 * C, T,
                                           hs, 3 * C, C, s, args->mask, dt_part != NULL, S,
                                           S + QB * KB, S + 2 * QB * KB, S + BWD_TILE);
            if (dt_part) dt_part[(size_t)b * NH + h] = dt;
        }
    }
    if (dt_part) {
        double dt = 0;
        for (size_t k = 0; k < (size_t)B * NH; k++) dt += dt_part[k];
        args->dlog_temp[0] += (real)dt;
    }
}

// layers.c - the CPU reference (`--device=ref`, the oracle) for every op of ops.h
// except attention (attention.c).
//
// This is the oracle the CUDA kernels (layers.cu) are tested against, so it is
// written for clarity and exactness first. OpenMP parallelises over rows or
// output elements, and every sum is taken by one thread in a fixed order, so
// the results are bit-identical for any number of threads.
// Each backward op accumulates (+=) into its gradients (see ops.h).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops_cpu.h"
#include "src/common.h"
#include "src/rng.h"

// ----------------------------------------------------------------------------
// memory: the CPU's device memory is host memory

void *cpu_alloc(size_t bytes) { return xcalloc(1, bytes); }
void cpu_free(void *p) { free(p); }
void cpu_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) memmove(dst, src, bytes);
}
void cpu_zero(void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
}
void cpu_synchronize(void) {}
static void ref_shutdown(void) {}   // the CPU ops keep nothing between calls

// ----------------------------------------------------------------------------
// embedding: out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:]

void embed_forward_ref(real *out, const int *tokens, const real *wte, const real *wpe,
                              int B, int T, int C) {
    #pragma omp parallel for
    for (int bt = 0; bt < B * T; bt++) {
        const real *te = wte + (size_t)tokens[bt] * C;
        const real *pe = wpe + (size_t)(bt % T) * C;
        real *o = out + (size_t)bt * C;
        for (int c = 0; c < C; c++) o[c] = te[c] + pe[c];
    }
}

// dwte[tokens[b,t],:] += dout[b,t,:];  dwpe[t,:] += sum_b dout[b,t,:]
// Serial over positions: the scatter-add's order is then fixed.
static void embed_backward_ref(real *dwte, real *dwpe, const real *dout, const int *tokens,
                               const int *tokens_host, int B, int T, int C) {
    (void)tokens_host;
    for (int bt = 0; bt < B * T; bt++) {
        const real *d = dout + (size_t)bt * C;
        if (dwte) {
            real *g = dwte + (size_t)tokens[bt] * C;
            for (int c = 0; c < C; c++) g[c] += d[c];
        }
        if (dwpe) {
            real *g = dwpe + (size_t)(bt % T) * C;
            for (int c = 0; c < C; c++) g[c] += d[c];
        }
    }
}

// ----------------------------------------------------------------------------
// LayerNorm over the last dim:
//   mean = sum_c x_c / C,  rstd = 1 / sqrt(sum_c (x_c - mean)^2 / C + 1e-5)
//   xhat = (x - mean) * rstd,  out = xhat * w + b
// backward:
//   dw += sum_rows dout * xhat,  db += sum_rows dout
//   dx += rstd * (dxhat - mean_c(dxhat) - xhat * mean_c(dxhat * xhat)),  dxhat = dout * w

static void layernorm_forward_ref(real *out, real *mean, real *rstd, const real *inp,
                                  const real *weight, const real *bias, int N, int C) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C;
        double s = 0;
        for (int c = 0; c < C; c++) s += x[c];
        double m = s / C;
        double v = 0;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        double r = 1.0 / sqrt(v / C + 1e-5);
        real *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) {
            real xhat = (real)((x[c] - m) * r);
            o[c] = xhat * weight[c] + (bias ? bias[c] : 0);
        }
        mean[n] = (real)m;
        rstd[n] = (real)r;
    }
}

static void layernorm_backward_ref(real *dinp, real *dweight, real *dbias, const real *dout,
                                   const real *inp, const real *weight, const real *mean,
                                   const real *rstd, int N, int C) {
    if (dinp) {
        #pragma omp parallel for
        for (int n = 0; n < N; n++) {
            const real *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            double m = mean[n], r = rstd[n];
            double sum_dxhat = 0, sum_dxhat_xhat = 0;
            for (int c = 0; c < C; c++) {
                double xhat = (x[c] - m) * r, dxhat = (double)d[c] * weight[c];
                sum_dxhat += dxhat;
                sum_dxhat_xhat += dxhat * xhat;
            }
            double mean_dxhat = sum_dxhat / C, mean_dxhat_xhat = sum_dxhat_xhat / C;
            real *dx = dinp + (size_t)n * C;
            for (int c = 0; c < C; c++) {
                double xhat = (x[c] - m) * r, dxhat = (double)d[c] * weight[c];
                dx[c] += (real)(r * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat));
            }
        }
    }
    // parameter gradients: each thread owns a range of columns
    if (dweight || dbias) {
        #pragma omp parallel for
        for (int c = 0; c < C; c++) {
            double gw = 0, gb = 0;
            for (int n = 0; n < N; n++) {
                double d = dout[(size_t)n * C + c];
                gw += d * ((inp[(size_t)n * C + c] - (double)mean[n]) * rstd[n]);
                gb += d;
            }
            if (dweight) dweight[c] += (real)gw;
            if (dbias) dbias[c] += (real)gb;
        }
    }
}

// ----------------------------------------------------------------------------
// matmul (a Linear layer, weight stored (out, in)):
//   out[n,o] = sum_c inp[n,c] w[o,c] + b[o]
// backward (dinp overwritten, dw and db accumulated):
//   dinp[n,c] = sum_o dout[n,o] w[o,c];  dw[o,c] += sum_n dout[n,o] inp[n,c];  db[o] += sum_n dout[n,o]

static void matmul_forward_ref(real *out, const real *inp, const real *weight, const real *bias,
                               int N, int C, int OC) {
    #pragma omp parallel for collapse(2)
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < OC; o++) {
            const real *x = inp + (size_t)n * C, *w = weight + (size_t)o * C;
            real acc = 0;
            #pragma omp simd reduction(+ : acc)
            for (int c = 0; c < C; c++) acc += x[c] * w[c];
            out[(size_t)n * OC + o] = acc + (bias ? bias[o] : 0);
        }
    }
}

static void matmul_backward_ref(real *dinp, real *dweight, real *dbias, const real *dout,
                                const real *inp, const real *weight, int N, int C, int OC) {
    if (dinp) {
        #pragma omp parallel for
        for (int n = 0; n < N; n++) {
            real *dx = dinp + (size_t)n * C;
            const real *d = dout + (size_t)n * OC;
            for (int c = 0; c < C; c++) dx[c] = 0;   // overwritten, not accumulated
            for (int o = 0; o < OC; o++) {
                const real *w = weight + (size_t)o * C;
                real g = d[o];
                #pragma omp simd
                for (int c = 0; c < C; c++) dx[c] += g * w[c];
            }
        }
    }
    if (dweight || dbias) {
        #pragma omp parallel for
        for (int o = 0; o < OC; o++) {
            real *dw = dweight ? dweight + (size_t)o * C : NULL;
            double gb = 0;
            for (int n = 0; n < N; n++) {
                real g = dout[(size_t)n * OC + o];
                gb += g;
                if (dw) {
                    const real *x = inp + (size_t)n * C;
                    #pragma omp simd
                    for (int c = 0; c < C; c++) dw[c] += g * x[c];
                }
            }
            if (dbias) dbias[o] += (real)gb;
        }
    }
}

// ----------------------------------------------------------------------------
// exact GELU: out = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2));  dout/dx = Phi(x) + x phi(x)
// backward overwrites: dinp = dout (Phi(x) + x phi(x)). Phi(x) is taken as
// 0.5 erfc(-x / sqrt 2): 1 + erf cancels for x << 0 (to 0 below x = -8.3 in
// double), and the other backends are tested against these tails.

#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794

static void gelu_forward_ref(real *out, const real *inp, size_t n) {
    #pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        out[i] = (real)(0.5 * x * erfc(-x * INV_SQRT2));
    }
}

static void gelu_backward_ref(real *dinp, const real *inp, const real *dout, size_t n) {
    #pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        double cdf = 0.5 * erfc(-x * INV_SQRT2);
        double pdf = INV_SQRT_2PI * exp(-0.5 * x * x);
        dinp[i] = (real)((cdf + x * pdf) * dout[i]);
    }
}

// out = a + b
void add_forward_ref(real *out, const real *a, const real *b, size_t n) {
    #pragma omp parallel for
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// The fused ops of the table, composed of the ops above (so the reference
// gives exactly what the separate ops give):
// res = a + b, out = LayerNorm(res);  pre = inp W^T + b, out = GELU(pre)
static void residual_layernorm_forward_ref(real *res, real *out, real *mean, real *rstd,
                                           const real *a, const real *b, const real *weight,
                                           const real *bias, int N, int C) {
    add_forward_ref(res, a, b, (size_t)N * C);
    layernorm_forward_ref(out, mean, rstd, res, weight, bias, N, C);
}

static void matmul_gelu_forward_ref(real *pre, real *out, const real *inp, const real *weight,
                                    const real *bias, int N, int C, int OC) {
    matmul_forward_ref(pre, inp, weight, bias, N, C, OC);
    gelu_forward_ref(out, pre, (size_t)N * OC);
}

// ----------------------------------------------------------------------------
// softmax cross-entropy over the first V of Vp columns, label smoothing ls:
//   p = softmax(logits[:V]);  loss = -(1-ls) log p_t - ls/V sum_k log p_k   (0 if t == -1)
// backward: dlogits = scale * (p - (1-ls) onehot(t) - ls/V); 0 in padding and ignored rows

static void xent_forward_ref(real *losses, real *probs, int *argmax, const real *logits,
                             const int *targets, int N, int V, int Vp, float smoothing) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const real *z = logits + (size_t)n * Vp;
        double maxz = -INFINITY;
        int best = 0;
        for (int k = 0; k < V; k++) {
            if (z[k] > maxz) { maxz = z[k]; best = k; }
        }
        double sum = 0, sum_z = 0;
        for (int k = 0; k < V; k++) {
            sum += exp(z[k] - maxz);
            sum_z += z[k];
        }
        double logsum = maxz + log(sum);   // log sum_k exp z_k
        int t = targets ? targets[n] : -1;
        double loss = 0;
        if (t >= 0 && t < V) {
            loss = (1.0 - smoothing) * (logsum - z[t]);
            if (smoothing != 0) loss += smoothing * (logsum - sum_z / V);
        }
        // z may alias p: read everything above before writing
        real *p = probs + (size_t)n * Vp;
        for (int k = 0; k < V; k++) p[k] = (real)exp(z[k] - logsum);
        for (int k = V; k < Vp; k++) p[k] = 0;
        losses[n] = (real)loss;
        if (argmax) argmax[n] = best;
    }
}

static void xent_backward_ref(real *dlogits, const real *probs, const int *targets, int N, int V,
                              int Vp, float smoothing, float scale) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const real *p = probs + (size_t)n * Vp;
        real *d = dlogits + (size_t)n * Vp;
        int t = targets[n];
        if (t < 0 || t >= V) {
            for (int k = 0; k < Vp; k++) d[k] = 0;
            continue;
        }
        real uniform = (real)smoothing / (real)V;
        for (int k = 0; k < V; k++) {
            real target_k = (k == t ? (real)(1.0f - smoothing) : 0) + uniform;
            d[k] = scale * (p[k] - target_k);
        }
        for (int k = V; k < Vp; k++) d[k] = 0;
    }
}

// the fused op as its two parts: probabilities in place of the logits, then
// dlogits in place of the probabilities
static void xent_forward_backward_ref(real *losses, int *argmax, real *logits, const int *targets,
                                      int N, int V, int Vp, float smoothing, float scale) {
    xent_forward_ref(losses, logits, argmax, logits, targets, N, V, Vp, smoothing);
    xent_backward_ref(logits, logits, targets, N, V, Vp, smoothing, scale);
}

// ----------------------------------------------------------------------------
// out[0] = sum_i x_i^2, in double, in a fixed order (chunk partials, then their sum)

void sumsq_ref(real *out, const real *x, size_t n) {
    enum { CHUNK = 1 << 16 };
    size_t nchunks = (n + CHUNK - 1) / CHUNK;
    double *partial = xcalloc(nchunks ? nchunks : 1, sizeof(double));
    #pragma omp parallel for
    for (size_t k = 0; k < nchunks; k++) {
        size_t end = (k + 1) * CHUNK < n ? (k + 1) * CHUNK : n;
        double s = 0;
        for (size_t i = k * CHUNK; i < end; i++) s += (double)x[i] * x[i];
        partial[k] = s;
    }
    double total = 0;
    for (size_t k = 0; k < nchunks; k++) total += partial[k];
    free(partial);
    out[0] = (real)total;
}

// the global-norm clipping factor: min(1, clip / ||g||)
double clip_factor(const real *gnorm_sq, float clip) {
    if (!gnorm_sq || clip <= 0) return 1.0;
    double norm = sqrt((double)gnorm_sq[0]);
    return (clip > 0 && norm > clip) ? clip / norm : 1.0;
}

// ----------------------------------------------------------------------------
// AdamW (decoupled weight decay, only on slices with decay == 1):
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   theta -= lr * (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd * theta)

static void adamw_update_ref(real *params, const real *grads, real *m, real *v,
                             const ParamSlice *slices, int nslices, const OptimArgs *a,
                             const real *gnorm_sq) {
    real gscale = (real)clip_factor(gnorm_sq, a->clip);
    real bc1 = (real)(1.0 - pow(a->beta1, a->t)), bc2 = (real)(1.0 - pow(a->beta2, a->t));
    for (int s = 0; s < nslices; s++) {
        real wd = slices[s].decay ? a->wd : 0.0f;
        size_t off = slices[s].offset;
        #pragma omp parallel for
        for (size_t i = off; i < off + slices[s].size; i++) {
            real g = grads[i] * gscale;
            m[i] = a->beta1 * m[i] + (1 - a->beta1) * g;
            v[i] = a->beta2 * v[i] + (1 - a->beta2) * g * g;
            real mhat = m[i] / bc1, vhat = v[i] / bc2;
            params[i] -= a->lr * (mhat / (sqrt(vhat) + a->eps) + wd * params[i]);
        }
    }
}

// SET-Adam (../shared/spec/setadam.md), per slice l of d_l elements:
//   m, v as Adam;  c_l = (sum v)^2 / (d_l sum v^2)  (1 when sum v^2 == 0)
//   w = sqrt(c_l v / (1-b2^t) + eps);  wt = w - tau min(w)
//   theta -= lr/(1-b1^t) * m / wt;  then theta -= lr * wd * theta when wd > 0 (decay slices)
static void setadam_update_ref(real *params, const real *grads, real *m, real *v,
                               const ParamSlice *slices, int nslices, const OptimArgs *a,
                               const real *gnorm_sq) {
    real gscale = (real)clip_factor(gnorm_sq, a->clip);
    double bc1 = 1.0 - pow(a->beta1, a->t), bc2 = 1.0 - pow(a->beta2, a->t);
    for (int s = 0; s < nslices; s++) {
        size_t off = slices[s].offset, d = slices[s].size;
        if (d == 0) continue;
        double sum_v = 0, sum_v2 = 0;
        for (size_t i = off; i < off + d; i++) {
            real g = grads[i] * gscale;
            m[i] = a->beta1 * m[i] + (1 - a->beta1) * g;
            v[i] = a->beta2 * v[i] + (1 - a->beta2) * g * g;
            sum_v += v[i];
            sum_v2 += (double)v[i] * v[i];
        }
        double c = sum_v2 > 0 ? sum_v * sum_v / ((double)d * sum_v2) : 1.0;
        // min_i w_i is w at min_i v_i, since w is increasing in v
        real vmin = v[off];
        for (size_t i = off; i < off + d; i++) vmin = v[i] < vmin ? v[i] : vmin;
        double wmin = sqrt(c * vmin / bc2 + a->eps);
        double wd = slices[s].decay ? a->wd : 0.0;
        #pragma omp parallel for
        for (size_t i = off; i < off + d; i++) {
            double w = sqrt(c * v[i] / bc2 + a->eps);
            double wt = w - a->tau * wmin;
            double p = params[i] - a->lr / bc1 * m[i] / wt;
            if (wd > 0) p -= a->lr * wd * params[i];
            params[i] = (real)p;
        }
    }
}

// ----------------------------------------------------------------------------
// ViT: patches, cls token and position embedding, dropout, cls-token select

// SPT's shifted copies: copy s reads the image at (y + SHIFT_DY[s], x + SHIFT_DX[s]), zero
// outside. Copy 1 is F.pad(x, (1, -1, 0, 0)) (content moves right), 2 moves left, 3 down, 4 up.
static const int SHIFT_DY[5] = {0, 0, 0, -1, 1}, SHIFT_DX[5] = {0, -1, 1, 0, 0};

// out[b, n, (i P + j) Cs + s C + c] = img_s[b, c, py P + i, px P + j],  n = py (W/P) + px
void patchify_forward_ref(real *out, const real *images, int B, int C, int H, int W, int P,
                                 int shifts) {
    const int grid_w = W / P, Np = (H / P) * grid_w, S = shifts ? 5 : 1, Cs = C * S;
    const size_t PD = (size_t)P * P * Cs;
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int n = 0; n < Np; n++) {
            const int y0 = (n / grid_w) * P, x0 = (n % grid_w) * P;
            real *o = out + ((size_t)b * Np + n) * PD;
            for (int i = 0; i < P; i++) {
                for (int j = 0; j < P; j++) {
                    for (int s = 0; s < S; s++) {
                        const int y = y0 + i + SHIFT_DY[s], x = x0 + j + SHIFT_DX[s];
                        const int inside = y >= 0 && y < H && x >= 0 && x < W;
                        for (int c = 0; c < C; c++)
                            o[(size_t)(i * P + j) * Cs + s * C + c] =
                                inside ? images[(((size_t)b * C + c) * H + y) * W + x] : 0;
                    }
                }
            }
        }
    }
}

// out[b,0,:] = cls + pos[0,:];  out[b,1+i,:] = x[b,i,:] + pos[1+i,:]
void cls_pos_forward_ref(real *out, const real *x, const real *cls, const real *pos, int B,
                                int Np, int D) {
    const int T = Np + 1;
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const real *src = t == 0 ? cls : x + ((size_t)b * Np + t - 1) * D;
            const real *p = pos + (size_t)t * D;
            real *o = out + ((size_t)b * T + t) * D;
            for (int d = 0; d < D; d++) o[d] = src[d] + p[d];
        }
    }
}

// dx[b,i,:] += dout[b,1+i,:];  dcls += sum_b dout[b,0,:];  dpos[t,:] += sum_b dout[b,t,:]
void cls_pos_backward_ref(real *dx, real *dcls, real *dpos, const real *dout, int B, int Np,
                                 int D) {
    const int T = Np + 1;
    if (dx) {
        #pragma omp parallel for collapse(2)
        for (int b = 0; b < B; b++)
            for (int i = 0; i < Np; i++)
                for (int d = 0; d < D; d++)
                    dx[((size_t)b * Np + i) * D + d] += dout[((size_t)b * T + 1 + i) * D + d];
    }
    // each (t, d) sums over the batch in order (in double), then adds once
    #pragma omp parallel for collapse(2)
    for (int t = 0; t < T; t++) {
        for (int d = 0; d < D; d++) {
            double acc = 0;
            for (int b = 0; b < B; b++) acc += dout[((size_t)b * T + t) * D + d];
            if (dpos) dpos[(size_t)t * D + d] += (real)acc;
            if (dcls && t == 0) dcls[d] += (real)acc;
        }
    }
}

// the keep test of element i: hash64(seed, first + i) >> 11 (53 random bits) >= p 2^53 (as layers.cu)
static uint64_t dropout_threshold(float p) { return (uint64_t)((double)p * 9007199254740992.0); }

// mask_i = keep_i / (1 - p);  out_i = inp_i mask_i
void dropout_forward_ref(real *out, real *mask, const real *inp, size_t n, float p,
                                uint64_t seed, uint64_t first) {
    const uint64_t threshold = dropout_threshold(p);
    const real scale = (real)(1.0 / (1.0 - (double)p));
    #pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        real keep = (hash64(seed, first + i) >> 11) >= threshold ? scale : 0;
        mask[i] = keep;
        out[i] = inp[i] * keep;
    }
}

// dinp += dout * mask
void dropout_backward_ref(real *dinp, const real *dout, const real *mask, size_t n) {
    #pragma omp parallel for
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * mask[i];
}

// out[b,:] = x[b,0,:]
void cls_select_forward_ref(real *out, const real *x, int B, int T, int D) {
    for (int b = 0; b < B; b++)
        memcpy(out + (size_t)b * D, x + (size_t)b * T * D, (size_t)D * sizeof(real));
}

// dx[b,0,:] += dout[b,:]
void cls_select_backward_ref(real *dx, const real *dout, int B, int T, int D) {
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) dx[(size_t)b * T * D + d] += dout[(size_t)b * D + d];
}

// ----------------------------------------------------------------------------
// the reference backend's table (attention ops are in attention.c)

const Backend backend_ref = {
    .name = "ref",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .synchronize = cpu_synchronize,
    .shutdown = ref_shutdown,
    .embed_forward = embed_forward_ref,
    .embed_backward = embed_backward_ref,
    .layernorm_forward = layernorm_forward_ref,
    .layernorm_backward = layernorm_backward_ref,
    .residual_layernorm_forward = residual_layernorm_forward_ref,
    .matmul_forward = matmul_forward_ref,
    .matmul_gelu_forward = matmul_gelu_forward_ref,
    .matmul_backward = matmul_backward_ref,
    .gelu_forward = gelu_forward_ref,
    .gelu_backward = gelu_backward_ref,
    .add_forward = add_forward_ref,
    .attention_saved_floats = attention_saved_floats_ref,
    .attention_forward = attention_forward_ref,
    .attention_backward = attention_backward_ref,
    .variant_forward = variant_forward_ref,
    .variant_backward = variant_backward_ref,
    .xent_forward = xent_forward_ref,
    .xent_forward_backward = xent_forward_backward_ref,
    .sumsq = sumsq_ref,
    .adamw_update = adamw_update_ref,
    .setadam_update = setadam_update_ref,
    .patchify_forward = patchify_forward_ref,
    .cls_pos_forward = cls_pos_forward_ref,
    .cls_pos_backward = cls_pos_backward_ref,
    .dropout_forward = dropout_forward_ref,
    .dropout_backward = dropout_backward_ref,
    .cls_select_forward = cls_select_forward_ref,
    .cls_select_backward = cls_select_backward_ref,
};

// test_backend.c - every op of a backend against the CPU reference, then the
// whole GPT and the whole ViT on both (gradients, and training steps). Built
// twice: test_gpu checks the CUDA backend (without a usable GPU it prints
// "test_gpu: skipped: <why>" and exits 0), test_fast (-DTEST_FAST_CPU) the
// fast CPU backend, whose attention keeps the row logsumexp instead of P.
//
// Error measures (all relative, fp32 everywhere):
// - rel:  max_i |gpu_i - cpu_i| / max_i |cpu_i|, for ops without long sums
//         (elementwise ops, softmax, layernorm, the model's tensors).
// - acc:  the same for ops that accumulate into an initial value x0, measured
//         against the size of what was added: max |gpu - cpu| / max |cpu - x0|.
// - mag:  for matmul, each element against its magnitude sum
//         max_i |gpu_i - cpu_i| / M_i, M_i = sum_k |a_ik b_kj| (+ |bias|, |x0|),
//         obtained by running the CPU op on absolute values. A sum's rounding
//         error is a fraction of M_i, not of the (possibly cancelled) result.
// - attention backward: mag again, with M_i the same backward pass run on
//   magnitudes (attention_grad_magnitudes): dS_ij = P_ij (dP_ij - D_i) cancels
//   exactly at T = 1, and so does dV = P^T dY - gamma G (x with gamma = 1), so
//   neither |cpu| nor |cpu - x0| is a scale for the rounding there. dt (the LSA
//   temperature) = s sum_id Q_id dQ_id, measured against that sum on magnitudes.
// - attention variants (variant_forward/backward, variants.md): mag, with M the
//   variant's formulas on magnitudes (variant_magnitudes): xsa's O = y - gamma c v
//   cancels to about 1e-6 |v| where y = v (T = 1), and dgamma sums terms of
//   either sign. Composed with the core, the core's dY magnitudes come from the
//   variant's, the variant's |y| is the core's Y magnitudes sum_j P_ij |v_j|
//   (the transform is linear in Y and carries Y's rounding), and dV gets the
//   variant's direct terms on top of the core's.
// The tolerance is 1e-5 for every op and tensor (GELU's far negative tail,
// element by element relatively: 1e-4, test_gelu_tail); losses over 50
// training steps agree to 1e-4 relative.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ops.h"
#include "../src/attn_config.h"
#include "../src/rng.h"
#ifdef TEST_FAST_CPU
#include "../cpu_math.h"
#endif
#include "test.h"
#ifndef NO_GPT_TEST
#include "../src/gpt.h"
#include "../src/optim.h"
#include "../src/vit.h"
#endif

#define TOL 1e-5
#define TINY 1e-30

static const Backend *G;                    // the backend under test
static int g_bf16;   // G is backend_cuda_bf16: inputs rounded to bf16, its attention tolerance

// The whole models on the bf16 table: every matmul and the attention core
// round their operands to bf16 (relative 2^-8) and the errors compound over the
// layers. Logits and loss are held to MODEL_TOL of their largest value, each
// gradient tensor to GRAD_TOL of its largest element, each training step's
// loss to TRAIN_TOL. Seen on the emulator: logits 4.4e-3; gradients 7.6e-3,
// except the plain ViT's ln1 bias at 4.8e-2 (a sum over tokens that cancels to
// a small value); losses over the training steps 3.4e-3.
#define MODEL_TOL (g_bf16 ? 2e-2 : TOL)
#define GRAD_TOL (g_bf16 ? 1e-1 : TOL)
#define TRAIN_TOL (g_bf16 ? 1e-2 : 1e-4)

static const Backend *const Cpu = &backend_ref;
#ifdef TEST_FAST_CPU
#define TEST_NAME "test_fast"
#else
#define TEST_NAME "test_gpu"
#endif
static Rng rng;

// x rounded to the nearest bf16 (ties to even), as __float2bfloat16_rn
static float bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return x;
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}
static void bf16_round_all(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = bf16_round(x[i]);
}


// ----------------------------------------------------------------------------
// helpers

static void *xmalloc_or_die(size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, TEST_NAME ": out of host memory\n");
        exit(1);
    }
    return p;
}

static float *hnew(size_t n) { return xmalloc_or_die(n * sizeof(float)); }

static void fill(float *x, size_t n, double scale, double offset) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(offset + scale * rng_normal(&rng));
}

static float *hrand(size_t n, double scale, double offset) {
    float *x = hnew(n);
    fill(x, n, scale, offset);
    return x;
}

// NaN everywhere: the prior contents of an output an op must overwrite
static float *hnan(size_t n) {
    float *x = hnew(n);
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

static float *hcopy(const float *x, size_t n) {
    float *y = hnew(n);
    memcpy(y, x, n * sizeof(float));
    return y;
}

static float *habs(const float *x, size_t n) {
    float *y = hnew(n);
    for (size_t i = 0; i < n; i++) y[i] = fabsf(x[i]);
    return y;
}

// a device copy of host data
static void *dcopy(const void *h, size_t bytes) {
    void *d = G->alloc(bytes);
    G->upload(d, h, bytes);
    return d;
}

// a host copy of device floats
static float *fetch(const float *d, size_t n) {
    float *h = hnew(n);
    G->download(h, d, n * sizeof(float));
    return h;
}

static double err_rel(const float *got, const float *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (d > md || d != d) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return md / (mr > TINY ? mr : TINY);
}

static double err_acc(const float *got, const float *ref, const float *init, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (d > md || d != d) md = d;
        double a = fabs((double)ref[i] - init[i]);
        if (a > mr) mr = a;
    }
    return md / (mr > TINY ? mr : TINY);
}

static double err_mag(const float *got, const float *ref, const float *mag, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        double e = d / (mag[i] > TINY ? mag[i] : TINY);
        if (e > worst || e != e) worst = e;
    }
    return worst;
}

#define EXPECT_ERR(err, tol, ...)                                              \
    do {                                                                       \
        double e_ = (err);                                                     \
        char what_[256];                                                       \
        snprintf(what_, sizeof what_, __VA_ARGS__);                            \
        CHECK(e_ <= (tol), "%s: error %.3g > %.3g", what_, e_, (double)(tol)); \
    } while (0)

#ifdef TEST_FAST_CPU
// cpu_math.h against libm in double: exp within 3 float ulps over [-87, 88],
// erfc within 3.5e-7 + 2.4e-7 z^2 relative where it is a normal float, and the edges (-inf, NaN, tails)
static void test_cpu_math(void) {
    double worst_exp = 0, worst_erfc = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + 175.0f * (float)i / 200000.0f;
        double e = exp((double)x), got = exp_fast(x);
        if (fabs(got - e) / e > worst_exp) worst_exp = fabs(got - e) / e;
        float z = -10.0f + 19.0f * (float)i / 200000.0f;   // erfc(9) = 4e-37: normal floats
        // the fit's 1.2e-7 and float rounding of its polynomial, plus that of z^2 in the exponent
        double c = erfc((double)z), gc = erfc_fast(z), bound = 3.5e-7 + 2.4e-7 * z * z;
        if (fabs(gc - c) / c / bound > worst_erfc) worst_erfc = fabs(gc - c) / c / bound;
    }
    EXPECT_ERR(worst_exp, 3 * 5.96e-8, "exp_fast over [-87, 88]");
    EXPECT_ERR(worst_erfc, 1.0, "erfc_fast over [-10, 9] (error / (3.5e-7 + 2.4e-7 z^2))");
    CHECK(exp_fast(-INFINITY) == 0.0f && exp_fast(-100.0f) == 0.0f, "exp_fast below -87.3 is not 0");
    CHECK(isnan(exp_fast(NAN)) && isnan(erfc_fast(NAN)), "exp_fast/erfc_fast lose a NaN");
    CHECK(erfc_fast(30.0f) == 0.0f && erfc_fast(-30.0f) == 2.0f, "erfc_fast tails");
}
#endif

// ----------------------------------------------------------------------------
// memory

static void test_memory(void) {
    const size_t n = 1003;
    float *d = G->alloc(n * sizeof(float));
    float *h = fetch(d, n);
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= h[i] == 0.0f;
    CHECK(zero, "alloc: memory is not zero-filled");
    fill(h, n, 1, 0);
    G->upload(d, h, n * sizeof(float));
    float *d2 = G->alloc(n * sizeof(float));
    G->copy(d2, d, n * sizeof(float));
    float *back = fetch(d2, n);
    CHECK(!memcmp(back, h, n * sizeof(float)), "upload/copy/download: round trip differs");
    G->zero(d2 + 5, 100 * sizeof(float));
    G->synchronize();
    free(back);
    back = fetch(d2, n);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= back[i] == ((i >= 5 && i < 105) ? 0.0f : h[i]);
    CHECK(ok, "zero: wrong range cleared");
    G->free(d);
    G->free(d2);
    G->free(NULL);
    free(h);
    free(back);
}

// ----------------------------------------------------------------------------
// embedding

static void test_embed(int B, int T, int C, int V) {
    const size_t BT = (size_t)B * T;
    int *tok = xmalloc_or_die(BT * sizeof(int));
    for (size_t i = 0; i < BT; i++) tok[i] = (int)rng_below(&rng, (uint64_t)V);
    float *wte = hrand((size_t)V * C, 1, 0), *wpe = hrand((size_t)T * C, 1, 0);
    float *out_c = hnew(BT * C);
    Cpu->embed_forward(out_c, tok, wte, wpe, B, T, C);
    int *tok_d = dcopy(tok, BT * sizeof(int));
    float *wte_d = dcopy(wte, (size_t)V * C * 4), *wpe_d = dcopy(wpe, (size_t)T * C * 4);
    float *out_d = G->alloc(BT * C * 4);
    G->embed_forward(out_d, tok_d, wte_d, wpe_d, B, T, C);
    float *out_g = fetch(out_d, BT * C);
    EXPECT_ERR(err_rel(out_g, out_c, BT * C), TOL, "embed_forward B=%d T=%d C=%d", B, T, C);

    float *dout = hrand(BT * C, 1, 0);
    float *dwte0 = hrand((size_t)V * C, 0.1, 0), *dwpe0 = hrand((size_t)T * C, 0.1, 0);
    float *dwte_c = hcopy(dwte0, (size_t)V * C), *dwpe_c = hcopy(dwpe0, (size_t)T * C);
    Cpu->embed_backward(dwte_c, dwpe_c, dout, tok, tok, B, T, C);
    float *dout_d = dcopy(dout, BT * C * 4);
    float *dwte_d = dcopy(dwte0, (size_t)V * C * 4), *dwpe_d = dcopy(dwpe0, (size_t)T * C * 4);
    G->embed_backward(dwte_d, dwpe_d, dout_d, tok_d, tok, B, T, C);
    // a second call with other tokens checks that the cached index is rebuilt
    int *tok2 = xmalloc_or_die(BT * sizeof(int));
    for (size_t i = 0; i < BT; i++) tok2[i] = (int)rng_below(&rng, (uint64_t)V);
    int *tok2_d = dcopy(tok2, BT * sizeof(int));
    Cpu->embed_backward(dwte_c, dwpe_c, dout, tok2, tok2, B, T, C);
    G->embed_backward(dwte_d, dwpe_d, dout_d, tok2_d, tok2, B, T, C);
    float *dwte_g = fetch(dwte_d, (size_t)V * C), *dwpe_g = fetch(dwpe_d, (size_t)T * C);
    EXPECT_ERR(err_acc(dwte_g, dwte_c, dwte0, (size_t)V * C), TOL, "embed_backward dwte B=%d T=%d C=%d V=%d", B, T, C, V);
    EXPECT_ERR(err_acc(dwpe_g, dwpe_c, dwpe0, (size_t)T * C), TOL, "embed_backward dwpe B=%d T=%d C=%d", B, T, C);

    G->free(tok_d); G->free(tok2_d); G->free(wte_d); G->free(wpe_d); G->free(out_d);
    G->free(dout_d); G->free(dwte_d); G->free(dwpe_d);
    free(tok); free(tok2); free(wte); free(wpe); free(out_c); free(out_g); free(dout);
    free(dwte0); free(dwpe0); free(dwte_c); free(dwpe_c); free(dwte_g); free(dwpe_g);
}

// ----------------------------------------------------------------------------
// layernorm

static void test_layernorm(int N, int C, int with_bias) {
    const size_t NC = (size_t)N * C;
    float *inp = hrand(NC, 2, 0.5), *w = hrand(C, 0.1, 1), *b = with_bias ? hrand(C, 0.1, 0) : NULL;
    float *out_c = hnew(NC), *mean_c = hnew(N), *rstd_c = hnew(N);
    Cpu->layernorm_forward(out_c, mean_c, rstd_c, inp, w, b, N, C);
    float *inp_d = dcopy(inp, NC * 4), *w_d = dcopy(w, C * 4), *b_d = b ? dcopy(b, C * 4) : NULL;
    float *out_d = G->alloc(NC * 4), *mean_d = G->alloc(N * 4), *rstd_d = G->alloc(N * 4);
    G->layernorm_forward(out_d, mean_d, rstd_d, inp_d, w_d, b_d, N, C);
    float *out_g = fetch(out_d, NC), *mean_g = fetch(mean_d, N), *rstd_g = fetch(rstd_d, N);
    EXPECT_ERR(err_rel(out_g, out_c, NC), TOL, "layernorm_forward out N=%d C=%d bias=%d", N, C, with_bias);
    EXPECT_ERR(err_rel(mean_g, mean_c, N), TOL, "layernorm_forward mean N=%d C=%d", N, C);
    EXPECT_ERR(err_rel(rstd_g, rstd_c, N), TOL, "layernorm_forward rstd N=%d C=%d", N, C);

    float *dout = hrand(NC, 1, 0);
    float *dinp0 = hrand(NC, 0.1, 0), *dw0 = hrand(C, 0.1, 0), *db0 = hrand(C, 0.1, 0);
    float *dinp_c = hcopy(dinp0, NC), *dw_c = hcopy(dw0, C), *db_c = hcopy(db0, C);
    // the CPU's mean/rstd on both sides, so only the backward is compared
    Cpu->layernorm_backward(dinp_c, dw_c, with_bias ? db_c : NULL, dout, inp, w, mean_c, rstd_c, N, C);
    float *dout_d = dcopy(dout, NC * 4), *dinp_d = dcopy(dinp0, NC * 4);
    float *dw_d = dcopy(dw0, C * 4), *db_d = dcopy(db0, C * 4);
    float *meanc_d = dcopy(mean_c, N * 4), *rstdc_d = dcopy(rstd_c, N * 4);
    G->layernorm_backward(dinp_d, dw_d, with_bias ? db_d : NULL, dout_d, inp_d, w_d, meanc_d, rstdc_d, N, C);
    float *dinp_g = fetch(dinp_d, NC), *dw_g = fetch(dw_d, C), *db_g = fetch(db_d, C);
    EXPECT_ERR(err_acc(dinp_g, dinp_c, dinp0, NC), TOL, "layernorm_backward dinp N=%d C=%d", N, C);
    EXPECT_ERR(err_acc(dw_g, dw_c, dw0, C), TOL, "layernorm_backward dweight N=%d C=%d", N, C);
    if (with_bias)
        EXPECT_ERR(err_acc(db_g, db_c, db0, C), TOL, "layernorm_backward dbias N=%d C=%d", N, C);
    else
        CHECK(!memcmp(db_g, db0, C * sizeof(float)), "layernorm_backward: NULL dbias was written");

    G->free(inp_d); G->free(w_d); G->free(b_d); G->free(out_d); G->free(mean_d); G->free(rstd_d);
    G->free(dout_d); G->free(dinp_d); G->free(dw_d); G->free(db_d); G->free(meanc_d); G->free(rstdc_d);
    free(inp); free(w); free(b); free(out_c); free(mean_c); free(rstd_c); free(out_g); free(mean_g);
    free(rstd_g); free(dout); free(dinp0); free(dw0); free(db0); free(dinp_c); free(dw_c); free(db_c);
    free(dinp_g); free(dw_g); free(db_g);
}

// ----------------------------------------------------------------------------
// matmul

static void test_matmul(int N, int C, int OC, int with_bias, int with_dinp) {
    const size_t NC = (size_t)N * C, NO = (size_t)N * OC, OCC = (size_t)OC * C;
    float *inp = hrand(NC, 1, 0), *w = hrand(OCC, 1, 0), *b = with_bias ? hrand(OC, 1, 0) : NULL;
    // the bf16 table's GEMMs multiply bf16 operands exactly and sum in fp32:
    // on bf16 values they meet the fp32 tolerance, so every transpose and
    // leading dimension is checked as tightly as the fp32 op's
    if (g_bf16) bf16_round_all(inp, NC), bf16_round_all(w, OCC);
    float *out_c = hnew(NO), *mag = hnew(NO);
    Cpu->matmul_forward(out_c, inp, w, b, N, C, OC);
    float *ainp = habs(inp, NC), *aw = habs(w, OCC), *ab = b ? habs(b, OC) : NULL;
    Cpu->matmul_forward(mag, ainp, aw, ab, N, C, OC);
    float *inp_d = dcopy(inp, NC * 4), *w_d = dcopy(w, OCC * 4), *b_d = b ? dcopy(b, OC * 4) : NULL;
    float *out_d = G->alloc(NO * 4);
    G->matmul_forward(out_d, inp_d, w_d, b_d, N, C, OC);
    float *out_g = fetch(out_d, NO);
    EXPECT_ERR(err_mag(out_g, out_c, mag, NO), TOL, "matmul_forward N=%d C=%d OC=%d bias=%d", N, C, OC, with_bias);

    float *dout = hrand(NO, 1, 0);
    if (g_bf16) bf16_round_all(dout, NO);
    // dinp is overwritten: NaN before, on both sides, fails a backend that adds
    // into it; dweight and dbias accumulate onto their nonzero initial values
    float *dinp0 = hnan(NC), *dw0 = hrand(OCC, 0.1, 0), *db0 = hrand(OC, 0.1, 0);
    float *dinp_c = hcopy(dinp0, NC), *dw_c = hcopy(dw0, OCC), *db_c = hcopy(db0, OC);
    Cpu->matmul_backward(with_dinp ? dinp_c : NULL, dw_c, with_bias ? db_c : NULL, dout, inp, w, N, C, OC);
    // magnitudes: the same backward on absolute values, from |x0| (dinp's overwritten)
    float *adout = habs(dout, NO);
    float *mdinp = habs(dinp0, NC), *mdw = habs(dw0, OCC), *mdb = habs(db0, OC);
    Cpu->matmul_backward(mdinp, mdw, mdb, adout, ainp, aw, N, C, OC);
    float *dout_d = dcopy(dout, NO * 4), *dinp_d = dcopy(dinp0, NC * 4);
    float *dw_d = dcopy(dw0, OCC * 4), *db_d = dcopy(db0, OC * 4);
    G->matmul_backward(with_dinp ? dinp_d : NULL, dw_d, with_bias ? db_d : NULL, dout_d, inp_d, w_d, N, C, OC);
    float *dinp_g = fetch(dinp_d, NC), *dw_g = fetch(dw_d, OCC), *db_g = fetch(db_d, OC);
    if (with_dinp)
        EXPECT_ERR(err_mag(dinp_g, dinp_c, mdinp, NC), TOL, "matmul_backward dinp N=%d C=%d OC=%d", N, C, OC);
    else
        CHECK(!memcmp(dinp_g, dinp0, NC * sizeof(float)), "matmul_backward: NULL dinp was written");
    EXPECT_ERR(err_mag(dw_g, dw_c, mdw, OCC), TOL, "matmul_backward dweight N=%d C=%d OC=%d", N, C, OC);
    if (with_bias)
        EXPECT_ERR(err_mag(db_g, db_c, mdb, OC), TOL, "matmul_backward dbias N=%d C=%d OC=%d", N, C, OC);
    else
        CHECK(!memcmp(db_g, db0, OC * sizeof(float)), "matmul_backward: NULL dbias was written");

    G->free(inp_d); G->free(w_d); G->free(b_d); G->free(out_d); G->free(dout_d); G->free(dinp_d);
    G->free(dw_d); G->free(db_d);
    free(inp); free(w); free(b); free(out_c); free(mag); free(ainp); free(aw); free(ab); free(out_g);
    free(dout); free(dinp0); free(dw0); free(db0); free(dinp_c); free(dw_c); free(db_c); free(adout);
    free(mdinp); free(mdw); free(mdb); free(dinp_g); free(dw_g); free(db_g);
}

// ----------------------------------------------------------------------------
// the fused ops against their parts on the reference

static void test_fused(int N, int C, int OC, int with_bias) {
    const size_t NC = (size_t)N * C, NO = (size_t)N * OC, OCC = (size_t)OC * C;
    char tag[96];
    snprintf(tag, sizeof tag, "N=%d C=%d OC=%d bias=%d", N, C, OC, with_bias);
    // res = a + b, out = LayerNorm(res)
    float *a = hrand(NC, 2, 0.5), *b = hrand(NC, 1, 0), *w = hrand(C, 0.1, 1);
    float *lb = with_bias ? hrand(C, 0.1, 0) : NULL;
    float *res_c = hnew(NC), *out_c = hnew(NC), *mean_c = hnew(N), *rstd_c = hnew(N);
    Cpu->add_forward(res_c, a, b, NC);
    Cpu->layernorm_forward(out_c, mean_c, rstd_c, res_c, w, lb, N, C);
    float *a_d = dcopy(a, NC * 4), *b_d = dcopy(b, NC * 4), *w_d = dcopy(w, C * 4);
    float *lb_d = lb ? dcopy(lb, C * 4) : NULL;
    float *res_d = G->alloc(NC * 4), *out_d = G->alloc(NC * 4);
    float *mean_d = G->alloc(N * 4), *rstd_d = G->alloc(N * 4);
    G->residual_layernorm_forward(res_d, out_d, mean_d, rstd_d, a_d, b_d, w_d, lb_d, N, C);
    float *res_g = fetch(res_d, NC), *out_g = fetch(out_d, NC);
    float *mean_g = fetch(mean_d, N), *rstd_g = fetch(rstd_d, N);
    EXPECT_ERR(err_rel(res_g, res_c, NC), TOL, "residual_layernorm_forward res %s", tag);
    EXPECT_ERR(err_rel(out_g, out_c, NC), TOL, "residual_layernorm_forward out %s", tag);
    EXPECT_ERR(err_rel(mean_g, mean_c, N), TOL, "residual_layernorm_forward mean %s", tag);
    EXPECT_ERR(err_rel(rstd_g, rstd_c, N), TOL, "residual_layernorm_forward rstd %s", tag);

    // pre = inp W^T + bias, out = GELU(pre); |GELU'| < 1.13, so out's error is
    // measured against 1.13 times pre's magnitudes
    float *inp = hrand(NC, 1, 0), *mw = hrand(OCC, 0.3, 0), *mb = with_bias ? hrand(OC, 1, 0) : NULL;
    float *pre_c = hnew(NO), *act_c = hnew(NO), *mag = hnew(NO);
    Cpu->matmul_forward(pre_c, inp, mw, mb, N, C, OC);
    Cpu->gelu_forward(act_c, pre_c, NO);
    float *ainp = habs(inp, NC), *amw = habs(mw, OCC), *amb = mb ? habs(mb, OC) : NULL;
    Cpu->matmul_forward(mag, ainp, amw, amb, N, C, OC);
    float *inp_d = dcopy(inp, NC * 4), *mw_d = dcopy(mw, OCC * 4), *mb_d = mb ? dcopy(mb, OC * 4) : NULL;
    float *pre_d = G->alloc(NO * 4), *act_d = G->alloc(NO * 4);
    G->matmul_gelu_forward(pre_d, act_d, inp_d, mw_d, mb_d, N, C, OC);
    float *pre_g = fetch(pre_d, NO), *act_g = fetch(act_d, NO);
    EXPECT_ERR(err_mag(pre_g, pre_c, mag, NO), TOL, "matmul_gelu_forward pre %s", tag);
    for (size_t i = 0; i < NO; i++) mag[i] *= 1.13f;
    EXPECT_ERR(err_mag(act_g, act_c, mag, NO), TOL, "matmul_gelu_forward out %s", tag);

    G->free(a_d); G->free(b_d); G->free(w_d); G->free(lb_d); G->free(res_d); G->free(out_d);
    G->free(mean_d); G->free(rstd_d); G->free(inp_d); G->free(mw_d); G->free(mb_d); G->free(pre_d);
    G->free(act_d);
    free(a); free(b); free(w); free(lb); free(res_c); free(out_c); free(mean_c); free(rstd_c);
    free(res_g); free(out_g); free(mean_g); free(rstd_g); free(inp); free(mw); free(mb); free(pre_c);
    free(act_c); free(mag); free(ainp); free(amw); free(amb); free(pre_g); free(act_g);
}

// ----------------------------------------------------------------------------
// gelu, add

static void test_elementwise(size_t n) {
    float *x = hrand(n, 3, 0), *y = hrand(n, 1, 0);
    float *out_c = hnew(n);
    float *x_d = dcopy(x, n * 4), *y_d = dcopy(y, n * 4), *out_d = G->alloc(n * 4);
    Cpu->gelu_forward(out_c, x, n);
    G->gelu_forward(out_d, x_d, n);
    float *out_g = fetch(out_d, n);
    EXPECT_ERR(err_rel(out_g, out_c, n), TOL, "gelu_forward n=%zu", n);
    free(out_g);

    float *d0 = hnan(n), *d_c = hcopy(d0, n);   // overwritten: NaN before fails an accumulating op
    float *d_d = dcopy(d0, n * 4);
    Cpu->gelu_backward(d_c, x, y, n);
    G->gelu_backward(d_d, x_d, y_d, n);
    float *d_g = fetch(d_d, n);
    EXPECT_ERR(err_rel(d_g, d_c, n), TOL, "gelu_backward n=%zu", n);

    Cpu->add_forward(out_c, x, y, n);
    G->add_forward(out_d, x_d, y_d, n);
    out_g = fetch(out_d, n);
    EXPECT_ERR(err_rel(out_g, out_c, n), TOL, "add_forward n=%zu", n);

    G->free(x_d); G->free(y_d); G->free(out_d); G->free(d_d);
    free(x); free(y); free(out_c); free(out_g); free(d0); free(d_c); free(d_g);
}

// GELU's negative tail, x in [-12, -5], element by element against the
// reference relatively: Phi(x) is 3e-7 .. 2e-33 there, so 1 + erf(x / sqrt 2)
// in float keeps few or no digits of it (out = 0 below x = -8). What a float
// GELU cannot avoid is the rounding of x / sqrt 2 and x^2 / 2 carried through
// erfc and exp, relatively about 2 z^2 eps = x^2 eps: 1e-5 at x = -12.
#define GELU_TAIL_TOL 1e-4
static double err_elem(const float *got, const float *ref, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]) / fmax(fabs((double)ref[i]), 1e-300);
        if (e > worst || e != e) worst = e;
    }
    return worst;
}
static void test_gelu_tail(void) {
    const size_t n = 1001;
    float *x = hnew(n), *dout = hrand(n, 1, 0);
    for (size_t i = 0; i < n; i++) x[i] = -12.0f + 7.0f * (float)i / (float)(n - 1);
    float *out_c = hnew(n), *d_c = hnan(n);
    float *x_d = dcopy(x, n * 4), *dout_d = dcopy(dout, n * 4), *out_d = G->alloc(n * 4);
    float *d_d = dcopy(d_c, n * 4);   // NaN on both sides before the overwrite
    Cpu->gelu_forward(out_c, x, n);
    Cpu->gelu_backward(d_c, x, dout, n);
    G->gelu_forward(out_d, x_d, n);
    G->gelu_backward(d_d, x_d, dout_d, n);
    float *out_g = fetch(out_d, n), *d_g = fetch(d_d, n);
    EXPECT_ERR(err_elem(out_g, out_c, n), GELU_TAIL_TOL, "gelu_forward on [-12, -5], elementwise relative");
    EXPECT_ERR(err_elem(d_g, d_c, n), GELU_TAIL_TOL, "gelu_backward on [-12, -5], elementwise relative");
    G->free(x_d); G->free(dout_d); G->free(out_d); G->free(d_d);
    free(x); free(dout); free(out_c); free(d_c); free(out_g); free(d_g);
}

// ----------------------------------------------------------------------------
// attention variants: variant_forward / variant_backward on their own

// per-head coefficients, distinct (and one negative), for per_head = 1
static const float head_gammas[4] = {0.75f, -0.5f, 1.25f, 0.3f};

// The magnitude of every term of a variant's forward and backward (see the
// header): variants.c's formulas on absolute values, row by row (one head of
// one token), with vv = v.v, n2 = vv + 1e-6, Cm = sum |y v| / n2 (c's
// magnitude) and Gm = sum |g v| / n2 ((g.v) / n2's):
//   std  O: |y|                  dY: |g|
//   x    O: |y| + |gamma| |v|    dY: |g|                       dV: |gamma| |g|
//        dgamma: sum |g v|
//   xsa  O: |y| + |gamma| Cm |v|                               dY: |g| + |gamma| Gm |v|
//        dV: |gamma| (Cm |g| + Gm (|y| + 2 Cm |v|))            dgamma: Cm sum |g v|
// ym stands for |y|: |y| itself, or Y's own magnitudes where Y comes from the
// attention core and carries its error (the transform is linear in Y, and
// these terms are what its Jacobian does to magnitudes). g may be NULL (then
// only omag). omag and dymag are N x C (either may be NULL); the dV terms are
// added into the V third of mag3 (N x 3C; may be NULL), dgamma's into dgmag
// (NH doubles when per_head, else 1; may be NULL).
static void variant_magnitudes(int kind, const float *gamma, int per_head, const float *ym,
                               const float *qkv, const float *g, int N, int C, int NH, float *omag,
                               float *dymag, float *mag3, double *dgmag) {
    const int hs = C / NH;
    for (int n = 0; n < N; n++)
        for (int h = 0; h < NH; h++) {
            const size_t at = (size_t)n * C + (size_t)h * hs, vat = (size_t)n * 3 * C + 2 * (size_t)C + (size_t)h * hs;
            const float *y = ym + at, *v = qkv + vat, *gr = g ? g + at : NULL;
            const double ga = fabs((double)gamma[per_head ? h : 0]);
            double vv = 0, ayv = 0, agv = 0;
            for (int c = 0; c < hs; c++) {
                vv += (double)v[c] * v[c];
                ayv += fabs((double)y[c] * v[c]);
                if (gr) agv += fabs((double)gr[c] * v[c]);
            }
            const double n2 = vv + 1e-6, cm = ayv / n2, gm = agv / n2;
            for (int c = 0; c < hs; c++) {
                const double av = fabs((double)v[c]), ay = fabs((double)y[c]);
                const double ag = gr ? fabs((double)gr[c]) : 0;
                double o = ay, dy = ag, dv = 0;
                if (kind == ATTN_X) o += ga * av, dv = ga * ag;
                if (kind == ATTN_XSA) {
                    o += ga * cm * av;
                    dy += ga * gm * av;
                    dv = ga * (cm * ag + gm * (ay + 2 * cm * av));
                }
                if (omag) omag[at + c] = (float)o;
                if (dymag) dymag[at + c] = (float)dy;
                if (mag3) mag3[vat + c] += (float)dv;
            }
            if (dgmag) dgmag[per_head ? h : 0] += kind == ATTN_X ? agv : kind == ATTN_XSA ? cm * agv : 0;
        }
}

// every element of the Q and K thirds of an N x 3C array equal, bit for bit
static int qk_unchanged(const float *a, const float *b, int N, int C) {
    for (size_t n = 0; n < (size_t)N; n++)
        if (memcmp(a + n * 3 * C, b + n * 3 * C, 2 * (size_t)C * sizeof(float))) return 0;
    return 1;
}

enum { VG_FIXED, VG_HEAD, VG_ZERO };

// One variant on N rows of NH heads, the backend against the reference:
// gamma fixed (1 for xsa, 0.5 for x), per head (head_gammas) or 0 (per head
// when NH > 2, else fixed); backward in place (dy == dout) or into a buffer of
// garbage, with dgamma NULL and not (the same bits otherwise). Row 0 has V = 0
// (xsa's c = 0 / 1e-6), row 1 a tiny V (v.v near the 1e-6), row 2 a y nearly
// along its V (xsa cancels most of it).
static void test_variant(int N, int C, int NH, int kind, int gmode, int inplace) {
    const int per_head = gmode == VG_HEAD || (gmode == VG_ZERO && NH > 2);
    const int nG = per_head ? NH : 1;
    const size_t NC = (size_t)N * C, N3 = 3 * NC;
    char tag[160];
    snprintf(tag, sizeof tag, "variant %s N=%d C=%d NH=%d gamma=%s inplace=%d", attn_kind_name(kind), N,
             C, NH, gmode == VG_FIXED ? "fixed" : gmode == VG_HEAD ? "per-head" : "0", inplace);
    float gh[4];
    for (int k = 0; k < nG; k++)
        gh[k] = gmode == VG_ZERO ? 0.0f : gmode == VG_HEAD ? head_gammas[k] : kind == ATTN_XSA ? 1.0f : 0.5f;
    const int identity = kind == ATTN_STD || gmode == VG_ZERO;   // O = Y, dY = G, dV untouched

    float *qkv = hrand(N3, 1, 0), *y = hrand(NC, 1, 0), *g = hrand(NC, 1, 0);
    for (int n = 0; n < N && n < 3; n++)
        for (int c = 0; c < C; c++) {
            float *v = qkv + (size_t)n * 3 * C + 2 * C + c;
            if (n == 0) *v = 0;
            if (n == 1) *v *= 1e-3f;
            if (n == 2) y[(size_t)n * C + c] = 0.7f * *v + 0.01f * (float)rng_normal(&rng);
        }
    float *gamma_d = dcopy(gh, nG * 4);
    VariantArgs vc = {.kind = kind, .gamma = gh, .per_head = per_head};
    VariantArgs vg = {.kind = kind, .gamma = gamma_d, .per_head = per_head};

    // forward, into a buffer of garbage
    float *o_c = hnew(NC);
    Cpu->variant_forward(o_c, y, qkv, N, C, NH, &vc);
    float *qkv_d = dcopy(qkv, N3 * 4), *y_d = dcopy(y, NC * 4), *o_d = dcopy(g, NC * 4);
    G->variant_forward(o_d, y_d, qkv_d, N, C, NH, &vg);
    float *o_g = fetch(o_d, NC), *omag = hnew(NC), *dymag = hnew(NC);
    double dgmag[4] = {0, 0, 0, 0};
    float *dqkv0 = hrand(N3, 0.1, 0), *mag3 = habs(dqkv0, N3);
    variant_magnitudes(kind, gh, per_head, y, qkv, g, N, C, NH, omag, dymag, mag3, dgmag);
    EXPECT_ERR(err_mag(o_g, o_c, omag, NC), TOL, "%s: out", tag);
    if (identity) {
        CHECK(!memcmp(o_c, y, NC * 4), "%s: reference out is not y bit for bit", tag);
        CHECK(!memcmp(o_g, y, NC * 4), "%s: out is not y bit for bit", tag);
    }

    // backward on the reference
    float dg0[4] = {0, 0, 0, 0};
    for (int k = 0; k < nG; k++) dg0[k] = (float)(0.1 * rng_normal(&rng));
    float dg_c[4];
    memcpy(dg_c, dg0, sizeof dg0);
    float *dqkv_c = hcopy(dqkv0, N3), *dy_c = inplace ? hcopy(g, NC) : hrand(NC, 1, 0);
    vc.dgamma = dg_c;
    Cpu->variant_backward(dy_c, dqkv_c, inplace ? dy_c : g, y, qkv, N, C, NH, &vc);
    if (identity) {
        CHECK(!memcmp(dy_c, g, NC * 4), "%s: reference dy is not dout bit for bit", tag);
        CHECK(!memcmp(dqkv_c, dqkv0, N3 * 4), "%s: reference dqkv changed", tag);
    }
    // the backend twice: dgamma NULL, then wanted
    float *dy_g[2], *dqkv_g[2], dg_g[4];
    float *dg_d = dcopy(dg0, nG * 4);
    for (int want = 0; want < 2; want++) {
        float *dqkv_d = dcopy(dqkv0, N3 * 4), *dout_d = dcopy(g, NC * 4);
        float *dy_d = inplace ? dout_d : dcopy(y, NC * 4);   // garbage, to be overwritten
        vg.dgamma = want ? dg_d : NULL;
        G->variant_backward(dy_d, dqkv_d, dout_d, y_d, qkv_d, N, C, NH, &vg);
        dy_g[want] = fetch(dy_d, NC);
        dqkv_g[want] = fetch(dqkv_d, N3);
        G->free(dqkv_d);
        G->free(dout_d);
        if (!inplace) G->free(dy_d);
    }
    G->download(dg_g, dg_d, nG * 4);
    EXPECT_ERR(err_mag(dy_g[1], dy_c, dymag, NC), TOL, "%s: dy", tag);
    EXPECT_ERR(err_mag(dqkv_g[1], dqkv_c, mag3, N3), TOL, "%s: dqkv (the V third)", tag);
    CHECK(qk_unchanged(dqkv_g[1], dqkv0, N, C), "%s: the Q or K third of dqkv changed", tag);
    for (int k = 0; k < nG; k++) {
        const double ref = dgmag[k] + fabs((double)dg0[k]);
        EXPECT_ERR(fabs((double)dg_g[k] - dg_c[k]) / (ref > TINY ? ref : TINY), TOL, "%s: dgamma[%d] %g vs %g",
                   tag, k, dg_g[k], dg_c[k]);
    }
    CHECK(!memcmp(dy_g[0], dy_g[1], NC * 4) && !memcmp(dqkv_g[0], dqkv_g[1], N3 * 4),
          "%s: dy or dqkv differ between dgamma NULL and not", tag);
    if (identity) {
        CHECK(!memcmp(dy_g[1], g, NC * 4), "%s: dy is not dout bit for bit", tag);
        CHECK(!memcmp(dqkv_g[1], dqkv0, N3 * 4), "%s: dqkv changed", tag);
    }

    G->free(gamma_d); G->free(qkv_d); G->free(y_d); G->free(o_d); G->free(dg_d);
    free(qkv); free(y); free(g); free(o_c); free(o_g); free(omag); free(dymag); free(dqkv0); free(mag3);
    free(dqkv_c); free(dy_c);
    for (int k = 0; k < 2; k++) free(dy_g[k]), free(dqkv_g[k]);
}

// ----------------------------------------------------------------------------
// attention: the core, and the core composed with each variant

// The magnitude of every term of the attention core's backward pass (see the
// header), from dY's magnitudes gm (|dY|, or bounds on it): dP_ij = dY_i.V_j
// and D_i = dY_i.Y_i on |.|, S_ij = P_ij (|dP|_ij + |D|_i), then
// mag[dQ_id] = s sum_j S_ij |K_jd| + |x0|, mag[dK_jd] = s sum_i S_ij |Q_id| + |x0|,
// mag[dV_jd] = sum_i P_ij gm_id + |x0|; *dt_mag = sum_id |Q_id| mag'[dQ_id]
static void attention_grad_magnitudes(float *mag, double *dt_mag, const float *qkv, const float *g,
                                      const float *y, const float *P, const float *x0, int B,
                                      int T, int C, int NH, double s) {
    const int hs = C / NH;
    double *S = calloc((size_t)T * T, sizeof(double));
    *dt_mag = 0;
    for (size_t i = 0; i < (size_t)B * T * 3 * C; i++) mag[i] = fabsf(x0[i]);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *Pbh = P + ((size_t)b * NH + h) * T * T;
#define AT(t, part) ((size_t)(b * T + (t)) * 3 * C + (part) * C + h * hs)
#define GY(t) ((size_t)(b * T + (t)) * C + h * hs)
            for (int i = 0; i < T; i++) {
                double dmag = 0;
                for (int d = 0; d < hs; d++) dmag += fabs((double)g[GY(i) + d] * y[GY(i) + d]);
                for (int j = 0; j < T; j++) {
                    double dp = 0;
                    for (int d = 0; d < hs; d++) dp += fabs((double)g[GY(i) + d] * qkv[AT(j, 2) + d]);
                    S[(size_t)i * T + j] = Pbh[(size_t)i * T + j] * (dp + dmag);
                }
            }
            for (int i = 0; i < T; i++)
                for (int d = 0; d < hs; d++) {
                    double dq = 0, dk = 0, dv = 0;
                    for (int j = 0; j < T; j++) {
                        dq += S[(size_t)i * T + j] * fabs((double)qkv[AT(j, 1) + d]);
                        dk += S[(size_t)j * T + i] * fabs((double)qkv[AT(j, 0) + d]);
                        dv += Pbh[(size_t)j * T + i] * fabs((double)g[GY(j) + d]);
                    }
                    mag[AT(i, 0) + d] += (float)(s * dq);
                    mag[AT(i, 1) + d] += (float)(s * dk);
                    mag[AT(i, 2) + d] += (float)dv;
                    *dt_mag += s * fabs((double)qkv[AT(i, 0) + d]) * dq;
                }
        }
    free(S);
}

// Y's magnitudes ym_i = sum_j P_ij |V_j| (B, T, C): the scale of the core's
// rounding in Y, which the variant's transform carries into O, dV and dgamma
static void attention_y_magnitudes(float *ym, const float *qkv, const float *P, int B, int T, int C,
                                   int NH) {
    const int hs = C / NH;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *Pbh = P + ((size_t)b * NH + h) * T * T;
            for (int i = 0; i < T; i++)
                for (int d = 0; d < hs; d++) {
                    double acc = 0;
                    for (int j = 0; j < T; j++) acc += Pbh[(size_t)i * T + j] * fabs((double)qkv[AT(j, 2) + d]);
                    ym[GY(i) + d] = (float)acc;
                }
        }
#undef AT
#undef GY
}

// The bf16 flash attention (backend_cuda_bf16) is run on inputs already
// rounded to bf16, so what is left is its own rounding: P and dS are rounded to
// bf16 (8 significant bits: relative error at most u = 2^-8) before their
// products with V, dY, Q and K, each an error of at most u of the product's
// magnitude sum, fp32 sums aside. The tolerance is 2u of the same magnitudes as
// the fp32 tests use (seen on the emulator: 0.85u in y, 0.79u in dqkv).
#define FLASH_TOL (2.0 / 256)

// the variant after the core: kind, gamma, and per head (head_gammas, gamma unused)
typedef struct {
    int kind;
    float gamma;
    int per_head;
} VMode;

// attention_forward + variant_forward, then variant_backward + attention_backward
// (G = dL/dO in, dL/dY between them), on each backend from the same qkv: each
// runs its variant on its own Y and its core's backward on its own dY, as the
// models do. std runs no variant op (O is Y), as the models. The backend under
// test goes through ops.h's attention_variant_forward/backward, as the models
// do: its fused kernels where it has them (AttentionX in flash attention), the
// four ops elsewhere; the reference always runs the four ops.
static void test_attention(int B, int T, int C, int NH, int mask, VMode vm, int lsa) {
    const int hs = C / NH, N = B * T, std = vm.kind == ATTN_STD;
    const size_t N3 = (size_t)B * T * 3 * C, NC = (size_t)B * T * C;
    const size_t ns = Cpu->attention_saved_floats(B, NH, T);
    const size_t nsg = G->attention_saved_floats(B, NH, T);
    const double tol = g_bf16 ? FLASH_TOL : TOL;
    char tag[192];
    snprintf(tag, sizeof tag, "%s B=%d T=%d C=%d NH=%d mask=%d %s gamma=%s%g lsa=%d",
             g_bf16 ? "flash attention" : "attention", B, T, C, NH, mask, attn_kind_name(vm.kind),
             vm.per_head ? "per-head " : "", vm.per_head ? 0.0 : vm.gamma, lsa);
#ifdef TEST_FAST_CPU
    // the saved state is the logsumexp of each row: linear in T
    CHECK(nsg == (size_t)B * NH * T, "%s: saved floats %zu, not B*NH*T", tag, nsg);
#else
    if (g_bf16) CHECK(nsg == (size_t)B * NH * T, "%s: saved floats %zu, not B*NH*T", tag, nsg);
    else CHECK(ns == nsg, "%s: saved floats %zu (cpu) vs %zu (cuda)", tag, ns, nsg);
#endif

    float *qkv = hrand(N3, 1, 0);
    if (g_bf16) bf16_round_all(qkv, N3);   // the kernels' operands, so only their own rounding is left
    float log_temp = (float)(log(1.0 / sqrt((double)hs)) + 0.3), dlt0 = 0.3f;
    float dlt_c = dlt0;
    AttnArgs ac = {.mask = mask, .scale = (float)(1.0 / sqrt((double)hs)),
                   .log_temp = lsa ? &log_temp : NULL, .dlog_temp = lsa ? &dlt_c : NULL};
    float *lt_d = dcopy(&log_temp, 4), *dlt_d = dcopy(&dlt0, 4);
    AttnArgs ag = ac;
    ag.log_temp = lsa ? lt_d : NULL;
    ag.dlog_temp = lsa ? dlt_d : NULL;
    const int nG = vm.per_head ? NH : 1;
    float gh[4], dg0[4], dg_c[4], dg_g[4];
    for (int k = 0; k < nG; k++) {
        gh[k] = vm.per_head ? head_gammas[k] : vm.gamma;
        dg_c[k] = dg0[k] = (float)(0.1 * rng_normal(&rng));
    }
    float *gamma_d = dcopy(gh, nG * 4), *dg_d = dcopy(dg0, nG * 4);
    VariantArgs vc = {.kind = vm.kind, .gamma = gh, .per_head = vm.per_head, .dgamma = dg_c};
    VariantArgs vg = {.kind = vm.kind, .gamma = gamma_d, .per_head = vm.per_head, .dgamma = dg_d};

    float *y_c = hnew(NC), *o_c = std ? y_c : hnew(NC), *s_c = hnew(ns);
    Cpu->attention_forward(y_c, s_c, qkv, B, T, C, NH, &ac);
    if (!std) Cpu->variant_forward(o_c, y_c, qkv, N, C, NH, &vc);
    float *qkv_d = dcopy(qkv, N3 * 4), *y_d = G->alloc(NC * 4), *o_d = std ? y_d : G->alloc(NC * 4);
    float *s_d = G->alloc(nsg * 4);
    attention_variant_forward(G, o_d, y_d, s_d, qkv_d, B, T, C, NH, &ag, &vg);
    float *y_g = fetch(y_d, NC), *o_g = fetch(o_d, NC), *s_g = fetch(s_d, nsg);
    float *ym = hnew(NC), *omag = hnew(NC), *dymag = hnew(NC);
    attention_y_magnitudes(ym, qkv, s_c, B, T, C, NH);
    // flash attention rounds P to bf16 before P V: an error of its magnitude sum
    if (g_bf16) EXPECT_ERR(err_mag(y_g, y_c, ym, NC), tol, "%s: y", tag);
    else EXPECT_ERR(err_rel(y_g, y_c, NC), tol, "%s: y", tag);
    // xsa's O can cancel to nothing (T = 1: Y = V, O = Y - gamma c V with c near 1),
    // so it is measured against its terms' magnitudes, with Y's own as |y|
    if (vm.kind == ATTN_XSA || g_bf16) {
        variant_magnitudes(vm.kind, gh, vm.per_head, ym, qkv, NULL, N, C, NH, omag, NULL, NULL, NULL);
        EXPECT_ERR(err_mag(o_g, o_c, omag, NC), tol, "%s: out", tag);
    } else {
        EXPECT_ERR(err_rel(o_g, o_c, NC), tol, "%s: out", tag);
    }
#ifndef TEST_FAST_CPU
    if (ns == nsg && !g_bf16) EXPECT_ERR(err_rel(s_g, s_c, ns), TOL, "%s: saved P", tag);
#endif

    float *g = hrand(NC, 1, 0);
    if (g_bf16 && std) bf16_round_all(g, NC);   // dY, read in bf16 (a variant's dY is not)
    float *dqkv0 = hrand(N3, 0.1, 0), *dqkv_c = hcopy(dqkv0, N3), *dy_c = std ? g : hnew(NC);
    if (!std) Cpu->variant_backward(dy_c, dqkv_c, g, y_c, qkv, N, C, NH, &vc);
    Cpu->attention_backward(dqkv_c, dy_c, qkv, y_c, s_c, B, T, C, NH, &ac);
    float *g_d = dcopy(g, NC * 4), *dqkv_d = dcopy(dqkv0, N3 * 4), *dy_d = std ? g_d : G->alloc(NC * 4);
    attention_variant_backward(G, dqkv_d, dy_d, g_d, qkv_d, y_d, s_d, B, T, C, NH, &ag, &vg);
    float *dqkv_g = fetch(dqkv_d, N3);
    // dY's magnitudes drive the core's; the variant adds its direct dV terms
    float *mag = hnew(N3);
    double dt_mag, dgmag[4] = {0, 0, 0, 0};
    variant_magnitudes(vm.kind, gh, vm.per_head, ym, qkv, g, N, C, NH, NULL, dymag, NULL, dgmag);
    attention_grad_magnitudes(mag, &dt_mag, qkv, dymag, y_c, s_c, dqkv0, B, T, C, NH,
                              lsa ? exp((double)log_temp) : ac.scale);
    variant_magnitudes(vm.kind, gh, vm.per_head, ym, qkv, g, N, C, NH, NULL, NULL, mag, NULL);
    EXPECT_ERR(err_mag(dqkv_g, dqkv_c, mag, N3), tol, "%s: dqkv", tag);
    if (lsa) {
        float dlt_g;
        G->download(&dlt_g, dlt_d, 4);
        double ref = dt_mag + fabs((double)dlt0);
        EXPECT_ERR(fabs((double)dlt_g - dlt_c) / (ref > TINY ? ref : TINY), tol, "%s: dlog_temp", tag);
    }
    if (!std) {
        G->download(dg_g, dg_d, nG * 4);
        for (int k = 0; k < nG; k++) {
            const double ref = dgmag[k] + fabs((double)dg0[k]);
            EXPECT_ERR(fabs((double)dg_g[k] - dg_c[k]) / (ref > TINY ? ref : TINY), tol, "%s: dgamma[%d]", tag, k);
        }
    }
    free(mag);

    G->free(lt_d); G->free(dlt_d); G->free(qkv_d); G->free(y_d); if (!std) G->free(o_d); G->free(s_d);
    G->free(g_d); G->free(dqkv_d); if (!std) G->free(dy_d); G->free(gamma_d); G->free(dg_d);
    free(qkv); free(y_c); if (!std) free(o_c); free(s_c); free(y_g); free(o_g); free(s_g); free(g);
    free(dqkv0); free(dqkv_c); if (!std) free(dy_c); free(dqkv_g); free(ym); free(omag);
    free(dymag);
}

// ----------------------------------------------------------------------------
// cross-entropy

static void test_xent(int N, int V, int Vp, float smoothing, int inplace) {
    const size_t NV = (size_t)N * Vp;
    char tag[128];
    snprintf(tag, sizeof tag, "xent N=%d V=%d Vp=%d ls=%g inplace=%d", N, V, Vp, smoothing, inplace);
    float *logits = hrand(NV, 2, 0);
    for (int i = 0; i < N && V > 2; i += 4)   // tied maxima: the first index is the argmax
        logits[(size_t)i * Vp + V / 2] = logits[(size_t)i * Vp + V - 1] = 9.0f;
    int *tg = xmalloc_or_die((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) tg[i] = i % 3 == 1 ? -1 : (int)rng_below(&rng, (uint64_t)V);
    float *probs_c = inplace ? hcopy(logits, NV) : hnew(NV), *loss_c = hnew(N);
    int *am_c = xmalloc_or_die((size_t)N * sizeof(int));
    Cpu->xent_forward(loss_c, probs_c, am_c, inplace ? probs_c : logits, tg, N, V, Vp, smoothing);
    float *logits_d = dcopy(logits, NV * 4), *probs_d = inplace ? logits_d : G->alloc(NV * 4);
    float *loss_d = G->alloc((size_t)N * 4);
    int *am_d = G->alloc((size_t)N * sizeof(int)), *tg_d = dcopy(tg, (size_t)N * sizeof(int));
    G->xent_forward(loss_d, probs_d, am_d, logits_d, tg_d, N, V, Vp, smoothing);
    float *probs_g = fetch(probs_d, NV), *loss_g = fetch(loss_d, N);
    int *am_g = xmalloc_or_die((size_t)N * sizeof(int));
    G->download(am_g, am_d, (size_t)N * sizeof(int));
    EXPECT_ERR(err_rel(probs_g, probs_c, NV), TOL, "%s: probs", tag);
    EXPECT_ERR(err_rel(loss_g, loss_c, N), TOL, "%s: losses", tag);
    CHECK(!memcmp(am_g, am_c, (size_t)N * sizeof(int)), "%s: argmax differs", tag);

    // the training op: loss, argmax and dlogits in place of the logits
    const float scale = 0.7f / (float)N;
    float *dl_c = hcopy(logits, NV), *dl_d = dcopy(logits, NV * 4);
    Cpu->xent_forward_backward(loss_c, am_c, dl_c, tg, N, V, Vp, smoothing, scale);
    G->upload(loss_d, logits, (size_t)N * 4);   // garbage that must be overwritten
    G->xent_forward_backward(loss_d, am_d, dl_d, tg_d, N, V, Vp, smoothing, scale);
    float *dl_g = fetch(dl_d, NV), *loss_g2 = fetch(loss_d, N);
    G->download(am_g, am_d, (size_t)N * sizeof(int));
    EXPECT_ERR(err_rel(dl_g, dl_c, NV), TOL, "%s: dlogits", tag);
    EXPECT_ERR(err_rel(loss_g2, loss_c, N), TOL, "%s: fused losses", tag);
    CHECK(!memcmp(am_g, am_c, (size_t)N * sizeof(int)), "%s: fused argmax differs", tag);
    int zeros_ok = 1;   // padding and ignored rows exactly 0
    for (int i = 0; i < N; i++)
        for (int k = 0; k < Vp; k++)
            if (k >= V || tg[i] < 0) zeros_ok &= dl_g[(size_t)i * Vp + k] == 0.0f;
    CHECK(zeros_ok, "%s: dlogits not 0 in the padding or an ignored row", tag);
    G->free(dl_d);

    G->free(logits_d); if (!inplace) G->free(probs_d);
    G->free(loss_d); G->free(am_d); G->free(tg_d);
    free(logits); free(tg); free(probs_c); free(loss_c); free(am_c); free(probs_g); free(loss_g);
    free(am_g); free(dl_c); free(dl_g); free(loss_g2);
}

// ----------------------------------------------------------------------------
// sumsq

static void test_sumsq(size_t n) {
    float *x = hrand(n, 1, 0), out_c, out_g;
    Cpu->sumsq(&out_c, x, n);
    float *x_d = dcopy(x, n * 4), *o_d = G->alloc(4);
    G->sumsq(o_d, x_d, n);
    G->download(&out_g, o_d, 4);
    EXPECT_ERR(fabs((double)out_g - out_c) / (out_c > TINY ? out_c : TINY), TOL, "sumsq n=%zu", n);
    // deterministic: the same bits again
    float again;
    G->sumsq(o_d, x_d, n);
    G->download(&again, o_d, 4);
    CHECK(again == out_g, "sumsq n=%zu: not deterministic", n);
    G->free(x_d); G->free(o_d);
    free(x);
}

// ----------------------------------------------------------------------------
// optimizers

static void test_optimizer(int setadam, float clip) {
    // slices with gaps (never touched), a zero-size slice, a one-element slice, and one
    // larger than the optimizer's grid (256 blocks of 256), so each thread loops
    const size_t sizes[] = {7, 111, 0, 129, 1, 2000, 37, 70001};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    ParamSlice sl[NS];
    size_t n = 3;
    for (int s = 0; s < NS; s++) {
        sl[s] = (ParamSlice){n, sizes[s], s % 2};
        n += sizes[s] + 3;
    }
    char tag[64];
    snprintf(tag, sizeof tag, "%s clip=%g", setadam ? "setadam_update" : "adamw_update", clip);
    float *p0 = hrand(n, 0.1, 0), *m0 = hrand(n, 0.1, 0), *v0 = hrand(n, 0.01, 0);
    for (size_t i = 0; i < n; i++) v0[i] = fabsf(v0[i]);
    // slice 5 (setadam: the c = 1 guard) sees zero gradients and zero moments
    float *gr = hrand(n, 1, 0);
    if (setadam)
        for (size_t i = sl[5].offset; i < sl[5].offset + sl[5].size; i++) gr[i] = m0[i] = v0[i] = 0;
    float *p_c = hcopy(p0, n), *m_c = hcopy(m0, n), *v_c = hcopy(v0, n), gn_c;
    float *p_d = dcopy(p0, n * 4), *m_d = dcopy(m0, n * 4), *v_d = dcopy(v0, n * 4);
    float *g_d = dcopy(gr, n * 4), *gn_d = G->alloc(4);
    Cpu->sumsq(&gn_c, gr, n);
    G->sumsq(gn_d, g_d, n);
    for (int t = 1; t <= 3; t++) {
        OptimArgs a = {.lr = 0.05f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .wd = 0.1f,
                       .tau = 0.5f, .clip = clip, .t = t};
        if (setadam) {
            Cpu->setadam_update(p_c, gr, m_c, v_c, sl, NS, &a, &gn_c);
            G->setadam_update(p_d, g_d, m_d, v_d, sl, NS, &a, gn_d);
        } else {
            Cpu->adamw_update(p_c, gr, m_c, v_c, sl, NS, &a, &gn_c);
            G->adamw_update(p_d, g_d, m_d, v_d, sl, NS, &a, gn_d);
        }
    }
    float *p_g = fetch(p_d, n), *m_g = fetch(m_d, n), *v_g = fetch(v_d, n);
    // parameters against the size of their change; moments plain relative
    EXPECT_ERR(err_acc(p_g, p_c, p0, n), TOL, "%s: params", tag);
    EXPECT_ERR(err_rel(m_g, m_c, n), TOL, "%s: m", tag);
    EXPECT_ERR(err_rel(v_g, v_c, n), TOL, "%s: v", tag);
    int gaps_ok = 1;
    for (int s = 0; s + 1 < NS; s++)
        for (size_t i = sl[s].offset + sl[s].size; i < sl[s + 1].offset; i++)
            gaps_ok &= p_g[i] == p0[i] && m_g[i] == m0[i] && v_g[i] == v0[i];
    CHECK(gaps_ok, "%s: elements outside the slices changed", tag);
    G->free(p_d); G->free(m_d); G->free(v_d); G->free(g_d); G->free(gn_d);
    free(p0); free(m0); free(v0); free(gr); free(p_c); free(m_c); free(v_c); free(p_g); free(m_g);
    free(v_g);
}

// setadam.md's worked example, on the GPU
static void test_setadam_example(void) {
    const float g[3] = {0.1f, -0.2f, 0.3f};
    const double want[3] = {-0.0024494879, 0.0016329932, -0.0014696939};
    float zero3[3] = {0, 0, 0}, gn = 0;
    float *p = dcopy(zero3, 12), *m = dcopy(zero3, 12), *v = dcopy(zero3, 12);
    float *gd = dcopy(g, 12), *gnd = dcopy(&gn, 4);
    ParamSlice sl = {0, 3, 0};
    OptimArgs a = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .wd = 0, .tau = 0.5f,
                   .clip = 0, .t = 1};
    G->setadam_update(p, gd, m, v, &sl, 1, &a, gnd);
    float got[3];
    G->download(got, p, 12);
    for (int i = 0; i < 3; i++)
        EXPECT_ERR(fabs(got[i] - want[i]) / fabs(want[i]), 1e-5, "setadam example theta[%d] = %.10f", i, got[i]);
    G->free(p); G->free(m); G->free(v); G->free(gd); G->free(gnd);
}

// ----------------------------------------------------------------------------
// ViT ops: patches (SPT), cls + position embedding, dropout, cls select

static void test_patchify(int B, int C, int H, int W, int P, int shifts) {
    const int Np = (H / P) * (W / P), PD = P * P * C * (shifts ? 5 : 1);
    const size_t npix = (size_t)B * C * H * W, nout = (size_t)B * Np * PD;
    float *img = hrand(npix, 1, 0), *out_c = hnew(nout);
    Cpu->patchify_forward(out_c, img, B, C, H, W, P, shifts);
    float *img_d = dcopy(img, npix * 4), *out_d = G->alloc(nout * 4);
    G->patchify_forward(out_d, img_d, B, C, H, W, P, shifts);
    float *out_g = fetch(out_d, nout);
    CHECK(!memcmp(out_g, out_c, nout * sizeof(float)),
          "patchify B=%d C=%d H=%d W=%d P=%d shifts=%d: differs from the CPU", B, C, H, W, P, shifts);
    G->free(img_d); G->free(out_d);
    free(img); free(out_c); free(out_g);
}

static void test_cls_pos(int B, int Np, int D) {
    const int T = Np + 1;
    const size_t nx = (size_t)B * Np * D, nout = (size_t)B * T * D, npos = (size_t)T * D;
    float *x = hrand(nx, 1, 0), *cls = hrand(D, 1, 0), *pos = hrand(npos, 1, 0), *out_c = hnew(nout);
    Cpu->cls_pos_forward(out_c, x, cls, pos, B, Np, D);
    float *x_d = dcopy(x, nx * 4), *cls_d = dcopy(cls, D * 4), *pos_d = dcopy(pos, npos * 4);
    float *out_d = G->alloc(nout * 4);
    G->cls_pos_forward(out_d, x_d, cls_d, pos_d, B, Np, D);
    float *out_g = fetch(out_d, nout);
    EXPECT_ERR(err_rel(out_g, out_c, nout), TOL, "cls_pos_forward B=%d Np=%d D=%d", B, Np, D);

    float *dout = hrand(nout, 1, 0);
    float *dx0 = hrand(nx, 0.1, 0), *dcls0 = hrand(D, 0.1, 0), *dpos0 = hrand(npos, 0.1, 0);
    float *dx_c = hcopy(dx0, nx), *dcls_c = hcopy(dcls0, D), *dpos_c = hcopy(dpos0, npos);
    Cpu->cls_pos_backward(dx_c, dcls_c, dpos_c, dout, B, Np, D);
    float *dout_d = dcopy(dout, nout * 4), *dx_d = dcopy(dx0, nx * 4);
    float *dcls_d = dcopy(dcls0, D * 4), *dpos_d = dcopy(dpos0, npos * 4);
    G->cls_pos_backward(dx_d, dcls_d, dpos_d, dout_d, B, Np, D);
    float *dx_g = fetch(dx_d, nx), *dcls_g = fetch(dcls_d, D), *dpos_g = fetch(dpos_d, npos);
    EXPECT_ERR(err_acc(dx_g, dx_c, dx0, nx), TOL, "cls_pos_backward dx B=%d Np=%d D=%d", B, Np, D);
    EXPECT_ERR(err_acc(dcls_g, dcls_c, dcls0, D), TOL, "cls_pos_backward dcls B=%d Np=%d D=%d", B, Np, D);
    EXPECT_ERR(err_acc(dpos_g, dpos_c, dpos0, npos), TOL, "cls_pos_backward dpos B=%d Np=%d D=%d", B, Np, D);

    G->free(x_d); G->free(cls_d); G->free(pos_d); G->free(out_d); G->free(dout_d); G->free(dx_d);
    G->free(dcls_d); G->free(dpos_d);
    free(x); free(cls); free(pos); free(out_c); free(out_g); free(dout); free(dx0); free(dcls0);
    free(dpos0); free(dx_c); free(dcls_c); free(dpos_c); free(dx_g); free(dcls_g); free(dpos_g);
}

// the masks are the same pure function of (seed, index) on both devices: bit-identical
static void test_dropout(size_t n, float p, uint64_t seed, int inplace) {
    float *x = hrand(n, 1, 0), *out_c = inplace ? hcopy(x, n) : hnew(n), *mask_c = hnew(n);
    Cpu->dropout_forward(out_c, mask_c, inplace ? out_c : x, n, p, seed, 5);
    float *x_d = dcopy(x, n * 4), *out_d = inplace ? x_d : G->alloc(n * 4), *mask_d = G->alloc(n * 4);
    G->dropout_forward(out_d, mask_d, x_d, n, p, seed, 5);
    float *out_g = fetch(out_d, n), *mask_g = fetch(mask_d, n);
    CHECK(!memcmp(mask_g, mask_c, n * sizeof(float)), "dropout n=%zu p=%g: masks differ", n, p);
    CHECK(!memcmp(out_g, out_c, n * sizeof(float)), "dropout n=%zu p=%g inplace=%d: outputs differ", n, p, inplace);

    float *dout = hrand(n, 1, 0), *d0 = hrand(n, 0.1, 0), *d_c = hcopy(d0, n);
    Cpu->dropout_backward(d_c, dout, mask_c, n);
    float *dout_d = dcopy(dout, n * 4), *d_d = dcopy(d0, n * 4);
    G->dropout_backward(d_d, dout_d, mask_d, n);
    float *d_g = fetch(d_d, n);
    EXPECT_ERR(err_acc(d_g, d_c, d0, n), TOL, "dropout_backward n=%zu p=%g", n, p);

    if (!inplace) G->free(out_d);
    G->free(x_d); G->free(mask_d); G->free(dout_d); G->free(d_d);
    free(x); free(out_c); free(mask_c); free(out_g); free(mask_g); free(dout); free(d0); free(d_c);
    free(d_g);
}

static void test_cls_select(int B, int T, int D) {
    const size_t nx = (size_t)B * T * D, no = (size_t)B * D;
    float *x = hrand(nx, 1, 0), *out_c = hnew(no);
    Cpu->cls_select_forward(out_c, x, B, T, D);
    float *x_d = dcopy(x, nx * 4), *out_d = G->alloc(no * 4);
    G->cls_select_forward(out_d, x_d, B, T, D);
    float *out_g = fetch(out_d, no);
    CHECK(!memcmp(out_g, out_c, no * sizeof(float)), "cls_select_forward B=%d T=%d D=%d differs", B, T, D);
    float *dout = hrand(no, 1, 0), *dx0 = hrand(nx, 0.1, 0), *dx_c = hcopy(dx0, nx);
    Cpu->cls_select_backward(dx_c, dout, B, T, D);
    float *dout_d = dcopy(dout, no * 4), *dx_d = dcopy(dx0, nx * 4);
    G->cls_select_backward(dx_d, dout_d, B, T, D);
    float *dx_g = fetch(dx_d, nx);
    EXPECT_ERR(err_acc(dx_g, dx_c, dx0, nx), TOL, "cls_select_backward B=%d T=%d D=%d", B, T, D);
    G->free(x_d); G->free(out_d); G->free(dout_d); G->free(dx_d);
    free(x); free(out_c); free(out_g); free(dout); free(dx0); free(dx_c); free(dx_g);
}

// ----------------------------------------------------------------------------
// the whole GPT on both backends

#ifndef NO_GPT_TEST
enum { MB = 3, MT = 16, MV = 67 };

// "std" / "x gamma=0.5" / "std,xsa gamma=1 learn=head"
static void attn_tag(char *buf, size_t len, const char *what, const AttnConfig *a, int layers) {
    char kinds[64];
    attn_kinds_format(a, layers, kinds, sizeof kinds);
    snprintf(buf, len, "%s attn=%s gamma=%g learn=%s", what, kinds, a->gamma, gamma_learn_name(a->learn));
}

// a config with kinds[l] per layer (2 layers)
static AttnConfig attn_layers2(int k0, int k1, float gamma, int learn) {
    AttnConfig a = attn_config_uniform(k0, gamma, learn);
    a.kind[1] = (unsigned char)k1;
    return a;
}

static GPTConfig model_config(AttnConfig attn) {
    GPTConfig c = {.vocab = MV, .padded_vocab = gpt_padded_vocab(MV), .max_seq = MT, .layers = 2,
                   .heads = 2, .embd = 32, .bias = 1, .attn = attn};
    return c;
}

// the learned gammas' tensor: its index in the layout, or -1
static int gamma_tensor(const ParamLayout *p) {
    for (int k = 0; k < p->num_tensors; k++)
        if (!strcmp(p->tensor_names[k], "attn_gamma")) return k;
    return -1;
}

// The learned gammas (nvar layers x G) start at cfg gamma; spread them
// (gamma + 0.125 k, alternating sign of the step) the same on both models, so a
// per-head or per-layer indexing slip shows. Returns the tensor's size.
static size_t spread_gammas(const Backend *be, const ParamLayout *p, real *params, float gamma) {
    int k = gamma_tensor(p);
    if (k < 0 || !p->tensors[k].size) return 0;
    const size_t n = p->tensors[k].size;
    float *h = hnew(n);
    for (size_t i = 0; i < n; i++) h[i] = gamma + (i % 2 ? -0.125f : 0.125f) * (float)i;
    be->upload(params + p->tensors[k].offset, h, n * sizeof(float));
    free(h);
    return n;
}

// The learned-gamma tensor is there when it should be: nvar x G values, one
// optimizer slice per variant layer, none decayed; its reference gradient is
// not all zero (it is compared with the others)
static void check_gamma_layout(const char *tag, const ParamLayout *p, const AttnConfig *a, int layers,
                               int heads, const float *grads_ref) {
    const int k = gamma_tensor(p);
    const size_t want = (size_t)attn_num_variant_layers(a, layers) * attn_gammas_per_layer(a, heads);
    const size_t have = k < 0 ? 0 : p->tensors[k].size;
    CHECK(have == want, "%s: attn_gamma has %zu values, not %zu", tag, have, want);
    if (!want || have != want) return;
    const ParamSlice t = p->tensors[k];
    int slices = 0, decayed = 0;
    for (int s = 0; s < p->num_slices; s++)
        if (p->slices[s].offset >= t.offset && p->slices[s].offset < t.offset + t.size)
            slices++, decayed += p->slices[s].decay;
    CHECK(slices == attn_num_variant_layers(a, layers) && !decayed,
          "%s: attn_gamma in %d slices (%d decayed), not one per variant layer undecayed", tag, slices, decayed);
    int nonzero = 0;
    for (size_t i = 0; i < t.size; i++) nonzero += grads_ref[t.offset + i] != 0;
    CHECK(nonzero == (int)t.size, "%s: %zu of the reference's attn_gamma grads are 0", tag, t.size - nonzero);
}

// a learnable batch: x_{t+1} = (5 x_t + 3) mod V from random starts; a few targets ignored
static void make_batch(int *in, int *tg, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int b = 0; b < MB; b++) {
        int x = (int)rng_below(&r, MV);
        for (int t = 0; t < MT; t++) {
            in[b * MT + t] = x;
            x = (5 * x + 3) % MV;
            tg[b * MT + t] = (b == 1 && t % 7 == 3) ? -1 : x;
        }
    }
}

static void test_model_grads(AttnConfig attn) {
    GPTConfig cfg = model_config(attn);
    GPT mc, mg;
    gpt_build(&mc, &cfg, Cpu, MB);
    gpt_build(&mg, &cfg, G, MB);
    gpt_init_weights(&mc, 1234);
    gpt_init_weights(&mg, 1234);
    spread_gammas(Cpu, &mc.layout, mc.params, attn.gamma);
    spread_gammas(G, &mg.layout, mg.params, attn.gamma);
    int in[MB * MT], tg[MB * MT];
    make_batch(in, tg, 77);
    const size_t nl = (size_t)MB * MT * cfg.padded_vocab;
    char tag[128];
    attn_tag(tag, sizeof tag, "gpt", &attn, cfg.layers);

    gpt_forward(&mc, in, NULL, MB, MT);
    gpt_forward(&mg, in, NULL, MB, MT);
    float *lg = fetch(mg.logits, nl);
    EXPECT_ERR(err_rel(lg, mc.logits, nl), MODEL_TOL, "%s: logits", tag);
    free(lg);

    float loss_c = gpt_forward_train(&mc, in, tg, MB, MT, 1.0f, 0);
    float loss_g = gpt_forward_train(&mg, in, tg, MB, MT, 1.0f, 0);
    EXPECT_ERR(fabs((double)loss_g - loss_c) / fabs((double)loss_c), MODEL_TOL, "%s: loss %g vs %g", tag, loss_g, loss_c);
    gpt_zero_grad(&mc);
    gpt_zero_grad(&mg);
    gpt_backward(&mc);
    gpt_backward(&mg);
    float *gg = fetch(mg.grads, mg.layout.num_params);
    CHECK(mc.layout.num_params == mg.layout.num_params, "%s: parameter counts differ", tag);
    check_gamma_layout(tag, &mc.layout, &attn, cfg.layers, cfg.heads, mc.grads);
    for (int k = 0; k < mc.layout.num_tensors; k++) {
        ParamSlice t = mc.layout.tensors[k];
        if (!t.size) continue;
        EXPECT_ERR(err_rel(gg + t.offset, mc.grads + t.offset, t.size), GRAD_TOL, "%s: grad %s", tag,
                   mc.layout.tensor_names[k]);
    }
    // determinism: the same step again gives the same bits
    gpt_forward_train(&mg, in, tg, MB, MT, 1.0f, 0);
    gpt_zero_grad(&mg);
    gpt_backward(&mg);
    float *gg2 = fetch(mg.grads, mg.layout.num_params);
    CHECK(!memcmp(gg, gg2, mg.layout.num_params * sizeof(float)), "%s: gradients not deterministic", tag);
    free(gg);
    free(gg2);
    gpt_free(&mc);
    gpt_free(&mg);
}

// ----------------------------------------------------------------------------
// the whole ViT on both backends: logits, loss, every gradient (dropout on: the
// masks are identical), determinism, then training steps with SET-Adam

enum { VB = 3 };

static ViTConfig vit_config(int kind, int heads, AttnConfig attn) {
    ViTConfig c = {.kind = kind, .channels = 3, .height = 16, .width = 16, .patch = 4,
                   .classes = 10, .dim = 32, .depth = 2, .heads = heads, .mlp_dim = 48,
                   .dropout = 0.1f, .emb_dropout = 0.1f, .attn = attn};
    return c;
}

// heads = 1 with the plain ViT: no output projection, so the variant's
// backward reads dL/dO from the residual stream's gradient (out of place)
static void test_vit_grads(int kind, int heads, AttnConfig attn) {
    ViTConfig cfg = vit_config(kind, heads, attn);
    ViT mc, mg;
    vit_build(&mc, &cfg, Cpu, VB);
    vit_build(&mg, &cfg, G, VB);
    vit_init_weights(&mc, 1234);
    vit_init_weights(&mg, 1234);
    spread_gammas(Cpu, &mc.layout, mc.params, attn.gamma);
    spread_gammas(G, &mg.layout, mg.params, attn.gamma);
    // images from their own seed, the same draw however many numbers the op
    // tests took: the log_temp gradients are sums over the whole batch that
    // cancel more in some draws than others (one gave 8e-5 and 2e-4 where
    // others give 3e-3), and err_rel of a 2-element tensor has no other scale
    const size_t npix = (size_t)VB * 3 * 16 * 16;
    float *images = hnew(npix);
    Rng r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < npix; i++) images[i] = (float)rng_normal(&r);
    int labels[VB] = {3, 9, 0};
    char tag[128];
    char what[32];
    snprintf(what, sizeof what, "%s heads=%d", kind == VIT_SMALL ? "vit-small" : "vit-plain", heads);
    attn_tag(tag, sizeof tag, what, &attn, cfg.depth);

    vit_forward(&mc, images, NULL, VB, 0, 0);
    vit_forward(&mg, images, NULL, VB, 0, 0);
    float *lg = fetch(mg.logits, (size_t)VB * cfg.classes);
    EXPECT_ERR(err_rel(lg, mc.logits, (size_t)VB * cfg.classes), MODEL_TOL, "%s: logits", tag);
    free(lg);

    float loss_c = (float)vit_forward(&mc, images, labels, VB, 1, 77);
    float loss_g = (float)vit_forward(&mg, images, labels, VB, 1, 77);
    EXPECT_ERR(fabs((double)loss_g - loss_c) / fabs((double)loss_c), MODEL_TOL, "%s: loss %g vs %g", tag, loss_g, loss_c);
    vit_zero_grad(&mc);
    vit_zero_grad(&mg);
    vit_backward(&mc);
    vit_backward(&mg);
    float *gg = fetch(mg.grads, mg.layout.num_params);
    CHECK(mc.layout.num_params == mg.layout.num_params, "%s: parameter counts differ", tag);
    check_gamma_layout(tag, &mc.layout, &attn, cfg.depth, cfg.heads, mc.grads);
    for (int k = 0; k < mc.layout.num_tensors; k++) {
        ParamSlice t = mc.layout.tensors[k];
        if (!t.size) continue;
        EXPECT_ERR(err_rel(gg + t.offset, mc.grads + t.offset, t.size), GRAD_TOL, "%s: grad %s", tag,
                   mc.layout.tensor_names[k]);
    }
    vit_forward(&mg, images, labels, VB, 1, 77);
    vit_zero_grad(&mg);
    vit_backward(&mg);
    float *gg2 = fetch(mg.grads, mg.layout.num_params);
    CHECK(!memcmp(gg, gg2, mg.layout.num_params * sizeof(float)), "%s: gradients not deterministic", tag);
    free(gg);
    free(gg2);
    free(images);
    vit_free(&mc);
    vit_free(&mg);
}

// After training: the learned gammas moved from where they started and agree
// between the backends (to 1e-3 of their change: Adam divides by sqrt(v), so
// they are as sensitive as the losses, over every step)
static void check_trained_gammas(const char *tag, const ParamLayout *p, const real *ref_params,
                                 const Backend *be, const real *params, float gamma) {
    const int k = gamma_tensor(p);
    if (k < 0 || !p->tensors[k].size) return;
    const ParamSlice t = p->tensors[k];
    float *got = hnew(t.size);
    be->download(got, params + t.offset, t.size * sizeof(float));
    double moved = 0, diff = 0;
    for (size_t i = 0; i < t.size; i++) {
        const double d = fabs((double)ref_params[t.offset + i] - gamma);
        if (d > moved) moved = d;
        const double e = fabs((double)got[i] - ref_params[t.offset + i]);
        if (e > diff || e != e) diff = e;
    }
    CHECK(moved > 0, "%s: the learned gammas did not move", tag);
    EXPECT_ERR(diff / (moved > TINY ? moved : TINY), 1e-3, "%s: learned gammas after training", tag);
    free(got);
}

static void test_vit_training(AttnConfig attn) {
    ViTConfig cfg = vit_config(VIT_SMALL, 4, attn);
    ViT m[2];
    const Backend *be[2] = {Cpu, G};
    char tag[128];
    attn_tag(tag, sizeof tag, "vit training", &attn, cfg.depth);
    // SET-Adam, as the paper trains ViT-small
    const Optimizer settings = {.kind = OPTIM_SETADAM, .beta1 = 0.9f, .beta2 = 0.999f,
                                .eps = 1e-8f, .tau = 0.5f};
    Optimizer opt[2];
    for (int k = 0; k < 2; k++) {
        vit_build(&m[k], &cfg, be[k], VB);
        vit_init_weights(&m[k], 42);
        opt[k] = settings;
        optim_init(&opt[k], be[k], m[k].layout.num_params);
    }
    const size_t npix = (size_t)VB * 3 * 16 * 16;
    float *images = hnew(npix);
    int labels[VB], bad = 0;
    float first = 0, last = 0;
    for (int step = 1; step <= 30; step++) {
        // a fixed batch (the loss must fall), dropout masks per step
        Rng r;
        rng_seed(&r, 5);
        for (size_t i = 0; i < npix; i++) images[i] = (float)rng_normal(&r);
        for (int i = 0; i < VB; i++) labels[i] = (int)rng_below(&r, 10);
        float loss[2];
        for (int k = 0; k < 2; k++) {
            vit_zero_grad(&m[k]);
            loss[k] = (float)vit_forward(&m[k], images, labels, VB, 1, hash64(7, (uint64_t)step));
            vit_backward(&m[k]);
            optim_grad_norm(&opt[k], m[k].grads);
            optim_update(&opt[k], m[k].params, m[k].grads, m[k].layout.slices,
                         m[k].layout.num_slices, 1e-3f);
        }
        double rel = fabs((double)loss[1] - loss[0]) / fabs((double)loss[0]);
        if (!(rel <= TRAIN_TOL)) {
            bad++;
            fprintf(stderr, "%s: step %d loss %.7f (%s) vs %.7f (ref)\n", tag, step, loss[1], G->name, loss[0]);
        }
        if (step == 1) first = loss[0];
        last = loss[0];
    }
    CHECK(bad == 0, "%s: %d of 30 steps differ by more than %g", tag, bad, TRAIN_TOL);
    CHECK(last < first, "%s: loss did not fall (%g -> %g)", tag, first, last);
    if (!g_bf16) check_trained_gammas(tag, &m[0].layout, m[0].params, G, m[1].params, attn.gamma);
    for (int k = 0; k < 2; k++) {
        optim_free(&opt[k]);
        vit_free(&m[k]);
    }
    free(images);
}

static void test_model_training(AttnConfig attn) {
    GPTConfig cfg = model_config(attn);
    GPT m[2];
    const Backend *be[2] = {Cpu, G};
    char tag[128];
    attn_tag(tag, sizeof tag, "gpt training", &attn, cfg.layers);
    // AdamW with nanoGPT's settings, clipping included
    const Optimizer settings = {.kind = OPTIM_ADAMW, .beta1 = 0.9f, .beta2 = 0.95f,
                                .eps = 1e-8f, .wd = 0.1f, .tau = 0.5f, .clip = 1.0f};
    Optimizer opt[2];
    for (int k = 0; k < 2; k++) {
        gpt_build(&m[k], &cfg, be[k], MB);
        gpt_init_weights(&m[k], 42);
        opt[k] = settings;
        optim_init(&opt[k], be[k], m[k].layout.num_params);
    }
    int in[MB * MT], tg[MB * MT], bad = 0;
    float first = 0, last = 0;
    for (int step = 1; step <= 50; step++) {
        make_batch(in, tg, hash64(99, (uint64_t)step));
        float loss[2];
        for (int k = 0; k < 2; k++) {
            gpt_zero_grad(&m[k]);
            loss[k] = gpt_forward_train(&m[k], in, tg, MB, MT, 1.0f, 0);
            gpt_backward(&m[k]);
            optim_grad_norm(&opt[k], m[k].grads);
            optim_update(&opt[k], m[k].params, m[k].grads, m[k].layout.slices,
                         m[k].layout.num_slices, 1e-3f);
        }
        double rel = fabs((double)loss[1] - loss[0]) / fabs((double)loss[0]);
        if (!(rel <= TRAIN_TOL)) {
            bad++;
            fprintf(stderr, "%s: step %d loss %.7f (%s) vs %.7f (ref)\n", tag, step, loss[1], G->name, loss[0]);
        }
        if (step == 1) first = loss[0];
        last = loss[0];
    }
    CHECK(bad == 0, "%s: %d of 50 steps differ by more than %g", tag, bad, TRAIN_TOL);
    CHECK(last < first, "%s: loss did not fall (%g -> %g)", tag, first, last);
    if (!g_bf16) check_trained_gammas(tag, &m[0].layout, m[0].params, G, m[1].params, attn.gamma);
    for (int k = 0; k < 2; k++) {
        optim_free(&opt[k]);
        gpt_free(&m[k]);
    }
}
#endif

// ----------------------------------------------------------------------------

int main(void) {
#ifdef TEST_FAST_CPU
    G = &backend_cpu;
#else
    const char *why = NULL;
    G = backend_cuda(&why);
    if (!G) {
        printf("test_gpu: skipped: %s\n", why ? why : "no CUDA backend");
        return 0;
    }
#endif
    rng_seed(&rng, 20240917);

#ifdef TEST_FAST_CPU
    test_cpu_math();
#endif
    test_memory();

    test_embed(2, 5, 37, 11);
    test_embed(3, 67, 64, 50);
    test_embed(1, 1, 7, 3);
    test_embed(4, 33, 300, 1000);

    const int ln_shapes[][2] = {{7, 37}, {1, 1}, {67, 768}, {300, 129}, {5, 33}};
    for (size_t i = 0; i < sizeof ln_shapes / sizeof ln_shapes[0]; i++)
        for (int bias = 0; bias < 2; bias++) test_layernorm(ln_shapes[i][0], ln_shapes[i][1], bias);

    // the last two are cut into several GEMM tiles by the fast CPU backend, with remainders
    const int mm_shapes[][3] = {{7, 37, 129}, {67, 64, 3}, {1, 5, 1}, {130, 300, 70}, {48, 32, 128},
                                {600, 37, 530}, {1030, 19, 520}, {40, 530, 70}};
    for (size_t i = 0; i < sizeof mm_shapes / sizeof mm_shapes[0]; i++)
        for (int bias = 0; bias < 2; bias++)
            for (int dinp = 0; dinp < 2; dinp++)
                test_matmul(mm_shapes[i][0], mm_shapes[i][1], mm_shapes[i][2], bias, dinp);

    const int fu_shapes[][3] = {{7, 37, 129}, {1, 1, 1}, {67, 64, 256}, {130, 300, 70}};
    for (size_t i = 0; i < sizeof fu_shapes / sizeof fu_shapes[0]; i++)
        for (int bias = 0; bias < 2; bias++) test_fused(fu_shapes[i][0], fu_shapes[i][1], fu_shapes[i][2], bias);

    const size_t ew[] = {1, 7, 1000, 4099, 300001};
    for (size_t i = 0; i < sizeof ew / sizeof ew[0]; i++) test_elementwise(ew[i]);
    test_gelu_tail();

    // the variants on their own: (N, C, NH) with head sizes 5, 48 and 80 (not a
    // multiple of 32, over one warp: the strided per-lane loops), 4, 32 and 1;
    // NH 1..4; rows (N NH) from 1 to 600 (several blocks of warps, and more rows
    // than one dgamma block's threads)
    const int va_shapes[][3] = {{7, 5, 1}, {9, 96, 2}, {6, 240, 3}, {33, 20, 4}, {5, 128, 4}, {1, 1, 1},
                                {300, 8, 2}};
    for (size_t i = 0; i < sizeof va_shapes / sizeof va_shapes[0]; i++)
        for (int kind = 0; kind < ATTN_NUM_KINDS; kind++)
            for (int gm = VG_FIXED; gm <= VG_ZERO; gm++)
                for (int inplace = 0; inplace < 2; inplace++)
                    test_variant(va_shapes[i][0], va_shapes[i][1], va_shapes[i][2], kind, gm, inplace);

    // (B, T, C, NH): T = 1, 5, 16, 33, 67; NH = 1, 2, 3; head sizes 4, 8, 13, 16, and 45
    // (over one warp and not a multiple of 32: the strided per-lane loops)
    const int at_shapes[][4] = {{2, 5, 12, 3}, {1, 67, 39, 3}, {3, 1, 8, 1}, {2, 67, 16, 1}, {2, 16, 32, 2},
                                {2, 33, 90, 2}};
    const VMode modes[] = {{ATTN_STD, 0.0f, 0}, {ATTN_X, 0.0f, 0}, {ATTN_X, 0.5f, 0}, {ATTN_X, 1.0f, 0},
                           {ATTN_XSA, 1.0f, 0}, {ATTN_XSA, 0.0f, 1}};
    for (size_t i = 0; i < sizeof at_shapes / sizeof at_shapes[0]; i++)
        for (int mask = 0; mask < 3; mask++)
            for (size_t md = 0; md < sizeof modes / sizeof modes[0]; md++)
                for (int lsa = 0; lsa < 2; lsa++)
                    test_attention(at_shapes[i][0], at_shapes[i][1], at_shapes[i][2],
                                   at_shapes[i][3], mask, modes[md], lsa);
#ifndef TEST_FAST_CPU
    // the bf16 table (backend_cuda_bf16): its matmuls (cuBLASLt) on every
    // matmul shape above; flash attention with head sizes 64, 32, 16, and 8
    // and 40 (padded to 16 and 64), T across tile edges (1, 63, 64, 65, 130:
    // several query and key tiles, a last tile of 2 rows), every mask, LSA,
    // the variants (AttentionX fused)
    {
        const Backend *fp32 = G, *bf = backend_cuda_bf16(NULL);
        CHECK(bf != NULL, "backend_cuda_bf16 is missing where backend_cuda is not");
        const int fa_shapes[][4] = {{1, 65, 128, 2}, {2, 130, 64, 2}, {1, 64, 96, 3},
                                    {2, 63, 16, 2}, {1, 1, 80, 2}, {1, 33, 40, 1}};
        // (x fused into the kernels, with one gamma and per head; xsa around them)
        const VMode fa_modes[] = {{ATTN_STD, 0.0f, 0}, {ATTN_X, 1.0f, 0}, {ATTN_X, 0.0f, 1},
                                  {ATTN_XSA, 0.0f, 1}};
        G = bf;
        g_bf16 = 1;
        for (size_t i = 0; bf && i < sizeof mm_shapes / sizeof mm_shapes[0]; i++)
            for (int bias = 0; bias < 2; bias++)
                test_matmul(mm_shapes[i][0], mm_shapes[i][1], mm_shapes[i][2], bias, !bias);
        for (size_t i = 0; bf && i < sizeof fa_shapes / sizeof fa_shapes[0]; i++)
            for (int mask = 0; mask < 3; mask++)
                for (size_t md = 0; md < sizeof fa_modes / sizeof fa_modes[0]; md++)
                    test_attention(fa_shapes[i][0], fa_shapes[i][1], fa_shapes[i][2], fa_shapes[i][3],
                                   mask, fa_modes[md], md == 0 ? mask == MASK_DIAG : mask == MASK_NONE);
        G = fp32;
        g_bf16 = 0;
    }
#endif
#ifdef TEST_FAST_CPU
    // the blocked kernel's edges: several query blocks (64 rows) and key tiles
    // (256 columns), a last block of one row, and a head size of 64
    const int big_shapes[][4] = {{1, 129, 16, 2}, {1, 300, 24, 2}, {2, 65, 128, 2}, {1, 513, 8, 1}};
    const int big_modes[] = {0, 3, 5};
    for (size_t i = 0; i < sizeof big_shapes / sizeof big_shapes[0]; i++)
        for (int mask = 0; mask < 3; mask++)
            for (int md = 0; md < 3; md++)
                test_attention(big_shapes[i][0], big_shapes[i][1], big_shapes[i][2], big_shapes[i][3],
                               mask, modes[big_modes[md]], mask == MASK_DIAG);
#endif

    const struct { int N, V, Vp; float ls; } xs[] = {
        {7, 37, 64, 0.0f}, {5, 129, 129, 0.1f}, {3, 5000, 5056, 0.1f}, {1, 1, 64, 0.0f}, {67, 67, 128, 0.0f},
        {3, 50257, 50304, 0.0f}};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++)
        for (int inplace = 0; inplace < 2; inplace++)
            test_xent(xs[i].N, xs[i].V, xs[i].Vp, xs[i].ls, inplace);

    const size_t sq[] = {1, 7, 1000, 100003, 3000017};
    for (size_t i = 0; i < sizeof sq / sizeof sq[0]; i++) test_sumsq(sq[i]);

    for (int setadam = 0; setadam < 2; setadam++) {
        test_optimizer(setadam, 0.0f);
        test_optimizer(setadam, 1.0f);
    }
    test_setadam_example();

    // ViT ops: SPT and plain patches (1 and 3 channels, non-square), cls/pos, dropout, select
    test_patchify(2, 3, 32, 32, 4, 1);
    test_patchify(3, 1, 28, 28, 7, 1);
    test_patchify(2, 3, 8, 12, 4, 0);
    test_patchify(1, 1, 4, 4, 1, 1);
    test_cls_pos(3, 64, 32);
    test_cls_pos(7, 16, 129);
    test_cls_pos(1, 1, 5);
    test_dropout(1000, 0.1f, 1, 0);
    test_dropout(300001, 0.5f, 99, 1);
    test_dropout(77, 0.0f, 3, 0);
    test_cls_select(4, 65, 512);
    test_cls_select(1, 1, 3);

#ifndef NO_GPT_TEST
    const AttnConfig std_ = attn_config_uniform(ATTN_STD, 0.0f, GAMMA_FIXED);
    test_model_grads(std_);
    test_model_grads(attn_config_uniform(ATTN_X, 0.5f, GAMMA_FIXED));
    test_model_grads(attn_config_uniform(ATTN_XSA, 1.0f, GAMMA_FIXED));
    test_model_grads(attn_config_uniform(ATTN_XSA, 1.0f, GAMMA_HEAD));
    test_model_grads(attn_config_uniform(ATTN_X, 0.5f, GAMMA_LAYER));
    test_model_grads(attn_layers2(ATTN_STD, ATTN_XSA, 1.0f, GAMMA_HEAD));
    test_model_grads(attn_layers2(ATTN_XSA, ATTN_X, 0.5f, GAMMA_LAYER));
    test_model_training(std_);
    test_model_training(attn_config_uniform(ATTN_X, 0.5f, GAMMA_FIXED));
    test_model_training(attn_config_uniform(ATTN_XSA, 1.0f, GAMMA_HEAD));
    test_model_training(attn_layers2(ATTN_STD, ATTN_XSA, 1.0f, GAMMA_LAYER));
    test_vit_grads(VIT_SMALL, 4, std_);
    test_vit_grads(VIT_SMALL, 4, attn_config_uniform(ATTN_X, 1.0f, GAMMA_FIXED));
    test_vit_grads(VIT_PLAIN, 4, attn_config_uniform(ATTN_X, 0.5f, GAMMA_FIXED));
    test_vit_grads(VIT_SMALL, 4, attn_config_uniform(ATTN_XSA, 1.0f, GAMMA_FIXED));
    test_vit_grads(VIT_PLAIN, 4, attn_config_uniform(ATTN_XSA, 1.0f, GAMMA_HEAD));
    test_vit_grads(VIT_PLAIN, 1, attn_config_uniform(ATTN_XSA, 1.0f, GAMMA_HEAD));
    test_vit_grads(VIT_SMALL, 4, attn_layers2(ATTN_XSA, ATTN_STD, 0.5f, GAMMA_LAYER));
    test_vit_training(std_);
    test_vit_training(attn_config_uniform(ATTN_X, 1.0f, GAMMA_FIXED));
    test_vit_training(attn_config_uniform(ATTN_XSA, 1.0f, GAMMA_HEAD));
#ifndef TEST_FAST_CPU
    // the whole models on the bf16 table (MODEL_TOL, TRAIN_TOL)
    {
        const Backend *fp32 = G;
        G = backend_cuda_bf16(NULL);
        g_bf16 = 1;
        if (G) {
            test_model_grads(std_);
            test_model_grads(attn_config_uniform(ATTN_X, 0.5f, GAMMA_FIXED));
            test_model_grads(attn_config_uniform(ATTN_XSA, 1.0f, GAMMA_HEAD));
            test_model_training(std_);
            test_model_training(attn_config_uniform(ATTN_X, 1.0f, GAMMA_FIXED));
            test_vit_grads(VIT_SMALL, 4, std_);
            test_vit_grads(VIT_PLAIN, 1, attn_config_uniform(ATTN_X, 1.0f, GAMMA_FIXED));
            test_vit_training(std_);
            test_vit_training(attn_config_uniform(ATTN_XSA, 1.0f, GAMMA_HEAD));
        }
        G = fp32;
        g_bf16 = 0;
    }
#endif
#endif
    return test_summary(TEST_NAME);
}

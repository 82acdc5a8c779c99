// test_gradcheck.c - every layer's backward against central finite differences,
// in double precision (this file and the ops are compiled with -DREAL=double);
// the method and the error measure are tests/gradcheck.h's.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "src/common.h"
#include "src/gpt.h"
#include "src/rng.h"
#include "tests/gradcheck.h"

// ----------------------------------------------------------------------------
// LayerNorm

typedef struct { int N, C; real *x, *w, *b, *out, *mean, *rstd, *wout; } LnCtx;
static double ln_loss(void *p) {
    LnCtx *c = p;
    be->layernorm_forward(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C);
    return dot(c->out, c->wout, (size_t)c->N * c->C);
}
static void test_layernorm(void) {
    LnCtx c = {.N = 5, .C = 7};
    size_t n = (size_t)c.N * c.C;
    c.x = randn(n, 1.0); c.w = randn(c.C, 1.0); c.b = randn(c.C, 1.0);
    c.out = zeros(n); c.mean = zeros(c.N); c.rstd = zeros(c.N); c.wout = randn(n, 1.0);
    real *dx = zeros(n), *dw = zeros(c.C), *db = zeros(c.C);
    ln_loss(&c);
    be->layernorm_backward(dx, dw, db, c.wout, c.x, c.w, c.mean, c.rstd, c.N, c.C);
    CHECK_GRAD("layernorm dx", ln_loss, &c, c.x, dx, n);
    CHECK_GRAD("layernorm dw", ln_loss, &c, c.w, dw, c.C);
    CHECK_GRAD("layernorm db", ln_loss, &c, c.b, db, c.C);
    free(c.x); free(c.w); free(c.b); free(c.out); free(c.mean); free(c.rstd); free(c.wout);
    free(dx); free(dw); free(db);
}

// ----------------------------------------------------------------------------
// matmul

typedef struct { int N, C, OC; real *x, *w, *b, *out, *wout; } MmCtx;
static double mm_loss(void *p) {
    MmCtx *c = p;
    be->matmul_forward(c->out, c->x, c->w, c->b, c->N, c->C, c->OC);
    return dot(c->out, c->wout, (size_t)c->N * c->OC);
}
static void test_matmul(void) {
    MmCtx c = {.N = 4, .C = 6, .OC = 5};
    c.x = randn((size_t)c.N * c.C, 1); c.w = randn((size_t)c.OC * c.C, 1); c.b = randn(c.OC, 1);
    c.out = zeros((size_t)c.N * c.OC); c.wout = randn((size_t)c.N * c.OC, 1);
    real *dx = nans((size_t)c.N * c.C), *dw = zeros((size_t)c.OC * c.C), *db = zeros(c.OC);
    be->matmul_backward(dx, dw, db, c.wout, c.x, c.w, c.N, c.C, c.OC);   // dx overwritten
    CHECK_GRAD("matmul dx", mm_loss, &c, c.x, dx, (size_t)c.N * c.C);
    CHECK_GRAD("matmul dw", mm_loss, &c, c.w, dw, (size_t)c.OC * c.C);
    CHECK_GRAD("matmul db", mm_loss, &c, c.b, db, c.OC);
    free(c.x); free(c.w); free(c.b); free(c.out); free(c.wout); free(dx); free(dw); free(db);
}

// ----------------------------------------------------------------------------
// GELU

typedef struct { size_t n; real *x, *out, *wout; } GeluCtx;
static double gelu_loss(void *p) {
    GeluCtx *c = p;
    be->gelu_forward(c->out, c->x, c->n);
    return dot(c->out, c->wout, c->n);
}
static void test_gelu(void) {
    GeluCtx c = {.n = 41};
    c.x = randn(c.n, 2.0); c.out = zeros(c.n); c.wout = randn(c.n, 1);
    real *dx = nans(c.n);
    be->gelu_backward(dx, c.x, c.wout, c.n);   // overwritten
    CHECK_GRAD("gelu dx", gelu_loss, &c, c.x, dx, c.n);
    // exact (erf) GELU, not the tanh approximation: gelu(1) = 0.8413447460685429
    real one = 1, y;
    be->gelu_forward(&y, &one, 1);
    CHECK(fabs(y - 0.8413447460685429) < 1e-12, "gelu(1) = %.17g", y);
    // the far negative tail, relatively (1 + erf(x / sqrt 2) would be 0 there):
    // gelu(-10) = -7.6198530241605261e-23, gelu'(-10) = -7.6184000964648141e-22
    real m10 = -10, g1 = 1, dy = NAN;
    be->gelu_forward(&y, &m10, 1);
    be->gelu_backward(&dy, &m10, &g1, 1);
    CHECK(fabs(y / -7.6198530241605261e-23 - 1) < 1e-12, "gelu(-10) = %.17g", y);
    CHECK(fabs(dy / -7.6184000964648141e-22 - 1) < 1e-12, "gelu'(-10) = %.17g", dy);
    free(c.x); free(c.out); free(c.wout); free(dx);
}

// ----------------------------------------------------------------------------
// a variant's transform alone: O = f(Y, V; gamma) (variants.c), its dY, the
// direct dV and dgamma; gamma shared or per head, a row whose V is zero

static const char *const KIND[] = {"std", "x", "xsa"};

typedef struct { int N, C, NH; VariantArgs a; real *y, *qkv, *gamma, *out, *wout; } VarCtx;
static double var_loss(void *p) {
    VarCtx *c = p;
    be->variant_forward(c->out, c->y, c->qkv, c->N, c->C, c->NH, &c->a);
    return dot(c->out, c->wout, (size_t)c->N * c->C);
}
static void test_variant(int kind, int per_head, int in_place) {
    VarCtx c = {.N = 5, .C = 6, .NH = 3};
    const size_t n = (size_t)c.N * c.C;
    c.y = randn(n, 1); c.qkv = randn(3 * n, 1); c.out = zeros(n); c.wout = randn(n, 1);
    c.gamma = randn(c.NH, 1);
    for (int k = 2 * c.C; k < 3 * c.C; k++) c.qkv[3 * c.C + k] = 0;   // row 1: V = 0
    real *dgamma = zeros(c.NH), *dqkv = zeros(3 * n), *dy = zeros(n), *g = xmalloc(n * sizeof(real));
    c.a = (VariantArgs){.kind = kind, .gamma = c.gamma, .per_head = per_head, .dgamma = dgamma};
    memcpy(g, c.wout, n * sizeof(real));
    be->variant_backward(in_place ? g : dy, dqkv, g, c.y, c.qkv, c.N, c.C, c.NH, &c.a);
    if (in_place) memcpy(dy, g, n * sizeof(real));
    char what[96];
    snprintf(what, sizeof what, "variant %s gamma %s%s", KIND[kind], per_head ? "per head" : "shared",
             in_place ? " (dy in place)" : "");
    char w[128];
    snprintf(w, sizeof w, "%s: dy", what);
    CHECK_GRAD(w, var_loss, &c, c.y, dy, n);
    snprintf(w, sizeof w, "%s: dqkv", what);
    CHECK_GRAD(w, var_loss, &c, c.qkv, dqkv, 3 * n);   // Q and K thirds: 0 both ways
    snprintf(w, sizeof w, "%s: dgamma", what);
    if (kind != ATTN_STD) CHECK_GRAD(w, var_loss, &c, c.gamma, dgamma, per_head ? (size_t)c.NH : 1);
    var_loss(&c);
    int finite = 1;
    for (size_t i = 0; i < n; i++) finite &= isfinite(c.out[i]) && isfinite(dy[i]);
    CHECK(finite, "%s: a zero V row must give finite O and dY", what);
    // gamma 0: O = Y and dY = G exactly, dV and dgamma's other terms untouched
    real zero = 0;
    VarCtx z = c;
    z.a = (VariantArgs){.kind = kind, .gamma = &zero};
    var_loss(&z);
    real *dq0 = zeros(3 * n);
    be->variant_backward(dy, dq0, c.wout, c.y, c.qkv, c.N, c.C, c.NH, &z.a);
    CHECK(!memcmp(z.out, c.y, n * sizeof(real)) && !memcmp(dy, c.wout, n * sizeof(real)),
          "%s with gamma 0: O must be Y and dY must be G bit for bit", KIND[kind]);
    int dv_zero = 1;
    for (size_t i = 0; i < 3 * n; i++) dv_zero &= dq0[i] == 0;
    CHECK(dv_zero, "%s with gamma 0: no direct dV", KIND[kind]);
    free(c.y); free(c.qkv); free(c.out); free(c.wout); free(c.gamma);
    free(dgamma); free(dqkv); free(dy); free(g); free(dq0);
}

// ----------------------------------------------------------------------------
// attention: the core then a variant, every mask, the LSA temperature, T = 1

typedef struct { int B, T, C, NH; AttnArgs a; VariantArgs v; real *qkv, *out, *y, *saved, *wout; } AttnCtx;
static double attn_loss(void *p) {
    AttnCtx *c = p;
    be->attention_forward(c->y, c->saved, c->qkv, c->B, c->T, c->C, c->NH, &c->a);
    const real *o = c->y;
    if (c->v.kind != ATTN_STD) {
        be->variant_forward(c->out, c->y, c->qkv, c->B * c->T, c->C, c->NH, &c->v);
        o = c->out;
    }
    return dot(o, c->wout, (size_t)c->B * c->T * c->C);
}
static void test_attention(int mask, int kind, double gamma, int lsa, int T) {
    AttnCtx c = {.B = 2, .T = T, .C = 6, .NH = 2};
    size_t n = (size_t)c.B * c.T * c.C;
    real log_temp = -0.4, dlog_temp = 0, g = gamma, dgamma = 0;
    c.a = (AttnArgs){.mask = mask, .scale = 1 / sqrt(3.0), .log_temp = lsa ? &log_temp : NULL,
                     .dlog_temp = lsa ? &dlog_temp : NULL};
    c.v = (VariantArgs){.kind = kind, .gamma = &g, .dgamma = &dgamma};
    c.qkv = randn(3 * n, 1); c.out = zeros(n); c.y = zeros(n); c.wout = randn(n, 1);
    c.saved = zeros(be->attention_saved_floats(c.B, c.NH, c.T));
    real *dqkv = zeros(3 * n), *dy = xmalloc(n * sizeof(real));
    memcpy(dy, c.wout, n * sizeof(real));
    attn_loss(&c);
    if (kind != ATTN_STD)
        be->variant_backward(dy, dqkv, dy, c.y, c.qkv, c.B * c.T, c.C, c.NH, &c.v);
    be->attention_backward(dqkv, dy, c.qkv, c.y, c.saved, c.B, c.T, c.C, c.NH, &c.a);
    char what[96];
    snprintf(what, sizeof what, "attention mask %d T %d %s gamma %g%s", mask, T, KIND[kind], gamma,
             lsa ? " lsa" : "");
    char w[128];
    snprintf(w, sizeof w, "%s: dqkv", what);
    CHECK_GRAD(w, attn_loss, &c, c.qkv, dqkv, 3 * n);
    if (kind != ATTN_STD) {
        snprintf(w, sizeof w, "%s: dgamma", what);
        CHECK_GRAD(w, attn_loss, &c, &g, &dgamma, 1);
    }
    if (lsa) {
        snprintf(w, sizeof w, "%s: dt", what);
        CHECK_GRAD(w, attn_loss, &c, &log_temp, &dlog_temp, 1);
    }
    // causal: output row i must not depend on any later token
    if (mask == MASK_CAUSAL && T > 1) {
        const real *o = kind != ATTN_STD ? c.out : c.y;
        real *before = xmalloc(n * sizeof(real));
        attn_loss(&c);
        memcpy(before, o, n * sizeof(real));
        for (int k = 0; k < 3 * c.C; k++) c.qkv[(size_t)(c.T - 1) * 3 * c.C + k] += 1.0;   // b=0, t=T-1
        attn_loss(&c);
        int same = 1;
        for (int t = 0; t < c.T - 1; t++)
            for (int k = 0; k < c.C; k++) same &= before[(size_t)t * c.C + k] == o[(size_t)t * c.C + k];
        CHECK(same, "causal attention: earlier outputs changed when the last token changed");
        free(before);
    }
    free(c.qkv); free(c.out); free(c.y); free(c.wout); free(c.saved); free(dqkv); free(dy);
}

// ----------------------------------------------------------------------------
// softmax cross-entropy with ignored targets, vocabulary padding, smoothing

typedef struct { int N, V, Vp; float ls, scale; real *logits, *probs, *losses; int *targets; } XentCtx;
static double xent_loss(void *p) {
    XentCtx *c = p;
    be->xent_forward(c->losses, c->probs, NULL, c->logits, c->targets, c->N, c->V, c->Vp, c->ls);
    double s = 0;
    for (int i = 0; i < c->N; i++) s += c->scale * c->losses[i];
    return s;
}
static void test_xent(float smoothing) {
    XentCtx c = {.N = 6, .V = 5, .Vp = 8, .ls = smoothing, .scale = 0.37f};
    size_t n = (size_t)c.N * c.Vp;
    c.logits = randn(n, 2); c.probs = zeros(n); c.losses = zeros(c.N);
    int targets[6] = {0, -1, 4, 2, -1, 3};
    c.targets = targets;
    real *dlogits = zeros(n);
    xent_loss(&c);
    memcpy(dlogits, c.logits, n * sizeof(real));
    real *losses = zeros(c.N);
    be->xent_forward_backward(losses, NULL, dlogits, c.targets, c.N, c.V, c.Vp, c.ls, c.scale);
    CHECK(!memcmp(losses, c.losses, c.N * sizeof(real)), "xent_forward_backward's losses differ from xent_forward's");
    free(losses);
    char what[64];
    snprintf(what, sizeof what, "xent smoothing %g dlogits", smoothing);
    CHECK_GRAD(what, xent_loss, &c, c.logits, dlogits, n);
    int ok = 1;
    for (int i = 0; i < c.N; i++) {
        for (int k = c.V; k < c.Vp; k++) ok &= c.probs[(size_t)i * c.Vp + k] == 0 && dlogits[(size_t)i * c.Vp + k] == 0;
        if (targets[i] < 0) ok &= c.losses[i] == 0;
    }
    CHECK(ok, "xent: padded columns must have probability and gradient 0, ignored rows loss 0");
    free(c.logits); free(c.probs); free(c.losses); free(dlogits);
}

// ----------------------------------------------------------------------------
// embeddings

typedef struct { int B, T, C; int *tokens; real *wte, *wpe, *out, *wout; } EmbCtx;
static double emb_loss(void *p) {
    EmbCtx *c = p;
    be->embed_forward(c->out, c->tokens, c->wte, c->wpe, c->B, c->T, c->C);
    return dot(c->out, c->wout, (size_t)c->B * c->T * c->C);
}
static void test_embedding(void) {
    int tokens[6] = {3, 1, 3, 0, 2, 3};
    EmbCtx c = {.B = 2, .T = 3, .C = 4, .tokens = tokens};
    int V = 5;
    c.wte = randn((size_t)V * c.C, 1); c.wpe = randn((size_t)c.T * c.C, 1);
    c.out = zeros(24); c.wout = randn(24, 1);
    real *dwte = zeros((size_t)V * c.C), *dwpe = zeros((size_t)c.T * c.C);
    be->embed_backward(dwte, dwpe, c.wout, tokens, tokens, c.B, c.T, c.C);
    CHECK_GRAD("embedding dwte", emb_loss, &c, c.wte, dwte, (size_t)V * c.C);
    CHECK_GRAD("embedding dwpe", emb_loss, &c, c.wpe, dwpe, (size_t)c.T * c.C);
    free(c.wte); free(c.wpe); free(c.out); free(c.wout); free(dwte); free(dwpe);
}

// ----------------------------------------------------------------------------
// the whole model: every parameter, including the tied head through wte

typedef struct { GPT *m; int *in, *tg; int B, T; } ModelCtx;
static double model_loss(void *p) {
    ModelCtx *c = p;
    return gpt_forward(c->m, c->in, c->tg, c->B, c->T);
}
// attn: the kind of every layer, or -1 for layer 0 std and layer 1 xsa
static void test_model(int attn, double gamma, int learn, int bias) {
    GPTConfig cfg = {.vocab = 11, .padded_vocab = 16, .max_seq = 4, .layers = 2, .heads = 2,
                     .embd = 8, .bias = bias,
                     .attn = attn_config_uniform(attn < 0 ? ATTN_XSA : attn, (float)gamma, learn)};
    if (attn < 0) cfg.attn.kind[0] = ATTN_STD;
    GPT m;
    gpt_build(&m, &cfg, be, 2);
    gpt_init_weights(&m, 7);
    // larger weights than GPT-2's init, so every path carries real gradient
    for (size_t i = 0; i < m.layout.num_params; i++) m.params[i] += rng_normal(&rng) * 0.3;
    int in[8] = {1, 5, 10, 3, 0, 7, 7, 2}, tg[8] = {5, -1, 3, 9, 7, 7, -1, 4};
    ModelCtx c = {&m, in, tg, 2, 4};
    gpt_zero_grad(&m);
    gpt_forward_train(&m, in, tg, 2, 4, 1.0f, 0);
    gpt_backward(&m);
    real *grads = xmalloc(m.layout.num_params * sizeof(real));
    memcpy(grads, m.grads, m.layout.num_params * sizeof(real));
    for (int k = 0; k < m.layout.num_tensors; k++) {
        ParamSlice t = m.layout.tensors[k];
        if (!t.size) continue;
        char what[96];
        snprintf(what, sizeof what, "model %s gamma %g learn %s bias %d: d%s", attn < 0 ? "std,xsa" : KIND[attn],
                 gamma, gamma_learn_name(learn), bias, m.layout.tensor_names[k]);
        CHECK_GRAD(what, model_loss, &c, m.params + t.offset, grads + t.offset, t.size);
    }
    // gpt_forward_train's scaling: grad_scale 3 over a loss count of 12 (of 6
    // valid targets here) is 1.5 times the mean loss's gradient
    gpt_zero_grad(&m);
    gpt_forward_train(&m, in, tg, 2, 4, 3.0f, 12);
    gpt_backward(&m);
    double diff = 0, norm = 0;   // |g - 1.5 g0|_1 / |1.5 g0|_1
    for (size_t i = 0; i < m.layout.num_params; i++) {
        diff += fabs(m.grads[i] - 1.5 * grads[i]);
        norm += fabs(1.5 * grads[i]);
    }
    CHECK(diff <= 1e-6 * norm, "gpt_forward_train(grad_scale 3, loss_count 12): gradients %.3g off 1.5x",
          diff / norm);
    free(grads);
    gpt_free(&m);
}

int main(void) {
    rng_seed(&rng, 42);
    test_layernorm();
    test_matmul();
    test_gelu();
    int masks[3] = {MASK_CAUSAL, MASK_NONE, MASK_DIAG};
    for (int kind = 0; kind < ATTN_NUM_KINDS; kind++)
        for (int per_head = 0; per_head < 2; per_head++) {
            test_variant(kind, per_head, 0);
            test_variant(kind, per_head, 1);
        }
    for (int k = 0; k < 3; k++) {
        test_attention(masks[k], ATTN_STD, 0, 0, 5);
        test_attention(masks[k], ATTN_X, 0, 0, 5);
        test_attention(masks[k], ATTN_X, 0.5, 0, 5);
        test_attention(masks[k], ATTN_X, 1, 0, 5);
        test_attention(masks[k], ATTN_X, 1, 1, 5);
        test_attention(masks[k], ATTN_STD, 0, 1, 5);
        test_attention(masks[k], ATTN_XSA, 1, 0, 5);
        test_attention(masks[k], ATTN_XSA, 0.5, 1, 5);
        // T = 1: Y = V (no mask) or 0 (diagonal); xsa at gamma 1 would leave O ~ 1e-6 V,
        // gradients too small for finite differences to resolve
        test_attention(masks[k], ATTN_XSA, 0.5, 0, 1);
        test_attention(masks[k], ATTN_X, 1, 0, 1);
    }
    test_xent(0);
    test_xent(0.1f);
    test_embedding();
    test_model(ATTN_STD, 0, GAMMA_FIXED, 1);
    test_model(ATTN_X, 0.5, GAMMA_FIXED, 1);
    test_model(ATTN_X, 1, GAMMA_FIXED, 0);
    test_model(ATTN_XSA, 1, GAMMA_FIXED, 1);
    test_model(ATTN_X, 0.5, GAMMA_LAYER, 1);
    test_model(ATTN_XSA, 0.7, GAMMA_HEAD, 1);
    test_model(-1, 0.7, GAMMA_HEAD, 0);   // std, xsa: one variant layer's gammas
    return test_summary("test_gradcheck");
}

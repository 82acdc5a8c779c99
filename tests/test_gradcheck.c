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
    real *dx = zeros((size_t)c.N * c.C), *dw = zeros((size_t)c.OC * c.C), *db = zeros(c.OC);
    be->matmul_backward(dx, dw, db, c.wout, c.x, c.w, c.N, c.C, c.OC);
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
    real *dx = zeros(c.n);
    be->gelu_backward(dx, c.x, c.wout, c.n);
    CHECK_GRAD("gelu dx", gelu_loss, &c, c.x, dx, c.n);
    // exact (erf) GELU, not the tanh approximation: gelu(1) = 0.8413447460685429
    real one = 1, y;
    be->gelu_forward(&y, &one, 1);
    CHECK(fabs(y - 0.8413447460685429) < 1e-12, "gelu(1) = %.17g", y);
    free(c.x); free(c.out); free(c.wout); free(dx);
}

// ----------------------------------------------------------------------------
// attention, both modes, every mask, the LSA temperature

typedef struct { int B, T, C, NH; AttnArgs a; real *qkv, *out, *y, *saved, *wout; } AttnCtx;
static double attn_loss(void *p) {
    AttnCtx *c = p;
    be->attention_forward(c->out, c->y, c->saved, c->qkv, c->B, c->T, c->C, c->NH, &c->a);
    return dot(c->out, c->wout, (size_t)c->B * c->T * c->C);
}
static void test_attention(int mask, int x, double gamma, int lsa) {
    AttnCtx c = {.B = 2, .T = 5, .C = 6, .NH = 2};
    size_t n = (size_t)c.B * c.T * c.C;
    real log_temp = -0.4, dlog_temp = 0;
    c.a = (AttnArgs){.mask = mask, .x = x, .gamma = (float)gamma, .scale = 1 / sqrt(3.0),
                     .log_temp = lsa ? &log_temp : NULL, .dlog_temp = lsa ? &dlog_temp : NULL};
    c.qkv = randn(3 * n, 1); c.out = zeros(n); c.y = zeros(n); c.wout = randn(n, 1);
    c.saved = zeros(be->attention_saved_floats(c.B, c.NH, c.T));
    real *dqkv = zeros(3 * n);
    attn_loss(&c);
    be->attention_backward(dqkv, c.wout, c.qkv, c.y, c.saved, c.B, c.T, c.C, c.NH, &c.a);
    char what[96];
    snprintf(what, sizeof what, "attention mask %d %s gamma %g%s dqkv", mask, x ? "x" : "std",
             gamma, lsa ? " lsa" : "");
    CHECK_GRAD(what, attn_loss, &c, c.qkv, dqkv, 3 * n);
    if (lsa) {
        snprintf(what, sizeof what, "attention mask %d %s lsa dt", mask, x ? "x" : "std");
        CHECK_GRAD(what, attn_loss, &c, &log_temp, &dlog_temp, 1);
    }
    // causal: output row i must not depend on any later token
    if (mask == MASK_CAUSAL) {
        real *before = xmalloc(n * sizeof(real));
        attn_loss(&c);
        memcpy(before, c.out, n * sizeof(real));
        for (int k = 0; k < 3 * c.C; k++) c.qkv[(size_t)(c.T - 1) * 3 * c.C + k] += 1.0;   // b=0, t=T-1
        attn_loss(&c);
        int same = 1;
        for (int t = 0; t < c.T - 1; t++)
            for (int k = 0; k < c.C; k++) same &= before[(size_t)t * c.C + k] == c.out[(size_t)t * c.C + k];
        CHECK(same, "causal attention: earlier outputs changed when the last token changed");
        free(before);
    }
    free(c.qkv); free(c.out); free(c.y); free(c.wout); free(c.saved); free(dqkv);
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
    be->xent_backward(dlogits, c.probs, c.targets, c.N, c.V, c.Vp, c.ls, c.scale);
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
static void test_model(int attn_x, double gamma, int bias) {
    GPTConfig cfg = {.vocab = 11, .padded_vocab = 16, .max_seq = 4, .layers = 2, .heads = 2,
                     .embd = 8, .bias = bias, .attn_x = attn_x, .gamma = (float)gamma};
    GPT m;
    gpt_build(&m, &cfg, be, 2);
    gpt_init_weights(&m, 7);
    // larger weights than GPT-2's init, so every path carries real gradient
    for (size_t i = 0; i < m.layout.num_params; i++) m.params[i] += rng_normal(&rng) * 0.3;
    int in[8] = {1, 5, 10, 3, 0, 7, 7, 2}, tg[8] = {5, -1, 3, 9, 7, 7, -1, 4};
    ModelCtx c = {&m, in, tg, 2, 4};
    gpt_zero_grad(&m);
    model_loss(&c);
    gpt_backward(&m, 1.0f);
    real *grads = xmalloc(m.layout.num_params * sizeof(real));
    memcpy(grads, m.grads, m.layout.num_params * sizeof(real));
    for (int k = 0; k < m.layout.num_tensors; k++) {
        ParamSlice t = m.layout.tensors[k];
        if (!t.size) continue;
        char what[96];
        snprintf(what, sizeof what, "model %s gamma %g bias %d: d%s", attn_x ? "x" : "std", gamma,
                 bias, m.layout.tensor_names[k]);
        CHECK_GRAD(what, model_loss, &c, m.params + t.offset, grads + t.offset, t.size);
    }
    free(grads);
    gpt_free(&m);
}

int main(void) {
    rng_seed(&rng, 42);
    test_layernorm();
    test_matmul();
    test_gelu();
    int masks[3] = {MASK_CAUSAL, MASK_NONE, MASK_DIAG};
    for (int k = 0; k < 3; k++) {
        test_attention(masks[k], 0, 0, 0);
        test_attention(masks[k], 1, 0, 0);
        test_attention(masks[k], 1, 0.5, 0);
        test_attention(masks[k], 1, 1, 0);
        test_attention(masks[k], 1, 1, 1);
        test_attention(masks[k], 0, 0, 1);
    }
    test_xent(0);
    test_xent(0.1f);
    test_embedding();
    test_model(0, 0, 1);
    test_model(1, 0.5, 1);
    test_model(1, 1, 0);
    return test_summary("test_gradcheck");
}

// test_gradcheck_vit.c - the ViT ops and the whole ViT against central finite
// differences in double precision (this file, the ops and src/vit.c are
// compiled with -DREAL=double), plus the SPT geometry on known images and the
// dropout masks' reproducibility.
//
// The method and the error measure are tests/gradcheck.h's.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "src/common.h"
#include "src/rng.h"
#include "src/vit.h"
#include "tests/gradcheck.h"

static double worst_model_error = 0;

// ----------------------------------------------------------------------------
// cls token + position embedding

typedef struct { int B, Np, D; real *x, *cls, *pos, *out, *wout; } ClsPosCtx;
static double cls_pos_loss(void *p) {
    ClsPosCtx *c = p;
    be->cls_pos_forward(c->out, c->x, c->cls, c->pos, c->B, c->Np, c->D);
    return dot(c->out, c->wout, (size_t)c->B * (c->Np + 1) * c->D);
}
static void test_cls_pos(void) {
    ClsPosCtx c = {.B = 3, .Np = 4, .D = 5};
    size_t nx = (size_t)c.B * c.Np * c.D, nout = (size_t)c.B * (c.Np + 1) * c.D;
    c.x = randn(nx, 1); c.cls = randn(c.D, 1); c.pos = randn((size_t)(c.Np + 1) * c.D, 1);
    c.out = zeros(nout); c.wout = randn(nout, 1);
    // backward accumulates: start from nonzero gradients and subtract them after
    real *dx0 = randn(nx, 1), *dcls0 = randn(c.D, 1), *dpos0 = randn((size_t)(c.Np + 1) * c.D, 1);
    real *dx = xmalloc(nx * sizeof(real)), *dcls = xmalloc(c.D * sizeof(real));
    real *dpos = xmalloc((size_t)(c.Np + 1) * c.D * sizeof(real));
    memcpy(dx, dx0, nx * sizeof(real));
    memcpy(dcls, dcls0, c.D * sizeof(real));
    memcpy(dpos, dpos0, (size_t)(c.Np + 1) * c.D * sizeof(real));
    be->cls_pos_backward(dx, dcls, dpos, c.wout, c.B, c.Np, c.D);
    for (size_t i = 0; i < nx; i++) dx[i] -= dx0[i];
    for (int i = 0; i < c.D; i++) dcls[i] -= dcls0[i];
    for (int i = 0; i < (c.Np + 1) * c.D; i++) dpos[i] -= dpos0[i];
    CHECK_GRAD("cls_pos dx", cls_pos_loss, &c, c.x, dx, nx);
    CHECK_GRAD("cls_pos dcls", cls_pos_loss, &c, c.cls, dcls, (size_t)c.D);
    CHECK_GRAD("cls_pos dpos", cls_pos_loss, &c, c.pos, dpos, (size_t)(c.Np + 1) * c.D);
    // forward: row 0 of every image is cls + pos[0]
    cls_pos_loss(&c);
    CHECK(c.out[(size_t)2 * (c.Np + 1) * c.D + 3] == c.cls[3] + c.pos[3], "cls_pos: out[2,0,3] != cls + pos");
    free(c.x); free(c.cls); free(c.pos); free(c.out); free(c.wout);
    free(dx0); free(dcls0); free(dpos0); free(dx); free(dcls); free(dpos);
}

// ----------------------------------------------------------------------------
// cls-token select

typedef struct { int B, T, D; real *x, *out, *wout; } SelCtx;
static double select_loss(void *p) {
    SelCtx *c = p;
    be->cls_select_forward(c->out, c->x, c->B, c->T, c->D);
    return dot(c->out, c->wout, (size_t)c->B * c->D);
}
static void test_cls_select(void) {
    SelCtx c = {.B = 3, .T = 4, .D = 5};
    size_t nx = (size_t)c.B * c.T * c.D;
    c.x = randn(nx, 1); c.out = zeros((size_t)c.B * c.D); c.wout = randn((size_t)c.B * c.D, 1);
    real *dx = zeros(nx);
    be->cls_select_backward(dx, c.wout, c.B, c.T, c.D);
    CHECK_GRAD("cls_select dx", select_loss, &c, c.x, dx, nx);
    free(c.x); free(c.out); free(c.wout); free(dx);
}

// ----------------------------------------------------------------------------
// dropout: with a fixed seed the mask is fixed, so finite differences apply

typedef struct { size_t n; float p; uint64_t seed; real *x, *out, *mask, *wout; } DropCtx;
static double dropout_loss(void *p) {
    DropCtx *c = p;
    be->dropout_forward(c->out, c->mask, c->x, c->n, c->p, c->seed, 0);
    return dot(c->out, c->wout, c->n);
}
static void test_dropout_grad(void) {
    DropCtx c = {.n = 97, .p = 0.3f, .seed = 1234};
    c.x = randn(c.n, 1); c.out = zeros(c.n); c.mask = zeros(c.n); c.wout = randn(c.n, 1);
    dropout_loss(&c);
    real *dx = zeros(c.n);
    be->dropout_backward(dx, c.wout, c.mask, c.n);
    CHECK_GRAD("dropout dx", dropout_loss, &c, c.x, dx, c.n);
    // in place (out == inp) gives the same values
    dropout_loss(&c);
    real *y = xmalloc(c.n * sizeof(real));
    memcpy(y, c.x, c.n * sizeof(real));
    be->dropout_forward(y, c.mask, y, c.n, c.p, c.seed, 0);
    CHECK(!memcmp(y, c.out, c.n * sizeof(real)), "dropout in place differs");
    // p = 0 is the identity, mask 1
    be->dropout_forward(c.out, c.mask, c.x, c.n, 0.0f, c.seed, 0);
    int same = !memcmp(c.out, c.x, c.n * sizeof(real));
    for (size_t i = 0; i < c.n; i++) same &= c.mask[i] == 1;
    CHECK(same, "dropout p = 0 must be the identity");
    free(c.x); free(c.out); free(c.mask); free(c.wout); free(dx); free(y);
}

// masks are a pure function of (seed, index): reproducible, seed-dependent,
// keeping about 1 - p of the elements, each scaled by 1 / (1 - p)
static void test_dropout_masks(void) {
    const size_t n = 200000;
    const float p = 0.25f;
    real *x = xmalloc(n * sizeof(real)), *out = zeros(n), *m1 = zeros(n), *m2 = zeros(n), *m3 = zeros(n);
    for (size_t i = 0; i < n; i++) x[i] = 1;
    be->dropout_forward(out, m1, x, n, p, 77, 0);
    be->dropout_forward(out, m2, x, n, p, 77, 0);
    be->dropout_forward(out, m3, x, n, p, 78, 0);
    CHECK(!memcmp(m1, m2, n * sizeof(real)), "dropout: the same seed must give the same mask");
    size_t differ = 0, kept = 0, bad_values = 0;
    for (size_t i = 0; i < n; i++) {
        differ += m1[i] != m3[i];
        kept += m1[i] != 0;
        bad_values += m1[i] != 0 && fabs(m1[i] - 1.0 / (1.0 - p)) > 1e-12;
    }
    double rate = (double)kept / n;
    // two independent masks disagree on 2 p (1 - p) = 37.5% of the elements
    CHECK(differ > n / 4, "dropout: seeds 77 and 78 differ on only %zu of %zu elements", differ, n);
    CHECK(fabs(rate - (1 - p)) < 0.005, "dropout keep rate %.4f, expected %.4f", rate, 1 - p);
    CHECK(bad_values == 0, "dropout: %zu kept elements are not scaled by 1/(1-p)", bad_values);
    // a prefix of a longer tensor gets the same mask (element index, not position in a call)
    be->dropout_forward(out, m2, x, 1000, p, 77, 0);
    CHECK(!memcmp(m1, m2, 1000 * sizeof(real)), "dropout: the mask must depend on the index only");
    // ... and a piece from `first` on gets that piece of the whole mask (a process's share)
    be->dropout_forward(out, m2, x, 1000, p, 77, 4321);
    CHECK(!memcmp(m1 + 4321, m2, 1000 * sizeof(real)), "dropout: a share from first must get the whole mask's piece");
    printf("dropout p = %.2f: keep rate %.4f over %zu elements\n", p, rate, n);
    free(x); free(out); free(m1); free(m2); free(m3);
}

// ----------------------------------------------------------------------------
// SPT geometry

// A single bright pixel at (y, x) of channel c: copy 0 holds it in place, copy 1
// (shifted right) at x + 1, copy 2 (left) at x - 1, copy 3 (down) at y + 1,
// copy 4 (up) at y - 1, each where it stays inside the image.
static void test_spt_pixel(int C, int Hh, int W, int P, int y, int x, int c) {
    const int Np = (Hh / P) * (W / P), Cs = 5 * C, PD = P * P * Cs;
    real *img = zeros((size_t)C * Hh * W), *out = zeros((size_t)Np * PD), *want = zeros((size_t)Np * PD);
    img[((size_t)c * Hh + y) * W + x] = 1;
    be->patchify_forward(out, img, 1, C, Hh, W, P, 1);
    const int at_y[5] = {y, y, y, y + 1, y - 1}, at_x[5] = {x, x + 1, x - 1, x, x};
    int expected = 0;
    for (int s = 0; s < 5; s++) {
        int yy = at_y[s], xx = at_x[s];
        if (yy < 0 || yy >= Hh || xx < 0 || xx >= W) continue;
        int n = (yy / P) * (W / P) + xx / P;
        want[(size_t)n * PD + ((yy % P) * P + xx % P) * Cs + s * C + c] = 1;
        expected++;
    }
    int ok = !memcmp(out, want, (size_t)Np * PD * sizeof(real));
    int ones = 0;
    for (int i = 0; i < Np * PD; i++) ones += out[i] == 1;
    CHECK(ok && ones == expected, "SPT: pixel (%d,%d) of channel %d in a %dx%dx%d image, patch %d: "
          "%d entries set, expected %d at the shifted places", y, x, c, C, Hh, W, P, ones, expected);
    free(img); free(out); free(want);
}

// plain patches: out[b, n, (i P + j) C + c] = img[b, c, py P + i, px P + j], every value distinct
static void test_plain_patches(void) {
    const int B = 2, C = 3, Hh = 4, W = 6, P = 2, Np = (Hh / P) * (W / P), PD = P * P * C;
    real *img = zeros((size_t)B * C * Hh * W), *out = zeros((size_t)B * Np * PD);
    for (int i = 0; i < B * C * Hh * W; i++) img[i] = i + 1;
    be->patchify_forward(out, img, B, C, Hh, W, P, 0);
    int ok = 1;
    for (int b = 0; b < B; b++)
        for (int n = 0; n < Np; n++)
            for (int i = 0; i < P; i++)
                for (int j = 0; j < P; j++)
                    for (int c = 0; c < C; c++) {
                        int y = (n / (W / P)) * P + i, x = (n % (W / P)) * P + j;
                        ok &= out[((size_t)b * Np + n) * PD + (i * P + j) * C + c] ==
                              img[(((size_t)b * C + c) * Hh + y) * W + x];
                    }
    CHECK(ok, "plain patches: wrong (row-in-patch, col-in-patch, channel) order");
    free(img); free(out);
}

// ----------------------------------------------------------------------------
// the classifier head: cls select, LayerNorm, Linear, softmax cross-entropy

typedef struct {
    int B, T, D, K;
    real *x, *cls, *ln, *mean, *rstd, *lnw, *lnb, *w, *b, *logits, *losses;
    int *labels;
} HeadCtx;
static double head_loss(void *p) {
    HeadCtx *c = p;
    be->cls_select_forward(c->cls, c->x, c->B, c->T, c->D);
    be->layernorm_forward(c->ln, c->mean, c->rstd, c->cls, c->lnw, c->lnb, c->B, c->D);
    be->matmul_forward(c->logits, c->ln, c->w, c->b, c->B, c->D, c->K);
    be->xent_forward(c->losses, c->logits, NULL, c->logits, c->labels, c->B, c->K, c->K, 0.0f);
    double s = 0;
    for (int i = 0; i < c->B; i++) s += c->losses[i] / c->B;
    return s;
}
static void test_head(void) {
    int labels[3] = {2, 0, 4};
    HeadCtx c = {.B = 3, .T = 4, .D = 6, .K = 5, .labels = labels};
    size_t nx = (size_t)c.B * c.T * c.D;
    c.x = randn(nx, 1); c.cls = zeros((size_t)c.B * c.D); c.ln = zeros((size_t)c.B * c.D);
    c.mean = zeros(c.B); c.rstd = zeros(c.B); c.lnw = randn(c.D, 1); c.lnb = randn(c.D, 1);
    c.w = randn((size_t)c.K * c.D, 1); c.b = randn(c.K, 1);
    c.logits = zeros((size_t)c.B * c.K); c.losses = zeros(c.B);
    real *dx = zeros(nx), *dcls = zeros((size_t)c.B * c.D), *dln = zeros((size_t)c.B * c.D);
    real *dlnw = zeros(c.D), *dlnb = zeros(c.D), *dw = zeros((size_t)c.K * c.D), *db = zeros(c.K);
    head_loss(&c);
    // head_loss left the probabilities in place of the logits: the logits again, then dlogits
    be->matmul_forward(c.logits, c.ln, c.w, c.b, c.B, c.D, c.K);
    be->xent_forward_backward(c.losses, NULL, c.logits, labels, c.B, c.K, c.K, 0.0f, 1.0f / c.B);
    be->matmul_backward(dln, dw, db, c.logits, c.ln, c.w, c.B, c.D, c.K);
    be->layernorm_backward(dcls, dlnw, dlnb, dln, c.cls, c.lnw, c.mean, c.rstd, c.B, c.D);
    be->cls_select_backward(dx, dcls, c.B, c.T, c.D);
    CHECK_GRAD("head dx", head_loss, &c, c.x, dx, nx);
    CHECK_GRAD("head dlnw", head_loss, &c, c.lnw, dlnw, (size_t)c.D);
    CHECK_GRAD("head dlnb", head_loss, &c, c.lnb, dlnb, (size_t)c.D);
    CHECK_GRAD("head dw", head_loss, &c, c.w, dw, (size_t)c.K * c.D);
    CHECK_GRAD("head db", head_loss, &c, c.b, db, (size_t)c.K);
    free(c.x); free(c.cls); free(c.ln); free(c.mean); free(c.rstd); free(c.lnw); free(c.lnb);
    free(c.w); free(c.b); free(c.logits); free(c.losses);
    free(dx); free(dcls); free(dln); free(dlnw); free(dlnb); free(dw); free(db);
}

// ----------------------------------------------------------------------------
// the whole ViT: every parameter tensor

enum { MB = 2 };

typedef struct { ViT *m; real *images; int *labels; int train; } ModelCtx;
static double model_loss(void *p) {
    ModelCtx *c = p;
    return vit_forward(c->m, c->images, c->labels, MB, c->train, 4321);
}

// a tiny, non-square configuration: 3 x 8 x 4 images, patch 2 -> 8 patches
static ViTConfig tiny_config(int kind, int attn, double gamma) {
    ViTConfig cfg = {.kind = kind, .channels = 3, .height = 8, .width = 4, .patch = 2,
                     .classes = 5, .dim = 8, .depth = 2, .heads = 2, .mlp_dim = 12,
                     .attn = attn_config_uniform(attn, (float)gamma, GAMMA_FIXED)};
    return cfg;
}

static void test_model(ViTConfig cfg, int train, const char *tag) {
    ViT m;
    vit_build(&m, &cfg, be, MB);
    vit_init_weights(&m, 11);
    // move every parameter off its init (gains off 1, biases off 0, a temperature off its init)
    for (size_t i = 0; i < m.layout.num_params; i++) m.params[i] += rng_normal(&rng) * 0.2;
    size_t npix = (size_t)MB * cfg.channels * cfg.height * cfg.width;
    real *images = randn(npix, 1);
    int labels[MB] = {3, 1};
    ModelCtx c = {&m, images, labels, train};
    vit_zero_grad(&m);
    model_loss(&c);
    vit_backward(&m);
    real *grads = xmalloc(m.layout.num_params * sizeof(real));
    memcpy(grads, m.grads, m.layout.num_params * sizeof(real));
    for (int k = 0; k < m.layout.num_tensors; k++) {
        ParamSlice t = m.layout.tensors[k];
        if (!t.size) continue;
        double e = fd_error(model_loss, &c, m.params + t.offset, grads + t.offset, t.size);
        if (e > worst_model_error) worst_model_error = e;
        CHECK(e < TOL, "vit %s: d%s relative error %.3g >= %g", tag, m.layout.tensor_names[k], e, TOL);
    }
    free(grads);
    free(images);
    vit_free(&m);
}

// eval mode ignores dropout; gamma 0 x and xsa are standard attention bit for bit
static void test_model_properties(void) {
    ViTConfig plain = tiny_config(VIT_SMALL, ATTN_STD, 0), dropped = plain;
    ViTConfig x0 = tiny_config(VIT_SMALL, ATTN_X, 0), xsa0 = tiny_config(VIT_SMALL, ATTN_XSA, 0);
    dropped.dropout = 0.3f;
    dropped.emb_dropout = 0.2f;
    ViT a, b, x, xs;
    vit_build(&a, &plain, be, MB);
    vit_build(&b, &dropped, be, MB);
    vit_build(&x, &x0, be, MB);
    vit_build(&xs, &xsa0, be, MB);
    vit_init_weights(&a, 5);
    vit_init_weights(&b, 5);
    vit_init_weights(&x, 5);
    vit_init_weights(&xs, 5);
    real *images = randn((size_t)MB * 3 * 8 * 4, 1);
    int labels[MB] = {0, 4};
    double la = vit_forward(&a, images, labels, MB, 1, 9);
    double lb = vit_forward(&b, images, labels, MB, 0, 9);
    double lx = vit_forward(&x, images, labels, MB, 1, 9);
    double lxs = vit_forward(&xs, images, labels, MB, 1, 9);
    CHECK(la == lb, "eval mode must not apply dropout (%.17g vs %.17g)", la, lb);
    CHECK(la == lx, "--attn=x --gamma=0 must equal --attn=std (%.17g vs %.17g)", la, lx);
    CHECK(la == lxs, "--attn=xsa --gamma=0 must equal --attn=std (%.17g vs %.17g)", la, lxs);
    // and so do their gradients
    vit_zero_grad(&a);
    vit_zero_grad(&xs);
    vit_forward(&a, images, labels, MB, 1, 9);
    vit_backward(&a);
    vit_forward(&xs, images, labels, MB, 1, 9);
    vit_backward(&xs);
    CHECK(!memcmp(a.grads, xs.grads, a.layout.num_params * sizeof(real)),
          "--attn=xsa --gamma=0: gradients must equal --attn=std's bit for bit");
    vit_free(&xs);
    double lb1 = vit_forward(&b, images, labels, MB, 1, 9);
    double lb2 = vit_forward(&b, images, labels, MB, 1, 9);
    double lb3 = vit_forward(&b, images, labels, MB, 1, 10);
    CHECK(lb1 == lb2 && lb1 != la, "training dropout: reproducible from its seed and active");
    CHECK(lb1 != lb3, "training dropout: another seed gives another loss");
    // init: cls and pos N(0, 1), the temperature log(hs^-0.5), Linear weights within 1/sqrt(fan_in)
    int ok = 1;
    for (int l = 0; l < plain.depth; l++) ok &= fabs(a.log_temp[l] - log(1 / sqrt(4.0))) < 1e-15;
    double bound = 1 / sqrt((double)a.patch_dim), maxw = 0;
    for (size_t i = 0; i < (size_t)plain.dim * a.patch_dim; i++) maxw = fmax(maxw, fabs(a.patch_w[i]));
    ok &= maxw <= bound && maxw > 0.8 * bound;
    ok &= a.ln1w[0] == 1 && a.ln1b[0] == 0 && a.patch_lnw[0] == 1 && a.head_lnb[0] == 0;
    CHECK(ok, "vit init: temperature, Linear bounds or LayerNorm constants wrong");
    free(images);
    vit_free(&a);
    vit_free(&b);
    vit_free(&x);
}

int main(void) {
    rng_seed(&rng, 2024);
    test_cls_pos();
    test_cls_select();
    test_dropout_grad();
    test_dropout_masks();
    test_head();
    // SPT: inside, on each border, in a corner; 1 and 3 channels
    test_spt_pixel(1, 8, 8, 4, 5, 2, 0);
    test_spt_pixel(3, 8, 8, 4, 3, 4, 2);
    test_spt_pixel(3, 8, 12, 4, 0, 11, 1);
    test_spt_pixel(1, 6, 6, 3, 5, 0, 0);
    test_spt_pixel(1, 28, 28, 7, 13, 20, 0);
    test_plain_patches();

    test_model(tiny_config(VIT_SMALL, ATTN_STD, 0), 0, "small std");
    test_model(tiny_config(VIT_SMALL, ATTN_X, 1), 0, "small x gamma 1");
    test_model(tiny_config(VIT_SMALL, ATTN_XSA, 1), 0, "small xsa gamma 1");
    test_model(tiny_config(VIT_PLAIN, ATTN_STD, 0), 0, "plain std");
    test_model(tiny_config(VIT_PLAIN, ATTN_X, 0.5), 0, "plain x gamma 0.5");
    test_model(tiny_config(VIT_PLAIN, ATTN_XSA, 0.5), 0, "plain xsa gamma 0.5");
    ViTConfig learn_head = tiny_config(VIT_SMALL, ATTN_XSA, 0.7);
    learn_head.attn.learn = GAMMA_HEAD;
    test_model(learn_head, 0, "small xsa gamma learned per head");
    ViTConfig learn_layer = tiny_config(VIT_PLAIN, ATTN_X, 0.7);
    learn_layer.attn.learn = GAMMA_LAYER;
    learn_layer.attn.kind[0] = ATTN_STD;   // std, x: one learned gamma
    test_model(learn_layer, 0, "plain std,x gamma learned per layer");
    ViTConfig one_head = tiny_config(VIT_PLAIN, ATTN_X, 1);   // no output projection (models/vit.py)
    one_head.heads = 1;
    test_model(one_head, 0, "plain one head");
    one_head.attn = attn_config_uniform(ATTN_XSA, 1, GAMMA_HEAD);   // dY apart from the residual's dO
    test_model(one_head, 0, "plain one head xsa learned");
    ViTConfig dropped = tiny_config(VIT_SMALL, ATTN_X, 1);   // fixed masks: dropout inside the model
    dropped.dropout = 0.3f;
    dropped.emb_dropout = 0.2f;
    dropped.label_smoothing = 0.1f;
    test_model(dropped, 1, "small x dropout + smoothing");
    printf("whole ViT: worst relative error vs finite differences %.2e\n", worst_model_error);
    test_model_properties();
    return test_summary("test_gradcheck_vit");
}

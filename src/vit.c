// vit.c - ViT-small and the plain ViT over the op table (see vit.h).
//
//   patches = SPT(images): the image and its four one-pixel shifts, cut into
//             P x P patches                       (plain ViT: the raw patches)
//   e = Linear(LN(patches))                       (plain ViT: Linear(patches))
//   x = dropout([cls; e] + pos)
//   per layer:  x = x + dropout(attnproj(Attn(qkv(LN1(x)))))
//               x = x + dropout(fcproj(dropout(GELU(fc(LN2(x))))))
//   logits = head(LN_head(x[:, 0]))
//
// Attn: ViT-small's LSA (scale exp(t) with a learned t per layer, the diagonal
// masked) or the plain ViT's (scale 1/sqrt(head size), no mask); either one
// the core then layer l's variant transform (cfg.attn.kind[l]). qkv has no bias. The model
// never touches memory itself: every computation is an op of m->be.
#include "vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "rng.h"

// ----------------------------------------------------------------------------
// parameter layout

// how vit_init_weights fills a tensor (ViT.tensor_init)
enum { INIT_ONE, INIT_ZERO, INIT_NORMAL, INIT_UNIFORM, INIT_LOG_TEMP, INIT_GAMMA };

typedef struct {
    int kind;
    size_t fan_in;   // INIT_UNIFORM: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
} Init;

// params_add, remembering how vit_init_weights fills the tensor
static int add_tensor(ViT *m, const char *name, int layers, size_t rows, size_t cols, int present,
                      Init init) {
    int k = params_add(&m->layout, name, layers, rows, cols, present);
    m->tensor_init[k] = init.kind;
    m->tensor_fan_in[k] = init.fan_in;
    return k;
}

typedef struct {
    real **view;   // the ViT field that points at the tensor
    int k;         // its index in m->layout.tensors
} TensorView;

static void layout_params(ViT *m) {
    const ViTConfig *c = &m->cfg;
    const size_t D = c->dim, M = c->mlp_dim, K = c->classes, PD = m->patch_dim, T = m->seq;
    const int L = c->depth, spt = c->kind == VIT_SMALL, proj = m->project_out;
    const Init one = {INIT_ONE, 0}, zero = {INIT_ZERO, 0}, normal = {INIT_NORMAL, 0};
    const Init lin_pd = {INIT_UNIFORM, PD}, lin_d = {INIT_UNIFORM, D}, lin_m = {INIT_UNIFORM, M};
    // one statement per tensor: the layout order is the order of these lines
    TensorView t[PARAMS_MAX_TENSORS];
    int n = 0;
#define ADD(view_, ...) t[n++] = (TensorView){&m->view_, add_tensor(m, __VA_ARGS__)}
    ADD(patch_lnw, "patch_lnw", 1, PD, 1, spt, one);
    ADD(patch_lnb, "patch_lnb", 1, PD, 1, spt, zero);
    ADD(patch_w, "patch_w", 1, D, PD, 1, lin_pd);
    ADD(patch_b, "patch_b", 1, D, 1, 1, lin_pd);
    ADD(cls, "cls", 1, D, 1, 1, normal);
    ADD(pos, "pos", 1, T, D, 1, normal);
    ADD(ln1w, "ln1w", L, D, 1, 1, one);
    ADD(ln1b, "ln1b", L, D, 1, 1, zero);
    ADD(qkvw, "qkvw", L, 3 * D, D, 1, lin_d);
    ADD(log_temp, "log_temp", L, 1, 1, spt, (Init){INIT_LOG_TEMP, 0});
    ADD(attprojw, "attprojw", L, D, D, proj, lin_d);
    ADD(attprojb, "attprojb", L, D, 1, proj, lin_d);
    ADD(ln2w, "ln2w", L, D, 1, 1, one);
    ADD(ln2b, "ln2b", L, D, 1, 1, zero);
    ADD(fcw, "fcw", L, M, D, 1, lin_d);
    ADD(fcb, "fcb", L, M, 1, 1, lin_d);
    ADD(fcprojw, "fcprojw", L, D, M, 1, lin_m);
    ADD(fcprojb, "fcprojb", L, D, 1, 1, lin_m);
    ADD(head_lnw, "head_lnw", 1, D, 1, 1, one);
    ADD(head_lnb, "head_lnb", 1, D, 1, 1, zero);
    ADD(head_w, "head_w", 1, K, D, 1, lin_d);
    ADD(head_b, "head_b", 1, K, 1, 1, lin_d);
    // learned gammas: vectors (no weight decay), one optimizer slice per variant layer
    const int nvar = attn_num_variant_layers(&c->attn, L), G = attn_gammas_per_layer(&c->attn, c->heads);
    ADD(attn_gamma, "attn_gamma", nvar, G, 1, nvar > 0 && G > 0, (Init){INIT_GAMMA, 0});
#undef ADD
    m->params = m->be->alloc(m->layout.num_params * sizeof(real));
    m->grads = m->be->alloc(m->layout.num_params * sizeof(real));
    for (int i = 0; i < n; i++) {
        ParamSlice ts = m->layout.tensors[t[i].k];
        *t[i].view = ts.size ? m->params + ts.offset : NULL;
    }
}

// the gradient of a parameter view, `offset` elements in (NULL where absent)
static real *grad_at(const ViT *m, const real *param, size_t offset) {
    return param ? m->grads + (param - m->params) + offset : NULL;
}
static real *param_at(const real *param, size_t offset) {
    return param ? (real *)param + offset : NULL;
}

// one layer's parameters (or their gradients)
typedef struct {
    real *ln1w, *ln1b, *qkvw, *log_temp, *attprojw, *attprojb;
    real *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
} LayerParams;

static LayerParams layer_params(const ViT *m, int l, int grads) {
    const size_t D = m->cfg.dim, M = m->cfg.mlp_dim, lz = (size_t)l;
#define VIEW(p, n) (grads ? grad_at(m, m->p, lz * (n)) : param_at(m->p, lz * (n)))
    LayerParams p = {
        VIEW(ln1w, D),       VIEW(ln1b, D),     VIEW(qkvw, 3 * D * D), VIEW(log_temp, 1),
        VIEW(attprojw, D * D), VIEW(attprojb, D), VIEW(ln2w, D),        VIEW(ln2b, D),
        VIEW(fcw, M * D),    VIEW(fcb, M),      VIEW(fcprojw, D * M),  VIEW(fcprojb, D),
    };
#undef VIEW
    return p;
}

// ----------------------------------------------------------------------------
// activations

static int dropout_on(const ViT *m) { return m->cfg.dropout > 0; }
static int emb_dropout_on(const ViT *m) { return m->cfg.emb_dropout > 0; }

// per-layer scratch for activation gradients, in rows of B*T: dfcproj, dattproj,
// dln2, datto, dln1 (D each), dqkv (3D), dgelu_dropped, dgelu, dfch (M each)
static size_t layer_scratch_per_row(const ViT *m) {
    return 8 * (size_t)m->cfg.dim + 3 * (size_t)m->cfg.mlp_dim;
}

static void layout_activations(ViT *m) {
    const ViTConfig *c = &m->cfg;
    const size_t Bm = m->max_batch, T = m->seq, Np = m->num_patches, PD = m->patch_dim;
    const size_t D = c->dim, M = c->mlp_dim, K = c->classes, L = c->depth;
    const size_t N = Bm * T, NP = Bm * Np;
    const int spt = c->kind == VIT_SMALL, drop = dropout_on(m);
    const size_t saved = m->be->attention_saved_floats(m->max_batch, c->heads, m->seq);
    struct { real **ptr; size_t n; } a[] = {
        {&m->images, Bm * c->channels * c->height * c->width},
        {&m->patches, NP * PD},             {&m->patch_ln, spt ? NP * PD : 0},
        {&m->patch_ln_mean, spt ? NP : 0},  {&m->patch_ln_rstd, spt ? NP : 0},
        {&m->patch_emb, NP * D},            {&m->encoded, N * D},
        {&m->emb_mask, emb_dropout_on(m) ? N * D : 0},
        {&m->ln1, L * N * D},               {&m->ln1_mean, L * N},      {&m->ln1_rstd, L * N},
        {&m->qkv, L * N * 3 * D},           {&m->atty, L * N * D},
        {&m->atto, attn_num_variant_layers(&c->attn, L) ? L * N * D : 0}, {&m->att_saved, L * saved},
        {&m->attproj, m->project_out ? L * N * D : 0},
        {&m->attproj_mask, m->project_out && drop ? L * N * D : 0},
        {&m->residual2, L * N * D},         {&m->ln2, L * N * D},
        {&m->ln2_mean, L * N},              {&m->ln2_rstd, L * N},
        {&m->fch, L * N * M},               {&m->fch_gelu, L * N * M},
        {&m->fch_mask, drop ? L * N * M : 0},                           {&m->fcproj, L * N * D},
        {&m->fcproj_mask, drop ? L * N * D : 0},                        {&m->residual3, L * N * D},
        {&m->cls_out, Bm * D},              {&m->head_ln, Bm * D},
        {&m->head_ln_mean, Bm},             {&m->head_ln_rstd, Bm},
        {&m->logits, Bm * K},               {&m->losses, Bm},
    };
    size_t total = 0;
    for (size_t k = 0; k < sizeof a / sizeof a[0]; k++) total += a[k].n;
    m->acts = m->be->alloc(total * sizeof(real));
    size_t off = 0;
    for (size_t k = 0; k < sizeof a / sizeof a[0]; k++) {
        *a[k].ptr = a[k].n ? m->acts + off : NULL;
        off += a[k].n;
    }
    // the largest of: one layer's scratch; the head's dhead_ln and dcls_out;
    // the embedding's dencoded, dpatch_emb and dpatch_ln
    size_t layer = N * layer_scratch_per_row(m), head = 2 * Bm * D;
    size_t embed = N * D + NP * D + NP * PD;
    m->grad_scratch_floats = layer > head ? layer : head;
    if (embed > m->grad_scratch_floats) m->grad_scratch_floats = embed;
    m->grad_scratch = m->be->alloc(m->grad_scratch_floats * sizeof(real));
    m->dresidual = m->be->alloc(N * D * sizeof(real));
    m->argmax = m->be->alloc(Bm * sizeof(int));
    m->labels = m->be->alloc(Bm * sizeof(int));
    m->labels_host = xcalloc(Bm, sizeof(int));
    m->argmax_host = xcalloc(Bm, sizeof(int));
    m->losses_host = xcalloc(Bm, sizeof(real));
}

// one layer's activations
typedef struct {
    real *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *atto, *att_saved, *attproj, *attproj_mask;
    real *residual2, *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *fch_mask, *fcproj, *fcproj_mask;
    real *residual3;
} LayerActs;

static LayerActs layer_acts(const ViT *m, int l) {
    const size_t rows = (size_t)l * m->max_batch * m->seq;   // this layer's first row
    const size_t D = m->cfg.dim, M = m->cfg.mlp_dim;
    const size_t saved = m->be->attention_saved_floats(m->max_batch, m->cfg.heads, m->seq);
#define ROWS(p, width) (m->p ? m->p + rows * (width) : NULL)
    LayerActs a = {
        ROWS(ln1, D),        ROWS(ln1_mean, 1),    ROWS(ln1_rstd, 1),     ROWS(qkv, 3 * D),
        ROWS(atty, D),       ROWS(atto, D),        m->att_saved + (size_t)l * saved,
        ROWS(attproj, D),    ROWS(attproj_mask, D), ROWS(residual2, D),   ROWS(ln2, D),
        ROWS(ln2_mean, 1),   ROWS(ln2_rstd, 1),    ROWS(fch, M),          ROWS(fch_gelu, M),
        ROWS(fch_mask, M),   ROWS(fcproj, D),      ROWS(fcproj_mask, D),  ROWS(residual3, D),
    };
#undef ROWS
    if (m->cfg.attn.kind[l] == ATTN_STD) a.atto = a.atty;   // no transform: O is Y
    return a;
}

// ----------------------------------------------------------------------------

void vit_build(ViT *m, const ViTConfig *cfg, const Backend *be, int max_batch) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    m->max_batch = max_batch;
    const ViTConfig *c = &m->cfg;
    if (c->kind != VIT_SMALL && c->kind != VIT_PLAIN) die("vit: unknown model kind %d", c->kind);
    if (c->channels < 1 || c->height < 1 || c->width < 1 || c->patch < 1 || c->classes < 1 ||
        c->dim < 1 || c->depth < 1 || c->heads < 1 || c->mlp_dim < 1 || max_batch < 1)
        die("vit: shapes must be positive (channels %d, image %dx%d, patch %d, classes %d, dim %d, "
            "depth %d, heads %d, mlp-dim %d, batch %d)", c->channels, c->height, c->width,
            c->patch, c->classes, c->dim, c->depth, c->heads, c->mlp_dim, max_batch);
    if (c->height % c->patch || c->width % c->patch)
        die_usage("--patch=%d must divide the image size %dx%d", c->patch, c->height, c->width);
    if (c->dim % c->heads) die_usage("--heads=%d must divide --dim=%d", c->heads, c->dim);
    if (!(c->dropout >= 0 && c->dropout < 1) || !(c->emb_dropout >= 0 && c->emb_dropout < 1))
        die_usage("dropout rates must be in [0, 1) (dropout %g, emb-dropout %g)", c->dropout,
                  c->emb_dropout);
    m->num_patches = (c->height / c->patch) * (c->width / c->patch);
    m->seq = m->num_patches + 1;
    m->patch_dim = c->patch * c->patch * c->channels * (c->kind == VIT_SMALL ? 5 : 1);
    // models/vit.py: to_out is the identity when heads == 1 and dim_head == dim
    m->project_out = !(c->kind == VIT_PLAIN && c->heads == 1);
    layout_params(m);
    layout_activations(m);
    m->gamma_fixed = be->alloc(sizeof(real));
    real g = c->attn.gamma;
    be->upload(m->gamma_fixed, &g, sizeof g);
}

void vit_free(ViT *m) {
    const Backend *be = m->be;
    void *dev[] = {m->params, m->grads, m->acts, m->grad_scratch, m->dresidual, m->argmax,
                   m->labels, m->gamma_fixed};
    for (size_t k = 0; k < sizeof dev / sizeof dev[0]; k++) be->free(dev[k]);
    free(m->labels_host);
    free(m->argmax_host);
    free(m->losses_host);
    params_free(&m->layout);
    memset(m, 0, sizeof *m);
}

void vit_init_weights(ViT *m, uint64_t seed) {
    real *host = xcalloc(m->layout.num_params, sizeof(real));
    Rng rng;
    rng_seed(&rng, seed);
    const double head_size = (double)m->cfg.dim / m->cfg.heads;
    for (int k = 0; k < m->layout.num_tensors; k++) {
        ParamSlice t = m->layout.tensors[k];
        const size_t fan_in = m->tensor_fan_in[k];
        const double bound = fan_in ? 1.0 / sqrt((double)fan_in) : 0;
        for (size_t i = 0; i < t.size; i++) {
            real *p = host + t.offset + i;
            switch (m->tensor_init[k]) {
            case INIT_ONE: *p = 1; break;
            case INIT_ZERO: *p = 0; break;
            case INIT_NORMAL: *p = (real)rng_normal(&rng); break;
            case INIT_UNIFORM: *p = (real)((2 * rng_uniform(&rng) - 1) * bound); break;
            case INIT_LOG_TEMP: *p = (real)log(1.0 / sqrt(head_size)); break;
            case INIT_GAMMA: *p = m->cfg.attn.gamma; break;
            }
        }
    }
    m->be->upload(m->params, host, m->layout.num_params * sizeof(real));
    free(host);
}

// ----------------------------------------------------------------------------
// forward

// the attention of layer l: LSA (learned temperature, diagonal masked) or plain
static AttnArgs attn_args(const ViT *m, int l) {
    const ViTConfig *c = &m->cfg;
    AttnArgs a = {.mask = MASK_NONE,
                  .scale = (float)(1.0 / sqrt((double)c->dim / c->heads))};
    if (c->kind == VIT_SMALL) {
        a.mask = MASK_DIAG;
        a.log_temp = m->log_temp + l;
        a.dlog_temp = grad_at(m, m->log_temp, (size_t)l);
    }
    return a;
}

// layer l's variant (its O is Y when std); backward adds dgamma into grads
static VariantArgs variant_args(const ViT *m, int l, int backward) {
    if (m->cfg.attn.kind[l] == ATTN_STD) return (VariantArgs){.kind = ATTN_STD};
    return attn_variant_args(&m->cfg.attn, l, m->cfg.heads, m->attn_gamma,
                             backward ? grad_at(m, m->attn_gamma, 0) : NULL, m->gamma_fixed);
}

// dropout site k's seed: 0 is the embedding, 1 + 3l + {0, 1, 2} layer l's three
static uint64_t site_seed(uint64_t dropout_seed, int site) {
    return hash64(dropout_seed, (uint64_t)site);
}

double vit_forward(ViT *m, const real *images, const int *labels, int B, int train,
                   uint64_t dropout_seed) {
    const ViTConfig *c = &m->cfg;
    const Backend *be = m->be;
    if (B < 1 || B > m->max_batch) die("vit_forward: batch %d exceeds the model's %d", B, m->max_batch);
    const int D = c->dim, M = c->mlp_dim, K = c->classes, T = m->seq, Np = m->num_patches;
    const int PD = m->patch_dim, NP = B * Np;
    const size_t N = (size_t)B * T;
    const int drop = train && dropout_on(m);
    m->B = B;
    m->train = train;
    m->has_dlogits = 0;
    const uint64_t r0 = (uint64_t)m->share_first * T;   // this batch's first token row in the global batch
    be->upload(m->images, images, (size_t)B * c->channels * c->height * c->width * sizeof(real));

    // tokens: patches (with SPT's shifts and LayerNorm), Linear, cls and positions
    be->patchify_forward(m->patches, m->images, B, c->channels, c->height, c->width, c->patch,
                         c->kind == VIT_SMALL);
    const real *patch_in = m->patches;
    if (c->kind == VIT_SMALL) {
        be->layernorm_forward(m->patch_ln, m->patch_ln_mean, m->patch_ln_rstd, m->patches,
                              m->patch_lnw, m->patch_lnb, NP, PD);
        patch_in = m->patch_ln;
    }
    be->matmul_forward(m->patch_emb, patch_in, m->patch_w, m->patch_b, NP, PD, D);
    be->cls_pos_forward(m->encoded, m->patch_emb, m->cls, m->pos, B, Np, D);
    if (train && emb_dropout_on(m))
        be->dropout_forward(m->encoded, m->emb_mask, m->encoded, N * D, c->emb_dropout,
                            site_seed(dropout_seed, 0), r0 * D);

    // layer 0's LN1 reads the embeddings; every later one is fused with the
    // residual add in front of it
    const real *x = m->encoded;
    if (c->depth > 0) {
        LayerActs a0 = layer_acts(m, 0);
        LayerParams w0 = layer_params(m, 0, 0);
        be->layernorm_forward(a0.ln1, a0.ln1_mean, a0.ln1_rstd, x, w0.ln1w, w0.ln1b, (int)N, D);
    }
    for (int l = 0; l < c->depth; l++) {
        LayerActs a = layer_acts(m, l);
        LayerParams w = layer_params(m, l, 0);
        AttnArgs aa = attn_args(m, l);
        be->matmul_forward(a.qkv, a.ln1, w.qkvw, NULL, (int)N, D, 3 * D);
        VariantArgs va = variant_args(m, l, 0);
        attention_variant_forward(be, a.atto, a.atty, a.att_saved, a.qkv, B, T, D, c->heads, &aa,
                                  &va);
        const real *branch = a.atto;
        if (m->project_out) {
            be->matmul_forward(a.attproj, a.atto, w.attprojw, w.attprojb, (int)N, D, D);
            if (drop)
                be->dropout_forward(a.attproj, a.attproj_mask, a.attproj, N * D, c->dropout,
                                    site_seed(dropout_seed, 1 + 3 * l), r0 * D);
            branch = a.attproj;
        }
        be->residual_layernorm_forward(a.residual2, a.ln2, a.ln2_mean, a.ln2_rstd, x, branch, w.ln2w,
                                       w.ln2b, (int)N, D);
        be->matmul_gelu_forward(a.fch, a.fch_gelu, a.ln2, w.fcw, w.fcb, (int)N, D, M);
        if (drop)
            be->dropout_forward(a.fch_gelu, a.fch_mask, a.fch_gelu, N * M, c->dropout,
                                site_seed(dropout_seed, 2 + 3 * l), r0 * M);
        be->matmul_forward(a.fcproj, a.fch_gelu, w.fcprojw, w.fcprojb, (int)N, M, D);
        if (drop)
            be->dropout_forward(a.fcproj, a.fcproj_mask, a.fcproj, N * D, c->dropout,
                                site_seed(dropout_seed, 3 + 3 * l), r0 * D);
        if (l + 1 < c->depth) {
            LayerActs an = layer_acts(m, l + 1);
            LayerParams wn = layer_params(m, l + 1, 0);
            be->residual_layernorm_forward(a.residual3, an.ln1, an.ln1_mean, an.ln1_rstd, a.residual2,
                                           a.fcproj, wn.ln1w, wn.ln1b, (int)N, D);
        } else {
            be->add_forward(a.residual3, a.residual2, a.fcproj, N * D);
        }
        x = a.residual3;
    }

    // head on the cls token
    be->cls_select_forward(m->cls_out, x, B, T, D);
    be->layernorm_forward(m->head_ln, m->head_ln_mean, m->head_ln_rstd, m->cls_out, m->head_lnw,
                          m->head_lnb, B, D);
    be->matmul_forward(m->logits, m->head_ln, m->head_w, m->head_b, B, D, K);
    if (!labels) return 0;

    memcpy(m->labels_host, labels, (size_t)B * sizeof(int));
    be->upload(m->labels, labels, (size_t)B * sizeof(int));
    // the loss and, in the same pass, its gradient in place of the logits
    // (the mean over the global batch: vit_set_share)
    float smoothing = train ? c->label_smoothing : 0.0f;
    be->xent_forward_backward(m->losses, m->argmax, m->logits, m->labels, B, K, K, smoothing,
                              1.0f / (float)(m->share_total ? m->share_total : B));
    m->has_dlogits = 1;
    be->download(m->losses_host, m->losses, (size_t)B * sizeof(real));
    double sum = 0;
    for (int i = 0; i < B; i++) sum += m->losses_host[i];
    m->mean_loss = sum / B;
    return m->mean_loss;
}

int vit_last_correct(ViT *m) {
    m->be->download(m->argmax_host, m->argmax, (size_t)m->B * sizeof(int));
    int correct = 0;
    for (int i = 0; i < m->B; i++) correct += m->argmax_host[i] == m->labels_host[i];
    return correct;
}

// ----------------------------------------------------------------------------
// backward: the residual stream's gradient flows through m->dresidual; each
// branch's gradient accumulates into it (ops.h)

void vit_set_share(ViT *m, int first, int total) {
    m->share_first = first;
    m->share_total = total;
}

void vit_zero_grad(ViT *m) { m->be->zero(m->grads, m->layout.num_params * sizeof(real)); }

void vit_backward(ViT *m) {
    const ViTConfig *c = &m->cfg;
    const Backend *be = m->be;
    const int B = m->B, D = c->dim, M = c->mlp_dim, K = c->classes, T = m->seq;
    const int Np = m->num_patches, PD = m->patch_dim, NP = B * Np;
    const size_t N = (size_t)B * T;
    const int drop = m->train && dropout_on(m);
    real *scratch = m->grad_scratch;

    // head: the forward left dlogits in place of the logits; then Linear,
    // LayerNorm, cls select
    if (!m->has_dlogits) die("vit_backward: the last vit_forward had no labels");
    m->has_dlogits = 0;
    real *dhead_ln = scratch, *dcls_out = scratch + (size_t)B * D;
    be->zero(dcls_out, (size_t)B * D * sizeof(real));   // dhead_ln: overwritten by matmul_backward
    be->zero(m->dresidual, N * D * sizeof(real));
    be->matmul_backward(dhead_ln, grad_at(m, m->head_w, 0), grad_at(m, m->head_b, 0), m->logits,
                        m->head_ln, m->head_w, B, D, K);
    be->layernorm_backward(dcls_out, grad_at(m, m->head_lnw, 0), grad_at(m, m->head_lnb, 0),
                           dhead_ln, m->cls_out, m->head_lnw, m->head_ln_mean, m->head_ln_rstd, B,
                           D);
    be->cls_select_backward(m->dresidual, dcls_out, B, T, D);

    real *dfcproj = scratch, *dattproj = dfcproj + N * D, *dln2 = dattproj + N * D;
    real *datto = dln2 + N * D, *dln1 = datto + N * D, *dqkv = dln1 + N * D;
    real *dgelu_dropped = dqkv + N * 3 * D, *dgelu = dgelu_dropped + N * M, *dfch = dgelu + N * M;
    for (int l = c->depth - 1; l >= 0; l--) {
        LayerActs a = layer_acts(m, l);
        LayerParams w = layer_params(m, l, 0), g = layer_params(m, l, 1);
        AttnArgs aa = attn_args(m, l);
        const real *x = l ? layer_acts(m, l - 1).residual3 : m->encoded;
        // matmul_backward and gelu_backward overwrite their dinp (dgelu_dropped,
        // dfch, dln2, datto, dln1) and variant_backward writes its dy; zeroed is
        // what still accumulates: dqkv (attention backward) and, with dropout,
        // dropout_backward's dfcproj, dattproj (adjacent) and dgelu
        be->zero(dqkv, N * 3 * D * sizeof(real));
        if (drop) {
            be->zero(dfcproj, 2 * N * D * sizeof(real));
            be->zero(dgelu, N * M * sizeof(real));
        }
        // MLP branch: dresidual holds dL/d(residual3)
        const real *d_fcproj = m->dresidual;
        if (drop) {
            be->dropout_backward(dfcproj, m->dresidual, a.fcproj_mask, N * D);
            d_fcproj = dfcproj;
        }
        be->matmul_backward(dgelu_dropped, g.fcprojw, g.fcprojb, d_fcproj, a.fch_gelu, w.fcprojw,
                            (int)N, M, D);
        const real *d_gelu = dgelu_dropped;
        if (drop) {
            be->dropout_backward(dgelu, dgelu_dropped, a.fch_mask, N * M);
            d_gelu = dgelu;
        }
        be->gelu_backward(dfch, a.fch, d_gelu, N * M);
        be->matmul_backward(dln2, g.fcw, g.fcb, dfch, a.ln2, w.fcw, (int)N, D, M);
        be->layernorm_backward(m->dresidual, g.ln2w, g.ln2b, dln2, a.residual2, w.ln2w, a.ln2_mean,
                               a.ln2_rstd, (int)N, D);
        // attention branch: dresidual now holds dL/d(residual2)
        const real *d_atto = m->dresidual;
        if (m->project_out) {
            const real *d_attproj = m->dresidual;
            if (drop) {
                be->dropout_backward(dattproj, m->dresidual, a.attproj_mask, N * D);
                d_attproj = dattproj;
            }
            be->matmul_backward(datto, g.attprojw, g.attprojb, d_attproj, a.atto, w.attprojw,
                                (int)N, D, D);
            d_atto = datto;
        }
        VariantArgs va = variant_args(m, l, 1);   // d_atto: dL/dO; datto: scratch for dL/dY
        attention_variant_backward(be, dqkv, datto, d_atto, a.qkv, a.atty, a.att_saved, B, T, D,
                                   c->heads, &aa, &va);
        be->matmul_backward(dln1, g.qkvw, NULL, dqkv, a.ln1, w.qkvw, (int)N, D, 3 * D);
        be->layernorm_backward(m->dresidual, g.ln1w, g.ln1b, dln1, x, w.ln1w, a.ln1_mean,
                               a.ln1_rstd, (int)N, D);
    }

    // tokens: dresidual holds dL/d(encoded after dropout)
    real *dencoded = scratch, *dpatch_emb = dencoded + N * D, *dpatch_ln = dpatch_emb + (size_t)NP * D;
    // cls_pos_backward and dropout_backward accumulate (dpatch_ln is overwritten)
    be->zero(dpatch_emb, (size_t)NP * D * sizeof(real));
    const real *d_enc = m->dresidual;
    if (m->train && emb_dropout_on(m)) {
        be->zero(dencoded, N * D * sizeof(real));
        be->dropout_backward(dencoded, m->dresidual, m->emb_mask, N * D);
        d_enc = dencoded;
    }
    be->cls_pos_backward(dpatch_emb, grad_at(m, m->cls, 0), grad_at(m, m->pos, 0), d_enc, B, Np, D);
    if (c->kind == VIT_SMALL) {
        be->matmul_backward(dpatch_ln, grad_at(m, m->patch_w, 0), grad_at(m, m->patch_b, 0),
                            dpatch_emb, m->patch_ln, m->patch_w, NP, PD, D);
        be->layernorm_backward(NULL, grad_at(m, m->patch_lnw, 0), grad_at(m, m->patch_lnb, 0),
                               dpatch_ln, m->patches, m->patch_lnw, m->patch_ln_mean,
                               m->patch_ln_rstd, NP, PD);
    } else {
        be->matmul_backward(NULL, grad_at(m, m->patch_w, 0), grad_at(m, m->patch_b, 0), dpatch_emb,
                            m->patches, m->patch_w, NP, PD, D);
    }
}

void vit_layer_stats(ViT *m, LayerStat *out) {
    const size_t ng = attn_num_gammas(&m->cfg.attn, m->cfg.depth, m->cfg.heads);
    real *gammas = xmalloc((ng + 1) * sizeof(real));
    if (ng) m->be->download(gammas, m->attn_gamma, ng * sizeof(real));
    for (int l = 0; l < m->cfg.depth; l++) {
        const LayerActs a = layer_acts(m, l);
        out[l] = layer_stat(m->be, a.qkv, a.atty, a.atto, (size_t)m->B * m->seq, m->cfg.dim, m->cfg.heads);
        out[l].gamma = attn_layer_gamma(&m->cfg.attn, l, m->cfg.heads, gammas);
    }
    free(gammas);
}

// vit_weights.c - the ViT's weights out (--export) and back in (--init-from) as
// safetensors, under the state_dict names of kentaroy47/vision-transformers-cifar10
// (models/vit_small.py and models/vit.py, lucidrains' vit-pytorch) with the
// shapes its load_state_dict expects (for a model built with dim_head = dim /
// heads), and the settings that define the model in __metadata__.
//
// Our tensor (vit.h)    the reference's name                               shape
//   pos                 pos_embedding                                      (1, T, D)
//   cls                 cls_token                                          (1, 1, D)
//   patch_lnw, _lnb     to_patch_embedding.to_patch_tokens.1.weight, .bias (PD)      ViT-small
//   patch_w, patch_b    to_patch_embedding.to_patch_tokens.2.weight, .bias (D, PD), (D)
//                       to_patch_embedding.1.weight, .bias                 (plain ViT)
//   per layer i, under transformer.layers.{i}.:
//   ln1w, ln1b          0.norm.weight, 0.norm.bias                         (D)
//   log_temp            0.fn.temperature                                   ()       LSA only
//   qkvw                0.fn.to_qkv.weight (no bias)                       (3D, D)
//   attprojw, attprojb  0.fn.to_out.0.weight, .bias                        (D, D), (D)
//   ln2w, ln2b          1.norm.weight, 1.norm.bias                         (D)
//   fcw, fcb            1.fn.net.0.weight, .bias                           (M, D), (M)
//   fcprojw, fcprojb    1.fn.net.3.weight, .bias                           (D, M), (D)
//   attn_gamma          0.fn.gamma (a learned gamma; not in the reference)  (1) or (heads)
//   head_lnw, head_lnb  mlp_head.0.weight, .bias                           (D)
//   head_w, head_b      mlp_head.1.weight, .bias                           (K, D), (K)
// to_out is absent where the plain ViT has one head (the reference's
// project_out = 0: an identity). The file lists them in state_dict order.
//
// No tensor is permuted: our patch vector's layout is the reference's. Our
// patchify (layers.c) writes patch value (i, j, s, c) - row i and column j in
// the patch, SPT copy s (0 the image, then the shifts right, left, down, up),
// channel c - at (i P + j) (S C) + s C + c, which is Rearrange('b c (h p1) (w p2)
// -> b (h w) (p1 p2 c)') over torch.cat((x, *shifted_x), dim=1): p1 = i, p2 = j,
// and the concatenated channel s C + c. tests/torch_ref_vit.py builds the
// forward that way from our flat layout, test_vit_model checks us against it,
// and tests/vit_safetensors_check.py reproduces our loss from the exported file.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "safetensors.h"
#include "vit.h"

// one tensor of the file: its name and shape, and where it lies in m->params
typedef struct {
    char name[96];
    int ndim;              // 0..3 (0: a scalar)
    int64_t shape[3];
    size_t offset;         // into the flat parameters, in floats
} WeightEntry;

// a tensor of the model: our view (NULL where absent), the reference's name,
// its shape; per layer, `stride` floats from one layer's piece to the next
typedef struct {
    const real *view;
    const char *name;
    int ndim;
    int64_t shape[3];
    size_t stride;
} Spec;

enum { PER_LAYER = 13, OUTSIDE = 12 };   // room for the entries of a layer, and outside the layers

static void put(WeightEntry *w, int *n, const ViT *m, const Spec *s, const char *prefix, size_t skip) {
    if (!s->view) return;
    WeightEntry *e = &w[(*n)++];
    snprintf(e->name, sizeof e->name, "%s%s", prefix, s->name);
    e->ndim = s->ndim;
    memcpy(e->shape, s->shape, sizeof e->shape);
    e->offset = (size_t)(s->view - m->params) + skip;
}

// Fills w (room for depth * PER_LAYER + OUTSIDE entries) with the model's
// tensors in state_dict order; returns their count.
static int weight_table(const ViT *m, WeightEntry *w) {
    const ViTConfig *c = &m->cfg;
    const int64_t D = c->dim, M = c->mlp_dim, K = c->classes, PD = m->patch_dim, T = m->seq;
    const int spt = c->kind == VIT_SMALL;
    const Spec front[] = {
        {m->pos, "pos_embedding", 3, {1, T, D}, 0},
        {m->cls, "cls_token", 3, {1, 1, D}, 0},
        // ViT-small: SPT's nn.Sequential(Rearrange, LayerNorm, Linear)
        {m->patch_lnw, "to_patch_embedding.to_patch_tokens.1.weight", 1, {PD}, 0},
        {m->patch_lnb, "to_patch_embedding.to_patch_tokens.1.bias", 1, {PD}, 0},
        {spt ? m->patch_w : NULL, "to_patch_embedding.to_patch_tokens.2.weight", 2, {D, PD}, 0},
        {spt ? m->patch_b : NULL, "to_patch_embedding.to_patch_tokens.2.bias", 1, {D}, 0},
        // the plain ViT: nn.Sequential(Rearrange, Linear)
        {spt ? NULL : m->patch_w, "to_patch_embedding.1.weight", 2, {D, PD}, 0},
        {spt ? NULL : m->patch_b, "to_patch_embedding.1.bias", 1, {D}, 0},
    };
    const Spec layer[] = {   // PreNorm(Attention), PreNorm(FeedForward)
        {m->ln1w, "0.norm.weight", 1, {D}, D},
        {m->ln1b, "0.norm.bias", 1, {D}, D},
        {m->log_temp, "0.fn.temperature", 0, {0}, 1},
        {m->qkvw, "0.fn.to_qkv.weight", 2, {3 * D, D}, 3 * D * D},
        {m->attprojw, "0.fn.to_out.0.weight", 2, {D, D}, D * D},
        {m->attprojb, "0.fn.to_out.0.bias", 1, {D}, D},
        {m->ln2w, "1.norm.weight", 1, {D}, D},
        {m->ln2b, "1.norm.bias", 1, {D}, D},
        {m->fcw, "1.fn.net.0.weight", 2, {M, D}, M * D},
        {m->fcb, "1.fn.net.0.bias", 1, {M}, M},
        {m->fcprojw, "1.fn.net.3.weight", 2, {D, M}, D * M},
        {m->fcprojb, "1.fn.net.3.bias", 1, {D}, D},
    };
    const Spec head[] = {
        {m->head_lnw, "mlp_head.0.weight", 1, {D}, 0},
        {m->head_lnb, "mlp_head.0.bias", 1, {D}, 0},
        {m->head_w, "mlp_head.1.weight", 2, {K, D}, 0},
        {m->head_b, "mlp_head.1.bias", 1, {K}, 0},
    };
    _Static_assert(sizeof layer / sizeof layer[0] <= PER_LAYER, "PER_LAYER too small");
    _Static_assert(sizeof front / sizeof front[0] + sizeof head / sizeof head[0] <= OUTSIDE,
                   "OUTSIDE too small");
    int n = 0;
    for (size_t k = 0; k < sizeof front / sizeof front[0]; k++) put(w, &n, m, &front[k], "", 0);
    for (int l = 0; l < c->depth; l++) {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "transformer.layers.%d.", l);
        for (size_t k = 0; k < sizeof layer / sizeof layer[0]; k++)
            put(w, &n, m, &layer[k], prefix, (size_t)l * layer[k].stride);
        if (m->attn_gamma && c->attn.kind[l] != ATTN_STD) {   // the variant layers' learned gammas, in order
            const int G = attn_gammas_per_layer(&c->attn, c->heads);
            const Spec g = {m->attn_gamma, "0.fn.gamma", 1, {G}, 0};
            put(w, &n, m, &g, prefix, (size_t)attn_num_variant_layers(&c->attn, l) * G);
        }
    }
    for (size_t k = 0; k < sizeof head / sizeof head[0]; k++) put(w, &n, m, &head[k], "", 0);
    return n;
}

static int is_gamma_name(const char *name) {
    const size_t len = strlen(name);
    return len > 11 && !strcmp(name + len - 11, ".0.fn.gamma");
}

// the table, checked to cover every parameter (and so each exactly once: the
// views do not overlap)
static WeightEntry *model_weights(const ViT *m, int *n) {
    WeightEntry *w = xcalloc((size_t)m->cfg.depth * PER_LAYER + OUTSIDE, sizeof *w);
    *n = weight_table(m, w);
    size_t covered = 0;
    for (int k = 0; k < *n; k++) {
        size_t count = 1;
        for (int d = 0; d < w[k].ndim; d++) count *= (size_t)w[k].shape[d];
        covered += count;
    }
    if (covered != m->layout.num_params) {
        free(w);
        die("vit_weights: the name table covers %zu of the model's %zu parameters", covered,
            m->layout.num_params);
    }
    return w;
}

// ----------------------------------------------------------------------------
// out: the tensors, and the settings in __metadata__ named after the
// reference's ViT(...) arguments where it has one

void vit_export_safetensors(ViT *m, const char *path, const StMeta *meta, int nmeta) {
    const ViTConfig *c = &m->cfg;
    real *host = xmalloc(m->layout.num_params * sizeof(real));
    m->be->download(host, m->params, m->layout.num_params * sizeof(real));
    int n;
    WeightEntry *w = model_weights(m, &n);
    StTensor *t = xcalloc((size_t)n, sizeof *t);
    for (int k = 0; k < n; k++) {
        memcpy(t[k].name, w[k].name, sizeof t[k].name);
        t[k].ndim = w[k].ndim;
        memcpy(t[k].shape, w[k].shape, sizeof t[k].shape);
        t[k].data = host + w[k].offset;
    }
    enum { NUM_INTS = 10 };
    const struct { const char *key; int value; } ints[NUM_INTS] = {
        {"channels", c->channels}, {"image_height", c->height}, {"image_width", c->width},
        {"patch_size", c->patch}, {"num_classes", c->classes}, {"dim", c->dim},
        {"depth", c->depth}, {"heads", c->heads}, {"dim_head", c->dim / c->heads},
        {"mlp_dim", c->mlp_dim},
    };
    char text[NUM_INTS + 1][32];
    char *kinds = xmalloc(4 * (size_t)c->depth + 8);
    attn_kinds_format(&c->attn, c->depth, kinds, 4 * (size_t)c->depth + 8);
    StMeta *all = xcalloc((size_t)(5 + NUM_INTS + nmeta), sizeof *all);
    int k = 0;
    snprintf(text[NUM_INTS], sizeof text[NUM_INTS], "%.9g", c->attn.gamma);   // %.9g: the float exactly
    all[k++] = (StMeta){"format", "pt"};
    all[k++] = (StMeta){"model", c->kind == VIT_SMALL ? "vit_small" : "vit"};
    all[k++] = (StMeta){"attn", kinds};
    all[k++] = (StMeta){"gamma", text[NUM_INTS]};
    all[k++] = (StMeta){"gamma_learn", gamma_learn_name(c->attn.learn)};
    for (int i = 0; i < NUM_INTS; i++) {
        snprintf(text[i], sizeof text[i], "%d", ints[i].value);
        all[k++] = (StMeta){ints[i].key, text[i]};
    }
    for (int i = 0; i < nmeta; i++) all[k++] = meta[i];
    safetensors_write(path, t, n, all, k);
    free(kinds);
    free(all);
    free(t);
    free(w);
    free(host);
}

// ----------------------------------------------------------------------------
// in

// the __metadata__ value of `key`; dies naming the file when it is missing
static const char *meta_text(const StFile *st, const char *key) {
    const char *v = safetensors_meta(st, key);
    if (!v)
        die("%s=%s: no \"%s\" in __metadata__ (train_vit --export writes the model's settings there)",
            st->flag, st->path, key);
    return v;
}

// a positive integer of __metadata__
static int meta_int(const StFile *st, const char *key) {
    const char *v = meta_text(st, key);
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < 1 || x > 1 << 30)
        die("%s=%s: __metadata__ %s=\"%s\" is not a positive integer", st->flag, st->path, key, v);
    return (int)x;
}

void vit_config_from_safetensors(const StFile *st, ViTConfig *cfg) {
    const char *model = meta_text(st, "model"), *attn = meta_text(st, "attn");
    if (strcmp(model, "vit_small") && strcmp(model, "vit"))
        die("%s=%s: __metadata__ model=\"%s\": expected vit_small or vit", st->flag, st->path, model);
    const char *g = meta_text(st, "gamma");
    char *end;
    errno = 0;
    float gamma = strtof(g, &end);
    if (end == g || *end || errno || !isfinite(gamma))
        die("%s=%s: __metadata__ gamma=\"%s\" is not a finite number", st->flag, st->path, g);
    cfg->kind = strcmp(model, "vit") ? VIT_SMALL : VIT_PLAIN;
    cfg->attn.gamma = gamma;
    cfg->channels = meta_int(st, "channels");
    cfg->height = meta_int(st, "image_height");
    cfg->width = meta_int(st, "image_width");
    cfg->patch = meta_int(st, "patch_size");
    cfg->classes = meta_int(st, "num_classes");
    cfg->dim = meta_int(st, "dim");
    cfg->depth = meta_int(st, "depth");
    cfg->heads = meta_int(st, "heads");
    cfg->mlp_dim = meta_int(st, "mlp_dim");
    char err[160];
    if (attn_kinds_parse(&cfg->attn, attn, cfg->depth, err, sizeof err) != 0)
        die("%s=%s: __metadata__ attn=\"%s\": %s", st->flag, st->path, attn, err);
    // files from before learned gammas have no gamma_learn: fixed
    const char *learn = safetensors_meta(st, "gamma_learn");
    cfg->attn.learn = learn ? gamma_learn_parse(learn) : GAMMA_FIXED;
    if (cfg->attn.learn < 0)
        die("%s=%s: __metadata__ gamma_learn=\"%s\": expected none, layer or head", st->flag, st->path, learn);
    // our head size is dim / heads; the reference takes it as an argument
    const int dim_head = meta_int(st, "dim_head");
    if (cfg->dim % cfg->heads || dim_head != cfg->dim / cfg->heads)
        die("%s=%s: __metadata__ dim_head=%d with dim=%d and heads=%d: train_vit needs dim_head = "
            "dim / heads", st->flag, st->path, dim_head, cfg->dim, cfg->heads);
    if (cfg->height % cfg->patch || cfg->width % cfg->patch)
        die("%s=%s: __metadata__ patch_size=%d does not divide the image size %dx%d", st->flag,
            st->path, cfg->patch, cfg->height, cfg->width);
}

void vit_import_safetensors(ViT *m, const StFile *st) {
    int n;
    WeightEntry *w = model_weights(m, &n);
    // every tensor of the file must be one of ours: a file of another shape
    // (more layers, an output projection we lack) is not silently cut down
    // (but learned gammas: the attention may differ from the file's, as in train_gpt)
    for (int i = 0; i < st->n; i++) {
        int known = is_gamma_name(st->t[i].name);
        for (int k = 0; k < n && !known; k++) known = !strcmp(st->t[i].name, w[k].name);
        if (!known) {
            free(w);
            die("%s=%s: tensor %s is not part of the %s model (depth %d%s) its settings describe",
                st->flag, st->path, st->t[i].name, m->cfg.kind == VIT_SMALL ? "vit_small" : "vit",
                m->cfg.depth, m->project_out ? "" : ", one head: no to_out");
        }
    }
    for (int i = 0; i < st->n && !m->attn_gamma; i++)
        if (is_gamma_name(st->t[i].name)) {
            fprintf(stderr, "note: %s=%s: its learned gammas are not used (gamma is fixed: --gamma=%g)\n",
                    st->flag, st->path, m->cfg.attn.gamma);
            break;
        }
    real *host = xmalloc(m->layout.num_params * sizeof(real));
    // learned gammas a file does not have start at --gamma, unless it says it learned them
    const char *learn = safetensors_meta(st, "gamma_learn");
    const int file_learns = learn && strcmp(learn, "none");
    for (int k = 0; k < n; k++) {
        if (is_gamma_name(w[k].name) && !file_learns && !safetensors_find(st, w[k].name)) {
            for (int64_t i = 0; i < w[k].shape[0]; i++) host[w[k].offset + (size_t)i] = m->cfg.attn.gamma;
            continue;
        }
        safetensors_read(st, w[k].name, w[k].ndim, w[k].shape, host + w[k].offset);
    }
    m->be->upload(m->params, host, m->layout.num_params * sizeof(real));
    free(host);
    free(w);
}

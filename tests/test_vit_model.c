// test_vit_model.c - the whole ViT (float32, CPU reference) against PyTorch
// autograd, and the model's determinism across thread counts.
//
//   build/test_vit_model REF_DIR              compare with REF_DIR/vit_tiny_{MODE}.ref
//   build/test_vit_model --write-inputs DIR   write DIR/vit_tiny_{MODE}.in for torch_ref_vit.py
//
// tests/ref/ holds the committed references; tests/test_vit_model.sh
// regenerates them with tests/torch_ref_vit.py (Debian's python3-torch) and
// compares again, proving the script still agrees. The error measure per
// tensor is max|ours - torch| / max|torch|, required <= 1e-5. Dropout is 0.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "src/common.h"
#include "src/rng.h"
#include "src/vit.h"
#include "tests/test.h"

enum { MAGIC_IN = 0x56495449, MAGIC_REF = 0x56495452, TB = 3 };
static const Backend *be = &backend_ref;

// A mode: the model kind, the attention of every layer (one kind, or one per
// layer), gamma (fixed, or the initial value of the learned ones, which the
// test's noise then makes differ per head and layer) and how gamma is learned.
typedef struct {
    const char *name;
    int kind, depth;
    const char *kinds;   // attn_kinds_parse's list
    double gamma;
    int learn;           // GammaLearn
} Mode;
static const Mode MODES[] = {
    {"small_std", VIT_SMALL, 2, "std", 0.0, GAMMA_FIXED},
    {"small_x", VIT_SMALL, 2, "x", 1.0, GAMMA_FIXED},
    {"plain_x", VIT_PLAIN, 2, "x", 0.5, GAMMA_FIXED},
    {"small_xsa", VIT_SMALL, 2, "xsa", 1.0, GAMMA_FIXED},
    {"small_xsa_head", VIT_SMALL, 2, "xsa", 0.7, GAMMA_HEAD},
    // a std layer between two variants: the learned gammas skip it
    {"small_mix_head", VIT_SMALL, 3, "x,std,xsa", 0.7, GAMMA_HEAD},
    {"plain_xsa_layer", VIT_PLAIN, 2, "std,xsa", 0.7, GAMMA_LAYER},
};
enum { NUM_MODES = sizeof MODES / sizeof MODES[0], MODE_SMALL_X = 1, MODE_SMALL_XSA_HEAD = 4 };

static AttnConfig mode_attn(const Mode *mode) {
    AttnConfig a = attn_config_uniform(ATTN_STD, (float)mode->gamma, mode->learn);
    char err[160];
    if (attn_kinds_parse(&a, mode->kinds, mode->depth, err, sizeof err)) die("mode %s: %s", mode->name, err);
    return a;
}

// the tiny model: 3 x 8 x 8 images, patch 2 (16 patches, 17 tokens), 10 classes
static ViTConfig tiny_config(const Mode *mode) {
    ViTConfig c = {.kind = mode->kind, .channels = 3, .height = 8, .width = 8, .patch = 2,
                   .classes = 10, .dim = 16, .depth = mode->depth, .heads = 2, .mlp_dim = 24,
                   .attn = mode_attn(mode)};
    return c;
}

static void build_tiny(ViT *m, const Mode *mode, float *images, int *labels) {
    ViTConfig cfg = tiny_config(mode);
    vit_build(m, &cfg, be, TB);
    vit_init_weights(m, 1234);
    // perturb gains, biases, temperatures and learned gammas away from 1, 0 and their init
    Rng rng;
    rng_seed(&rng, 99);
    for (size_t i = 0; i < m->layout.num_params; i++) m->params[i] += (real)(0.05 * rng_normal(&rng));
    for (int i = 0; i < TB * 3 * 8 * 8; i++) images[i] = (float)rng_normal(&rng);
    for (int i = 0; i < TB; i++) labels[i] = (int)rng_below(&rng, 10);
}

static void write_inputs(const char *dir) {
    for (int k = 0; k < NUM_MODES; k++) {
        ViT m;
        float images[TB * 3 * 8 * 8];
        int labels[TB];
        build_tiny(&m, &MODES[k], images, labels);
        char path[512];
        snprintf(path, sizeof path, "%s/vit_tiny_%s.in", dir, MODES[k].name);
        FILE *f = xfopen(path, "wb");
        const ViTConfig *c = &m.cfg;
        // the shape, gamma's learn mode, gamma, then the kind of each layer (AttnKind)
        int32_t head[14] = {MAGIC_IN, c->kind, c->channels, c->height, c->width, c->patch,
                            c->classes, c->dim, c->depth, c->heads, c->mlp_dim, c->attn.learn, TB,
                            (int32_t)m.layout.num_params};
        double gamma = c->attn.gamma;
        xfwrite(head, sizeof head, f, path);
        xfwrite(&gamma, sizeof gamma, f, path);
        for (int l = 0; l < c->depth; l++) {
            int32_t kind = c->attn.kind[l];
            xfwrite(&kind, sizeof kind, f, path);
        }
        xfwrite(m.params, m.layout.num_params * sizeof(float), f, path);
        xfwrite(images, sizeof images, f, path);
        xfwrite(labels, sizeof labels, f, path);
        fclose(f);
        vit_free(&m);
    }
}

static double rel_err(const double *ours, const double *ref, long n) {
    double ref_max;
    double d = max_abs_diff_d(ours, ref, n, &ref_max);
    return ref_max > 0 ? d / ref_max : d;
}

static void compare_with_torch(const char *ref_dir, const Mode *mode) {
    ViT m;
    float images[TB * 3 * 8 * 8];
    int labels[TB];
    build_tiny(&m, mode, images, labels);
    const int K = m.cfg.classes;
    char path[512];
    snprintf(path, sizeof path, "%s/vit_tiny_%s.ref", ref_dir, mode->name);
    FILE *f = xfopen(path, "rb");
    int32_t head[3];
    xfread(head, sizeof head, f, path);
    int ok = head[0] == MAGIC_REF && head[1] == TB * K && head[2] == (int32_t)m.layout.num_params;
    CHECK(ok, "%s: header does not match the tiny model", path);
    if (!ok) {
        fclose(f);
        vit_free(&m);
        return;
    }
    double *ref_logits = xmalloc((size_t)TB * K * sizeof(double)), ref_loss;
    double *ref_grads = xmalloc(m.layout.num_params * sizeof(double));
    xfread(ref_logits, (size_t)TB * K * sizeof(double), f, path);
    xfread(&ref_loss, sizeof ref_loss, f, path);
    xfread(ref_grads, m.layout.num_params * sizeof(double), f, path);
    fclose(f);

    double *ours = xmalloc((m.layout.num_params + (size_t)TB * K) * sizeof(double));
    vit_forward(&m, images, NULL, TB, 0, 0);
    for (int i = 0; i < TB * K; i++) ours[i] = m.logits[i];
    double e = rel_err(ours, ref_logits, (long)TB * K);
    CHECK(e <= 1e-5, "%s: logits relative error %.3g", mode->name, e);
    printf("  %s vs torch: logits %.2e", mode->name, e);

    double loss = vit_forward(&m, images, labels, TB, 0, 0);
    e = fabs(loss - ref_loss) / fabs(ref_loss);
    CHECK(e <= 1e-5, "%s: loss %.10f vs torch %.10f", mode->name, loss, ref_loss);
    printf(", loss %.2e", e);
    vit_zero_grad(&m);
    vit_backward(&m);
    double worst = 0, egamma = -1;
    const char *worst_name = "";
    for (int k = 0; k < m.layout.num_tensors; k++) {
        ParamSlice t = m.layout.tensors[k];
        if (!t.size) continue;
        for (size_t i = 0; i < t.size; i++) ours[i] = m.grads[t.offset + i];
        e = rel_err(ours, ref_grads + t.offset, (long)t.size);
        CHECK(e <= 1e-5, "%s: d%s relative error %.3g", mode->name, m.layout.tensor_names[k], e);
        if (getenv("VERBOSE")) printf("\n    d%s %.2e", m.layout.tensor_names[k], e);
        if (!strcmp(m.layout.tensor_names[k], "attn_gamma")) egamma = e;
        if (e > worst) worst = e, worst_name = m.layout.tensor_names[k];
    }
    printf(", worst gradient %.2e (d%s)", worst, worst_name);
    if (egamma >= 0) printf(", dattn_gamma %.2e", egamma);
    printf("\n");
    free(ours);
    free(ref_logits);
    free(ref_grads);
    vit_free(&m);
}

// loss and gradients of one training forward/backward (dropout on), copied out
static double run_once(const Mode *mode, int threads, real *grads_out, size_t cap) {
    omp_set_num_threads(threads);
    ViTConfig cfg = tiny_config(mode);
    cfg.dropout = 0.1f;
    cfg.emb_dropout = 0.1f;
    ViT m;
    vit_build(&m, &cfg, be, TB);
    vit_init_weights(&m, 77);
    float images[TB * 3 * 8 * 8];
    int labels[TB] = {1, 7, 3};
    for (int i = 0; i < TB * 3 * 8 * 8; i++) images[i] = (float)sin(0.37 * i);
    double loss = vit_forward(&m, images, labels, TB, 1, 555);
    vit_zero_grad(&m);
    vit_backward(&m);
    if (m.layout.num_params <= cap) memcpy(grads_out, m.grads, m.layout.num_params * sizeof(real));
    vit_free(&m);
    return loss;
}

static void test_threads(const Mode *mode) {
    const size_t cap = 1 << 16;
    real *g2 = xcalloc(cap, sizeof(real)), *g = xcalloc(cap, sizeof(real));
    double l2 = run_once(mode, 2, g2, cap);
    double l1 = run_once(mode, 1, g, cap);
    CHECK(l1 == l2 && !memcmp(g, g2, cap * sizeof(real)),
          "%s: 1 and 2 threads must give bit-identical loss and gradients", mode->name);
    double l3 = run_once(mode, 3, g, cap);
    CHECK(l3 == l2 && !memcmp(g, g2, cap * sizeof(real)),
          "%s: 2 and 3 threads must give bit-identical loss and gradients", mode->name);
    omp_set_num_threads(2);
    free(g);
    free(g2);
}

// learned gammas: the last tensor, one per head (or one) of each variant layer,
// starting at gamma, not decayed; none with a fixed gamma
static void test_gamma_layout(void) {
    for (int k = 0; k < NUM_MODES; k++) {
        const Mode *mode = &MODES[k];
        ViTConfig cfg = tiny_config(mode);
        ViT m;
        vit_build(&m, &cfg, be, 1);
        vit_init_weights(&m, 5);
        const ParamSlice *g = &m.layout.tensors[m.layout.num_tensors - 1];
        const int want = attn_num_variant_layers(&cfg.attn, cfg.depth) * attn_gammas_per_layer(&cfg.attn, cfg.heads);
        int ok = !strcmp(m.layout.tensor_names[m.layout.num_tensors - 1], "attn_gamma") && g->size == (size_t)want &&
                 !g->decay && (want == 0 ? m.attn_gamma == NULL : m.attn_gamma == m.params + g->offset &&
                                                                  g->offset + g->size == m.layout.num_params);
        for (size_t i = 0; ok && i < g->size; i++) ok &= m.attn_gamma[i] == (float)mode->gamma;
        CHECK(ok, "%s: attn_gamma %zu values at %zu of %zu, expected %d at the end, at gamma", mode->name, g->size,
              g->offset, m.layout.num_params, want);
        vit_free(&m);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-inputs")) {
        write_inputs(argv[2]);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: test_vit_model REF_DIR | test_vit_model --write-inputs DIR\n");
        return 2;
    }
    for (int k = 0; k < NUM_MODES; k++) compare_with_torch(argv[1], &MODES[k]);
    test_threads(&MODES[MODE_SMALL_X]);
    test_threads(&MODES[MODE_SMALL_XSA_HEAD]);
    test_gamma_layout();
    return test_summary("test_vit_model");
}

// test_model.c - the whole GPT against PyTorch autograd, and the model's
// determinism properties.
//
//   build/test_model REF_DIR                  compare with REF_DIR/gpt_tiny_{MODE}.ref
//   build/test_model --write-inputs DIR       write DIR/gpt_tiny_{MODE}.in for torch_ref.py
//
// tests/ref/ holds the committed references; tests/test_model.sh regenerates
// them with tests/torch_ref.py (Debian's python3-torch) and compares again,
// proving the script still agrees. The error measure per tensor is
// max|ours - torch| / max|torch|, required <= 1e-5 in float32.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "src/common.h"
#include "src/gpt.h"
#include "src/optim.h"
#include "src/rng.h"
#include "tests/test.h"

enum { MAGIC_IN = 0x47505449, MAGIC_REF = 0x47505452 };
static const Backend *be = &backend_ref;

// A mode: the attention of every layer (one kind, or one per layer), gamma
// (fixed, or the initial value of the learned ones, which the test's noise
// then makes differ per head and layer) and how gamma is learned.
typedef struct {
    const char *name;
    int layers;
    const char *kinds;   // attn_kinds_parse's list
    double gamma;
    int learn;           // GammaLearn
} Mode;
static const Mode MODES[] = {
    {"std", 2, "std", 0.0, GAMMA_FIXED},
    {"x", 2, "x", 1.0, GAMMA_FIXED},
    {"xsa", 2, "xsa", 1.0, GAMMA_FIXED},
    {"xsa_head", 2, "xsa", 0.7, GAMMA_HEAD},
    {"x_layer", 2, "x", 0.7, GAMMA_LAYER},
    // a std layer between two variants: the learned gammas skip it
    {"mix_head", 3, "x,std,xsa", 0.7, GAMMA_HEAD},
};
enum { NUM_MODES = sizeof MODES / sizeof MODES[0] };

static AttnConfig mode_attn(const Mode *mode) {
    AttnConfig a = attn_config_uniform(ATTN_STD, (float)mode->gamma, mode->learn);
    char err[160];
    if (attn_kinds_parse(&a, mode->kinds, mode->layers, err, sizeof err)) die("mode %s: %s", mode->name, err);
    return a;
}

// the tiny model: V = 61 is padded to 64; -1 targets are ignored
static void build_tiny(GPT *m, const Mode *mode, int *inputs, int *targets) {
    GPTConfig cfg = {.vocab = 61, .padded_vocab = gpt_padded_vocab(61), .max_seq = 8, .layers = mode->layers,
                     .heads = 2, .embd = 16, .bias = 1, .attn = mode_attn(mode)};
    gpt_build(m, &cfg, be, 2);
    gpt_init_weights(m, 1234);
    // perturb biases, gains and learned gammas away from 0, 1 and their init so
    // their gradients are exercised (and each head's gamma differs)
    Rng rng;
    rng_seed(&rng, 99);
    for (size_t i = 0; i < m->layout.num_params; i++) m->params[i] += (real)(0.05 * rng_normal(&rng));
    for (int i = 0; i < 16; i++) {
        inputs[i] = (int)rng_below(&rng, 61);
        targets[i] = (i % 5 == 3) ? -1 : (int)rng_below(&rng, 61);
    }
}

static void write_inputs(const char *dir) {
    for (int k = 0; k < NUM_MODES; k++) {
        GPT m;
        int inputs[16], targets[16];
        build_tiny(&m, &MODES[k], inputs, targets);
        char path[512];
        snprintf(path, sizeof path, "%s/gpt_tiny_%s.in", dir, MODES[k].name);
        FILE *f = xfopen(path, "wb");
        const GPTConfig *c = &m.cfg;
        // the shape, gamma's learn mode, gamma, then the kind of each layer (AttnKind)
        int32_t head[11] = {MAGIC_IN, c->vocab, c->padded_vocab, c->max_seq, c->layers, c->heads,
                            c->embd, c->bias, c->attn.learn, 2, (int32_t)m.layout.num_params};
        double gamma = c->attn.gamma;
        xfwrite(head, sizeof head, f, path);
        xfwrite(&gamma, sizeof gamma, f, path);
        for (int l = 0; l < c->layers; l++) {
            int32_t kind = c->attn.kind[l];
            xfwrite(&kind, sizeof kind, f, path);
        }
        xfwrite(m.params, m.layout.num_params * sizeof(float), f, path);
        xfwrite(inputs, sizeof inputs, f, path);
        xfwrite(targets, sizeof targets, f, path);
        fclose(f);
        gpt_free(&m);
    }
}

static double rel_err(const double *ours, const double *ref, long n) {
    double ref_max;
    double d = max_abs_diff_d(ours, ref, n, &ref_max);
    return ref_max > 0 ? d / ref_max : d;
}

static void compare_with_torch(const char *ref_dir, const Mode *mode) {
    GPT m;
    int inputs[16], targets[16];
    build_tiny(&m, mode, inputs, targets);
    char path[512];
    snprintf(path, sizeof path, "%s/gpt_tiny_%s.ref", ref_dir, mode->name);
    FILE *f = xfopen(path, "rb");
    int32_t head[3];
    xfread(head, sizeof head, f, path);
    const int N = 16, V = m.cfg.vocab, Vp = m.cfg.padded_vocab;
    CHECK(head[0] == MAGIC_REF && head[1] == N * V && head[2] == (int32_t)m.layout.num_params,
          "%s: header does not match the tiny model", path);
    if (head[0] != MAGIC_REF || head[1] != N * V || head[2] != (int32_t)m.layout.num_params) {
        fclose(f);
        gpt_free(&m);
        return;
    }
    double *ref_logits = xmalloc((size_t)N * V * sizeof(double)), ref_loss;
    double *ref_grads = xmalloc(m.layout.num_params * sizeof(double));
    xfread(ref_logits, (size_t)N * V * sizeof(double), f, path);
    xfread(&ref_loss, sizeof ref_loss, f, path);
    xfread(ref_grads, m.layout.num_params * sizeof(double), f, path);
    fclose(f);

    // logits: a forward without targets stops there
    gpt_forward(&m, inputs, NULL, 2, 8);
    double *ours = xmalloc(m.layout.num_params * sizeof(double) + (size_t)N * V * sizeof(double));
    for (int i = 0; i < N; i++)
        for (int v = 0; v < V; v++) ours[(size_t)i * V + v] = m.logits[(size_t)i * Vp + v];
    double e = rel_err(ours, ref_logits, (long)N * V);
    CHECK(e <= 1e-5, "%s: logits relative error %.3g", mode->name, e);
    printf("  %s vs torch: logits %.2e", mode->name, e);

    double loss = gpt_forward_train(&m, inputs, targets, 2, 8, 1.0f, 0);
    e = fabs(loss - ref_loss) / fabs(ref_loss);
    CHECK(e <= 1e-5, "%s: loss %.10f vs torch %.10f", mode->name, loss, ref_loss);
    printf(", loss %.2e", e);
    gpt_zero_grad(&m);
    gpt_backward(&m);
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
    gpt_free(&m);
}

// loss and gradients of one forward/backward, copied out
static double run_once(const GPTConfig *cfg, int threads, real *grads_out, size_t *n) {
    omp_set_num_threads(threads);
    GPT m;
    gpt_build(&m, cfg, be, 3);
    gpt_init_weights(&m, 77);
    int inputs[3 * 16], targets[3 * 16];
    for (int i = 0; i < 48; i++) inputs[i] = (i * 13) % cfg->vocab, targets[i] = (i * 7 + 1) % cfg->vocab;
    double loss = gpt_forward_train(&m, inputs, targets, 3, 16, 1.0f, 0);
    gpt_zero_grad(&m);
    gpt_backward(&m);
    memcpy(grads_out, m.grads, m.layout.num_params * sizeof(real));
    *n = m.layout.num_params;
    gpt_free(&m);
    return loss;
}

static void test_gamma0_and_threads(void) {
    GPTConfig std = {.vocab = 50, .padded_vocab = 64, .max_seq = 16, .layers = 2, .heads = 4,
                     .embd = 32, .bias = 1, .attn = attn_config_uniform(ATTN_STD, 1, GAMMA_FIXED)};
    GPTConfig x0 = std;
    x0.attn = attn_config_uniform(ATTN_X, 0, GAMMA_FIXED);
    const size_t cap = 100000;   // more than any model here has parameters
    size_t n, n2;
    real *g_std = xmalloc(cap * sizeof(real)), *g_x0 = xmalloc(cap * sizeof(real));
    double l_std = run_once(&std, 2, g_std, &n);
    double l_x0 = run_once(&x0, 2, g_x0, &n2);
    CHECK(l_std == l_x0 && n == n2 && !memcmp(g_std, g_x0, n * sizeof(real)),
          "--attn=x --gamma=0 must equal --attn=std bit for bit (loss %.17g vs %.17g)", l_std, l_x0);
    // xsa with gamma 0 is std too (variants.md)
    GPTConfig xsa0 = std;
    xsa0.attn = attn_config_uniform(ATTN_XSA, 0, GAMMA_FIXED);
    double l_xsa0 = run_once(&xsa0, 2, g_x0, &n2);
    CHECK(l_std == l_xsa0 && n == n2 && !memcmp(g_std, g_x0, n * sizeof(real)),
          "--attn=xsa --gamma=0 must equal --attn=std bit for bit (loss %.17g vs %.17g)", l_std, l_xsa0);
    // the same result whatever the thread count
    double l_1 = run_once(&std, 1, g_x0, &n2);
    CHECK(l_std == l_1 && !memcmp(g_std, g_x0, n * sizeof(real)),
          "1 and 2 threads must give bit-identical loss and gradients");
    double l_3 = run_once(&std, 3, g_x0, &n2);
    CHECK(l_std == l_3 && !memcmp(g_std, g_x0, n * sizeof(real)),
          "2 and 3 threads must give bit-identical loss and gradients");
    // ... also for the learned gammas' gradients, sums over every row
    GPTConfig learned = std;
    learned.attn = attn_config_uniform(ATTN_XSA, 0.7f, GAMMA_HEAD);
    learned.attn.kind[0] = ATTN_X;
    size_t nl, nl2;
    real *g_l2 = xmalloc(cap * sizeof(real)), *g_l = xmalloc(cap * sizeof(real));
    double ll_2 = run_once(&learned, 2, g_l2, &nl);
    CHECK(nl == n + 2 * 4, "learned per head: %zu parameters, expected %zu", nl, n + 2 * 4);
    double ll_1 = run_once(&learned, 1, g_l, &nl2);
    CHECK(ll_2 == ll_1 && nl == nl2 && !memcmp(g_l2, g_l, nl * sizeof(real)),
          "learned gamma: 1 and 2 threads must give bit-identical loss and gradients");
    double ll_3 = run_once(&learned, 3, g_l, &nl2);
    CHECK(ll_2 == ll_3 && nl == nl2 && !memcmp(g_l2, g_l, nl * sizeof(real)),
          "learned gamma: 2 and 3 threads must give bit-identical loss and gradients");
    int nonzero = 0;
    for (size_t i = n; i < nl; i++) nonzero += g_l2[i] != 0;
    CHECK(nonzero == 8, "learned gamma: %d of 8 gamma gradients nonzero", nonzero);
    // a different gamma changes the result (the flag is wired through)
    x0.attn.gamma = 0.5f;
    double l_x5 = run_once(&x0, 2, g_x0, &n2);
    CHECK(l_x5 != l_std, "gamma 0.5 must change the loss");
    xsa0.attn.gamma = 0.5f;
    double l_xsa5 = run_once(&xsa0, 2, g_x0, &n2);
    CHECK(l_xsa5 != l_std && l_xsa5 != l_x5, "xsa gamma 0.5 must change the loss");
    omp_set_num_threads(2);
    free(g_std);
    free(g_x0);
    free(g_l2);
    free(g_l);
}

static void test_init(void) {
    GPTConfig cfg = {.vocab = 50, .padded_vocab = 64, .max_seq = 16, .layers = 4, .heads = 4,
                     .embd = 64, .bias = 1};
    GPT m;
    gpt_build(&m, &cfg, be, 1);
    gpt_init_weights(&m, 5);
    // standard deviations: 0.02, and 0.02/sqrt(2L) for the residual projections
    double s2 = 0, r2 = 0;
    size_t n = m.layout.tensors[4].size, nr = m.layout.tensors[12].size;
    for (size_t i = 0; i < n; i++) s2 += (double)m.qkvw[i] * m.qkvw[i];
    for (size_t i = 0; i < nr; i++) r2 += (double)m.fcprojw[i] * m.fcprojw[i];
    double s = sqrt(s2 / n), r = sqrt(r2 / nr);
    CHECK(fabs(s - 0.02) < 0.001, "qkvw init std %.5f, expected 0.02", s);
    CHECK(fabs(r - 0.02 / sqrt(8.0)) < 0.0005, "fcprojw init std %.5f, expected %.5f", r, 0.02 / sqrt(8.0));
    int ok = 1;
    for (int i = 0; i < 4 * 64; i++) ok &= m.ln1w[i] == 1 && m.ln1b[i] == 0 && m.qkvb[i] == 0;
    CHECK(ok, "LayerNorm gains 1, biases 0");
    CHECK(m.attn_gamma == NULL && m.layout.tensors[16].size == 0, "a fixed gamma has no attn_gamma");
    gpt_free(&m);
    // learned gammas: the last tensor, one per head of each variant layer, at --gamma, not decayed
    cfg.attn = attn_config_uniform(ATTN_XSA, 0.25f, GAMMA_HEAD);
    cfg.attn.kind[1] = ATTN_STD;
    gpt_build(&m, &cfg, be, 1);
    gpt_init_weights(&m, 5);
    const ParamSlice *g = &m.layout.tensors[16];
    CHECK(g->size == 3 * 4 && g->offset + g->size == m.layout.num_params && m.attn_gamma == m.params + g->offset,
          "attn_gamma: %zu values at %zu of %zu", g->size, g->offset, m.layout.num_params);
    ok = !g->decay;
    for (size_t i = 0; i < g->size; i++) ok &= m.attn_gamma[i] == 0.25f;
    CHECK(ok, "attn_gamma starts at gamma and is not decayed");
    gpt_free(&m);
    cfg.attn.learn = GAMMA_LAYER;
    gpt_build(&m, &cfg, be, 1);
    CHECK(m.layout.tensors[16].size == 3, "per layer: one gamma per variant layer");
    gpt_free(&m);
}

// GPT-2 124M at B = 32, T = 1024 on an 80 GB GPU (the speed issue's batch), in
// bf16 (flash attention's saved state): what the model and AdamW allocate,
// counted by a backend whose allocations are never touched (every one is the
// same small buffer), plus the CUDA
// backend's scratch by its sizes: the bf16 matmul operands (the largest is the
// lm-head's dlogits, N x Vp, beside an N x 4C input), flash attention's staged
// q, k, v and dY (4 N C bf16), the cuBLASLt workspace, and 1 GiB for the CUDA
// context and libraries.
static size_t counted;
static unsigned char untouched[64];
static void *count_alloc(size_t bytes) {
    counted += bytes;
    return untouched;
}
static void count_free(void *p) { (void)p; }
// flash attention's saved state (flash_attention.cu): one logsumexp a row
static size_t flash_saved_floats(int B, int NH, int T) { return (size_t)B * NH * T; }
static void count_upload(void *dst, const void *src, size_t bytes) {
    if (bytes > sizeof untouched) die("test_model: the counting backend uploads at most 64 bytes");
    memcpy(dst, src, bytes);
}

static void test_gpt2_memory(void) {
    Backend counting = backend_ref;
    counting.alloc = count_alloc;
    counting.free = count_free;
    counting.upload = count_upload;
    counting.attention_saved_floats = flash_saved_floats;   // as --dtype=bf16 runs it
    const int B = 32, T = 1024;
    for (int kind = ATTN_STD; kind <= ATTN_X; kind++) {
        GPTConfig cfg = {.vocab = 50257, .padded_vocab = gpt_padded_vocab(50257), .max_seq = T,
                         .layers = 12, .heads = 12, .embd = 768, .bias = 1,
                         .attn = attn_config_uniform(kind, 1.0f, GAMMA_FIXED)};
        counted = 0;
        GPT m;
        gpt_build(&m, &cfg, &counting, B);
        Optimizer opt;
        optim_init(&opt, &counting, m.layout.num_params);
        const double N = (double)B * T, C = cfg.embd, Vp = cfg.padded_vocab;
        const double scratch = 2 * (N * Vp + N * 4 * C) + 2 * 4 * N * C + (32 << 20) + (1 << 30);
        const double total = (double)counted + scratch;
        printf("  GPT-2 124M B=%d T=%d --attn=%s: %.1f GB allocated by the model and AdamW, "
               "%.1f GB with the CUDA scratch and context\n", B, T, kind == ATTN_STD ? "std" : "x",
               counted / 1e9, total / 1e9);
        CHECK(total < 80e9, "GPT-2 124M at B=%d T=%d (--attn=%s) needs %.1f GB: over 80 GB", B, T,
              kind == ATTN_STD ? "std" : "x", total / 1e9);
        optim_free(&opt);
        gpt_free(&m);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-inputs")) {
        write_inputs(argv[2]);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: test_model REF_DIR | test_model --write-inputs DIR\n");
        return 2;
    }
    for (int k = 0; k < NUM_MODES; k++) compare_with_torch(argv[1], &MODES[k]);
    test_gamma0_and_threads();
    test_init();
    test_gpt2_memory();
    return test_summary("test_model");
}

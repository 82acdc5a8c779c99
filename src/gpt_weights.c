// gpt_weights.c - the GPT's weights out as safetensors under nanoGPT's names,
// and in from such a file or an llm.c GPT-2 checkpoint (gpt.h). Apart from
// gpt.c, whose reference build also runs in double.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gpt.h"
#include "safetensors.h"

#include <stddef.h>
#include <stdint.h>

// The per-layer tensors: our view, nanoGPT's name under transformer.h.{i}.,
// and the shape as (rows, cols) in units of C; cols 0 = a vector
typedef struct {
    size_t offset;        // of the view in GPT (a real* field)
    const char *name;
    int rows, cols;
} LayerTensor;
#define FIELD(f) offsetof(GPT, f)
static const LayerTensor PER_LAYER[] = {
    {FIELD(ln1w), "ln_1.weight", 1, 0},          {FIELD(ln1b), "ln_1.bias", 1, 0},
    {FIELD(qkvw), "attn.c_attn.weight", 3, 1},   {FIELD(qkvb), "attn.c_attn.bias", 3, 0},
    {FIELD(attprojw), "attn.c_proj.weight", 1, 1}, {FIELD(attprojb), "attn.c_proj.bias", 1, 0},
    {FIELD(ln2w), "ln_2.weight", 1, 0},          {FIELD(ln2b), "ln_2.bias", 1, 0},
    {FIELD(fcw), "mlp.c_fc.weight", 4, 1},       {FIELD(fcb), "mlp.c_fc.bias", 4, 0},
    {FIELD(fcprojw), "mlp.c_proj.weight", 1, 4}, {FIELD(fcprojb), "mlp.c_proj.bias", 1, 0},
};
#undef FIELD
enum { NUM_PER_LAYER = sizeof PER_LAYER / sizeof PER_LAYER[0] };

// every tensor of the model under its nanoGPT name, with `data` pointing into
// `host` (a host copy of m->params); returns the count
static int named_tensors(const GPT *m, real *host, StTensor *t) {
    const GPTConfig *c = &m->cfg;
    const int64_t C = c->embd;
    int n = 0;
    // a view of `p` (a device pointer into m->params) in the host copy
    #define HOST(p) (host + ((p) - m->params))
    t[n++] = (StTensor){"transformer.wte.weight", 2, {c->padded_vocab, C}, HOST(m->wte)};
    t[n++] = (StTensor){"transformer.wpe.weight", 2, {c->max_seq, C}, HOST(m->wpe)};
    for (int l = 0; l < c->layers; l++) {
        for (int k = 0; k < NUM_PER_LAYER; k++) {
            const LayerTensor *lt = &PER_LAYER[k];
            const real *p = *(real *const *)((const char *)m + lt->offset);
            if (!p) continue;   // --bias=0
            const int64_t rows = lt->rows * C, cols = lt->cols * C;
            StTensor *x = &t[n++];
            snprintf(x->name, sizeof x->name, "transformer.h.%d.%s", l, lt->name);
            x->ndim = cols ? 2 : 1;
            x->shape[0] = rows;
            x->shape[1] = cols;
            x->data = HOST(p) + (size_t)l * (size_t)(rows * (cols ? cols : 1));
        }
    }
    t[n++] = (StTensor){"transformer.ln_f.weight", 1, {C}, HOST(m->lnfw)};
    if (m->lnfb) t[n++] = (StTensor){"transformer.ln_f.bias", 1, {C}, HOST(m->lnfb)};
    // learned gammas: transformer.h.{l}.attn.gamma, (1) or (heads), for each variant layer
    const int G = attn_gammas_per_layer(&c->attn, c->heads);
    for (int l = 0, k = 0; m->attn_gamma && l < c->layers; l++) {
        if (c->attn.kind[l] == ATTN_STD) continue;
        StTensor *x = &t[n++];
        snprintf(x->name, sizeof x->name, "transformer.h.%d.attn.gamma", l);
        x->ndim = 1;
        x->shape[0] = G;
        x->data = HOST(m->attn_gamma) + (size_t)(k++) * G;
    }
    #undef HOST
    return n;
}

static int max_named_tensors(const GPT *m) { return m->cfg.layers * (NUM_PER_LAYER + 1) + 4; }

static int is_gamma_name(const char *name) {
    const size_t len = strlen(name);
    return len > 11 && !strcmp(name + len - 11, ".attn.gamma");
}

void gpt_export_safetensors(GPT *m, const char *path, const StMeta *meta, int nmeta) {
    real *host = xmalloc(m->layout.num_params * sizeof(real));
    m->be->download(host, m->params, m->layout.num_params * sizeof(real));
    StTensor *t = xcalloc((size_t)max_named_tensors(m), sizeof *t);
    const int n = named_tensors(m, host, t);
    safetensors_write(path, t, n, meta, nmeta);
    free(t);
    free(host);
}

// ----------------------------------------------------------------------------
// weights in

// llm.c's checkpoint (formats.md): 256 int32, then every tensor in our order
enum { LLMC_MAGIC = 20240326, LLMC_HEADER_INTS = 256 };

static int parse_int(const char *s, int *out) {
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || end == s || *end || v < 0 || v > (1 << 30)) return 0;
    *out = (int)v;
    return 1;
}

static void open_llmc(GPTWeights *w) {
    FILE *f = fopen(w->path, "rb");
    if (!f) die("%s=%s: cannot open it", w->flag, w->path);
    int32_t h[LLMC_HEADER_INTS];
    const size_t got = fread(h, sizeof(int32_t), LLMC_HEADER_INTS, f);
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fclose(f);
    if (got != LLMC_HEADER_INTS) die("%s=%s: an llm.c checkpoint cut short in its header", w->flag, w->path);
    if (h[1] != 3 && h[1] != 5)
        die("%s=%s: llm.c checkpoint version %d (3 = fp32 and 5 = bf16 are read)", w->flag, w->path, h[1]);
    const int T = h[2], V = h[3], L = h[4], NH = h[5], C = h[6], Vp = h[7];
    if (T < 1 || V < 1 || L < 1 || NH < 1 || C < 1 || Vp < V || C % NH || T > (1 << 20) || V > (1 << 24) ||
        L > 1024 || C > 65536 || Vp > (1 << 24))
        die("%s=%s: llm.c header with impossible shapes (seq %d, vocab %d, layers %d, heads %d, embd %d, "
            "padded vocab %d)", w->flag, w->path, T, V, L, NH, C, Vp);
    w->format = GPT_WEIGHTS_LLMC;
    w->llmc_version = h[1];
    w->file_rows = Vp;
    w->cfg = (GPTConfig){.vocab = V, .padded_vocab = gpt_padded_vocab(V), .max_seq = T, .layers = L,
                         .heads = NH, .embd = C, .bias = 1};
    const uint64_t c = (uint64_t)C;
    const uint64_t count = (uint64_t)Vp * c + (uint64_t)T * c + (uint64_t)L * (12 * c * c + 13 * c) + 2 * c;
    const uint64_t want = LLMC_HEADER_INTS * 4 + count * (h[1] == 3 ? 4 : 2);
    if ((uint64_t)size != want)
        die("%s=%s: %ld bytes, but its header's shapes need %llu (truncated?)", w->flag, w->path, size,
            (unsigned long long)want);
}

static void open_safetensors(GPTWeights *w) {
    StFile *st = safetensors_open(w->flag, w->path);
    w->format = GPT_WEIGHTS_SAFETENSORS;
    w->st = st;
    const StEntry *wte = safetensors_find(st, "transformer.wte.weight");
    const StEntry *wpe = safetensors_find(st, "transformer.wpe.weight");
    if (!wte || !wpe || wte->ndim != 2 || wpe->ndim != 2 || wte->shape[1] != wpe->shape[1])
        die("%s=%s: no GPT under nanoGPT's names (transformer.wte.weight and transformer.wpe.weight, "
            "(rows, embd) each)", w->flag, w->path);
    GPTConfig *c = &w->cfg;
    c->embd = (int)wte->shape[1];
    c->max_seq = (int)wpe->shape[0];
    w->file_rows = (int)wte->shape[0];
    char name[96];
    for (c->layers = 0;; c->layers++) {
        snprintf(name, sizeof name, "transformer.h.%d.ln_1.weight", c->layers);
        if (!safetensors_find(st, name)) break;
    }
    if (c->layers == 0) die("%s=%s: no layers (transformer.h.0.ln_1.weight)", w->flag, w->path);
    c->bias = safetensors_find(st, "transformer.h.0.ln_1.bias") != NULL;
    // what only __metadata__ says (our --export writes it); 0: not said
    if (!parse_int(safetensors_meta(st, "n_head"), &c->heads)) c->heads = 0;
    if (!parse_int(safetensors_meta(st, "vocab_size"), &c->vocab) || c->vocab > w->file_rows) c->vocab = 0;
    // the attention our --export records (kinds per layer, gamma, how it is learned)
    const char *attn = safetensors_meta(st, "attn"), *gamma = safetensors_meta(st, "gamma");
    const char *learn = safetensors_meta(st, "gamma_learn");
    // (a nanoGPT state_dict has none of them: the attention then comes from the flags)
    if (attn && gamma) {
        char err[160], *end;
        if (attn_kinds_parse(&c->attn, attn, c->layers, err, sizeof err) != 0)
            die("%s=%s: __metadata__ attn=\"%s\": %s", w->flag, w->path, attn, err);
        c->attn.gamma = strtof(gamma, &end);
        if (end == gamma || *end || !isfinite(c->attn.gamma))
            die("%s=%s: __metadata__ gamma=\"%s\" is not a finite number", w->flag, w->path, gamma);
        c->attn.learn = learn ? gamma_learn_parse(learn) : GAMMA_FIXED;   // older exports: fixed
        if (c->attn.learn < 0)
            die("%s=%s: __metadata__ gamma_learn=\"%s\": expected none, layer or head", w->flag, w->path, learn);
        w->has_attn = 1;
    }
}

void gpt_weights_open(GPTWeights *w, const char *flag, const char *path) {
    memset(w, 0, sizeof *w);
    w->flag = flag;
    w->path = path;
    FILE *f = fopen(path, "rb");
    if (!f) die("%s=%s: cannot open it", flag, path);
    int32_t magic = 0;
    const int got = (int)fread(&magic, sizeof magic, 1, f);
    fclose(f);
    if (got == 1 && magic == LLMC_MAGIC) open_llmc(w);
    else open_safetensors(w);
}

void gpt_weights_close(GPTWeights *w) {
    safetensors_close(w->st);
    w->st = NULL;
}

// The llm.c tensors follow our flat order exactly; only wte's padded rows
// (the file's Vp against ours) and wpe's rows (a cropped block size) differ.
static void load_llmc(const GPTWeights *w, GPT *m, real *host) {
    const GPTConfig *c = &m->cfg;
    const size_t C = (size_t)c->embd, V = (size_t)c->vocab, Vp_file = (size_t)w->file_rows;
    const size_t T_file = (size_t)w->cfg.max_seq, bytes = w->llmc_version == 3 ? 4 : 2;
    FILE *f = xfopen(w->path, "rb");
    if (fseek(f, LLMC_HEADER_INTS * 4, SEEK_SET) != 0) die("%s=%s: cannot seek in it", w->flag, w->path);
    // wte and wpe go through tmp (whole), bf16 through raw (at most `chunk` values a read)
    const size_t chunk = (Vp_file > T_file ? Vp_file : T_file) * C;
    float *tmp = xmalloc(chunk * sizeof(float));
    uint16_t *raw = bytes == 2 ? xmalloc(chunk * 2) : NULL;
    #define READ(dst, n) do { \
        if (bytes == 4) xfread((dst), (n) * 4, f, w->path); \
        else { xfread(raw, (n) * 2, f, w->path); bf16_widen(raw, (dst), (n)); } } while (0)
    READ(tmp, Vp_file * C);
    memset(host + (m->wte - m->params), 0, (size_t)c->padded_vocab * C * sizeof(real));
    memcpy(host + (m->wte - m->params), tmp, V * C * sizeof(float));
    READ(tmp, T_file * C);
    memcpy(host + (m->wpe - m->params), tmp, (size_t)c->max_seq * C * sizeof(float));
    // everything after wpe is contiguous in both, up to our learned gammas (none in llm.c)
    const size_t rest = (m->attn_gamma ? (size_t)(m->attn_gamma - m->params) : m->layout.num_params) -
                        (size_t)(m->ln1w - m->params);
    float *after = host + (m->ln1w - m->params);
    for (size_t done = 0; done < rest;) {   // in pieces, through the bf16 buffer
        const size_t n = rest - done < chunk ? rest - done : chunk;
        READ(after + done, n);
        done += n;
    }
    #undef READ
    fclose(f);
    free(tmp);
    free(raw);
    for (size_t i = 0; i < attn_num_gammas(&c->attn, c->layers, c->heads); i++)
        host[(m->attn_gamma - m->params) + i] = c->attn.gamma;
}

// the index of the file's first learned-gamma tensor, or -1
static int first_gamma(const StFile *st) {
    for (int i = 0; i < st->n; i++)
        if (is_gamma_name(st->t[i].name)) return i;
    return -1;
}

static void load_safetensors(const GPTWeights *w, GPT *m, real *host) {
    const GPTConfig *c = &m->cfg;
    const int64_t C = c->embd;
    StTensor *t = xcalloc((size_t)max_named_tensors(m), sizeof *t);
    const int n = named_tensors(m, host, t);
    memset(host, 0, m->layout.num_params * sizeof(real));
    for (int k = 0; k < n; k++) {
        // wte and wpe by the file's rows: its vocabulary padding and block size may differ
        int64_t rows = t[k].shape[0];
        if (k == 0) rows = w->file_rows;
        if (k == 1) rows = w->cfg.max_seq;
        const int file_learns = w->has_attn && w->cfg.attn.learn != GAMMA_FIXED;
        if (is_gamma_name(t[k].name) && !file_learns && !safetensors_find(w->st, t[k].name)) {
            // a file without learned gammas (another attention, GPT-2): they start at --gamma
            for (int64_t i = 0; i < t[k].shape[0]; i++) ((float *)t[k].data)[i] = c->attn.gamma;
            continue;
        }
        if (rows == t[k].shape[0]) {
            safetensors_read(w->st, t[k].name, t[k].ndim, t[k].shape, (float *)t[k].data);
            continue;
        }
        const int64_t shape[2] = {rows, C};
        float *tmp = xmalloc((size_t)(rows * C) * sizeof(float));
        safetensors_read(w->st, t[k].name, 2, shape, tmp);
        const int64_t keep = k == 0 ? c->vocab : c->max_seq;   // real rows; wte's padding stays 0
        memcpy((float *)t[k].data, tmp, (size_t)(keep * C) * sizeof(float));
        free(tmp);
    }
    // a tensor of the file that the model has no place for is a mismatch too,
    // but for nanoGPT's tied lm_head.weight and its causal-mask buffers (attn.bias)
    for (int i = 0; i < w->st->n; i++) {
        const char *name = w->st->t[i].name;
        const size_t len = strlen(name);
        // learned gammas the model does not learn are left out, as the file's attention may be
        int known = !strcmp(name, "lm_head.weight") || (len > 10 && !strcmp(name + len - 10, ".attn.bias")) ||
                    is_gamma_name(name);
        for (int k = 0; k < n && !known; k++) known = !strcmp(name, t[k].name);
        if (is_gamma_name(name) && !m->attn_gamma && i == first_gamma(w->st))
            fprintf(stderr, "note: %s=%s: its learned gammas are not used (gamma is fixed: --gamma=%g)\n",
                    w->flag, w->path, c->attn.gamma);
        if (!known)
            die("%s=%s: tensor %s has no place in the model (bias %d, %d layers)", w->flag, w->path, name,
                c->bias, c->layers);
    }
    free(t);
}

void gpt_weights_load(const GPTWeights *w, GPT *m) {
    const GPTConfig *c = &m->cfg, *f = &w->cfg;
    if (c->embd != f->embd || c->layers != f->layers || c->bias != f->bias || c->max_seq > f->max_seq ||
        c->vocab > w->file_rows)
        die("%s=%s: the model (embd %d, layers %d, bias %d, seq %d, vocab %d) does not fit the file's "
            "(embd %d, layers %d, bias %d, seq %d, %d embedding rows)", w->flag, w->path, c->embd, c->layers,
            c->bias, c->max_seq, c->vocab, f->embd, f->layers, f->bias, f->max_seq, w->file_rows);
    real *host = xmalloc(m->layout.num_params * sizeof(real));
    if (w->format == GPT_WEIGHTS_LLMC) load_llmc(w, m, host);
    else load_safetensors(w, m, host);
    m->be->upload(m->params, host, m->layout.num_params * sizeof(real));
    free(host);
}


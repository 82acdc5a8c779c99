// gpt.c - the GPT model (GPT-2 shapes, nanoGPT semantics) over the op table.
//
//   x = wte[tokens] + wpe[positions]
//   per layer:  x = x + attnproj(Attn(qkv(LN1(x))))
//               x = x + fcproj(GELU(fc(LN2(x))))
//   logits = LNf(x) @ wte^T     (the head is tied to the token embedding)
//
// Attn is the causal attention core, then layer l's variant transform
// (cfg.attn.kind[l]: none for std, O = Y - gamma V for x, ...; ops.h).
// The model never touches memory itself: every computation is an op of
// m->be, so the same code runs on the CPU reference and on CUDA.
#include "gpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "rng.h"

int gpt_padded_vocab(int vocab) { return (vocab + 63) / 64 * 64; }

// ----------------------------------------------------------------------------
// parameter layout

// params_add, returning the tensor's offset in the flat buffer
static size_t add_tensor(GPT *m, const char *name, int layers, size_t rows, size_t cols,
                         int present) {
    return m->layout.tensors[params_add(&m->layout, name, layers, rows, cols, present)].offset;
}

static void layout_params(GPT *m) {
    const GPTConfig *c = &m->cfg;
    size_t C = c->embd, L = c->layers;
    int b = c->bias;
    size_t o[17];
    o[0] = add_tensor(m, "wte", 1, c->padded_vocab, C, 1);
    o[1] = add_tensor(m, "wpe", 1, c->max_seq, C, 1);
    o[2] = add_tensor(m, "ln1w", L, C, 1, 1);
    o[3] = add_tensor(m, "ln1b", L, C, 1, b);
    o[4] = add_tensor(m, "qkvw", L, 3 * C, C, 1);
    o[5] = add_tensor(m, "qkvb", L, 3 * C, 1, b);
    o[6] = add_tensor(m, "attprojw", L, C, C, 1);
    o[7] = add_tensor(m, "attprojb", L, C, 1, b);
    o[8] = add_tensor(m, "ln2w", L, C, 1, 1);
    o[9] = add_tensor(m, "ln2b", L, C, 1, b);
    o[10] = add_tensor(m, "fcw", L, 4 * C, C, 1);
    o[11] = add_tensor(m, "fcb", L, 4 * C, 1, b);
    o[12] = add_tensor(m, "fcprojw", L, C, 4 * C, 1);
    o[13] = add_tensor(m, "fcprojb", L, C, 1, b);
    o[14] = add_tensor(m, "lnfw", 1, C, 1, 1);
    o[15] = add_tensor(m, "lnfb", 1, C, 1, b);
    // learned gammas: vectors (no weight decay), one optimizer slice per variant layer
    const int nvar = attn_num_variant_layers(&c->attn, c->layers), G = attn_gammas_per_layer(&c->attn, c->heads);
    o[16] = add_tensor(m, "attn_gamma", nvar, G, 1, nvar > 0 && G > 0);
    m->params = m->be->alloc(m->layout.num_params * sizeof(real));
    m->grads = m->be->alloc(m->layout.num_params * sizeof(real));
    real **views[17] = {&m->wte, &m->wpe, &m->ln1w, &m->ln1b, &m->qkvw, &m->qkvb,
                        &m->attprojw, &m->attprojb, &m->ln2w, &m->ln2b, &m->fcw, &m->fcb,
                        &m->fcprojw, &m->fcprojb, &m->lnfw, &m->lnfb, &m->attn_gamma};
    for (int k = 0; k < 17; k++) *views[k] = m->layout.tensors[k].size ? m->params + o[k] : NULL;
}

// the same view into the gradient buffer
static real *grad_of(const GPT *m, const real *param) {
    return param ? m->grads + (param - m->params) : NULL;
}

// ----------------------------------------------------------------------------
// activations

static void layout_activations(GPT *m) {
    const GPTConfig *c = &m->cfg;
    size_t N = (size_t)m->max_batch * c->max_seq, C = c->embd, L = c->layers;
    size_t saved = m->be->attention_saved_floats(m->max_batch, c->heads, c->max_seq);
    struct { real **ptr; size_t n; } a[] = {
        {&m->encoded, N * C},           {&m->ln1, L * N * C},         {&m->ln1_mean, L * N},
        {&m->ln1_rstd, L * N},          {&m->qkv, L * N * 3 * C},     {&m->atty, L * N * C},
        {&m->atto, attn_num_variant_layers(&c->attn, c->layers) ? L * N * C : 0},
        {&m->att_saved, L * saved},
        {&m->attproj, L * N * C},       {&m->residual2, L * N * C},   {&m->ln2, L * N * C},
        {&m->ln2_mean, L * N},          {&m->ln2_rstd, L * N},        {&m->fch, L * N * 4 * C},
        {&m->fch_gelu, L * N * 4 * C},  {&m->fcproj, L * N * C},      {&m->residual3, L * N * C},
        {&m->lnf, N * C},               {&m->lnf_mean, N},            {&m->lnf_rstd, N},
        {&m->logits, N * c->padded_vocab}, {&m->losses, N},
    };
    size_t total = 0;
    for (size_t k = 0; k < sizeof a / sizeof a[0]; k++) total += a[k].n;
    m->acts = m->be->alloc(total * sizeof(real));
    size_t off = 0;
    for (size_t k = 0; k < sizeof a / sizeof a[0]; k++) {
        *a[k].ptr = m->acts + off;
        off += a[k].n;
    }
    // one layer's activation gradients at a time: dfch_gelu, dfch (4C each),
    // dln2, datto, dqkv (3C), dln1 -- plus the residual stream's gradient
    m->grad_scratch_floats = N * 14 * C;
    m->grad_scratch = m->be->alloc(m->grad_scratch_floats * sizeof(real));
    m->dresidual = m->be->alloc(N * C * sizeof(real));
    m->argmax = m->be->alloc(N * sizeof(int));
    m->inputs = m->be->alloc(N * sizeof(int));
    m->targets = m->be->alloc(N * sizeof(int));
    m->inputs_host = xcalloc(N, sizeof(int));
    m->targets_host = xcalloc(N, sizeof(int));
    m->losses_host = xcalloc(N, sizeof(real));
    m->argmax_host = xcalloc(N, sizeof(int));
}

void gpt_build(GPT *m, const GPTConfig *cfg, const Backend *be, int max_batch) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    m->max_batch = max_batch;
    const GPTConfig *c = &m->cfg;
    if (c->vocab < 1 || c->max_seq < 1 || c->layers < 1 || c->heads < 1 || c->embd < 1 || max_batch < 1)
        die("model shape must be positive (vocab %d, seq %d, layers %d, heads %d, embd %d, batch %d)",
            c->vocab, c->max_seq, c->layers, c->heads, c->embd, max_batch);
    if (c->embd % c->heads) die("heads (%d) must divide embd (%d)", c->heads, c->embd);
    if (c->padded_vocab < c->vocab) die("padded vocab %d < vocab %d", c->padded_vocab, c->vocab);
    layout_params(m);
    layout_activations(m);
    m->gamma_fixed = be->alloc(sizeof(real));
    real g = c->attn.gamma;
    be->upload(m->gamma_fixed, &g, sizeof g);
}

void gpt_free(GPT *m) {
    const Backend *be = m->be;
    void *dev[] = {m->params, m->grads, m->acts, m->grad_scratch, m->dresidual,
                   m->argmax, m->inputs, m->targets, m->gamma_fixed};
    for (size_t k = 0; k < sizeof dev / sizeof dev[0]; k++) be->free(dev[k]);
    free(m->inputs_host);
    free(m->targets_host);
    free(m->losses_host);
    free(m->argmax_host);
    params_free(&m->layout);
    memset(m, 0, sizeof *m);
}

void gpt_init_weights(GPT *m, uint64_t seed) {
    const GPTConfig *c = &m->cfg;
    real *host = xcalloc(m->layout.num_params, sizeof(real));
    Rng rng;
    rng_seed(&rng, seed);
    const double std = 0.02, std_resid = 0.02 / sqrt(2.0 * c->layers);
    for (int k = 0; k < m->layout.num_tensors; k++) {
        const char *name = m->layout.tensor_names[k];
        ParamSlice t = m->layout.tensors[k];
        int is_gain = !strcmp(name, "ln1w") || !strcmp(name, "ln2w") || !strcmp(name, "lnfw");
        int is_resid = !strcmp(name, "attprojw") || !strcmp(name, "fcprojw");
        int is_gamma = !strcmp(name, "attn_gamma");
        for (size_t i = 0; i < t.size; i++) {
            real *p = host + t.offset + i;
            if (is_gain) *p = 1;
            else if (is_gamma) *p = c->attn.gamma;
            else if (t.decay) *p = (real)(rng_normal(&rng) * (is_resid ? std_resid : std));
            else *p = 0;   // biases
        }
    }
    m->be->upload(m->params, host, m->layout.num_params * sizeof(real));
    free(host);
}

size_t gpt_num_params_unpadded(const GPT *m) {
    return m->layout.num_params - (size_t)(m->cfg.padded_vocab - m->cfg.vocab) * m->cfg.embd;
}

// ----------------------------------------------------------------------------
// forward

static AttnArgs attn_args(const GPT *m) {
    return (AttnArgs){.mask = MASK_CAUSAL, .scale = (float)(1.0 / sqrt((double)(m->cfg.embd / m->cfg.heads)))};
}

// layer l's variant (its O is Y when std); backward adds dgamma into grads
static VariantArgs variant_args(const GPT *m, int l, int backward) {
    if (m->cfg.attn.kind[l] == ATTN_STD) return (VariantArgs){.kind = ATTN_STD};
    return attn_variant_args(&m->cfg.attn, l, m->cfg.heads, m->attn_gamma,
                             backward ? grad_of(m, m->attn_gamma) : NULL, m->gamma_fixed);
}

// layer l's attention output O: its own buffer, or Y itself for std
static real *att_out(const GPT *m, int l, size_t offset) {
    return m->cfg.attn.kind[l] == ATTN_STD ? m->atty + offset : m->atto + offset;
}

// The forward pass; with targets the loss, and with `train` the loss's
// gradient too: dlogits = grad_scale / loss_count * dL/dlogits in place of the
// logits (loss_count 0: this batch's valid targets), which gpt_backward reads.
static double forward(GPT *m, const int *inputs, const int *targets, int B, int T, int train,
                      float grad_scale, int loss_count) {
    const GPTConfig *c = &m->cfg;
    const Backend *be = m->be;
    if (B < 1 || B > m->max_batch || T < 1 || T > c->max_seq)
        die("gpt_forward: batch %dx%d exceeds the model's %dx%d", B, T, m->max_batch, c->max_seq);
    const int C = c->embd, NH = c->heads, Vp = c->padded_vocab;
    const size_t N = (size_t)B * T;
    const size_t Nmax = (size_t)m->max_batch * c->max_seq;
    const size_t saved = be->attention_saved_floats(m->max_batch, NH, c->max_seq);
    m->B = B;
    m->T = T;
    m->has_dlogits = 0;
    memcpy(m->inputs_host, inputs, N * sizeof(int));
    be->upload(m->inputs, inputs, N * sizeof(int));

    be->embed_forward(m->encoded, m->inputs, m->wte, m->wpe, B, T, C);
    // layer 0's LN1 reads the embeddings; every later LayerNorm is fused with
    // the residual add in front of it (the next layer's LN1, or LNf)
    be->layernorm_forward(m->ln1, m->ln1_mean, m->ln1_rstd, m->encoded, m->ln1w, m->ln1b,
                          (int)N, C);
    AttnArgs aa = attn_args(m);
    const real *x = m->encoded;
    for (int l = 0; l < c->layers; l++) {
        size_t lo = (size_t)l * Nmax;   // this layer's offset in per-row activations
        real *ln1 = m->ln1 + lo * C, *qkv = m->qkv + lo * 3 * C, *atty = m->atty + lo * C;
        real *atto = att_out(m, l, lo * C), *attproj = m->attproj + lo * C;
        real *res2 = m->residual2 + lo * C, *ln2 = m->ln2 + lo * C;
        real *fch = m->fch + lo * 4 * C, *fch_gelu = m->fch_gelu + lo * 4 * C;
        real *fcproj = m->fcproj + lo * C, *res3 = m->residual3 + lo * C;
        const size_t lC = (size_t)l * C;
        be->matmul_forward(qkv, ln1, m->qkvw + lC * 3 * C, m->qkvb ? m->qkvb + lC * 3 : NULL,
                           (int)N, C, 3 * C);
        VariantArgs va = variant_args(m, l, 0);
        attention_variant_forward(be, atto, atty, m->att_saved + l * saved, qkv, B, T, C, NH, &aa,
                                  &va);
        be->matmul_forward(attproj, atto, m->attprojw + lC * C,
                           m->attprojb ? m->attprojb + lC : NULL, (int)N, C, C);
        be->residual_layernorm_forward(res2, ln2, m->ln2_mean + lo, m->ln2_rstd + lo, x, attproj,
                                       m->ln2w + lC, m->ln2b ? m->ln2b + lC : NULL, (int)N, C);
        be->matmul_gelu_forward(fch, fch_gelu, ln2, m->fcw + lC * 4 * C,
                                m->fcb ? m->fcb + lC * 4 : NULL, (int)N, C, 4 * C);
        be->matmul_forward(fcproj, fch_gelu, m->fcprojw + lC * 4 * C,
                           m->fcprojb ? m->fcprojb + lC : NULL, (int)N, 4 * C, C);
        if (l + 1 < c->layers) {
            const size_t no = lo + Nmax, nC = lC + C;   // the next layer's LN1
            be->residual_layernorm_forward(res3, m->ln1 + no * C, m->ln1_mean + no,
                                           m->ln1_rstd + no, res2, fcproj, m->ln1w + nC,
                                           m->ln1b ? m->ln1b + nC : NULL, (int)N, C);
        } else {
            be->residual_layernorm_forward(res3, m->lnf, m->lnf_mean, m->lnf_rstd, res2, fcproj,
                                           m->lnfw, m->lnfb, (int)N, C);
        }
        x = res3;
    }
    be->matmul_forward(m->logits, m->lnf, m->wte, NULL, (int)N, C, Vp);
    if (!targets) return 0;

    // the loss: softmax cross-entropy over the real vocabulary, ignoring -1;
    // in training fused with its gradient, in place of the logits
    memcpy(m->targets_host, targets, N * sizeof(int));
    be->upload(m->targets, targets, N * sizeof(int));
    m->num_valid = 0;
    for (size_t i = 0; i < N; i++) m->num_valid += targets[i] >= 0;
    if (train) {
        const int count = loss_count > 0 ? loss_count : m->num_valid;
        const float scale = count ? grad_scale / (float)count : 0.0f;
        be->xent_forward_backward(m->losses, m->argmax, m->logits, m->targets, (int)N, c->vocab,
                                  Vp, 0.0f, scale);
        m->has_dlogits = 1;
    } else {
        be->xent_forward(m->losses, m->logits, m->argmax, m->logits, m->targets, (int)N,
                         c->vocab, Vp, 0.0f);
    }
    be->download(m->losses_host, m->losses, N * sizeof(real));
    double sum = 0;
    for (size_t i = 0; i < N; i++)
        if (targets[i] >= 0) sum += m->losses_host[i];
    m->mean_loss = m->num_valid ? sum / m->num_valid : 0.0;
    return m->mean_loss;
}

double gpt_forward(GPT *m, const int *inputs, const int *targets, int B, int T) {
    return forward(m, inputs, targets, B, T, 0, 0.0f, 0);
}

double gpt_forward_train(GPT *m, const int *inputs, const int *targets, int B, int T,
                         float grad_scale, int loss_count) {
    if (!targets) die("gpt_forward_train: no targets");
    return forward(m, inputs, targets, B, T, 1, grad_scale, loss_count);
}

double gpt_last_accuracy(GPT *m, int *count) {
    size_t N = (size_t)m->B * m->T;
    m->be->download(m->argmax_host, m->argmax, N * sizeof(int));
    int correct = 0, valid = 0;
    for (size_t i = 0; i < N; i++) {
        if (m->targets_host[i] < 0) continue;
        valid++;
        correct += m->argmax_host[i] == m->targets_host[i];
    }
    if (count) *count = valid;
    return valid ? (double)correct / valid : 0.0;
}

// ----------------------------------------------------------------------------
// backward: the residual stream's gradient flows through one buffer
// (m->dresidual); each layer's branch gradients accumulate into it (ops.h).
// The branch's own activation gradients are written by the ops that make them
// (matmul_backward's and gelu_backward's dinp are overwritten), so of the
// scratch only dqkv, which attention backward accumulates into, is zeroed.

void gpt_zero_grad(GPT *m) { m->be->zero(m->grads, m->layout.num_params * sizeof(real)); }

void gpt_backward(GPT *m) {
    const GPTConfig *c = &m->cfg;
    const Backend *be = m->be;
    const int B = m->B, T = m->T, C = c->embd, NH = c->heads, Vp = c->padded_vocab;
    const size_t N = (size_t)B * T;
    const size_t Nmax = (size_t)m->max_batch * c->max_seq;
    const size_t saved = be->attention_saved_floats(m->max_batch, NH, c->max_seq);
    real *dfch_gelu = m->grad_scratch, *dfch = dfch_gelu + N * 4 * C;
    real *dln2 = dfch + N * 4 * C, *datto = dln2 + N * C, *dqkv = datto + N * C;
    real *dln1 = dqkv + N * 3 * C;
    real *dlnf = dln1;

    // head: the forward left dlogits in place of the logits; then LNf
    if (!m->has_dlogits) die("gpt_backward: the last forward was not gpt_forward_train's");
    m->has_dlogits = 0;
    be->zero(m->dresidual, N * C * sizeof(real));
    be->matmul_backward(dlnf, grad_of(m, m->wte), NULL, m->logits, m->lnf, m->wte, (int)N, C, Vp);
    const real *xlast = m->residual3 + (size_t)(c->layers - 1) * Nmax * C;
    be->layernorm_backward(m->dresidual, grad_of(m, m->lnfw), grad_of(m, m->lnfb), dlnf, xlast,
                           m->lnfw, m->lnf_mean, m->lnf_rstd, (int)N, C);

    AttnArgs aa = attn_args(m);
    for (int l = c->layers - 1; l >= 0; l--) {
        size_t lo = (size_t)l * Nmax;
        const size_t lC = (size_t)l * C;
        const real *x = l ? m->residual3 + (lo - Nmax) * C : m->encoded;
        real *ln1 = m->ln1 + lo * C, *qkv = m->qkv + lo * 3 * C, *atty = m->atty + lo * C;
        real *atto = att_out(m, l, lo * C), *res2 = m->residual2 + lo * C, *ln2 = m->ln2 + lo * C;
        real *fch = m->fch + lo * 4 * C, *fch_gelu = m->fch_gelu + lo * 4 * C;
        // matmul_backward and gelu_backward overwrite their dinp; only attention
        // backward accumulates into its (dqkv)
        be->zero(dqkv, N * 3 * C * sizeof(real));
        // MLP branch: dresidual holds dL/d(res3)
        be->matmul_backward(dfch_gelu, grad_of(m, m->fcprojw + lC * 4 * C),
                            m->fcprojb ? grad_of(m, m->fcprojb + lC) : NULL, m->dresidual,
                            fch_gelu, m->fcprojw + lC * 4 * C, (int)N, 4 * C, C);
        be->gelu_backward(dfch, fch, dfch_gelu, N * 4 * C);
        be->matmul_backward(dln2, grad_of(m, m->fcw + lC * 4 * C),
                            m->fcb ? grad_of(m, m->fcb + lC * 4) : NULL, dfch, ln2,
                            m->fcw + lC * 4 * C, (int)N, C, 4 * C);
        be->layernorm_backward(m->dresidual, grad_of(m, m->ln2w + lC),
                               m->ln2b ? grad_of(m, m->ln2b + lC) : NULL, dln2, res2,
                               m->ln2w + lC, m->ln2_mean + lo, m->ln2_rstd + lo, (int)N, C);
        // attention branch: dresidual now holds dL/d(res2)
        be->matmul_backward(datto, grad_of(m, m->attprojw + lC * C),
                            m->attprojb ? grad_of(m, m->attprojb + lC) : NULL, m->dresidual, atto,
                            m->attprojw + lC * C, (int)N, C, C);
        VariantArgs va = variant_args(m, l, 1);   // datto: dL/dO in, then scratch
        attention_variant_backward(be, dqkv, datto, datto, qkv, atty, m->att_saved + l * saved, B,
                                   T, C, NH, &aa, &va);
        be->matmul_backward(dln1, grad_of(m, m->qkvw + lC * 3 * C),
                            m->qkvb ? grad_of(m, m->qkvb + lC * 3) : NULL, dqkv, ln1,
                            m->qkvw + lC * 3 * C, (int)N, C, 3 * C);
        be->layernorm_backward(m->dresidual, grad_of(m, m->ln1w + lC),
                               m->ln1b ? grad_of(m, m->ln1b + lC) : NULL, dln1, x, m->ln1w + lC,
                               m->ln1_mean + lo, m->ln1_rstd + lo, (int)N, C);
    }
    be->embed_backward(grad_of(m, m->wte), grad_of(m, m->wpe), m->dresidual, m->inputs,
                       m->inputs_host, B, T, C);
}

void gpt_layer_stats(GPT *m, LayerStat *out) {
    const GPTConfig *c = &m->cfg;
    const size_t N = (size_t)m->B * m->T, Nmax = (size_t)m->max_batch * c->max_seq, C = (size_t)c->embd;
    const size_t ng = attn_num_gammas(&c->attn, c->layers, c->heads);
    real *gammas = xmalloc((ng + 1) * sizeof(real));
    if (ng) m->be->download(gammas, m->attn_gamma, ng * sizeof(real));
    for (int l = 0; l < c->layers; l++) {
        const size_t lo = (size_t)l * Nmax;
        out[l] = layer_stat(m->be, m->qkv + lo * 3 * C, m->atty + lo * C, att_out(m, l, lo * C), N, c->embd,
                            c->heads);
        out[l].gamma = attn_layer_gamma(&c->attn, l, c->heads, gammas);
    }
    free(gammas);
}

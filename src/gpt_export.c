// gpt_export.c - the GPT's weights out as safetensors, under nanoGPT's names
// (gpt.h). Apart from gpt.c, whose reference build also runs in double.
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "gpt.h"
#include "safetensors.h"

void gpt_export_safetensors(GPT *m, const char *path, const StMeta *meta, int nmeta) {
    const GPTConfig *c = &m->cfg;
    const int64_t C = c->embd;
    real *host = xmalloc(m->layout.num_params * sizeof(real));
    m->be->download(host, m->params, m->layout.num_params * sizeof(real));
    // per layer: (our tensor, nanoGPT's name, rows, cols); cols 0 = a vector
    const struct { const real *p; const char *name; int64_t rows, cols; } per_layer[] = {
        {m->ln1w, "ln_1.weight", C, 0},          {m->ln1b, "ln_1.bias", C, 0},
        {m->qkvw, "attn.c_attn.weight", 3 * C, C}, {m->qkvb, "attn.c_attn.bias", 3 * C, 0},
        {m->attprojw, "attn.c_proj.weight", C, C}, {m->attprojb, "attn.c_proj.bias", C, 0},
        {m->ln2w, "ln_2.weight", C, 0},          {m->ln2b, "ln_2.bias", C, 0},
        {m->fcw, "mlp.c_fc.weight", 4 * C, C},   {m->fcb, "mlp.c_fc.bias", 4 * C, 0},
        {m->fcprojw, "mlp.c_proj.weight", C, 4 * C}, {m->fcprojb, "mlp.c_proj.bias", C, 0},
    };
    enum { PER_LAYER = sizeof per_layer / sizeof per_layer[0] };
    StTensor *t = xcalloc((size_t)c->layers * PER_LAYER + 4, sizeof *t);
    int n = 0;
    // a view of `p` (a device pointer into m->params) in the host copy
    #define HOST(p) (host + ((p) - m->params))
    t[n++] = (StTensor){"transformer.wte.weight", 2, {c->padded_vocab, C}, HOST(m->wte)};
    t[n++] = (StTensor){"transformer.wpe.weight", 2, {c->max_seq, C}, HOST(m->wpe)};
    for (int l = 0; l < c->layers; l++) {
        for (int k = 0; k < PER_LAYER; k++) {
            if (!per_layer[k].p) continue;   // --bias=0
            const int64_t size = per_layer[k].rows * (per_layer[k].cols ? per_layer[k].cols : 1);
            StTensor *x = &t[n++];
            snprintf(x->name, sizeof x->name, "transformer.h.%d.%s", l, per_layer[k].name);
            x->ndim = per_layer[k].cols ? 2 : 1;
            x->shape[0] = per_layer[k].rows;
            x->shape[1] = per_layer[k].cols;
            x->data = HOST(per_layer[k].p) + (size_t)l * size;
        }
    }
    t[n++] = (StTensor){"transformer.ln_f.weight", 1, {C}, HOST(m->lnfw)};
    if (m->lnfb) t[n++] = (StTensor){"transformer.ln_f.bias", 1, {C}, HOST(m->lnfb)};
    #undef HOST
    safetensors_write(path, t, n, meta, nmeta);
    free(t);
    free(host);
}


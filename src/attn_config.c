// attn_config.c - see attn_config.h
#include "attn_config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// indexed by AttnKind; a new variant adds its name here
static const char *const KIND_NAMES[ATTN_NUM_KINDS] = {"std", "x", "xsa"};
static const char *const LEARN_NAMES[] = {"none", "layer", "head"};

static int find(const char *const *names, int n, const char *s, size_t len) {
    for (int k = 0; k < n; k++)
        if (strlen(names[k]) == len && !strncmp(names[k], s, len)) return k;
    return -1;
}

const char *attn_kind_name(int kind) { return kind >= 0 && kind < ATTN_NUM_KINDS ? KIND_NAMES[kind] : "?"; }
int gamma_learn_parse(const char *name) { return find(LEARN_NAMES, 3, name, strlen(name)); }
const char *gamma_learn_name(int learn) { return learn >= 0 && learn < 3 ? LEARN_NAMES[learn] : "?"; }

int attn_kinds_parse(AttnConfig *a, const char *list, int layers, char *err, size_t errlen) {
    if (layers < 1 || layers > ATTN_MAX_LAYERS) {
        snprintf(err, errlen, "%d layers: must be in [1, %d]", layers, ATTN_MAX_LAYERS);
        return -1;
    }
    unsigned char kinds[ATTN_MAX_LAYERS];
    int n = 0;
    for (const char *s = list;; n++) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        int k = find(KIND_NAMES, ATTN_NUM_KINDS, s, len);
        if (k < 0) {
            snprintf(err, errlen, "'%.*s' is not an attention kind (std, x or xsa)", (int)len, s);
            return -1;
        }
        if (n == layers) {
            snprintf(err, errlen, "'%s' lists more kinds than the %d layers", list, layers);
            return -1;
        }
        kinds[n] = (unsigned char)k;
        if (!comma) break;
        s = comma + 1;
    }
    n++;
    if (n == 1) memset(kinds, kinds[0], (size_t)layers);
    else if (n != layers) {
        snprintf(err, errlen, "'%s' lists %d kinds for %d layers (give one, or one per layer)", list, n, layers);
        return -1;
    }
    memcpy(a->kind, kinds, (size_t)layers);
    return 0;
}

void attn_kinds_format(const AttnConfig *a, int layers, char *buf, size_t len) {
    int same = 1;
    for (int l = 1; l < layers; l++) same &= a->kind[l] == a->kind[0];
    size_t at = 0;
    buf[0] = 0;
    for (int l = 0; l < (same ? 1 : layers) && at < len; l++)
        at += (size_t)snprintf(buf + at, len - at, "%s%s", l ? "," : "", attn_kind_name(a->kind[l]));
}

AttnConfig attn_config_uniform(int kind, float gamma, int learn) {
    AttnConfig a = {.gamma = gamma, .learn = learn};
    memset(a.kind, kind, sizeof a.kind);
    return a;
}

int attn_num_variant_layers(const AttnConfig *a, int layers) {
    int n = 0;
    for (int l = 0; l < layers; l++) n += a->kind[l] != ATTN_STD;
    return n;
}

int attn_gammas_per_layer(const AttnConfig *a, int heads) {
    return a->learn == GAMMA_HEAD ? heads : a->learn == GAMMA_LAYER ? 1 : 0;
}

size_t attn_num_gammas(const AttnConfig *a, int layers, int heads) {
    return (size_t)attn_num_variant_layers(a, layers) * attn_gammas_per_layer(a, heads);
}

// the index of layer l's first learned coefficient
static size_t gamma_index(const AttnConfig *a, int l, int heads) {
    return (size_t)attn_num_variant_layers(a, l) * attn_gammas_per_layer(a, heads);
}

VariantArgs attn_variant_args(const AttnConfig *a, int l, int heads, const real *learned,
                              real *dlearned, const real *fixed) {
    VariantArgs v = {.kind = a->kind[l], .gamma = fixed};
    if (a->learn != GAMMA_FIXED) {
        size_t k = gamma_index(a, l, heads);
        v.gamma = learned + k;
        v.per_head = a->learn == GAMMA_HEAD;
        v.dgamma = dlearned ? dlearned + k : NULL;
    }
    return v;
}

double attn_layer_gamma(const AttnConfig *a, int l, int heads, const real *learned_host) {
    if (a->kind[l] == ATTN_STD) return NAN;
    if (a->learn == GAMMA_FIXED) return a->gamma;
    const int n = attn_gammas_per_layer(a, heads);
    const real *g = learned_host + gamma_index(a, l, heads);
    double s = 0;
    for (int k = 0; k < n; k++) s += g[k];
    return s / n;
}

void attn_ckpt_ints(const AttnConfig *a, int layers, int32_t out[3]) {
    out[0] = out[1] = out[2] = 0;
    if (!attn_num_variant_layers(a, layers)) return;
    uint32_t h = 2166136261u;   // FNV-1a over the kinds
    for (int l = 0; l < layers; l++) h = (h ^ (a->kind[l] + 1u)) * 16777619u;
    uint32_t bits;
    memcpy(&bits, &a->gamma, sizeof bits);
    out[0] = (int32_t)(h & 0x7fffffff);
    out[1] = (int32_t)bits;
    out[2] = a->learn;
}

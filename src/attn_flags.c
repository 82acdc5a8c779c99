// attn_flags.c - see attn_flags.h
#include "attn_flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

AttnConfig attn_from_flags(const char *attn, float gamma, int gamma_given, const char *learn, int layers) {
    AttnConfig a = {.gamma = gamma, .learn = gamma_learn_parse(learn)};
    char err[200];
    if (attn_kinds_parse(&a, attn, layers, err, sizeof err) != 0) die_usage("--attn=%s: %s", attn, err);
    if (a.learn < 0) die_usage("--gamma-learn=%s: expected none, layer or head", learn);
    if (!attn_num_variant_layers(&a, layers)) {
        if (gamma_given && gamma != 1.0f) fprintf(stderr, "note: --gamma has no effect with --attn=std\n");
        if (a.learn != GAMMA_FIXED) fprintf(stderr, "note: --gamma-learn has no effect with --attn=std\n");
    }
    return a;
}

void attn_run_name(char *buf, size_t len, const char *prefix, const AttnConfig *a, int layers, int seed) {
    char *kinds = xmalloc(4 * (size_t)layers + 8);
    attn_kinds_format(a, layers, kinds, 4 * (size_t)layers + 8);
    if (a->learn == GAMMA_FIXED) snprintf(buf, len, "%s-%s-g%g-s%d", prefix, kinds, a->gamma, seed);
    else snprintf(buf, len, "%s-%s-g%g-learn-%s-s%d", prefix, kinds, a->gamma, gamma_learn_name(a->learn), seed);
    free(kinds);
}

void attn_describe(char *buf, size_t len, const AttnConfig *a, int layers) {
    static const char *const TITLE[ATTN_NUM_KINDS] = {"standard attention", "AttentionX", "XSA"};
    int same = 1;
    for (int l = 1; l < layers; l++) same &= a->kind[l] == a->kind[0];
    if (same && a->kind[0] == ATTN_STD) {
        snprintf(buf, len, "%s", TITLE[ATTN_STD]);
        return;
    }
    char how[40] = "";
    if (a->learn != GAMMA_FIXED) snprintf(how, sizeof how, ", learned per %s", gamma_learn_name(a->learn));
    if (same) {
        snprintf(buf, len, "%s (gamma %g%s)", TITLE[a->kind[0]], a->gamma, how);
        return;
    }
    char *kinds = xmalloc(4 * (size_t)layers + 8);
    attn_kinds_format(a, layers, kinds, 4 * (size_t)layers + 8);
    snprintf(buf, len, "attention %s (gamma %g%s)", kinds, a->gamma, how);
    free(kinds);
}

void attn_flags_from_file(Flag *flags, int n, const AttnConfig *f, int layers) {
    Flag *attn = (Flag *)flags_find(flags, n, "attn"), *gamma = (Flag *)flags_find(flags, n, "gamma");
    Flag *learn = (Flag *)flags_find(flags, n, "gamma-learn");
    if (!attn->from_cmdline) {
        char *kinds = xmalloc(4 * (size_t)layers + 8);
        attn_kinds_format(f, layers, kinds, 4 * (size_t)layers + 8);
        free(*(char **)attn->ptr);
        *(char **)attn->ptr = kinds;
    }
    if (!gamma->from_cmdline) *(float *)gamma->ptr = f->gamma;
    if (!learn->from_cmdline) {
        free(*(char **)learn->ptr);
        *(char **)learn->ptr = xstrdup(gamma_learn_name(f->learn));
    }
}

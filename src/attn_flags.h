// attn_flags.h - the attention's command-line side, shared by both trainers:
// --attn, --gamma and --gamma-learn into an AttnConfig (attn_config.h), the
// default run name, the console's description, and the settings a weights
// file brings (--init-from).
#ifndef ATTN_FLAGS_H
#define ATTN_FLAGS_H

#include "attn_config.h"
#include "flags.h"

// The three flags' table entries (char **attn, float *gamma, char **learn)
#define ATTN_FLAGS(attn, gamma, learn)                                                                  \
    STR_FLAG("attn", attn, "std", NULL,                                                                 \
             "attention: std, x (AttentionX: O = PV - gamma V) or xsa (PV less gamma times its part "   \
             "along V); or one per layer: std,std,x,x"),                                                \
    FLOAT_FLAG("gamma", gamma, "1", -1e6, 1e6, "the variants' coefficient (its initial value when learned)"), \
    STR_FLAG("gamma-learn", learn, "none", "none|layer|head",                                          \
             "learn gamma: none (fixed), one per layer, or one per head (no weight decay)")

// The config from --attn (a kind, or one per layer), --gamma and --gamma-learn;
// a bad list is a usage error naming --attn (exit 2). gamma_given: --gamma was
// on the command line (noted when no layer has a variant to use it).
AttnConfig attn_from_flags(const char *attn, float gamma, int gamma_given, const char *learn, int layers);
// "<prefix>-<kinds>-g<gamma>[-learn-<how>]-s<seed>": the default run directory
void attn_run_name(char *buf, size_t len, const char *prefix, const AttnConfig *a, int layers, int seed);
// For the console: "standard attention", "AttentionX (gamma 0.5)", "XSA (gamma 1,
// learned per head)", "attention std,x (gamma 1)"
void attn_describe(char *buf, size_t len, const AttnConfig *a, int layers);

// --init-from: the file's attention (f, of `layers` layers) into the --attn,
// --gamma and --gamma-learn flags of the table, for each not given on the
// command line (the attention is not a shape: it may differ from the file's).
void attn_flags_from_file(Flag *flags, int n, const AttnConfig *f, int layers);

#endif

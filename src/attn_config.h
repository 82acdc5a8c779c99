// attn_config.h - which attention variant each layer runs, and its gamma: the
// one description of "the attention" that both models and both trainers share.
//
// A variant is an AttnKind (ops.h): one output transform O = f(Y, V; gamma)
// after the attention core (../shared/spec/variants.md). Its name table is
// attn_config.c's; adding a variant adds a line there and one op per backend
// (variants.c, variants_fast.c, variants.cu).
#ifndef ATTN_CONFIG_H
#define ATTN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "../ops.h"

enum { ATTN_MAX_LAYERS = 1024 };   // the trainers' --layers/--depth limit

typedef enum {
    GAMMA_FIXED = 0,   // --gamma-learn=none: one coefficient for every head and layer
    GAMMA_LAYER = 1,   // one learned scalar per non-std layer
    GAMMA_HEAD = 2,    // one learned scalar per head of each non-std layer
} GammaLearn;

typedef struct {
    unsigned char kind[ATTN_MAX_LAYERS];   // AttnKind of layer l
    float gamma;                           // the coefficient; when learned, its initial value
    int learn;                             // GammaLearn
} AttnConfig;

// AttnKind -> "std", "x", "xsa" (attn_kinds_parse reads them)
const char *attn_kind_name(int kind);
// "none", "layer", "head" <-> GammaLearn; -1 for an unknown name
int gamma_learn_parse(const char *name);
const char *gamma_learn_name(int learn);

// Sets a->kind from `list`: one kind for every layer ("x") or a comma list of
// exactly `layers` kinds ("std,std,x,x"). Returns 0, or -1 with a one-line
// reason in err.
int attn_kinds_parse(AttnConfig *a, const char *list, int layers, char *err, size_t errlen);
// The inverse: one name when every layer has the same kind, else the list.
void attn_kinds_format(const AttnConfig *a, int layers, char *buf, size_t len);
// A single-kind config for every layer (tests, programs without flags).
AttnConfig attn_config_uniform(int kind, float gamma, int learn);

// Layers whose kind is not std (those with a transform and a gamma).
int attn_num_variant_layers(const AttnConfig *a, int layers);
// Learned coefficients per variant layer: 1 (layer), heads (head), 0 (fixed).
int attn_gammas_per_layer(const AttnConfig *a, int heads);
// All learned coefficients of the model (the attn_gamma tensor's size; 0 when fixed).
size_t attn_num_gammas(const AttnConfig *a, int layers, int heads);

// The variant op's arguments for layer l (a layer whose kind is not std):
// gamma from `learned`, the model's learned coefficients (the variant layers
// in order, attn_gammas_per_layer values each), when a->learn says so, else
// from `fixed` (1 device value holding a->gamma); dgamma at the same place in
// `dlearned` when it is not NULL (backward of a learned gamma).
VariantArgs attn_variant_args(const AttnConfig *a, int l, int heads, const real *learned,
                              real *dlearned, const real *fixed);
// The coefficient layer l reports (layers.csv): NAN for std, a->gamma when
// fixed, the mean of its learned values (`learned_host`, host copy) otherwise.
double attn_layer_gamma(const AttnConfig *a, int l, int heads, const real *learned_host);

// What a checkpoint records of the attention, as three ints (ckpt.h's shape):
// a hash of the kinds per layer, gamma's bits and the learn mode. All three
// are 0 for an all-std model, as checkpoints from before variants have them.
void attn_ckpt_ints(const AttnConfig *a, int layers, int32_t out[3]);

#endif

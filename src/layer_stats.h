// layer_stats.h - the per-layer diagnostic of the AttentionX paper
// (../shared/spec/variants.md), written to RUN/layers.csv at every evaluation.
//
// Over all rows (token x head) of one layer of the last forward pass, with y
// the attention core's output PV, v the token's value and o the variant's
// output:
//   disc    = rms(y - v) / rms(v)              (coefficient 1 whatever the variant)
//   cos_yv  = mean over rows of y.v / (|y| |v|)   (0 where either is 0)
//   out_rms = rms(o)
#ifndef LAYER_STATS_H
#define LAYER_STATS_H

#include <stddef.h>

#include "../ops.h"

// The sums the three ratios come from (over rows x heads): data parallelism
// adds them up over processes and finishes again, so layers.csv is the whole
// batch's whatever the process count.
enum { LAYER_SUMS = 6 };
typedef struct {
    double disc, cos_yv, out_rms;
    double gamma;   // the layer's coefficient (attn_layer_gamma; NAN for std), set by the model
    double sums[LAYER_SUMS];   // sum (y-v)^2, sum v^2, sum o^2, sum of cosines, rows x heads, elements
} LayerStat;

#define LAYERS_CSV_HEADER "step,layer,disc,cos_yv,gamma,out_rms"

// One layer: qkv (rows, 3C; V at column 2C), y and o (rows, C), device buffers
// of `be`; NH heads of C / NH. Copies them to the host (the diagnostic runs
// once per evaluation, on its first batch).
LayerStat layer_stat(const Backend *be, const real *qkv, const real *y, const real *o, size_t rows, int C,
                     int NH);
// disc, cos_yv and out_rms from s->sums
void layer_stat_finish(LayerStat *s);

#endif

// layer_stats.c - see layer_stats.h
#include "layer_stats.h"

#include <math.h>
#include <stdlib.h>

#include "common.h"

LayerStat layer_stat(const Backend *be, const real *qkv, const real *y, const real *o, size_t rows, int C,
                     int NH) {
    real *hq = xmalloc(rows * 3 * C * sizeof(real)), *hy = xmalloc(rows * C * sizeof(real));
    real *ho = xmalloc(rows * C * sizeof(real));
    be->download(hq, qkv, rows * 3 * C * sizeof(real));
    be->download(hy, y, rows * C * sizeof(real));
    be->download(ho, o, rows * C * sizeof(real));
    const int hs = C / NH;
    double dd = 0, vv = 0, oo = 0, cos_sum = 0;
    for (size_t r = 0; r < rows; r++) {
        const real *v = hq + r * 3 * C + 2 * C, *yr = hy + r * C, *orow = ho + r * C;
        for (int h = 0; h < NH; h++) {
            double yv = 0, y2 = 0, v2 = 0;
            for (int i = h * hs; i < (h + 1) * hs; i++) {
                const double a = yr[i], b = v[i];
                yv += a * b, y2 += a * a, v2 += b * b;
                dd += (a - b) * (a - b);
                oo += (double)orow[i] * orow[i];
            }
            vv += v2;
            if (y2 > 0 && v2 > 0) cos_sum += yv / sqrt(y2 * v2);
        }
    }
    free(hq), free(hy), free(ho);
    LayerStat s = {.gamma = NAN, .sums = {dd, vv, oo, cos_sum, (double)rows * NH, (double)rows * C}};
    layer_stat_finish(&s);
    return s;
}

void layer_stat_finish(LayerStat *s) {
    const double *t = s->sums;
    s->disc = t[1] > 0 ? sqrt(t[0] / t[1]) : NAN;
    s->cos_yv = t[4] > 0 ? t[3] / t[4] : NAN;
    s->out_rms = t[5] > 0 ? sqrt(t[2] / t[5]) : NAN;
}

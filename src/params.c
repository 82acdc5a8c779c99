// params.c - see params.h
#include "params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int params_add(ParamLayout *p, const char *name, int layers, size_t rows, size_t cols, int present) {
    size_t size = present ? (size_t)layers * rows * cols : 0;
    int k = p->num_tensors++;
    if (k >= PARAMS_MAX_TENSORS) die("params_add: more than %d tensors", PARAMS_MAX_TENSORS);
    p->tensors[k] = (ParamSlice){p->num_params, size, cols > 1};
    p->tensor_names[k] = name;
    for (int l = 0; l < layers && present; l++) {
        int s = p->num_slices++;
        p->slices = xrealloc(p->slices, (size_t)p->num_slices * sizeof *p->slices);
        p->slice_names = xrealloc(p->slice_names, (size_t)p->num_slices * sizeof *p->slice_names);
        p->slices[s] = (ParamSlice){p->num_params + (size_t)l * rows * cols, rows * cols, cols > 1};
        if (layers > 1) snprintf(p->slice_names[s], sizeof p->slice_names[s], "h%d.%s", l, name);
        else snprintf(p->slice_names[s], sizeof p->slice_names[s], "%s", name);
    }
    p->num_params += size;
    return k;
}

void params_free(ParamLayout *p) {
    free(p->slices);
    free(p->slice_names);
    memset(p, 0, sizeof *p);
}

const char *params_first_nonfinite(const ParamLayout *p, const Backend *be, const real *buf) {
    real *host = xmalloc(p->num_params * sizeof(real));
    be->download(host, buf, p->num_params * sizeof(real));
    const char *name = NULL;
    for (int k = 0; k < p->num_slices && !name; k++)
        for (size_t i = 0; i < p->slices[k].size && !name; i++)
            if (!isfinite(host[p->slices[k].offset + i])) name = p->slice_names[k];
    free(host);
    return name;
}

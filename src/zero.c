// zero.c - see zero.h
#include "zero.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"

void zero_init(Zero *z, int on, const ParamLayout *layout) {
    memset(z, 0, sizeof *z);
    const int size = dist_size(), rank = dist_rank();
    z->on = on;
    z->counts = xcalloc((size_t)size, sizeof(int));
    z->displs = xcalloc((size_t)size, sizeof(int));
    if (on && layout->num_params > INT_MAX)
        die_usage("--zero=1: %zu parameters are more than MPI's int counts hold", layout->num_params);
    if (!on) {   // everything on every process
        z->n = layout->num_params;
        z->first = 0, z->count = layout->num_slices;
    } else {
        // rank r's range ends at the first slice boundary at or after (r + 1) / size of the elements
        int s = 0;
        size_t at = 0;
        for (int r = 0; r < size; r++) {
            const size_t target = (size_t)((double)layout->num_params * (r + 1) / size);
            const int first = s;
            const size_t lo = at;
            while (s < layout->num_slices && (at < target || r == size - 1)) at += layout->slices[s++].size;
            z->counts[r] = (int)(at - lo);
            z->displs[r] = (int)lo;
            if (r == rank) z->first = first, z->count = s - first, z->lo = lo, z->n = at - lo;
        }
    }
    z->slices = xcalloc((size_t)z->count + 1, sizeof *z->slices);
    for (int k = 0; k < z->count; k++) {
        z->slices[k] = layout->slices[z->first + k];
        z->slices[k].offset -= z->lo;
    }
    z->scratch = on ? xcalloc(z->n + 1, sizeof(real)) : NULL;
}

void zero_free(Zero *z) {
    free(z->counts);
    free(z->displs);
    free(z->slices);
    free(z->scratch);
    memset(z, 0, sizeof *z);
}

void zero_optim_init(const Zero *z, Optimizer *o, const Backend *be) { optim_init(o, be, z->n); }

float zero_grads(Zero *z, Optimizer *o, real *grads, size_t num_params) {
    if (!z->on) {
        dist_sum_buffer(o->be, grads, num_params);
        return optim_grad_norm(o, grads);   // the optimizer covers every parameter
    }
    // this range's sum, then the norm from every range's sum of squares
    dist_reduce_scatter_real(grads, z->scratch, z->counts);
    memcpy(grads + z->lo, z->scratch, z->n * sizeof(real));
    o->be->sumsq(o->gnorm_sq, grads + z->lo, z->n);
    real part;
    o->be->download(&part, o->gnorm_sq, sizeof part);
    double s = part;
    dist_sum_double(&s, 1);
    const real total = (real)s;
    o->be->upload(o->gnorm_sq, &total, sizeof total);
    return (float)sqrt(s);
}

void zero_update(Zero *z, Optimizer *o, real *params, const real *grads, const ParamLayout *layout, float lr) {
    if (!z->on) {
        optim_update(o, params, grads, layout->slices, layout->num_slices, lr);
        return;
    }
    optim_update(o, params + z->lo, grads + z->lo, z->slices, z->count, lr);
    dist_allgather_real(params, z->counts, z->displs);
}

void zero_state_gather(const Zero *z, const Optimizer *o, size_t num_params, real **m, real **v) {
    if (!z->on) {
        *m = o->m, *v = o->v;
        return;
    }
    const int root = dist_is_root();
    *m = root ? xmalloc(num_params * sizeof(real)) : NULL;
    *v = root ? xmalloc(num_params * sizeof(real)) : NULL;
    dist_gather_real(o->m, *m, z->counts, z->displs);
    dist_gather_real(o->v, *v, z->counts, z->displs);
}

void zero_state_free(const Zero *z, real *m, real *v) {
    if (!z->on) return;
    free(m);
    free(v);
}

void zero_state_for_load(const Zero *z, const Optimizer *o, size_t num_params, real **m, real **v) {
    if (!z->on) {
        *m = o->m, *v = o->v;
        return;
    }
    *m = xmalloc(num_params * sizeof(real));
    *v = xmalloc(num_params * sizeof(real));
}

void zero_state_scatter(const Zero *z, Optimizer *o, real *m, real *v) {
    if (!z->on) return;
    memcpy(o->m, m + z->lo, z->n * sizeof(real));
    memcpy(o->v, v + z->lo, z->n * sizeof(real));
    free(m);
    free(v);
}

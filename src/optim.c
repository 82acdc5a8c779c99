// optim.c - see optim.h
#include "optim.h"

#include <math.h>

#define PI 3.14159265358979323846

void optim_init(Optimizer *o, const Backend *be, size_t num_params) {
    o->be = be;
    o->n = num_params;
    o->m = be->alloc(num_params * sizeof(real));
    o->v = be->alloc(num_params * sizeof(real));
    o->gnorm_sq = be->alloc(sizeof(real));
    o->t = 0;
}

void optim_free(Optimizer *o) {
    o->be->free(o->m);
    o->be->free(o->v);
    o->be->free(o->gnorm_sq);
}

float optim_grad_norm(Optimizer *o, const real *grads) {
    o->be->sumsq(o->gnorm_sq, grads, o->n);
    real s;
    o->be->download(&s, o->gnorm_sq, sizeof s);
    return (float)sqrt((double)s);
}

void optim_update(Optimizer *o, real *params, const real *grads, const ParamSlice *slices,
                  int nslices, float lr) {
    o->t++;
    OptimArgs a = {.lr = lr, .beta1 = o->beta1, .beta2 = o->beta2, .eps = o->eps, .wd = o->wd,
                   .tau = o->tau, .clip = o->clip, .t = o->t};
    if (o->kind == OPTIM_SETADAM)
        o->be->setadam_update(params, grads, o->m, o->v, slices, nslices, &a, o->gnorm_sq);
    else
        o->be->adamw_update(params, grads, o->m, o->v, slices, nslices, &a, o->gnorm_sq);
}

float lr_at(ScheduleKind kind, int step, int total, int warmup, float lr, float min_lr) {
    if (step < warmup) return lr * (float)(step + 1) / (float)warmup;
    if (kind == SCHEDULE_CONSTANT) return lr;
    int decay_steps = total - 1 - warmup;   // the last step (total - 1) reaches min_lr
    if (decay_steps <= 0) return lr;
    double progress = (double)(step - warmup) / decay_steps;
    if (progress > 1) progress = 1;
    double coeff = 0.5 * (1.0 + cos(PI * progress));
    return (float)(min_lr + coeff * (lr - min_lr));
}

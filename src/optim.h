// optim.h - the optimizer driver: grad norm, clipping, AdamW or SET-Adam.
//
// The update math is an op of the backend (layers.c / layers.cu); this file
// owns the optimizer state (m, v on the device) and the learning-rate schedule.
#ifndef OPTIM_H
#define OPTIM_H

#include "../ops.h"

typedef enum { OPTIM_ADAMW = 0, OPTIM_SETADAM = 1 } OptimKind;

typedef struct {
    OptimKind kind;
    float beta1, beta2, eps, wd, tau, clip;
    const Backend *be;
    size_t n;
    real *m, *v;        // device, n each
    real *gnorm_sq;     // device scalar: sum of squared gradients of the last step
    int t;              // steps taken
} Optimizer;

void optim_init(Optimizer *o, const Backend *be, size_t num_params);
void optim_free(Optimizer *o);
// The global gradient norm, before clipping: computed on the device, then
// read back (the one host sync of a step; logging and the NaN check need it).
// NaN or inf when any gradient is.
float optim_grad_norm(Optimizer *o, const real *grads);
// One update at learning rate lr (t advances by one), clipping with the norm
// of the preceding optim_grad_norm call.
void optim_update(Optimizer *o, real *params, const real *grads, const ParamSlice *slices,
                  int nslices, float lr);

// Learning rate at `step` (0-based) of `total`: linear warmup over `warmup`
// steps to lr, then constant or cosine decay to min_lr at the last step.
typedef enum { SCHEDULE_COSINE = 0, SCHEDULE_CONSTANT = 1 } ScheduleKind;
float lr_at(ScheduleKind kind, int step, int total, int warmup, float lr, float min_lr);

#endif

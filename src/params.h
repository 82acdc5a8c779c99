// params.h - the table of contents of a model's flat parameter buffer.
//
// Both models keep every parameter in one buffer (and the gradients in a
// second with the same layout). The layout names each tensor - a weight
// stacked over layers, say - and lists the optimizer's units, the slices: one
// per layer's matrix or vector, since SET-Adam normalises per layer tensor and
// AdamW decays only the 2-D ones.
#ifndef PARAMS_H
#define PARAMS_H

#include "../ops.h"

enum { PARAMS_MAX_TENSORS = 32 };

typedef struct {
    size_t num_params;
    int num_tensors;
    ParamSlice tensors[PARAMS_MAX_TENSORS];
    const char *tensor_names[PARAMS_MAX_TENSORS];
    int num_slices;
    ParamSlice *slices;
    char (*slice_names)[32];   // "h3.qkvw" for layer 3's piece of qkvw
} ParamLayout;

// Appends `layers` stacked pieces of rows x cols (no room when !present) and
// returns the tensor's index. cols == 1 marks a vector: not weight-decayed.
int params_add(ParamLayout *p, const char *name, int layers, size_t rows, size_t cols, int present);
void params_free(ParamLayout *p);
// The first slice of `buf` (parameters or gradients, on the device) holding
// a NaN or inf, or NULL. Reads the buffer back to the host.
const char *params_first_nonfinite(const ParamLayout *p, const Backend *be, const real *buf);

#endif

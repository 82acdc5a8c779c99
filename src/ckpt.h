// ckpt.h - checkpoints: parameters, optimizer state and the trainer's state.
//
// File layout (little-endian), shared by both trainers:
//   char magic[8] "ATXCKPT\0", uint32 version (1), char kind[8] ("gpt", "vit"),
//   int32 shape[16] (the model's shape; must match to load), int64 step,
//   uint64 num_params, uint64 state_bytes,
//   float params[num_params], m[num_params], v[num_params], state[state_bytes],
//   uint32 crc32 of everything before it.
// Written to a temporary file in the same folder, flushed to disk, then renamed
// over the old one: a crash mid-write leaves the previous checkpoint intact.
#ifndef CKPT_H
#define CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "../ops.h"

enum { CKPT_SHAPE_INTS = 16 };

typedef struct {
    char kind[8];
    int32_t shape[CKPT_SHAPE_INTS];
    const char *shape_names[CKPT_SHAPE_INTS];   // for error messages; NULL ends the list
    int64_t step;
} CkptInfo;

// Returns 0, or -1 with a one-line reason in err (the old checkpoint is kept).
int ckpt_save(const char *path, const CkptInfo *info, const Backend *be, const real *params,
              const real *m, const real *v, size_t num_params, const void *state,
              size_t state_bytes, char *err, size_t errlen);
// Loads into device buffers and sets info->step. Returns 0, or -1 with a
// one-line reason naming the file when the magic, version, kind, shape, size
// or checksum is wrong (the buffers may then hold part of the file).
int ckpt_read(const char *path, CkptInfo *info, const Backend *be, real *params, real *m, real *v,
              size_t num_params, void *state, size_t state_bytes, char *err, size_t errlen);
// ckpt_read, dying with its message on failure.
void ckpt_load(const char *path, CkptInfo *info, const Backend *be, real *params, real *m, real *v,
               size_t num_params, void *state, size_t state_bytes);

#endif

// safetensors.h - the safetensors format: weights that leave the project
// (--export) and come back in (--init-from).
//
// The file: an 8-byte little-endian header length N, N bytes of JSON (one
// object: each tensor's name -> {"dtype": "F32", "shape": [...],
// "data_offsets": [begin, end]} with offsets into the data that follows, and
// "__metadata__" -> a map of strings), padded with spaces to a multiple of 8,
// then the tensors' raw little-endian bytes in the order given.
#ifndef SAFETENSORS_H
#define SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char name[96];
    int ndim;              // 0..3 (0: a scalar, written as "shape":[] with one float)
    int64_t shape[3];
    const float *data;     // host memory, prod(shape) floats
} StTensor;

typedef struct StMeta {
    const char *key, *value;
} StMeta;

// Writes `path` atomically (a temporary file, then rename), so a failed write
// leaves any earlier file whole. Dies with a message naming the path on error.
void safetensors_write(const char *path, const StTensor *tensors, int n, const StMeta *meta,
                       int nmeta);

// --- reading -----------------------------------------------------------------
// safetensors_open parses the header of `path` (any file another tool wrote:
// tensors in any order, F32, BF16 or F16, up to 4 dimensions) and checks that
// every tensor's data_offsets lie inside the file and match its shape and
// dtype. Every problem (truncated file, malformed JSON, unknown dtype, ...) is
// a one-line die() naming `flag`=path, e.g. "--init-from=m.safetensors: ...".
enum { ST_F32 = 0, ST_BF16 = 1, ST_F16 = 2 };

typedef struct {
    char *name;
    int dtype;             // ST_*
    int ndim;              // 0..4 (0: a scalar)
    int64_t shape[4];
    uint64_t begin, end;   // byte offsets into the data after the header
} StEntry;

typedef struct StFile {
    char *flag, *path;     // for messages
    StEntry *t;
    int n;
    char **meta_key, **meta_value;   // __metadata__ (strings), nmeta entries
    int nmeta;
    char **strings;        // every string of the header (names and metadata point here)
    int nstrings;
    uint64_t data_start;   // file offset of the data: 8 + header length
    uint64_t file_size;
} StFile;

StFile *safetensors_open(const char *flag, const char *path);
void safetensors_close(StFile *st);
// the tensor called `name`, or NULL
const StEntry *safetensors_find(const StFile *st, const char *name);
// the __metadata__ value of `key`, or NULL
const char *safetensors_meta(const StFile *st, const char *key);
// Reads tensor `name` into `dst` as floats (BF16 and F16 widened exactly).
// Its shape must be `shape` (ndim entries): otherwise, or when it is missing,
// die() names the tensor and both shapes. A shape of prod 1 also accepts a
// scalar or any all-ones shape (PyTorch writes scalars as shape []).
void safetensors_read(const StFile *st, const char *name, int ndim, const int64_t *shape,
                      float *dst);

// n bf16 values (the top halves of fp32s: safetensors BF16, llm.c version 5) widened exactly
void bf16_widen(const uint16_t *src, float *dst, size_t n);

#endif

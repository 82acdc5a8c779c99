// safetensors.h - writing the safetensors format (weights that leave the project).
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
    int ndim;              // 1..3
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

#endif

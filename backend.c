// backend.c - choosing a backend: --device=auto|cpu|cuda.
//
// The CPU table is in layers.c. The CUDA table is in backend_cuda.cu, built
// when nvcc is present (the Makefile then defines HAVE_CUDA); without it,
// backend_cuda() below says so.
#include <string.h>

#include "ops.h"

#ifndef HAVE_CUDA
const Backend *backend_cuda(const char **why) {
    if (why) *why = "this build has no CUDA backend (nvcc was not found at build time)";
    return NULL;
}
#endif

const Backend *backend_select(const char *device, const char **why) {
    if (!strcmp(device, "cpu")) return &backend_cpu;
    if (!strcmp(device, "cuda")) return backend_cuda(why);
    if (!strcmp(device, "auto")) {
        const char *ignored;
        const Backend *cuda = backend_cuda(&ignored);
        return cuda ? cuda : &backend_cpu;
    }
    if (why) *why = "unknown device (expected auto, cpu or cuda)";
    return NULL;
}

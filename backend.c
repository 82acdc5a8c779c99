// backend.c - choosing a backend: --device=auto|cpu|ref|cuda.
//
// The reference table is in layers.c, the fast CPU table in layers_fast.c, the
// CUDA table in backend_cuda.cu, built when nvcc is present (the Makefile then
// defines HAVE_CUDA); without it, backend_cuda() below says so.
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cpu_gemm.h"
#include "ops.h"
#include "src/common.h"

#ifndef HAVE_CUDA
const Backend *backend_cuda(const char **why) {
    if (why) *why = "this build has no CUDA backend (nvcc was not found at build time)";
    return NULL;
}
const Backend *backend_cuda_bf16(const char **why) { return backend_cuda(why); }
#endif

const Backend *backend_select(const char *device, const char **why) {
    if (!strcmp(device, "cpu")) return &backend_cpu;
    if (!strcmp(device, "ref")) return &backend_ref;
    if (!strcmp(device, "cuda")) return backend_cuda(why);
    if (!strcmp(device, "auto")) {
        const char *reason = NULL;
        const Backend *cuda = backend_cuda(&reason);
        if (why) *why = cuda ? NULL : reason;
        return cuda ? cuda : &backend_cpu;
    }
    if (why) *why = "unknown device (expected auto, cpu, ref or cuda)";
    return NULL;
}

const Backend *backend_from_flag(const char *device) {
    const char *why = NULL;
    const Backend *be = backend_select(device, &why);
    if (!be) die("--device=%s: %s", device, why);
    if (why) printf("device: CUDA not used: %s\n", why);
    if (be == &backend_cpu)
        printf("device: cpu, %d threads, GEMMs by %s\n", omp_get_max_threads(), gemm_library());
    else if (be == &backend_ref)
        printf("device: ref, %d threads (the CPU reference: exact and slow)\n", omp_get_max_threads());
    return be;
}

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
    if (why) *why = "no CUDA in this build (nvcc was not found at build time, or NO_CUDA=1 was given)";
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

const Backend *backend_with_dtype(const Backend *be, const char *dtype, int head_size) {
    const int is_cuda = be->name && !strncmp(be->name, "cuda", 4);
    const int fits = head_size <= BF16_MAX_HEAD_SIZE;
    if (!strcmp(dtype, "fp32")) {
        if (is_cuda) printf("dtype: fp32\n");
        return be;
    }
    if (!strcmp(dtype, "bf16")) {
        if (!is_cuda) die_usage("--dtype=bf16 needs --device=cuda: the CPU backends compute in fp32");
        if (!fits)
            die_usage("--dtype=bf16: the bf16 flash attention takes head sizes up to %d; this "
                      "model's is %d (use --dtype=fp32)", BF16_MAX_HEAD_SIZE, head_size);
    } else if (strcmp(dtype, "auto")) {
        die_usage("--dtype=%s: expected auto, bf16 or fp32", dtype);
    }
    const char *why = NULL;
    const Backend *bf = is_cuda && fits ? backend_cuda_bf16(&why) : NULL;
    if (!bf && !strcmp(dtype, "bf16")) die("--dtype=bf16: %s", why);
    if (bf) {
        printf("dtype: bf16 (matmuls and attention on tensor cores, fp32 accumulation; fp32 "
               "weights, gradients and optimizer state)\n");
        return bf;
    }
    if (is_cuda)   // auto on a GPU that cannot take bf16, or on a model the kernels do not fit
        printf("dtype: fp32 (bf16 not used: %s)\n",
               why ? why : "the model's head size is over the flash attention kernel's 64");
    return be;
}

const Backend *backend_from_flag(const char *device) {
    const char *why = NULL;
    const Backend *be = backend_select(device, &why);
    if (!be) die("--device=%s: %s", device, why);
    // (stdout: rank 0's only under MPI, so one line per run)
    if (why) printf("device: --device=auto: using the CPU: CUDA not used: %s\n", why);
    if (be == &backend_cpu)
        printf("device: cpu, %d threads, GEMMs by %s\n", omp_get_max_threads(), gemm_library());
    else if (be == &backend_ref)
        printf("device: ref, %d threads (the CPU reference: exact and slow)\n", omp_get_max_threads());
    return be;
}

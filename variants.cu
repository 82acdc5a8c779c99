// variants.cu - the attention variants' output transforms on the GPU.
//
// The math is in variants.c (and ../shared/spec/variants.md). One warp per row
// (token n, head h) of head size hs; its lanes stride over the head's
// elements and the row's dot products (y.v, v.v, g.v) are warp sums:
//   forward:  O = y - k v,   k = gamma (x), gamma y.v / (v.v + 1e-6) (xsa)
//   backward: dY, the direct dV (accumulated into dqkv) and one dgamma term
//             per row, written to scratch; a second kernel sums those terms
//             per coefficient in a fixed order (deterministic, no atomics).
#include "cuda_common.h"

enum { VBLOCK = 256, VWARPS = VBLOCK / 32 };

static __device__ __forceinline__ float gamma_of(const float *gamma, int per_head, int h) {
    return gamma[per_head ? h : 0];
}

__global__ void variant_forward_kernel(float *out, const float *y, const float *qkv, int C, int NH,
                                       int kind, const float *gamma, int per_head, size_t rows) {
    const size_t r = blockIdx.x * (size_t)VWARPS + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;   // the whole warp leaves together
    const int hs = C / NH, h = (int)(r % NH);
    const size_t n = r / NH;
    const float *yr = y + n * C + (size_t)h * hs, *v = qkv + n * 3 * C + 2 * (size_t)C + (size_t)h * hs;
    float *o = out + n * C + (size_t)h * hs;
    if (kind == ATTN_STD) {   // a copy
        for (int d = lane; d < hs; d += 32) o[d] = yr[d];
        return;
    }
    float k = gamma_of(gamma, per_head, h);
    if (kind == ATTN_XSA) {
        float yv = 0.0f, vv = 0.0f;
        for (int d = lane; d < hs; d += 32) yv += yr[d] * v[d], vv += v[d] * v[d];
        yv = warp_sum(yv);
        vv = warp_sum(vv);
        k *= yv / (vv + 1e-6f);
    }
    for (int d = lane; d < hs; d += 32) o[d] = yr[d] - k * v[d];
}

// term[r] = this row's share of dL/dgamma (when term is not NULL)
__global__ void variant_backward_kernel(float *dy, float *dqkv, float *term, const float *dout,
                                        const float *y, const float *qkv, int C, int NH, int kind,
                                        const float *gamma, int per_head, size_t rows) {
    const size_t r = blockIdx.x * (size_t)VWARPS + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const int hs = C / NH, h = (int)(r % NH);
    const size_t n = r / NH;
    const size_t at = n * C + (size_t)h * hs, vat = n * 3 * C + 2 * (size_t)C + (size_t)h * hs;
    const float *g = dout + at, *yr = y + at, *v = qkv + vat;
    float *dv = dqkv + vat, *d = dy + at;
    const float gm = gamma_of(gamma, per_head, h);
    // every lane's reads of g are done before the warp sums, its writes after:
    // d may be g
    float gv = 0.0f, yv = 0.0f, vv = 0.0f;
    for (int e = lane; e < hs; e += 32) {
        gv += g[e] * v[e];
        if (kind == ATTN_XSA) yv += yr[e] * v[e], vv += v[e] * v[e];
    }
    gv = warp_sum(gv);
    float t = 0.0f;
    if (kind == ATTN_X) {
        t = -gv;
        for (int e = lane; e < hs; e += 32) {
            const float gc = g[e];
            dv[e] -= gm * gc;
            d[e] = gc;
        }
    } else if (kind == ATTN_XSA) {
        yv = warp_sum(yv);
        vv = warp_sum(vv);
        const float n2 = vv + 1e-6f, k = yv / n2, a = gm * gv / n2;
        t = -k * gv;
        for (int e = lane; e < hs; e += 32) {
            const float gc = g[e];
            dv[e] -= gm * k * gc + a * (yr[e] - 2.0f * k * v[e]);
            d[e] = gc - a * v[e];
        }
    } else {
        for (int e = lane; e < hs; e += 32) d[e] = g[e];
    }
    if (term && lane == 0) term[r] = t;
}

// dgamma[k] += sum of the terms of coefficient k: rows r = n NH + k (per head)
// or every row; one block per coefficient, in double, in a fixed order. The
// terms are this file's per-row floats or flash attention's per-block doubles.
template <typename F>
__global__ void variant_dgamma_kernel(float *dgamma, const F *term, int NH, int per_head,
                                      size_t rows) {
    __shared__ double sh[33];
    const int k = blockIdx.x;
    double acc = 0.0;
    if (per_head)
        for (size_t r = k + (size_t)threadIdx.x * NH; r < rows; r += (size_t)blockDim.x * NH) acc += term[r];
    else
        for (size_t r = threadIdx.x; r < rows; r += blockDim.x) acc += term[r];
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) dgamma[k] += (float)acc;
}

template <typename F>
static void dgamma_sum(float *dgamma, const F *term, size_t rows, int NH, int per_head) {
    variant_dgamma_kernel<F><<<per_head ? NH : 1, VBLOCK, 0, cuda_stream()>>>(dgamma, term, NH,
                                                                           per_head, rows);
    CUDA_LAUNCH_CHECK();
}
void variant_dgamma_sum_cuda(float *dgamma, const float *term, size_t rows, int NH, int per_head) {
    dgamma_sum(dgamma, term, rows, NH, per_head);
}
void variant_dgamma_sum_cuda(float *dgamma, const double *term, size_t rows, int NH, int per_head) {
    dgamma_sum(dgamma, term, rows, NH, per_head);
}

static float *buf_term;
static size_t cap_term;

void variant_forward_cuda(float *out, const float *y, const float *qkv, int N, int C, int NH,
                          const VariantArgs *args) {
    const size_t rows = (size_t)N * NH;
    if (!rows) return;
    variant_forward_kernel<<<(unsigned)ceil_div(rows, VWARPS), VBLOCK, 0, cuda_stream()>>>(
        out, y, qkv, C, NH, args->kind, args->gamma, args->per_head, rows);
    CUDA_LAUNCH_CHECK();
}

void variant_backward_cuda(float *dy, float *dqkv, const float *dout, const float *y,
                           const float *qkv, int N, int C, int NH, const VariantArgs *args) {
    const size_t rows = (size_t)N * NH;
    if (!rows) return;
    float *term = args->dgamma ? (float *)cuda_grow((void **)&buf_term, &cap_term, rows * sizeof(float))
                               : NULL;
    variant_backward_kernel<<<(unsigned)ceil_div(rows, VWARPS), VBLOCK, 0, cuda_stream()>>>(
        dy, dqkv, term, dout, y, qkv, C, NH, args->kind, args->gamma, args->per_head, rows);
    CUDA_LAUNCH_CHECK();
    if (term) variant_dgamma_sum_cuda(args->dgamma, term, rows, NH, args->per_head);
}

// layers.cu - the CUDA backend's ops other than attention (attention.cu).
//
// The math of each op is the comment above its CPU reference in layers.c; each
// kernel here carries a one-line statement of what it computes. Everything
// that feeds the model's gradients is deterministic: no float atomics; every
// sum over rows is a fixed tree (per-block partials, then a fixed-order pass).
#include "cuda_common.h"

#include <limits.h>
#include <string.h>

enum { BLOCK = 256 };

// ----------------------------------------------------------------------------
// memory

void *cuda_alloc(size_t bytes) {
    void *p = NULL;
    size_t n = bytes ? bytes : 1;
    cudaError_t err = cudaMalloc(&p, n);
    if (err != cudaSuccess) {
        // say what was asked for and what the GPU has, so the user can size --batch
        size_t free_bytes = 0, total_bytes = 0;
        cudaGetLastError();
        cudaMemGetInfo(&free_bytes, &total_bytes);
        fflush(stdout);
        fprintf(stderr, "error: cudaMalloc of %.1f MiB failed (%s): the GPU has %.1f MiB free of "
                "%.1f MiB; try a smaller --batch\n", bytes / 1048576.0, cudaGetErrorString(err),
                free_bytes / 1048576.0, total_bytes / 1048576.0);
        exit(1);
    }
    CUDA_CHECK(cudaMemset(p, 0, n));
    return p;
}

void cuda_free(void *p) {
    if (p) CUDA_CHECK(cudaFree(p));
}

void cuda_upload(void *dst_dev, const void *src_host, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(dst_dev, src_host, bytes, cudaMemcpyHostToDevice));
}

void cuda_download(void *dst_host, const void *src_dev, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost));
}

void cuda_copy(void *dst_dev, const void *src_dev, size_t bytes) {
    if (bytes)
        CUDA_CHECK(cudaMemcpyAsync(dst_dev, src_dev, bytes, cudaMemcpyDeviceToDevice,
                                   cuda_stream()));
}

void cuda_zero(void *p, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_stream()));
}

void cuda_synchronize(void) { CUDA_CHECK(cudaDeviceSynchronize()); }

// ----------------------------------------------------------------------------
// embedding

// out[bt, c] = wte[tokens[bt], c] + wpe[bt % T, c]
__global__ void embed_forward_kernel(float *out, const int *tokens, const float *wte,
                                     const float *wpe, size_t total, int T, int C) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t bt = i / C;
        int c = (int)(i % C), t = (int)(bt % T);
        out[i] = wte[(size_t)tokens[bt] * C + c] + wpe[(size_t)t * C + c];
    }
}

void embed_forward_cuda(float *out, const int *tokens, const float *wte, const float *wpe, int B,
                        int T, int C) {
    size_t total = (size_t)B * T * C;
    if (!total) return;
    embed_forward_kernel<<<grid_for(total, BLOCK), BLOCK, 0, cuda_stream()>>>(out, tokens, wte,
                                                                             wpe, total, T, C);
    CUDA_LAUNCH_CHECK();
}

// dwte[uniq[u], c] += dout[pos, c] for the positions of token u, ascending (as the CPU adds)
__global__ void embed_backward_wte_kernel(float *dwte, const float *dout, const int *uniq,
                                          const int *offsets, const int *positions, int C) {
    int u = blockIdx.x;
    int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float *g = dwte + (size_t)uniq[u] * C + c;
    float acc = *g;
    for (int k = offsets[u]; k < offsets[u + 1]; k++) acc += dout[(size_t)positions[k] * C + c];
    *g = acc;
}

// dwpe[t, c] += dout[b, t, c] for b = 0, 1, ..., B-1 in order
__global__ void embed_backward_wpe_kernel(float *dwpe, const float *dout, int B, int T, int C) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)T * C) return;
    float acc = dwpe[i];
    for (int b = 0; b < B; b++) acc += dout[(size_t)b * T * C + i];
    dwpe[i] = acc;
}

// The host side of the deterministic scatter-add: positions grouped by token
// (a counting sort), uploaded from a pinned buffer. An event guards the pinned
// buffer, so the host never rewrites it while the previous copy is in flight.
static int *emb_pinned, *emb_dev, *emb_counts, *emb_tokens_copy;
static size_t emb_pinned_cap, emb_dev_cap, emb_counts_cap, emb_tokens_cap;
static cudaEvent_t emb_copied;
static int emb_event_live;

void embed_backward_cuda(float *dwte, float *dwpe, const float *dout, const int *tokens,
                         const int *tokens_host, int B, int T, int C) {
    const int BT = B * T;
    if (BT <= 0 || C <= 0) return;
    if (dwpe) {
        size_t n = (size_t)T * C;
        embed_backward_wpe_kernel<<<(unsigned)ceil_div(n, BLOCK), BLOCK, 0, cuda_stream()>>>(
            dwpe, dout, B, T, C);
        CUDA_LAUNCH_CHECK();
    }
    if (!dwte) return;
    if (!emb_event_live) {
        CUDA_CHECK(cudaEventCreateWithFlags(&emb_copied, cudaEventDisableTiming));
        emb_event_live = 1;
    }
    if (!tokens_host) {   // not expected from the models; costs one synchronous download
        if ((size_t)BT > emb_tokens_cap) {
            free(emb_tokens_copy);
            emb_tokens_copy = (int *)malloc((size_t)BT * sizeof(int));
            if (!emb_tokens_copy) { fprintf(stderr, "error: out of host memory\n"); exit(1); }
            emb_tokens_cap = BT;
        }
        CUDA_CHECK(cudaMemcpy(emb_tokens_copy, tokens, (size_t)BT * sizeof(int),
                              cudaMemcpyDeviceToHost));
        tokens_host = emb_tokens_copy;
    }
    int maxtok = 0;
    for (int i = 0; i < BT; i++) {
        if (tokens_host[i] < 0) {
            fprintf(stderr, "error: embed_backward: negative token %d at %d\n", tokens_host[i], i);
            exit(1);
        }
        if (tokens_host[i] > maxtok) maxtok = tokens_host[i];
    }
    if ((size_t)maxtok + 1 > emb_counts_cap) {
        free(emb_counts);
        emb_counts = (int *)malloc(((size_t)maxtok + 1) * sizeof(int));
        if (!emb_counts) { fprintf(stderr, "error: out of host memory\n"); exit(1); }
        emb_counts_cap = (size_t)maxtok + 1;
    }
    // pinned layout: uniq[BT] | offsets[BT + 1] | positions[BT]
    size_t need = 3 * (size_t)BT + 1;
    if (need > emb_pinned_cap) {
        CUDA_CHECK(cudaEventSynchronize(emb_copied));
        if (emb_pinned) CUDA_CHECK(cudaFreeHost(emb_pinned));
        CUDA_CHECK(cudaMallocHost((void **)&emb_pinned, need * sizeof(int)));
        emb_pinned_cap = need;
    }
    CUDA_CHECK(cudaEventSynchronize(emb_copied));   // the previous upload is done with it
    int *counts = emb_counts;
    memset(counts, 0, ((size_t)maxtok + 1) * sizeof(int));
    for (int i = 0; i < BT; i++) counts[tokens_host[i]]++;
    int *uniq = emb_pinned, *offsets = emb_pinned + BT, *positions = emb_pinned + 2 * BT + 1;
    int nu = 0, run = 0;
    for (int tok = 0; tok <= maxtok; tok++) {
        if (!counts[tok]) continue;
        uniq[nu] = tok;
        offsets[nu] = run;
        int c = counts[tok];
        counts[tok] = run;   // from here on: the next free slot of this token
        run += c;
        nu++;
    }
    offsets[nu] = run;
    for (int i = 0; i < BT; i++) positions[counts[tokens_host[i]]++] = i;   // ascending per token
    // device layout, compact: uniq[nu] | offsets[nu + 1] | positions[BT]
    int *dev = (int *)cuda_grow((void **)&emb_dev, &emb_dev_cap, need * sizeof(int));
    CUDA_CHECK(cudaMemcpyAsync(dev, uniq, (size_t)nu * sizeof(int), cudaMemcpyHostToDevice,
                               cuda_stream()));
    CUDA_CHECK(cudaMemcpyAsync(dev + nu, offsets, ((size_t)nu + 1) * sizeof(int),
                               cudaMemcpyHostToDevice, cuda_stream()));
    CUDA_CHECK(cudaMemcpyAsync(dev + 2 * nu + 1, positions, (size_t)BT * sizeof(int),
                               cudaMemcpyHostToDevice, cuda_stream()));
    CUDA_CHECK(cudaEventRecord(emb_copied, cuda_stream()));
    dim3 grid((unsigned)nu, (unsigned)ceil_div(C, BLOCK));
    embed_backward_wte_kernel<<<grid, BLOCK, 0, cuda_stream()>>>(dwte, dout, dev, dev + nu,
                                                                 dev + 2 * nu + 1, C);
    CUDA_LAUNCH_CHECK();
}

// ----------------------------------------------------------------------------
// column sums over rows, deterministic: a (column chunk x row chunk) grid of
// partial sums, then one fixed-order pass over the row chunks

enum { COLS = 32, ROWLANES = 8 };

// row chunks for N rows: at most 128, each of at least 64 rows (fixed by N alone)
static int row_chunks(int N) {
    size_t k = ceil_div((size_t)N, 64);
    if (k > 128) k = 128;
    return k ? (int)k : 1;
}

// out[c] += sum_k partial[k * C + c], k = 0 .. nchunks-1 in order
__global__ void colsum_finish_kernel(float *out, const float *partial, int nchunks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float acc = 0;
    for (int k = 0; k < nchunks; k++) acc += partial[(size_t)k * C + c];
    out[c] += acc;
}

// partial[k, c] = sum of x[r, c] over the rows r of chunk k
__global__ void colsum_partial_kernel(float *partial, const float *x, int N, int C,
                                      int rows_per_chunk) {
    __shared__ float sh[ROWLANES][COLS + 1];
    int c = blockIdx.x * COLS + threadIdx.x;
    int r0 = blockIdx.y * rows_per_chunk;
    int r1 = min(N, r0 + rows_per_chunk);
    float acc = 0;
    if (c < C)
        for (int r = r0 + threadIdx.y; r < r1; r += ROWLANES) acc += x[(size_t)r * C + c];
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float s = 0;
        for (int k = 0; k < ROWLANES; k++) s += sh[k][threadIdx.x];
        partial[(size_t)blockIdx.y * C + c] = s;
    }
}

static float *colsum_scratch;
static size_t colsum_scratch_cap;

// out[c] += sum_r x[r, c]
static void colsum_accumulate(float *out, const float *x, int N, int C) {
    int nch = row_chunks(N), rpc = (int)ceil_div(N, nch);
    float *partial = (float *)cuda_grow((void **)&colsum_scratch, &colsum_scratch_cap,
                                        (size_t)nch * C * sizeof(float));
    dim3 grid((unsigned)ceil_div(C, COLS), (unsigned)nch), block(COLS, ROWLANES);
    colsum_partial_kernel<<<grid, block, 0, cuda_stream()>>>(partial, x, N, C, rpc);
    CUDA_LAUNCH_CHECK();
    colsum_finish_kernel<<<(unsigned)ceil_div(C, BLOCK), BLOCK, 0, cuda_stream()>>>(out, partial,
                                                                                   nch, C);
    CUDA_LAUNCH_CHECK();
}

// ----------------------------------------------------------------------------
// LayerNorm: one warp per row

// mean = sum x / C; rstd = 1 / sqrt(sum (x - mean)^2 / C + 1e-5); out = (x - mean) rstd w + b
__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                         const float *weight, const float *bias, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= N) return;   // the whole warp leaves together
    const float *x = inp + (size_t)row * C;
    float s = 0;
    for (int c = lane; c < C; c += 32) s += x[c];
    float m = warp_sum(s) / C;
    float v = 0;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - m;
        v += d * d;
    }
    float r = 1.0f / sqrtf(warp_sum(v) / C + 1e-5f);
    float *o = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * r * weight[c] + (bias ? bias[c] : 0.0f);
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = r;
    }
}

void layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, int N, int C) {
    if (N <= 0 || C <= 0) return;
    const int rows_per_block = BLOCK / 32;
    layernorm_forward_kernel<<<(unsigned)ceil_div(N, rows_per_block), BLOCK, 0, cuda_stream()>>>(
        out, mean, rstd, inp, weight, bias, N, C);
    CUDA_LAUNCH_CHECK();
}

// dinp += rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = dout w, one warp per row
__global__ void layernorm_backward_dinp_kernel(float *dinp, const float *dout, const float *inp,
                                               const float *weight, const float *mean,
                                               const float *rstd, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C, *d = dout + (size_t)row * C;
    float m = mean[row], r = rstd[row];
    float sd = 0, sdx = 0;
    for (int c = lane; c < C; c += 32) {
        float dxhat = d[c] * weight[c];
        sd += dxhat;
        sdx += dxhat * ((x[c] - m) * r);
    }
    float mean_d = warp_sum(sd) / C, mean_dx = warp_sum(sdx) / C;
    float *dx = dinp + (size_t)row * C;
    for (int c = lane; c < C; c += 32) {
        float xhat = (x[c] - m) * r, dxhat = d[c] * weight[c];
        dx[c] += r * (dxhat - mean_d - xhat * mean_dx);
    }
}

// pw[k, c] = sum over rows r of chunk k of dout[r,c] xhat[r,c];  pb[k, c] = sum of dout[r,c]
__global__ void layernorm_param_partial_kernel(float *pw, float *pb, const float *dout,
                                               const float *inp, const float *mean,
                                               const float *rstd, int N, int C,
                                               int rows_per_chunk) {
    __shared__ float shw[ROWLANES][COLS + 1], shb[ROWLANES][COLS + 1];
    int c = blockIdx.x * COLS + threadIdx.x;
    int r0 = blockIdx.y * rows_per_chunk;
    int r1 = min(N, r0 + rows_per_chunk);
    float aw = 0, ab = 0;
    if (c < C) {
        for (int r = r0 + threadIdx.y; r < r1; r += ROWLANES) {
            size_t i = (size_t)r * C + c;
            float d = dout[i];
            aw += d * ((inp[i] - mean[r]) * rstd[r]);
            ab += d;
        }
    }
    shw[threadIdx.y][threadIdx.x] = aw;
    shb[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float sw = 0, sb = 0;
        for (int k = 0; k < ROWLANES; k++) {
            sw += shw[k][threadIdx.x];
            sb += shb[k][threadIdx.x];
        }
        pw[(size_t)blockIdx.y * C + c] = sw;
        pb[(size_t)blockIdx.y * C + c] = sb;
    }
}

static float *ln_scratch;
static size_t ln_scratch_cap;

void layernorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const float *mean,
                             const float *rstd, int N, int C) {
    if (N <= 0 || C <= 0) return;
    if (dinp) {
        const int rows_per_block = BLOCK / 32;
        layernorm_backward_dinp_kernel<<<(unsigned)ceil_div(N, rows_per_block), BLOCK, 0,
                                         cuda_stream()>>>(dinp, dout, inp, weight, mean, rstd, N,
                                                          C);
        CUDA_LAUNCH_CHECK();
    }
    if (dweight || dbias) {
        int nch = row_chunks(N), rpc = (int)ceil_div(N, nch);
        float *pw = (float *)cuda_grow((void **)&ln_scratch, &ln_scratch_cap,
                                       2 * (size_t)nch * C * sizeof(float));
        float *pb = pw + (size_t)nch * C;
        dim3 grid((unsigned)ceil_div(C, COLS), (unsigned)nch), block(COLS, ROWLANES);
        layernorm_param_partial_kernel<<<grid, block, 0, cuda_stream()>>>(pw, pb, dout, inp, mean,
                                                                          rstd, N, C, rpc);
        CUDA_LAUNCH_CHECK();
        unsigned g = (unsigned)ceil_div(C, BLOCK);
        if (dweight) {
            colsum_finish_kernel<<<g, BLOCK, 0, cuda_stream()>>>(dweight, pw, nch, C);
            CUDA_LAUNCH_CHECK();
        }
        if (dbias) {
            colsum_finish_kernel<<<g, BLOCK, 0, cuda_stream()>>>(dbias, pb, nch, C);
            CUDA_LAUNCH_CHECK();
        }
    }
}

// ----------------------------------------------------------------------------
// matmul through cuBLAS. Row-major X (R x K) is column-major X^T, so
// out = inp W^T becomes out^T = W inp^T: sgemm(T, N) on (W, inp), etc.

// out[n, o] += bias[o]
__global__ void add_bias_kernel(float *out, const float *bias, size_t total, int OC) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] += bias[i % OC];
}

void matmul_forward_cuda(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    const float one = 1.0f, zero = 0.0f;
    if (C <= 0) {
        CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)N * OC * sizeof(float), cuda_stream()));
    } else {
        // out^T (OC x N) = W (OC x C, i.e. (C x OC)^T) * inp^T (C x N)
        CUBLAS_CHECK(cublasSgemm(cuda_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, weight,
                                 C, inp, C, &zero, out, OC));
    }
    if (bias) {
        size_t total = (size_t)N * OC;
        add_bias_kernel<<<grid_for(total, BLOCK), BLOCK, 0, cuda_stream()>>>(out, bias, total, OC);
        CUDA_LAUNCH_CHECK();
    }
}

void matmul_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC) {
    if (N <= 0) return;
    const float one = 1.0f, zero = 0.0f;
    if (dinp && C > 0) {
        if (OC <= 0) {   // no products: dinp = 0
            CUDA_CHECK(cudaMemsetAsync(dinp, 0, (size_t)N * C * sizeof(float), cuda_stream()));
        } else {
            // dinp^T (C x N) = W^T (C x OC) * dout^T (OC x N), overwritten (beta 0)
            CUBLAS_CHECK(cublasSgemm(cuda_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one,
                                     weight, C, dout, OC, &zero, dinp, C));
        }
    }
    if (OC <= 0) return;
    if (dweight && C > 0) {
        // dW^T (C x OC) += inp^T (C x N) * dout (N x OC)
        CUBLAS_CHECK(cublasSgemm(cuda_cublas(), CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, C,
                                 dout, OC, &one, dweight, C));
    }
    if (dbias) colsum_accumulate(dbias, dout, N, OC);
}

// ----------------------------------------------------------------------------
// elementwise

// out = x Phi(x),  Phi(x) = 0.5 erfc(-x / sqrt 2): the same as 0.5 (1 + erf(x / sqrt 2))
// without its cancellation for x << 0 (1 + erff(x / sqrt 2) keeps no digits
// there: at x = -8 it is 1e-15 against erff's absolute error of ~6e-8)
static __device__ __forceinline__ float gelu_cdf(float x) {
    return 0.5f * erfcf(-x * 0.70710678118654752f);
}

__global__ void gelu_forward_kernel(float *out, const float *inp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float x = inp[i];
        out[i] = x * gelu_cdf(x);
    }
}

// dinp = dout (Phi(x) + x phi(x)),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi): overwritten
__global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float x = inp[i];
        float cdf = gelu_cdf(x);
        float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
        dinp[i] = (cdf + x * pdf) * dout[i];
    }
}

// out = a + b
__global__ void add_kernel(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

void gelu_forward_cuda(float *out, const float *inp, size_t n) {
    if (!n) return;
    gelu_forward_kernel<<<grid_for(n, BLOCK), BLOCK, 0, cuda_stream()>>>(out, inp, n);
    CUDA_LAUNCH_CHECK();
}

void gelu_backward_cuda(float *dinp, const float *inp, const float *dout, size_t n) {
    if (!n) return;
    gelu_backward_kernel<<<grid_for(n, BLOCK), BLOCK, 0, cuda_stream()>>>(dinp, inp, dout, n);
    CUDA_LAUNCH_CHECK();
}

void add_forward_cuda(float *out, const float *a, const float *b, size_t n) {
    if (!n) return;
    add_kernel<<<grid_for(n, BLOCK), BLOCK, 0, cuda_stream()>>>(out, a, b, n);
    CUDA_LAUNCH_CHECK();
}

// ----------------------------------------------------------------------------
// softmax cross-entropy: one block per row, two passes over it

enum { XENT_BLOCK = 512 };

// A part of a row as (m, i, s): its max, the max's first index, sum exp(z - m);
// s == 0 marks a part that holds nothing. Merges (om, oi, os) into it.
__device__ inline void softmax_merge(float &m, int &i, float &s, float om, int oi, float os) {
    if (os == 0.0f) return;
    if (s == 0.0f) { m = om; i = oi; s = os; return; }
    const float M = fmaxf(m, om);
    s = s * expf(m - M) + os * expf(om - M);
    if (om > m || (om == m && oi < i)) i = oi;
    m = M;
}

// Pass 1 reads the row once: each thread keeps an online (max, argmax, sum
// e^(z - max)) of its columns, then the block merges them; pass 2 writes, in
// place of z where out == logits:
//   GRAD false: out = p = softmax(z[:V]), 0 in the padding
//   GRAD true:  out = scale (p - (1-ls) [k == t] - ls/V), 0 in the padding and ignored rows
// loss = (1-ls)(lse - z_t) + ls (lse - mean z), 0 for ignored rows; argmax z.
// Time goes to the two passes over V floats per row (memory bound).
template <bool GRAD>
__global__ void xent_kernel(float *losses, float *out, int *argmax, const float *logits,
                            const int *targets, int V, int Vp, float smoothing, float scale) {
    __shared__ float shm[32], shs[32];
    __shared__ int shi[32];
    __shared__ double shd[33];
    const int row = blockIdx.x, tid = threadIdx.x;
    const int lane = tid & 31, warp = tid >> 5, nwarps = blockDim.x >> 5;
    const float *z = logits + (size_t)row * Vp;
    // each thread's columns ascending: a strictly larger value moves the max,
    // so ties keep the smaller index
    float m = -INFINITY, s = 0.0f;
    int i = INT_MAX;
    double sz = 0;
    for (int k = tid; k < V; k += blockDim.x) {
        const float zk = z[k];
        if (zk > m) {
            s = s * expf(m - zk) + 1.0f;
            m = zk;
            i = k;
        } else {
            s += expf(zk - m);
        }
        sz += zk;
    }
    for (int o = 16; o > 0; o >>= 1)
        softmax_merge(m, i, s, __shfl_xor_sync(0xffffffffu, m, o),
                      __shfl_xor_sync(0xffffffffu, i, o), __shfl_xor_sync(0xffffffffu, s, o));
    if (lane == 0) { shm[warp] = m; shi[warp] = i; shs[warp] = s; }
    __syncthreads();
    if (warp == 0) {
        m = lane < nwarps ? shm[lane] : -INFINITY;
        i = lane < nwarps ? shi[lane] : INT_MAX;
        s = lane < nwarps ? shs[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1)
            softmax_merge(m, i, s, __shfl_xor_sync(0xffffffffu, m, o),
                          __shfl_xor_sync(0xffffffffu, i, o), __shfl_xor_sync(0xffffffffu, s, o));
        if (lane == 0) { shm[0] = m; shi[0] = i; shs[0] = s; }
    }
    sz = block_sum(sz, shd);   // synchronises the block: shm[0].. are visible after it
    const float lse = shm[0] + logf(shs[0]);   // log sum_k exp z_k
    const int t = targets ? targets[row] : -1;
    const bool valid = t >= 0 && t < V;
    const float zt = valid ? z[t] : 0.0f;
    __syncthreads();   // every read of z[t] is done: out may alias z from here on
    float *o = out + (size_t)row * Vp;
    if (GRAD && !valid) {
        for (int k = tid; k < Vp; k += blockDim.x) o[k] = 0.0f;
    } else {
        const float hit = 1.0f - smoothing, uniform = smoothing / (float)V;
        for (int k = tid; k < Vp; k += blockDim.x) {
            float v = 0.0f;
            if (k < V) {
                const float p = expf(z[k] - lse);
                v = GRAD ? scale * (p - (k == t ? hit : 0.0f) - uniform) : p;
            }
            o[k] = v;
        }
    }
    if (tid == 0) {
        double loss = 0;
        if (valid) {
            loss = (1.0 - smoothing) * ((double)lse - zt);
            if (smoothing != 0.0f) loss += smoothing * ((double)lse - sz / V);
        }
        losses[row] = (float)loss;
        if (argmax) argmax[row] = shi[0] == INT_MAX ? 0 : shi[0];
    }
}

void xent_forward_cuda(float *losses, float *probs, int *argmax, const float *logits,
                       const int *targets, int N, int V, int Vp, float smoothing) {
    if (N <= 0) return;
    xent_kernel<false><<<(unsigned)N, XENT_BLOCK, 0, cuda_stream()>>>(
        losses, probs, argmax, logits, targets, V, Vp, smoothing, 1.0f);
    CUDA_LAUNCH_CHECK();
}

void xent_forward_backward_cuda(float *losses, int *argmax, float *logits, const int *targets,
                                int N, int V, int Vp, float smoothing, float scale) {
    if (N <= 0) return;
    xent_kernel<true><<<(unsigned)N, XENT_BLOCK, 0, cuda_stream()>>>(
        losses, logits, argmax, logits, targets, V, Vp, smoothing, scale);
    CUDA_LAUNCH_CHECK();
}

// ----------------------------------------------------------------------------
// sum of squares: per-block partials (a grid fixed by n), then one block

enum { SUMSQ_BLOCKS = 1024 };

// partial[block] = sum of x[i]^2 over this block's grid-stride elements, in double
__global__ void sumsq_partial_kernel(double *partial, const float *x, size_t n) {
    __shared__ double sh[33];
    double acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        acc += (double)x[i] * x[i];
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// out[0] = sum of partial[0 .. np-1]
__global__ void sumsq_finish_kernel(float *out, const double *partial, int np) {
    __shared__ double sh[33];
    double acc = 0;
    for (int i = threadIdx.x; i < np; i += blockDim.x) acc += partial[i];
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) out[0] = (float)acc;
}

static double *sumsq_scratch;
static size_t sumsq_scratch_cap;

void sumsq_cuda(float *out, const float *x, size_t n) {
    double *partial = (double *)cuda_grow((void **)&sumsq_scratch, &sumsq_scratch_cap,
                                          SUMSQ_BLOCKS * sizeof(double));
    unsigned g = grid_for(n, BLOCK, SUMSQ_BLOCKS);
    sumsq_partial_kernel<<<g, BLOCK, 0, cuda_stream()>>>(partial, x, n);
    CUDA_LAUNCH_CHECK();
    sumsq_finish_kernel<<<1, 1024, 0, cuda_stream()>>>(out, partial, (int)g);
    CUDA_LAUNCH_CHECK();
}

// ----------------------------------------------------------------------------
// optimizers. The slice table lives on the device, uploaded when it changes
// (the first step); grid.y runs over slices, grid.x strides within a slice.

static ParamSlice *slices_host, *slices_dev;
static int slices_n, slices_cap;
static size_t slices_dev_cap;

static const ParamSlice *device_slices(const ParamSlice *slices, int nslices) {
    int same = nslices == slices_n;
    for (int s = 0; same && s < nslices; s++)
        same = slices[s].offset == slices_host[s].offset && slices[s].size == slices_host[s].size &&
               slices[s].decay == slices_host[s].decay;
    if (!same) {
        if (nslices > slices_cap) {
            free(slices_host);
            slices_host = (ParamSlice *)malloc((size_t)nslices * sizeof(ParamSlice));
            if (!slices_host) { fprintf(stderr, "error: out of host memory\n"); exit(1); }
            slices_cap = nslices;
        }
        cuda_grow((void **)&slices_dev, &slices_dev_cap, (size_t)nslices * sizeof(ParamSlice));
        memset(slices_host, 0, (size_t)nslices * sizeof(ParamSlice));
        for (int s = 0; s < nslices; s++) {
            slices_host[s].offset = slices[s].offset;
            slices_host[s].size = slices[s].size;
            slices_host[s].decay = slices[s].decay;
        }
        // synchronous: the device copy may be in use by queued updates
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaMemcpy(slices_dev, slices_host, (size_t)nslices * sizeof(ParamSlice),
                              cudaMemcpyHostToDevice));
        slices_n = nslices;
    }
    return slices_dev;
}

// grid.x for the optimizer kernels: enough blocks for the largest slice, at most 256
static unsigned optim_grid_x(const ParamSlice *slices, int nslices) {
    size_t maxsize = 0;
    for (int s = 0; s < nslices; s++)
        if (slices[s].size > maxsize) maxsize = slices[s].size;
    return grid_for(maxsize, BLOCK, 256);
}

static void check_nslices(int nslices) {
    if (nslices > 65535) {
        fprintf(stderr, "error: optimizer: %d slices exceed the CUDA grid's 65535\n", nslices);
        exit(1);
    }
}

// the clipping factor min(1, clip / sqrt(gnorm_sq)), from the device scalar
static __device__ double clip_factor_dev(const float *gnorm_sq, float clip) {
    if (!(clip > 0.0f) || !gnorm_sq) return 1.0;
    double norm = sqrt((double)gnorm_sq[0]);
    return norm > clip ? clip / norm : 1.0;
}

// g = grad c; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr (m/bc1 / (sqrt(v/bc2) + eps) + wd p)
__global__ void adamw_kernel(float *params, const float *grads, float *m, float *v,
                             const ParamSlice *slices, float lr, float beta1, float beta2,
                             float eps, float wd, float bc1, float bc2, float clip,
                             const float *gnorm_sq) {
    const ParamSlice sl = slices[blockIdx.y];
    const float gscale = (float)clip_factor_dev(gnorm_sq, clip);
    const float wdl = sl.decay ? wd : 0.0f;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < sl.size;
         j += (size_t)gridDim.x * blockDim.x) {
        size_t i = sl.offset + j;
        float g = grads[i] * gscale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        float p = params[i];
        params[i] = p - lr * (mhat / (sqrtf(vhat) + eps) + wdl * p);
    }
}

void adamw_update_cuda(float *params, const float *grads, float *m, float *v,
                       const ParamSlice *slices, int nslices, const OptimArgs *a,
                       const float *gnorm_sq) {
    if (nslices <= 0) return;
    check_nslices(nslices);
    const ParamSlice *ds = device_slices(slices, nslices);
    float bc1 = (float)(1.0 - pow((double)a->beta1, a->t));
    float bc2 = (float)(1.0 - pow((double)a->beta2, a->t));
    dim3 grid(optim_grid_x(slices, nslices), (unsigned)nslices);
    adamw_kernel<<<grid, BLOCK, 0, cuda_stream()>>>(params, grads, m, v, ds, a->lr, a->beta1,
                                                    a->beta2, a->eps, a->wd, bc1, bc2, a->clip,
                                                    gnorm_sq);
    CUDA_LAUNCH_CHECK();
}

// SET-Adam pass 1: m, v as Adam; stats[slice, block] = (sum v, sum v^2, min v) of this block
__global__ void setadam_moments_kernel(double *stats, const float *grads, float *m, float *v,
                                       const ParamSlice *slices, float beta1, float beta2,
                                       float clip, const float *gnorm_sq) {
    __shared__ double sh[33];
    const ParamSlice sl = slices[blockIdx.y];
    const float gscale = (float)clip_factor_dev(gnorm_sq, clip);
    double sv = 0, sv2 = 0, vmin = INFINITY;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < sl.size;
         j += (size_t)gridDim.x * blockDim.x) {
        size_t i = sl.offset + j;
        float g = grads[i] * gscale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        sv += vi;
        sv2 += (double)vi * vi;
        vmin = fmin(vmin, (double)vi);
    }
    sv = block_sum(sv, sh);
    sv2 = block_sum(sv2, sh);
    vmin = block_min(vmin, sh);
    if (threadIdx.x == 0) {
        double *st = stats + 3 * ((size_t)blockIdx.y * gridDim.x + blockIdx.x);
        st[0] = sv;
        st[1] = sv2;
        st[2] = vmin;
    }
}

// SET-Adam pass 2: c = (sum v)^2 / (d sum v^2) (1 if sum v^2 == 0); w = sqrt(c v / bc2 + eps);
// p -= lr / bc1 m / (w - tau w(min v)) + lr wd p (decay slices)
__global__ void setadam_apply_kernel(float *params, const float *m, const float *v,
                                     const double *stats, const ParamSlice *slices, double lr,
                                     double eps, double wd, double tau, double bc1, double bc2) {
    __shared__ double sh_c, sh_wmin;
    const ParamSlice sl = slices[blockIdx.y];
    if (threadIdx.x == 0) {
        // every block of the slice adds the same partials in the same order
        const double *st = stats + 3 * (size_t)blockIdx.y * gridDim.x;
        double sv = 0, sv2 = 0, vmin = INFINITY;
        for (unsigned k = 0; k < gridDim.x; k++) {
            sv += st[3 * k];
            sv2 += st[3 * k + 1];
            vmin = fmin(vmin, st[3 * k + 2]);
        }
        double c = sv2 > 0 ? sv * sv / ((double)sl.size * sv2) : 1.0;
        sh_c = c;
        sh_wmin = sl.size ? sqrt(c * vmin / bc2 + eps) : 0.0;
    }
    __syncthreads();
    const double c = sh_c, wmin = sh_wmin;
    const double wdl = sl.decay ? wd : 0.0;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < sl.size;
         j += (size_t)gridDim.x * blockDim.x) {
        size_t i = sl.offset + j;
        double w = sqrt(c * v[i] / bc2 + eps);
        double wt = w - tau * wmin;
        double p0 = params[i];
        double p = p0 - lr / bc1 * m[i] / wt;
        if (wdl > 0) p -= lr * wdl * p0;
        params[i] = (float)p;
    }
}

static double *setadam_stats;
static size_t setadam_stats_cap;

void setadam_update_cuda(float *params, const float *grads, float *m, float *v,
                         const ParamSlice *slices, int nslices, const OptimArgs *a,
                         const float *gnorm_sq) {
    if (nslices <= 0) return;
    check_nslices(nslices);
    const ParamSlice *ds = device_slices(slices, nslices);
    dim3 grid(optim_grid_x(slices, nslices), (unsigned)nslices);
    double *stats = (double *)cuda_grow((void **)&setadam_stats, &setadam_stats_cap,
                                        3 * (size_t)grid.x * grid.y * sizeof(double));
    double bc1 = 1.0 - pow((double)a->beta1, a->t), bc2 = 1.0 - pow((double)a->beta2, a->t);
    setadam_moments_kernel<<<grid, BLOCK, 0, cuda_stream()>>>(stats, grads, m, v, ds, a->beta1,
                                                              a->beta2, a->clip, gnorm_sq);
    CUDA_LAUNCH_CHECK();
    setadam_apply_kernel<<<grid, BLOCK, 0, cuda_stream()>>>(params, m, v, stats, ds, a->lr,
                                                            a->eps, a->wd, a->tau, bc1, bc2);
    CUDA_LAUNCH_CHECK();
}

// ----------------------------------------------------------------------------
// ViT: patches, cls token and position embedding, dropout, cls-token select
// (math in layers.c; the dropout mask is the same pure function of (seed, i))

// SPT's shifted copies read the image at (y + dy[s], x + dx[s]), zero outside (as layers.c)
__constant__ int spt_shift_dy[5] = {0, 0, 0, -1, 1};
__constant__ int spt_shift_dx[5] = {0, -1, 1, 0, 0};

// out[b, n, (i P + j) Cs + s C + c] = img_s[b, c, py P + i, px P + j], one thread per output
__global__ void patchify_forward_kernel(float *out, const float *images, size_t total, int C,
                                        int H, int W, int P, int S) {
    const int Cs = C * S, grid_w = W / P, Np = (H / P) * grid_w;
    const size_t PD = (size_t)P * P * Cs;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total;
         k += (size_t)gridDim.x * blockDim.x) {
        const size_t bn = k / PD;
        const int e = (int)(k % PD), b = (int)(bn / Np), n = (int)(bn % Np);
        const int ij = e / Cs, sc = e % Cs, s = sc / C, c = sc % C;
        const int y = (n / grid_w) * P + ij / P + spt_shift_dy[s];
        const int x = (n % grid_w) * P + ij % P + spt_shift_dx[s];
        const int inside = y >= 0 && y < H && x >= 0 && x < W;
        out[k] = inside ? images[(((size_t)b * C + c) * H + y) * W + x] : 0.0f;
    }
}

void patchify_forward_cuda(float *out, const float *images, int B, int C, int H, int W, int P,
                           int shifts) {
    const int S = shifts ? 5 : 1;
    const size_t total = (size_t)B * (H / P) * (W / P) * P * P * C * S;
    if (!total) return;
    patchify_forward_kernel<<<grid_for(total, BLOCK), BLOCK, 0, cuda_stream()>>>(
        out, images, total, C, H, W, P, S);
    CUDA_LAUNCH_CHECK();
}

// out[b,0,:] = cls + pos[0,:];  out[b,1+i,:] = x[b,i,:] + pos[1+i,:]
__global__ void cls_pos_forward_kernel(float *out, const float *x, const float *cls,
                                       const float *pos, size_t total, int Np, int D) {
    const int T = Np + 1;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total;
         k += (size_t)gridDim.x * blockDim.x) {
        const size_t bt = k / D;
        const int d = (int)(k % D), t = (int)(bt % T);
        const size_t b = bt / T;
        const float src = t == 0 ? cls[d] : x[(b * Np + t - 1) * D + d];
        out[k] = src + pos[(size_t)t * D + d];
    }
}

void cls_pos_forward_cuda(float *out, const float *x, const float *cls, const float *pos, int B,
                          int Np, int D) {
    const size_t total = (size_t)B * (Np + 1) * D;
    if (!total) return;
    cls_pos_forward_kernel<<<grid_for(total, BLOCK), BLOCK, 0, cuda_stream()>>>(out, x, cls, pos,
                                                                               total, Np, D);
    CUDA_LAUNCH_CHECK();
}

// dx[b,i,:] += dout[b,1+i,:]
__global__ void cls_pos_backward_dx_kernel(float *dx, const float *dout, size_t total, int Np,
                                           int D) {
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total;
         k += (size_t)gridDim.x * blockDim.x) {
        const size_t bi = k / D;
        const size_t b = bi / Np, i = bi % Np;
        dx[k] += dout[(b * (Np + 1) + 1 + i) * D + k % D];
    }
}

// dpos[t,d] += sum_b dout[b,t,d] and dcls[d] += sum_b dout[b,0,d], b in order, in double
__global__ void cls_pos_backward_params_kernel(float *dcls, float *dpos, const float *dout, int B,
                                               int T, int D) {
    const size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (k >= (size_t)T * D) return;
    double acc = 0;
    for (int b = 0; b < B; b++) acc += dout[(size_t)b * T * D + k];
    if (dpos) dpos[k] += (float)acc;
    if (dcls && k < (size_t)D) dcls[k] += (float)acc;
}

void cls_pos_backward_cuda(float *dx, float *dcls, float *dpos, const float *dout, int B, int Np,
                           int D) {
    if (B <= 0 || D <= 0) return;
    if (dx && Np > 0) {
        const size_t total = (size_t)B * Np * D;
        cls_pos_backward_dx_kernel<<<grid_for(total, BLOCK), BLOCK, 0, cuda_stream()>>>(
            dx, dout, total, Np, D);
        CUDA_LAUNCH_CHECK();
    }
    if (dcls || dpos) {
        const size_t n = (size_t)(Np + 1) * D;
        cls_pos_backward_params_kernel<<<(unsigned)ceil_div(n, BLOCK), BLOCK, 0, cuda_stream()>>>(
            dcls, dpos, dout, B, Np + 1, D);
        CUDA_LAUNCH_CHECK();
    }
}

// mask_i = [hash64(seed, first + i) >> 11 >= threshold] scale;  out_i = inp_i mask_i
__global__ void dropout_forward_kernel(float *out, float *mask, const float *inp, size_t n,
                                       uint64_t threshold, float scale, uint64_t seed, uint64_t first) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float keep = (hash64(seed, first + i) >> 11) >= threshold ? scale : 0.0f;
        mask[i] = keep;
        out[i] = inp[i] * keep;
    }
}

// dinp += dout * mask
__global__ void dropout_backward_kernel(float *dinp, const float *dout, const float *mask,
                                        size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dinp[i] += dout[i] * mask[i];
}

void dropout_forward_cuda(float *out, float *mask, const float *inp, size_t n, float p,
                          uint64_t seed, uint64_t first) {
    if (!n) return;
    // the threshold p 2^53 and the scale 1 / (1 - p) computed as layers.c does
    const uint64_t threshold = (uint64_t)((double)p * 9007199254740992.0);
    const float scale = (float)(1.0 / (1.0 - (double)p));
    dropout_forward_kernel<<<grid_for(n, BLOCK), BLOCK, 0, cuda_stream()>>>(out, mask, inp, n,
                                                                           threshold, scale, seed, first);
    CUDA_LAUNCH_CHECK();
}

void dropout_backward_cuda(float *dinp, const float *dout, const float *mask, size_t n) {
    if (!n) return;
    dropout_backward_kernel<<<grid_for(n, BLOCK), BLOCK, 0, cuda_stream()>>>(dinp, dout, mask, n);
    CUDA_LAUNCH_CHECK();
}

// out[b,d] = x[b,0,d]
__global__ void cls_select_forward_kernel(float *out, const float *x, size_t total, int T, int D) {
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total;
         k += (size_t)gridDim.x * blockDim.x)
        out[k] = x[(k / D) * T * D + k % D];
}

// dx[b,0,d] += dout[b,d]
__global__ void cls_select_backward_kernel(float *dx, const float *dout, size_t total, int T,
                                           int D) {
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total;
         k += (size_t)gridDim.x * blockDim.x)
        dx[(k / D) * T * D + k % D] += dout[k];
}

void cls_select_forward_cuda(float *out, const float *x, int B, int T, int D) {
    const size_t total = (size_t)B * D;
    if (!total) return;
    cls_select_forward_kernel<<<grid_for(total, BLOCK), BLOCK, 0, cuda_stream()>>>(out, x, total,
                                                                                  T, D);
    CUDA_LAUNCH_CHECK();
}

void cls_select_backward_cuda(float *dx, const float *dout, int B, int T, int D) {
    const size_t total = (size_t)B * D;
    if (!total) return;
    cls_select_backward_kernel<<<grid_for(total, BLOCK), BLOCK, 0, cuda_stream()>>>(dx, dout,
                                                                                   total, T, D);
    CUDA_LAUNCH_CHECK();
}

// ----------------------------------------------------------------------------
// the end of a run: what this file holds outside cuda_grow (cuda_shutdown
// frees the grown buffers and has already waited for the device)

void layers_cuda_shutdown(void) {
    if (emb_event_live) CUDA_CHECK(cudaEventDestroy(emb_copied));
    emb_event_live = 0;
    if (emb_pinned) CUDA_CHECK(cudaFreeHost(emb_pinned));
    emb_pinned = NULL;
    emb_pinned_cap = 0;
    free(emb_counts);
    free(emb_tokens_copy);
    emb_counts = emb_tokens_copy = NULL;
    emb_counts_cap = emb_tokens_cap = 0;
    free(slices_host);
    slices_host = NULL;
    slices_n = slices_cap = 0;
}

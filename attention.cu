// attention.cu - the multi-head attention core on the GPU.
//
// The math is in attention.c (and ../shared/spec/attentionx.md). This first
// version materialises the T x T scores of every (batch, head):
//   forward:  q, k, v <- qkv split into heads (B, NH, T, hs)
//             S = Q K^T (cuBLAS, strided batched; the scale s is applied next)
//             P = softmax_row(s S + M)          kept in `saved`
//             Yh = P V (cuBLAS);  y <- Yh merged back to (B, T, C)
//   backward: (G = dY, the gradient after the variant's transform, variants.cu)
//             D_i = rowsum(G o Y);  dP = G V^T;  dV = P^T G
//             dS = P o (dP - D) (0 where masked)
//             dQ = s dS K,  dK = s dS^T Q
//             LSA: dt = s sum_ij dS_ij (Q K^T)_ij = s sum_id Q_id (dS K)_id,
//             so dt is the dot product of Q with the unscaled dQ: no T x T pass.
// s = exp(*log_temp) is read on the device by the kernels that need it, so
// nothing here waits for the device. Scratch buffers grow only.
#include "cuda_common.h"

enum { ABLOCK = 256, DT_BLOCKS = 256 };

// out[b, h, t, d] = in[(b T + t) stride + offset + h hs + d]
__global__ void split_heads_kernel(float *out, const float *in, int T, int NH, int hs,
                                   size_t stride, size_t offset, size_t total) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int d = (int)(i % hs);
        size_t r = i / hs;   // (b NH + h) T + t
        int t = (int)(r % T);
        size_t bh = r / T;
        int h = (int)(bh % NH);
        size_t b = bh / NH;
        out[i] = in[(b * T + t) * stride + offset + (size_t)h * hs + d];
    }
}

// att[row, j] = softmax over allowed j of s att[row, j]; 0 where masked (a row
// with no allowed key is all 0); one warp per row, row = (b NH + h) T + i
__global__ void attn_softmax_kernel(float *att, size_t rows, int T, int mask,
                                    const float *log_temp, float scale) {
    size_t row = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;   // the whole warp leaves together
    const int i = (int)(row % T);
    const float s = attn_scale(log_temp, scale);
    float *a = att + row * T;
    float mx = -INFINITY;
    for (int j = lane; j < T; j += 32)
        if (attn_allowed(mask, i, j)) mx = fmaxf(mx, s * a[j]);
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int j = lane; j < T; j += 32)
        if (attn_allowed(mask, i, j)) sum += expf(s * a[j] - mx);
    sum = warp_sum(sum);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int j = lane; j < T; j += 32)
        a[j] = attn_allowed(mask, i, j) ? expf(s * a[j] - mx) * inv : 0.0f;
}

// y[b, t, h hs + d] = Yh[b, h, t, d]
__global__ void attn_merge_forward_kernel(float *y, const float *yh, int T, int C, int NH,
                                          size_t total) {
    const int hs = C / NH;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t bt = i / C;
        int c = (int)(i % C), h = c / hs, d = c % hs;
        size_t b = bt / T;
        int t = (int)(bt % T);
        y[i] = yh[((b * NH + h) * T + t) * hs + d];
    }
}

// D[(b NH + h) T + t] = sum_d G[b, t, h hs + d] Y[b, t, h hs + d]; one warp per (b, t, h)
__global__ void attn_rowdot_kernel(float *D, const float *dout, const float *y, int T, int C,
                                   int NH, size_t rows) {
    size_t r = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const int hs = C / NH;
    size_t bt = r / NH;
    int h = (int)(r % NH);
    size_t b = bt / T;
    int t = (int)(bt % T);
    const float *g = dout + bt * C + (size_t)h * hs, *yy = y + bt * C + (size_t)h * hs;
    float acc = 0.0f;
    for (int d = lane; d < hs; d += 32) acc += g[d] * yy[d];
    acc = warp_sum(acc);
    if (lane == 0) D[(b * NH + h) * T + t] = acc;
}

// dS = P (dP - D_row) where allowed, 0 where masked; in place over dP
__global__ void attn_softmax_backward_kernel(float *dp, const float *P, const float *D, int T,
                                             int mask, size_t total) {
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        size_t row = idx / T;
        int j = (int)(idx % T), i = (int)(row % T);
        dp[idx] = attn_allowed(mask, i, j) ? P[idx] * (dp[idx] - D[row]) : 0.0f;
    }
}

// dqkv[b, t, :] += (s dQh, s dKh, dVh) merged back from the head layout
__global__ void attn_merge_backward_kernel(float *dqkv, const float *dqh, const float *dkh,
                                           const float *dvh, int T, int C, int NH,
                                           const float *log_temp, float scale, size_t total) {
    const int hs = C / NH;
    const float s = attn_scale(log_temp, scale);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t bt = i / C;
        int c = (int)(i % C), h = c / hs, d = c % hs;
        size_t b = bt / T;
        int t = (int)(bt % T);
        size_t p = ((b * NH + h) * T + t) * hs + d;
        float *row = dqkv + bt * 3 * C;
        row[c] += s * dqh[p];
        row[C + c] += s * dkh[p];
        row[2 * C + c] += dvh[p];
    }
}

// partial[block] = sum of q[i] dq[i] over this block's grid-stride elements, in double
__global__ void attn_dt_partial_kernel(double *partial, const float *q, const float *dq,
                                       size_t n) {
    __shared__ double sh[33];
    double acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        acc += (double)q[i] * dq[i];
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// dlog_temp[0] += s sum(partial)   (dt = s sum_id Q_id (dS K)_id)
__global__ void attn_dt_finish_kernel(float *dlog_temp, const double *partial, int np,
                                      const float *log_temp, float scale) {
    __shared__ double sh[33];
    double acc = 0;
    for (int i = threadIdx.x; i < np; i += blockDim.x) acc += partial[i];
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) {
        double s = log_temp ? exp((double)log_temp[0]) : (double)scale;
        dlog_temp[0] += (float)(s * acc);
    }
}

// ----------------------------------------------------------------------------
// host side

// batched column-major C_b = op(A_b) op(B_b) + beta C_b over `batch` strided items
static void sgemm_batched(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                          const float *A, int lda, long long sA, const float *Bm, int ldb,
                          long long sB, float *Cm, int ldc, long long sC, int batch) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemmStridedBatched(cuda_cublas(), ta, tb, m, n, k, &one, A, lda, sA, Bm,
                                           ldb, sB, &zero, Cm, ldc, sC, batch));
}

// scratch shared by forward and backward (never in flight at once: one stream)
static float *buf_q, *buf_k, *buf_v, *buf_h, *buf_dq, *buf_dk, *buf_dv, *buf_dp, *buf_D;
static size_t cap_q, cap_k, cap_v, cap_h, cap_dq, cap_dk, cap_dv, cap_dp, cap_D;
static double *buf_part;
static size_t cap_part;

static void check_shape(int C, int NH) {
    if (NH <= 0 || C % NH) {
        fprintf(stderr, "error: attention: %d heads do not divide %d channels\n", NH, C);
        exit(1);
    }
}

static void split_heads(float *out, const float *in, int B, int T, int C, int NH, size_t stride,
                        size_t offset) {
    size_t total = (size_t)B * T * C;
    split_heads_kernel<<<grid_for(total, ABLOCK), ABLOCK, 0, cuda_stream()>>>(
        out, in, T, NH, C / NH, stride, offset, total);
    CUDA_LAUNCH_CHECK();
}

static void rowdot(float *D, const float *dy, const float *y, int B, int T, int C, int NH);

size_t attention_saved_floats_cuda(int B, int NH, int T) { return (size_t)B * NH * T * T; }

void attention_forward_cuda(float *y, float *saved, const float *qkv, int B, int T,
                            int C, int NH, const AttnArgs *args) {
    if (B <= 0 || T <= 0 || C <= 0) return;
    check_shape(C, NH);
    const int hs = C / NH, BH = B * NH;
    const size_t n = (size_t)B * T * C, rows = (size_t)BH * T;
    const long long sh = (long long)T * hs, st = (long long)T * T;
    float *q = (float *)cuda_grow((void **)&buf_q, &cap_q, n * sizeof(float));
    float *k = (float *)cuda_grow((void **)&buf_k, &cap_k, n * sizeof(float));
    float *v = (float *)cuda_grow((void **)&buf_v, &cap_v, n * sizeof(float));
    float *yh = (float *)cuda_grow((void **)&buf_h, &cap_h, n * sizeof(float));
    const size_t row3 = 3 * (size_t)C;
    split_heads(q, qkv, B, T, C, NH, row3, 0);
    split_heads(k, qkv, B, T, C, NH, row3, C);
    split_heads(v, qkv, B, T, C, NH, row3, 2 * (size_t)C);
    // S (row-major T x T) = Q K^T: column-major S^T = K Q^T
    sgemm_batched(CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, k, hs, sh, q, hs, sh, saved, T, st, BH);
    const unsigned warps_per_block = ABLOCK / 32;
    attn_softmax_kernel<<<(unsigned)ceil_div(rows, warps_per_block), ABLOCK, 0, cuda_stream()>>>(
        saved, rows, T, args->mask, args->log_temp, args->scale);
    CUDA_LAUNCH_CHECK();
    // Yh (T x hs) = P V: column-major Yh^T = V^T P^T
    sgemm_batched(CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, v, hs, sh, saved, T, st, yh, hs, sh, BH);
    attn_merge_forward_kernel<<<grid_for(n, ABLOCK), ABLOCK, 0, cuda_stream()>>>(
        y, yh, T, C, NH, n);
    CUDA_LAUNCH_CHECK();
}

void attention_backward_cuda(float *dqkv, const float *dy, const float *qkv, const float *y,
                             const float *saved, int B, int T, int C, int NH,
                             const AttnArgs *args) {
    if (B <= 0 || T <= 0 || C <= 0) return;
    check_shape(C, NH);
    const int hs = C / NH, BH = B * NH;
    const size_t n = (size_t)B * T * C, rows = (size_t)BH * T, tt = rows * T;
    const long long sh = (long long)T * hs, st = (long long)T * T;
    float *q = (float *)cuda_grow((void **)&buf_q, &cap_q, n * sizeof(float));
    float *k = (float *)cuda_grow((void **)&buf_k, &cap_k, n * sizeof(float));
    float *v = (float *)cuda_grow((void **)&buf_v, &cap_v, n * sizeof(float));
    float *g = (float *)cuda_grow((void **)&buf_h, &cap_h, n * sizeof(float));
    float *dq = (float *)cuda_grow((void **)&buf_dq, &cap_dq, n * sizeof(float));
    float *dk = (float *)cuda_grow((void **)&buf_dk, &cap_dk, n * sizeof(float));
    float *dv = (float *)cuda_grow((void **)&buf_dv, &cap_dv, n * sizeof(float));
    float *dp = (float *)cuda_grow((void **)&buf_dp, &cap_dp, tt * sizeof(float));
    float *D = (float *)cuda_grow((void **)&buf_D, &cap_D, rows * sizeof(float));
    const size_t row3 = 3 * (size_t)C;
    split_heads(q, qkv, B, T, C, NH, row3, 0);
    split_heads(k, qkv, B, T, C, NH, row3, C);
    split_heads(v, qkv, B, T, C, NH, row3, 2 * (size_t)C);
    split_heads(g, dy, B, T, C, NH, C, 0);
    rowdot(D, dy, y, B, T, C, NH);
    // dP (T x T) = G V^T: column-major dP^T = V G^T
    sgemm_batched(CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, v, hs, sh, g, hs, sh, dp, T, st, BH);
    // dV (T x hs) = P^T G: column-major dV^T = G^T P
    sgemm_batched(CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, g, hs, sh, saved, T, st, dv, hs, sh, BH);
    attn_softmax_backward_kernel<<<grid_for(tt, ABLOCK), ABLOCK, 0, cuda_stream()>>>(
        dp, saved, D, T, args->mask, tt);
    CUDA_LAUNCH_CHECK();
    // dQ/s (T x hs) = dS K: column-major K^T dS^T
    sgemm_batched(CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, k, hs, sh, dp, T, st, dq, hs, sh, BH);
    // dK/s (T x hs) = dS^T Q: column-major Q^T dS
    sgemm_batched(CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, q, hs, sh, dp, T, st, dk, hs, sh, BH);
    attn_merge_backward_kernel<<<grid_for(n, ABLOCK), ABLOCK, 0, cuda_stream()>>>(
        dqkv, dq, dk, dv, T, C, NH, args->log_temp, args->scale, n);
    CUDA_LAUNCH_CHECK();
    if (args->dlog_temp) {
        double *part = (double *)cuda_grow((void **)&buf_part, &cap_part,
                                           DT_BLOCKS * sizeof(double));
        unsigned gb = grid_for(n, ABLOCK, DT_BLOCKS);
        attn_dt_partial_kernel<<<gb, ABLOCK, 0, cuda_stream()>>>(part, q, dq, n);
        CUDA_LAUNCH_CHECK();
        attention_dt_finish_cuda(args->dlog_temp, part, (int)gb, args);
    }
}

// D = rowsum(dY o Y) per (b, h, t), the softmax backward's row term
static void rowdot(float *D, const float *dy, const float *y, int B, int T, int C, int NH) {
    const size_t rows = (size_t)B * NH * T;
    const unsigned warps_per_block = ABLOCK / 32;
    attn_rowdot_kernel<<<(unsigned)ceil_div(rows, warps_per_block), ABLOCK, 0, cuda_stream()>>>(
        D, dy, y, T, C, NH, rows);
    CUDA_LAUNCH_CHECK();
}

const float *attention_rowdot_cuda(const float *dy, const float *y, int B, int T, int C, int NH) {
    float *D = (float *)cuda_grow((void **)&buf_D, &cap_D, (size_t)B * NH * T * sizeof(float));
    rowdot(D, dy, y, B, T, C, NH);
    return D;
}

void attention_dt_finish_cuda(float *dlog_temp, const double *partial, int np,
                              const AttnArgs *args) {
    attn_dt_finish_kernel<<<1, ABLOCK, 0, cuda_stream()>>>(dlog_temp, partial, np, args->log_temp,
                                                           args->scale);
    CUDA_LAUNCH_CHECK();
}

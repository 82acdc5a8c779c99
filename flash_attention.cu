// flash_attention.cu - the attention core as tiled kernels that never form the
// T x T matrix (FlashAttention-2's schedule), on tensor cores: bf16 operands,
// fp32 accumulation, through mma.cuh's mma.sync/ldmatrix helpers.
//
// The math is attention.c's (../shared/spec/attentionx.md): for one (batch,
// head), x = s Q K^T + M, P = softmax_row(x), Y = P V.
//   forward   per 64-query tile, over the allowed 64-key tiles: the online
//             softmax keeps each row's running max m and sum l, rescales the
//             output by exp(m_old - m_new) and adds P V; at the end Y = O / l and
//             `saved` keeps L = m + log l per row (a row with no allowed key:
//             Y = 0, L = +inf, so that exp(x - L) = 0 in backward).
//   backward  (G = dY after the variant's backward) D_i = rowsum(G o Y); with
//             P = exp(x - L) recomputed tile by tile:
//               dV = P^T G,  dS = P o (G V^T - D),  dK = s dS^T Q,  dQ = s dS K,
//             in two kernels so that every output element has one owner and
//             nothing is summed with atomics: one over key tiles (dK, dV), one
//             over query tiles (dQ, and LSA's dt = s sum_id Q_id (dS K)_id as
//             per-block partial sums reduced in a fixed order).
// AttentionX (O = Y - gamma V, variants.c) is fused in: the forward's epilogue
// writes O beside Y; in backward G = dL/dO is the core's dY, and the key
// kernel's epilogue adds the direct -gamma G_j to dV_j and sums dgamma =
// -sum G_j . V_j per block (reduced in a fixed order). xsa runs as its own op
// around this core (variants.cu).
//
// Layout: a block of 4 warps owns 64 rows (query rows forward and for dQ, key
// rows for dK/dV), 16 per warp; the other side streams through shared memory
// in 64-row tiles. The model's activations are fp32, so each op first stages
// its operands (fa_stage_kernel): Q, K, V (and G backward) rounded to bf16 once,
// each (batch, head) a contiguous (Tp, HS) matrix - T rounded up to 64 rows,
// the head size padded to HS (16, 32 or 64), zeros in the padding - so that a
// tile is one contiguous block that cp.async copies to shared memory 16 bytes
// a thread at a time, without passing through registers. The forward pass
// double-buffers K and V: the next tile's copy runs while this one's products
// do (the backward kernels, with four tiles resident, would need more than the
// 48 KiB of static shared memory for a second set). Causal masking skips the
// key tiles above the diagonal.
//
// Error: bf16 keeps 8 significant bits (unit roundoff 2^-8). Beyond rounding
// Q, K, V and dY once, P and dS are rounded before their products, each an
// error of at most 2^-8 of the product's magnitude sum (tests/test_backend.c
// holds the kernels to twice that); the softmax and every sum are fp32.
#include "cuda_common.h"
#include "mma.cuh"

enum { FA_ROWS = 64, FA_WARPS = 4, FA_THREADS = 32 * FA_WARPS, FA_MAX_HS = BF16_MAX_HEAD_SIZE };

// Staging: parts C-wide parts of each row of src (B, T, parts C) - q, k, v of
// qkv, or dY alone - as bf16 matrices, one per (part, batch, head):
//   out[((w B + b) NH + h) Tp + t][d] = bf16(src[b, t, w C + h hs + d]), 0 for t >= T or d >= hs
// One thread per 8 elements (16 bytes) of out. A pass over src: memory bound.
template <int HS>
__global__ void fa_stage_kernel(bf16 *out, const float *src, int parts, int B, int T, int Tp,
                                int C, int NH) {
    const int hs = C / NH;
    const size_t n = (size_t)parts * B * NH * Tp * (HS / 8);
    for (size_t c = blockIdx.x * (size_t)blockDim.x + threadIdx.x; c < n;
         c += (size_t)gridDim.x * blockDim.x) {
        const size_t r = c / (HS / 8);   // the row of out: ((w B + b) NH + h) Tp + t
        const int d0 = (int)(c % (HS / 8)) * 8, t = (int)(r % Tp), h = (int)(r / Tp % NH);
        const int b = (int)(r / Tp / NH % B), w = (int)(r / Tp / NH / B);
        const size_t at = ((size_t)b * T + t) * parts * C + (size_t)w * C + (size_t)h * hs;
        UNROLL
        for (int j = 0; j < 8; j++)
            out[r * HS + d0 + j] = __float2bfloat16_rn(t < T && d0 + j < hs ? src[at + d0 + j] : 0.0f);
    }
}

// rows [row0, row0 + 64) of a staged (Tp, HS) matrix into s by cp.async; the
// caller commits the group and waits for it
template <int HS>
static __device__ void fa_copy_tile(bf16 (*s)[HS + 8], const bf16 *m, int row0) {
    const bf16 *src = m + (size_t)row0 * HS;
    for (int c = threadIdx.x; c < FA_ROWS * HS / 8; c += FA_THREADS)
        cp_async_16(&s[c / (HS / 8)][c % (HS / 8) * 8], src + (size_t)c * 8);
}

// this warp's A fragments of rows [r0, r0 + 16) of s (16 x HS, in HS / 16 chunks of 16 columns)
template <int HS>
static __device__ void fa_load_a(uint32_t a[HS / 16][4], bf16 (*s)[HS + 8], int r0) {
    const int l = threadIdx.x % 32;
    UNROLL
    for (int kc = 0; kc < HS / 16; kc++)
        ldmatrix_x4(a[kc], &s[r0 + l % 8 + (l / 8 % 2) * 8][kc * 16 + (l / 16) * 8]);
}

// acc (16 x 64, C fragments of 8 column chunks) = A (16 x HS) s^T, s 64 x HS:
// the scores of 16 rows against a 64-row tile (Q K^T, K Q^T, G V^T, V G^T)
template <int HS>
static __device__ void fa_times_tile_t(float acc[8][4], const uint32_t a[HS / 16][4],
                                       bf16 (*s)[HS + 8]) {
    const int l = threadIdx.x % 32;
    UNROLL
    for (int nc = 0; nc < 8; nc++)
        UNROLL
        for (int i = 0; i < 4; i++) acc[nc][i] = 0.0f;
    UNROLL
    for (int nc = 0; nc < 8; nc += 2)
        UNROLL
        for (int kc = 0; kc < HS / 16; kc++) {
            // {b0, b1} of column chunk nc, then of nc + 1: rows of s are B's columns
            uint32_t b[4];
            ldmatrix_x4(b, &s[nc * 8 + (l / 16) * 8 + l % 8][kc * 16 + (l / 8 % 2) * 8]);
            mma_bf16_16816(acc[nc], a[kc], &b[0], acc[nc]);
            mma_bf16_16816(acc[nc + 1], a[kc], &b[2], acc[nc + 1]);
        }
}

// out (16 x HS, C fragments of HS / 8 chunks) += p (16 x 64, C fragments) s,
// s 64 x HS: P V, P^T G, dS^T Q, dS K. Two C chunks side by side are one A
// fragment once rounded to bf16 (mma.cuh), so p never goes through memory.
template <int HS>
static __device__ void fa_tile_times(float out[HS / 8][4], const float p[8][4],
                                     bf16 (*s)[HS + 8]) {
    const int l = threadIdx.x % 32;
    UNROLL
    for (int kk = 0; kk < 4; kk++) {
        const uint32_t a[4] = {pack_bf16x2(p[2 * kk][0], p[2 * kk][1]),
                               pack_bf16x2(p[2 * kk][2], p[2 * kk][3]),
                               pack_bf16x2(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                               pack_bf16x2(p[2 * kk + 1][2], p[2 * kk + 1][3])};
        UNROLL
        for (int dc = 0; dc < HS / 8; dc += 2) {
            // {b0, b1} of output chunk dc, then of dc + 1: s's rows are the k index
            uint32_t b[4];
            ldmatrix_x4_trans(b, &s[kk * 16 + (l / 8 % 2) * 8 + l % 8][dc * 8 + (l / 16) * 8]);
            mma_bf16_16816(out[dc], a, &b[0], out[dc]);
            mma_bf16_16816(out[dc + 1], a, &b[2], out[dc + 1]);
        }
    }
}

// the C fragment element i of chunk nc: its row within the warp's 16, its column within the 64
static __device__ __forceinline__ int fa_row(int i) { return threadIdx.x % 32 / 4 + (i / 2) * 8; }
static __device__ __forceinline__ int fa_col(int nc, int i) {
    return nc * 8 + 2 * (threadIdx.x % 4) + (i & 1);
}

// The online softmax over one key tile kt, for this warp's 16 query rows from
// i0: x holds the tile's scores Q K^T. Masks and scales them, moves each row's
// running max m and sum l (this lane's share of the row's columns), rescales
// the output o by exp(m_old - m_new), and leaves P = exp(x - m) in x for P V.
template <int HS>
static __device__ __forceinline__ void fa_softmax_tile(float x[8][4], float m[2], float l[2],
                                                       float o[HS / 8][4], int i0, int kt, int T,
                                                       int mask, float s) {
    float mx[2] = {m[0], m[1]};
    UNROLL
    for (int nc = 0; nc < 8; nc++)
        UNROLL
        for (int i = 0; i < 4; i++) {
            const int row = i0 + fa_row(i), col = kt * FA_ROWS + fa_col(nc, i);
            x[nc][i] = col < T && attn_allowed(mask, row, col) ? s * x[nc][i] : -INFINITY;
            mx[i / 2] = fmaxf(mx[i / 2], x[nc][i]);
        }
    float base_r[2], alpha[2];
    UNROLL
    for (int r = 0; r < 2; r++) {   // the 4 lanes of a row agree on its max
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        base_r[r] = mx[r] == -INFINITY ? 0.0f : mx[r];   // no allowed key yet: all p are 0
        alpha[r] = expf(m[r] - base_r[r]);
        m[r] = mx[r];
        l[r] *= alpha[r];
    }
    UNROLL
    for (int dc = 0; dc < HS / 8; dc++)
        UNROLL
        for (int i = 0; i < 4; i++) o[dc][i] *= alpha[i / 2];
    UNROLL
    for (int nc = 0; nc < 8; nc++)
        UNROLL
        for (int i = 0; i < 4; i++) {
            x[nc][i] = expf(x[nc][i] - base_r[i / 2]);
            l[i / 2] += x[nc][i];
        }
}

// each row's sum l over its 4 lanes, after the last tile
static __device__ __forceinline__ void fa_row_sums(float l[2]) {
    UNROLL
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
}

// ----------------------------------------------------------------------------
// forward: grid (B NH, query tiles); st the staged q, k, v (planes of
// `plane` elements); y (B, T, C), lse (B, NH, T); with gamma (AttentionX, else
// NULL) also out = y - gamma[per_head ? h : 0] v (B, T, C), v read from the
// fp32 qkv

template <int HS>
__global__ void __launch_bounds__(FA_THREADS)
    flash_forward_kernel(float *y, float *out, float *lse, const float *qkv, const bf16 *st,
                         size_t plane, int T, int Tp, int C, int NH, int mask,
                         const float *log_temp, float scale, const float *gamma, int per_head) {
    __shared__ __align__(16) bf16 sq[FA_ROWS][HS + 8], sk[2][FA_ROWS][HS + 8],
        sv[2][FA_ROWS][HS + 8];
    const int bh = blockIdx.x, qt = blockIdx.y, b = bh / NH, h = bh % NH, hs = C / NH;
    const int warp = threadIdx.x / 32;
    const float s = attn_scale(log_temp, scale);
    const size_t row3 = 3 * (size_t)C;
    const float *base = qkv + (size_t)b * T * row3 + (size_t)h * hs;
    const bf16 *qm = st + (size_t)bh * Tp * HS, *km = qm + plane, *vm = km + plane;
    fa_copy_tile<HS>(sq, qm, qt * FA_ROWS);
    cp_async_commit();
    fa_copy_tile<HS>(sk[0], km, 0);
    fa_copy_tile<HS>(sv[0], vm, 0);
    cp_async_commit();
    cp_async_wait<1>();   // the query tile
    __syncthreads();
    uint32_t qf[HS / 16][4];
    fa_load_a<HS>(qf, sq, warp * 16);
    const int i0 = qt * FA_ROWS + warp * 16;   // this warp's first query row
    float o[HS / 8][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    const int nkt = mask == MASK_CAUSAL ? qt + 1 : (T + FA_ROWS - 1) / FA_ROWS;
    for (int kt = 0; kt < nkt; kt++) {
        const int cur = kt & 1;
        __syncthreads();   // the last tile's readers are done with buffer cur ^ 1
        if (kt + 1 < nkt) {   // the next tile's copy, behind this one's products
            fa_copy_tile<HS>(sk[cur ^ 1], km, (kt + 1) * FA_ROWS);
            fa_copy_tile<HS>(sv[cur ^ 1], vm, (kt + 1) * FA_ROWS);
        }
        cp_async_commit();    // (an empty group on the last tile)
        cp_async_wait<1>();   // everything but the copy just issued: tile kt
        __syncthreads();
        float x[8][4];
        fa_times_tile_t<HS>(x, qf, sk[cur]);
        fa_softmax_tile<HS>(x, m, l, o, i0, kt, T, mask, s);
        fa_tile_times<HS>(o, x, sv[cur]);
    }
    fa_row_sums(l);
    const float gm = gamma ? gamma[per_head ? h : 0] : 0.0f;
    UNROLL
    for (int dc = 0; dc < HS / 8; dc++)
        UNROLL
        for (int i = 0; i < 4; i++) {
            const int row = i0 + fa_row(i), d = fa_col(dc, i);
            if (row < T && d < hs) {
                const size_t at = ((size_t)b * T + row) * C + (size_t)h * hs + d;
                const float yv = l[i / 2] > 0.0f ? o[dc][i] / l[i / 2] : 0.0f;
                y[at] = yv;
                if (gamma) out[at] = yv - gm * base[(size_t)row * row3 + 2 * (size_t)C + d];
            }
        }
    if (threadIdx.x % 4 == 0)
        UNROLL
        for (int r = 0; r < 2; r++) {
            const int row = i0 + fa_row(2 * r);
            if (row < T) lse[(size_t)bh * T + row] = l[r] > 0.0f ? m[r] + logf(l[r]) : INFINITY;
        }
}

// ----------------------------------------------------------------------------
// backward, over key tiles: dK, dV of 64 keys; grid (B NH, key tiles). With
// gamma (AttentionX: dy is G = dL/dO) also the direct dV_j -= gamma G_j, and
// when dg_partial is not NULL this block's -sum_jd G_jd V_jd, in double.

// (Two blocks per SM asked of ptxas: still up to 255 registers a thread, and
// without it ptxas 13 spilled 4 bytes of the HS = 32 build for sm_80.)
template <int HS>
__global__ void __launch_bounds__(FA_THREADS, 2)
    flash_backward_kv_kernel(float *dqkv, double *dg_partial, const float *qkv, const float *dy,
                             const bf16 *st, const bf16 *gst, size_t plane, const float *lse,
                             const float *D, int T, int Tp, int C, int NH, int mask,
                             const float *log_temp, float scale, const float *gamma,
                             int per_head) {
    __shared__ __align__(16) bf16 sk[FA_ROWS][HS + 8], sv[FA_ROWS][HS + 8], sq[FA_ROWS][HS + 8],
        sg[FA_ROWS][HS + 8];
    __shared__ float slse[FA_ROWS], sD[FA_ROWS];
    __shared__ double sh[33];
    const int bh = blockIdx.x, kt = blockIdx.y, b = bh / NH, h = bh % NH, hs = C / NH;
    const int warp = threadIdx.x / 32;
    const float s = attn_scale(log_temp, scale);
    const size_t row3 = 3 * (size_t)C;
    const float *base = qkv + (size_t)b * T * row3 + (size_t)h * hs;
    const float *gbase = dy + (size_t)b * T * C + (size_t)h * hs;
    const bf16 *qm = st + (size_t)bh * Tp * HS, *km = qm + plane, *vm = km + plane;
    const bf16 *gmat = gst + (size_t)bh * Tp * HS;
    fa_copy_tile<HS>(sk, km, kt * FA_ROWS);
    fa_copy_tile<HS>(sv, vm, kt * FA_ROWS);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    uint32_t kf[HS / 16][4], vf[HS / 16][4];
    fa_load_a<HS>(kf, sk, warp * 16);
    fa_load_a<HS>(vf, sv, warp * 16);
    const int j0 = kt * FA_ROWS + warp * 16;   // this warp's first key
    float dk[HS / 8][4] = {}, dv[HS / 8][4] = {};
    const int nqt = (T + FA_ROWS - 1) / FA_ROWS;
    for (int qt = mask == MASK_CAUSAL ? kt : 0; qt < nqt; qt++) {
        __syncthreads();
        fa_copy_tile<HS>(sq, qm, qt * FA_ROWS);
        fa_copy_tile<HS>(sg, gmat, qt * FA_ROWS);
        cp_async_commit();
        for (int i = threadIdx.x; i < FA_ROWS; i += FA_THREADS) {
            const int row = qt * FA_ROWS + i;
            slse[i] = row < T ? lse[(size_t)bh * T + row] : INFINITY;
            sD[i] = row < T ? D[(size_t)bh * T + row] : 0.0f;
        }
        cp_async_wait<0>();
        __syncthreads();
        float p[8][4], ds[8][4];   // P^T and dS^T: rows keys, columns queries
        fa_times_tile_t<HS>(p, kf, sq);
        fa_times_tile_t<HS>(ds, vf, sg);   // dP^T = V G^T
        UNROLL
        for (int nc = 0; nc < 8; nc++)
            UNROLL
            for (int i = 0; i < 4; i++) {
                const int key = j0 + fa_row(i), c = fa_col(nc, i), q = qt * FA_ROWS + c;
                const bool ok = q < T && key < T && attn_allowed(mask, q, key);
                p[nc][i] = ok ? expf(s * p[nc][i] - slse[c]) : 0.0f;
                ds[nc][i] = p[nc][i] * (ds[nc][i] - sD[c]);
            }
        fa_tile_times<HS>(dv, p, sg);
        fa_tile_times<HS>(dk, ds, sq);
    }
    const float gm = gamma ? gamma[per_head ? h : 0] : 0.0f;
    float dg = 0.0f;   // this thread's at most 32 terms; the block's sum in double
    UNROLL
    for (int dc = 0; dc < HS / 8; dc++)
        UNROLL
        for (int i = 0; i < 4; i++) {
            const int key = j0 + fa_row(i), d = fa_col(dc, i);
            if (key < T && d < hs) {
                float *row = dqkv + ((size_t)b * T + key) * row3 + (size_t)h * hs + d;
                float dvj = dv[dc][i];
                if (gamma) {   // the token's own value, in fp32
                    const float g = gbase[(size_t)key * C + d];
                    dvj -= gm * g;
                    dg -= g * base[(size_t)key * row3 + 2 * (size_t)C + d];
                }
                row[C] += s * dk[dc][i];
                row[2 * (size_t)C] += dvj;
            }
        }
    if (dg_partial) {
        const double sum = block_sum((double)dg, sh);
        if (threadIdx.x == 0) dg_partial[(size_t)kt * gridDim.x + bh] = sum;
    }
}

// ----------------------------------------------------------------------------
// backward, over query tiles: dQ of 64 queries; grid (B NH, query tiles).
// dt_partial (LSA, else NULL): this block's sum of Q_id (dS K)_id, in double.

// (Two blocks per SM, as the key kernel: without it ptxas 13 spilled 16 bytes
// of the HS = 64 build for sm_90.)
template <int HS>
__global__ void __launch_bounds__(FA_THREADS, 2)
    flash_backward_q_kernel(float *dqkv, double *dt_partial, const float *qkv, const bf16 *st,
                            const bf16 *gst, size_t plane, const float *lse, const float *D,
                            int T, int Tp, int C, int NH, int mask, const float *log_temp,
                            float scale) {
    __shared__ __align__(16) bf16 sq[FA_ROWS][HS + 8], sg[FA_ROWS][HS + 8], sk[FA_ROWS][HS + 8],
        sv[FA_ROWS][HS + 8];
    __shared__ double sh[33];
    const int bh = blockIdx.x, qt = blockIdx.y, b = bh / NH, h = bh % NH, hs = C / NH;
    const int warp = threadIdx.x / 32;
    const float s = attn_scale(log_temp, scale);
    const size_t row3 = 3 * (size_t)C;
    const float *base = qkv + (size_t)b * T * row3 + (size_t)h * hs;
    const bf16 *qm = st + (size_t)bh * Tp * HS, *km = qm + plane, *vm = km + plane;
    fa_copy_tile<HS>(sq, qm, qt * FA_ROWS);
    fa_copy_tile<HS>(sg, gst + (size_t)bh * Tp * HS, qt * FA_ROWS);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    uint32_t qf[HS / 16][4], gf[HS / 16][4];
    fa_load_a<HS>(qf, sq, warp * 16);
    fa_load_a<HS>(gf, sg, warp * 16);
    const int i0 = qt * FA_ROWS + warp * 16;
    float L[2], Di[2];
    UNROLL
    for (int r = 0; r < 2; r++) {
        const int row = i0 + fa_row(2 * r);
        L[r] = row < T ? lse[(size_t)bh * T + row] : INFINITY;
        Di[r] = row < T ? D[(size_t)bh * T + row] : 0.0f;
    }
    float dq[HS / 8][4] = {};
    const int nkt = mask == MASK_CAUSAL ? qt + 1 : (T + FA_ROWS - 1) / FA_ROWS;
    for (int kt = 0; kt < nkt; kt++) {
        __syncthreads();
        fa_copy_tile<HS>(sk, km, kt * FA_ROWS);
        fa_copy_tile<HS>(sv, vm, kt * FA_ROWS);
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();
        float p[8][4], ds[8][4];
        fa_times_tile_t<HS>(p, qf, sk);
        fa_times_tile_t<HS>(ds, gf, sv);   // dP = G V^T
        UNROLL
        for (int nc = 0; nc < 8; nc++)
            UNROLL
            for (int i = 0; i < 4; i++) {
                const int row = i0 + fa_row(i), col = kt * FA_ROWS + fa_col(nc, i);
                const bool ok = col < T && attn_allowed(mask, row, col);
                const float pij = ok ? expf(s * p[nc][i] - L[i / 2]) : 0.0f;
                ds[nc][i] = pij * (ds[nc][i] - Di[i / 2]);
            }
        fa_tile_times<HS>(dq, ds, sk);
    }
    double dt = 0;
    UNROLL
    for (int dc = 0; dc < HS / 8; dc++)
        UNROLL
        for (int i = 0; i < 4; i++) {
            const int row = i0 + fa_row(i), d = fa_col(dc, i);
            if (row < T && d < hs) {
                float *q = dqkv + ((size_t)b * T + row) * row3 + (size_t)h * hs + d;
                *q += s * dq[dc][i];
                if (dt_partial) dt += (double)base[(size_t)row * row3 + d] * dq[dc][i];
            }
        }
    if (dt_partial) {
        dt = block_sum(dt, sh);
        if (threadIdx.x == 0) dt_partial[(size_t)qt * gridDim.x + bh] = dt;
    }
}

// ----------------------------------------------------------------------------
// host side

static double *buf_part, *buf_dg;
static size_t cap_part, cap_dg;
static bf16 *buf_st, *buf_gst;   // the staged q, k, v and dY
static size_t cap_st, cap_gst;

// src (B, T, parts C) staged by fa_stage_kernel into *buf: parts planes of
// B NH Tp HS bf16 each (returns the plane size in elements)
template <int HS>
static size_t fa_stage(bf16 **buf, size_t *cap, const float *src, int parts, int B, int T, int C,
                       int NH) {
    const int Tp = (int)ceil_div((size_t)T, FA_ROWS);
    const size_t plane = (size_t)B * NH * (Tp * FA_ROWS) * HS;
    bf16 *out = (bf16 *)cuda_grow((void **)buf, cap, parts * plane * sizeof(bf16));
    fa_stage_kernel<HS><<<grid_for(parts * plane / 8, 256), 256, 0, cuda_stream()>>>(
        out, src, parts, B, T, Tp * FA_ROWS, C, NH);
    CUDA_LAUNCH_CHECK();
    return plane;
}

size_t flash_attention_saved_floats_cuda(int B, int NH, int T) { return (size_t)B * NH * T; }

// the head size padded to the kernels' HS (16, 32 or 64); exits on a larger one
static int flash_hs(int C, int NH) {
    if (NH <= 0 || C % NH) {
        fprintf(stderr, "error: attention: %d heads do not divide %d channels\n", NH, C);
        exit(1);
    }
    const int hs = C / NH;
    if (hs > FA_MAX_HS) {
        fprintf(stderr, "error: the bf16 flash attention kernel supports head sizes up to %d; this "
                "model's is %d (use --dtype=fp32)\n", FA_MAX_HS, hs);
        exit(1);
    }
    return hs <= 16 ? 16 : hs <= 32 ? 32 : 64;
}

// x: AttentionX's arguments to fuse, or NULL (the core alone)
template <int HS>
static void flash_forward(float *y, float *out, float *lse, const float *qkv, int B, int T, int C,
                          int NH, const AttnArgs *a, const VariantArgs *x) {
    const dim3 grid((unsigned)(B * NH), (unsigned)ceil_div(T, FA_ROWS));
    const size_t plane = fa_stage<HS>(&buf_st, &cap_st, qkv, 3, B, T, C, NH);
    flash_forward_kernel<HS><<<grid, FA_THREADS, 0, cuda_stream()>>>(
        y, out, lse, qkv, buf_st, plane, T, (int)grid.y * FA_ROWS, C, NH, a->mask, a->log_temp,
        a->scale, x ? x->gamma : NULL, x ? x->per_head : 0);
    CUDA_LAUNCH_CHECK();
}

template <int HS>
static void flash_backward(float *dqkv, const float *dy, const float *qkv, const float *lse,
                           const float *D, int B, int T, int C, int NH, const AttnArgs *a,
                           const VariantArgs *x) {
    const dim3 grid((unsigned)(B * NH), (unsigned)ceil_div(T, FA_ROWS));
    const int np = (int)(grid.x * grid.y), Tp = (int)grid.y * FA_ROWS;
    const size_t plane = fa_stage<HS>(&buf_st, &cap_st, qkv, 3, B, T, C, NH);
    fa_stage<HS>(&buf_gst, &cap_gst, dy, 1, B, T, C, NH);
    double *dg = NULL;
    if (x && x->dgamma)
        dg = (double *)cuda_grow((void **)&buf_dg, &cap_dg, (size_t)np * sizeof(double));
    flash_backward_kv_kernel<HS><<<grid, FA_THREADS, 0, cuda_stream()>>>(
        dqkv, dg, qkv, dy, buf_st, buf_gst, plane, lse, D, T, Tp, C, NH, a->mask, a->log_temp,
        a->scale, x ? x->gamma : NULL, x ? x->per_head : 0);
    CUDA_LAUNCH_CHECK();
    // partial p = kt B NH + b NH + h belongs to head p % NH
    if (dg) variant_dgamma_sum_cuda(x->dgamma, dg, (size_t)np, NH, x->per_head);
    double *part = NULL;
    if (a->dlog_temp)
        part = (double *)cuda_grow((void **)&buf_part, &cap_part,
                                   (size_t)grid.x * grid.y * sizeof(double));
    flash_backward_q_kernel<HS><<<grid, FA_THREADS, 0, cuda_stream()>>>(
        dqkv, part, qkv, buf_st, buf_gst, plane, lse, D, T, Tp, C, NH, a->mask, a->log_temp,
        a->scale);
    CUDA_LAUNCH_CHECK();
    if (a->dlog_temp) attention_dt_finish_cuda(a->dlog_temp, part, np, a);
}

static void flash_forward_hs(float *y, float *out, float *saved, const float *qkv, int B, int T,
                             int C, int NH, const AttnArgs *args, const VariantArgs *x) {
    if (B <= 0 || T <= 0 || C <= 0) return;
    switch (flash_hs(C, NH)) {
    case 16: flash_forward<16>(y, out, saved, qkv, B, T, C, NH, args, x); break;
    case 32: flash_forward<32>(y, out, saved, qkv, B, T, C, NH, args, x); break;
    default: flash_forward<64>(y, out, saved, qkv, B, T, C, NH, args, x); break;
    }
}

// dy: the core's dY (AttentionX's G = dL/dO when x is not NULL); D = rowsum(dY o Y)
static void flash_backward_hs(float *dqkv, const float *dy, const float *qkv, const float *y,
                              const float *saved, int B, int T, int C, int NH,
                              const AttnArgs *args, const VariantArgs *x) {
    if (B <= 0 || T <= 0 || C <= 0) return;
    const int HS = flash_hs(C, NH);
    const float *D = attention_rowdot_cuda(dy, y, B, T, C, NH);
    switch (HS) {
    case 16: flash_backward<16>(dqkv, dy, qkv, saved, D, B, T, C, NH, args, x); break;
    case 32: flash_backward<32>(dqkv, dy, qkv, saved, D, B, T, C, NH, args, x); break;
    default: flash_backward<64>(dqkv, dy, qkv, saved, D, B, T, C, NH, args, x); break;
    }
}

void flash_attention_forward_cuda(float *y, float *saved, const float *qkv, int B, int T, int C,
                                  int NH, const AttnArgs *args) {
    flash_forward_hs(y, NULL, saved, qkv, B, T, C, NH, args, NULL);
}

void flash_attention_backward_cuda(float *dqkv, const float *dy, const float *qkv, const float *y,
                                   const float *saved, int B, int T, int C, int NH,
                                   const AttnArgs *args) {
    flash_backward_hs(dqkv, dy, qkv, y, saved, B, T, C, NH, args, NULL);
}

// ops.h's attention_variant_forward/backward: AttentionX fused into the
// kernels; std is the core alone and xsa the core with its own op around it
void flash_attention_variant_forward_cuda(float *out, float *y, float *saved, const float *qkv,
                                          int B, int T, int C, int NH, const AttnArgs *aa,
                                          const VariantArgs *va) {
    flash_forward_hs(y, out, saved, qkv, B, T, C, NH, aa, va->kind == ATTN_X ? va : NULL);
    if (va->kind == ATTN_XSA) variant_forward_cuda(out, y, qkv, B * T, C, NH, va);
}

void flash_attention_variant_backward_cuda(float *dqkv, float *dy, const float *dout,
                                           const float *qkv, const float *y, const float *saved,
                                           int B, int T, int C, int NH, const AttnArgs *aa,
                                           const VariantArgs *va) {
    if (va->kind == ATTN_XSA) {
        variant_backward_cuda(dy, dqkv, dout, y, qkv, B * T, C, NH, va);
        dout = dy;
    }
    // AttentionX: dL/dY = G itself, so dout goes to the core as it is
    flash_backward_hs(dqkv, dout, qkv, y, saved, B, T, C, NH, aa, va->kind == ATTN_X ? va : NULL);
}

// dev/cuda/flash_forward.cu - versions of the flash attention forward kernel
// side by side, as llm.c's dev/cuda keeps them: each checked against a CPU
// reference in double, and timed. The place to try the next version before it
// enters the backend.
//
//   v1  the tiles are read from the fp32 qkv and rounded to bf16 by every
//       thread on their way into shared memory (through registers), one K/V
//       buffer: flash_attention.cu's kernel until commit 32c32b1.
//   v2  flash_attention.cu's kernel as the backend runs it: qkv staged once as
//       bf16 per-(batch, head) matrices (fa_stage_kernel), tiles copied by
//       cp.async, K and V double-buffered. Timed with its staging pass
//       ("v2") and without it ("v2-kernel").
// The two must agree bit for bit: they round the same fp32 values to bf16 and
// do the same arithmetic in the same order; only the way tiles reach shared
// memory differs.
//
//   build/dev_flash_forward                     on a GPU (make builds it with nvcc)
//   DEV_T=256,1024,4096 DEV_TOKENS=4194304 DEV_REPS=20 build/dev_flash_forward
//
// Shapes: head size 64, the causal mask, for each T in DEV_T: 16 heads (fewer
// when DEV_TOKENS / T is smaller), B = DEV_TOKENS / (T NH). One line a version
// and T: FLASH_FWD version=v1 T=1024 B=16 NH=16 ms=.. tflops=.. (forward FLOPs
// 4 B NH T^2 hs, halved for the causal mask); then "N passed, M failed".
#include <time.h>

#include "../../flash_attention.cu"

#include "../../tests/test.h"

// ----------------------------------------------------------------------------
// v1: loads through registers

// rows [row0, row0 + 64) of a (T, hs) matrix at `base` with row stride `stride`,
// into s as bf16; 0 past T and past hs
template <int HS>
static __device__ void v1_load_tile(bf16 (*s)[HS + 8], const float *base, size_t stride, int row0,
                                    int T, int hs) {
    for (int i = threadIdx.x; i < FA_ROWS * HS; i += FA_THREADS) {
        const int r = i / HS, d = i % HS;
        const float v = row0 + r < T && d < hs ? base[(size_t)(row0 + r) * stride + d] : 0.0f;
        s[r][d] = __float2bfloat16_rn(v);
    }
}

// flash_forward_kernel's math (flash_attention.cu) without the AttentionX epilogue
template <int HS>
__global__ void __launch_bounds__(FA_THREADS)
    flash_forward_v1_kernel(float *y, float *lse, const float *qkv, int T, int C, int NH, int mask,
                            float scale) {
    __shared__ __align__(16) bf16 sq[FA_ROWS][HS + 8], sk[FA_ROWS][HS + 8], sv[FA_ROWS][HS + 8];
    const int bh = blockIdx.x, qt = blockIdx.y, b = bh / NH, h = bh % NH, hs = C / NH;
    const int warp = threadIdx.x / 32;
    const size_t row3 = 3 * (size_t)C;
    const float *base = qkv + (size_t)b * T * row3 + (size_t)h * hs;
    v1_load_tile<HS>(sq, base, row3, qt * FA_ROWS, T, hs);
    __syncthreads();
    uint32_t qf[HS / 16][4];
    fa_load_a<HS>(qf, sq, warp * 16);
    const int i0 = qt * FA_ROWS + warp * 16;
    float o[HS / 8][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    const int nkt = mask == MASK_CAUSAL ? qt + 1 : (T + FA_ROWS - 1) / FA_ROWS;
    for (int kt = 0; kt < nkt; kt++) {
        __syncthreads();
        v1_load_tile<HS>(sk, base + C, row3, kt * FA_ROWS, T, hs);
        v1_load_tile<HS>(sv, base + 2 * (size_t)C, row3, kt * FA_ROWS, T, hs);
        __syncthreads();
        float x[8][4];
        fa_times_tile_t<HS>(x, qf, sk);
        fa_softmax_tile<HS>(x, m, l, o, i0, kt, T, mask, scale);
        fa_tile_times<HS>(o, x, sv);
    }
    fa_row_sums(l);
    UNROLL
    for (int dc = 0; dc < HS / 8; dc++)
        UNROLL
        for (int i = 0; i < 4; i++) {
            const int row = i0 + fa_row(i), d = fa_col(dc, i);
            if (row < T && d < hs)
                y[((size_t)b * T + row) * C + (size_t)h * hs + d] =
                    l[i / 2] > 0.0f ? o[dc][i] / l[i / 2] : 0.0f;
        }
    if (threadIdx.x % 4 == 0)
        UNROLL
        for (int r = 0; r < 2; r++) {
            const int row = i0 + fa_row(2 * r);
            if (row < T) lse[(size_t)bh * T + row] = l[r] > 0.0f ? m[r] + logf(l[r]) : INFINITY;
        }
}

// ----------------------------------------------------------------------------
// the versions' launches, the reference and the timing

enum { HS = 64 };

static void run(int version, float *y, float *lse, const float *qkv, int B, int T, int C, int NH,
                int mask, float scale) {
    const dim3 grid((unsigned)(B * NH), (unsigned)ceil_div(T, FA_ROWS));
    const int Tp = (int)grid.y * FA_ROWS;
    if (version == 1) {
        flash_forward_v1_kernel<HS><<<grid, FA_THREADS>>>(y, lse, qkv, T, C, NH, mask, scale);
    } else {
        // version 2: the staging pass, then the kernel; 3: the kernel alone
        // (on what the last staging left)
        static size_t plane;
        if (version == 2) plane = fa_stage<HS>(&buf_st, &cap_st, qkv, 3, B, T, C, NH);
        flash_forward_kernel<HS><<<grid, FA_THREADS>>>(y, nullptr, lse, qkv, buf_st, plane, T, Tp, C,
                                                       NH, mask, nullptr, scale, nullptr, 0);
    }
    CUDA_LAUNCH_CHECK();
}

// y of query rows [0, rows) of batch 0, head h, in double (attention.c's math)
static double ref_error(const float *qkv, const float *y, int T, int C, int NH, int h, int rows,
                        int mask, float scale) {
    const int hs = C / NH;
    double num = 0, den = 0;
    double *p = (double *)malloc((size_t)T * sizeof(double));
    for (int i = 0; i < rows && i < T; i++) {
        const float *q = qkv + (size_t)i * 3 * C + (size_t)h * hs;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < T; j++) {
            p[j] = -INFINITY;
            if (mask == MASK_CAUSAL ? j > i : mask == MASK_DIAG && j == i) continue;
            const float *k = qkv + (size_t)j * 3 * C + C + (size_t)h * hs;
            double dot = 0;
            for (int d = 0; d < hs; d++) dot += (double)q[d] * k[d];
            p[j] = scale * dot;
            mx = fmax(mx, p[j]);
        }
        for (int j = 0; j < T; j++) sum += p[j] == -INFINITY ? 0 : (p[j] = exp(p[j] - mx));
        for (int d = 0; d < hs; d++) {
            double acc = 0, mag = 0;
            for (int j = 0; j < T; j++) {
                if (p[j] == -INFINITY) continue;
                const double v = qkv[(size_t)j * 3 * C + 2 * C + (size_t)h * hs + d];
                acc += p[j] / sum * v;
                mag += p[j] / sum * fabs(v);
            }
            num = fmax(num, fabs(y[(size_t)i * C + (size_t)h * hs + d] - acc));
            den = fmax(den, mag);
        }
    }
    free(p);
    return den > 0 ? num / den : num;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int env_int(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && *e ? atoi(e) : dflt;
}

int main(void) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        cudaGetLastError();
        printf("dev_flash_forward: skipped: no usable CUDA device (%s)\n"
               "dev_flash_forward: 0 passed, 0 failed, 1 skipped\n",
               err != cudaSuccess ? cudaGetErrorString(err) : "none found");
        return 0;
    }
    const char *Ts = getenv("DEV_T") && *getenv("DEV_T") ? getenv("DEV_T") : "256,1024,4096";
    const long tokens = env_int("DEV_TOKENS", 1 << 22);
    const int reps = env_int("DEV_REPS", 20), warmup = env_int("DEV_WARMUP", 3);
    const int ref_rows = env_int("DEV_REF_ROWS", 64);
    for (const char *t = Ts; *t;) {
        const int T = atoi(t);
        while (*t && *t != ',') t++;
        if (*t == ',') t++;
        if (T <= 0) continue;
        int NH = 16;
        while (NH > 1 && tokens / ((long)T * NH) < 1) NH /= 2;
        const int B = (int)(tokens / ((long)T * NH)) > 0 ? (int)(tokens / ((long)T * NH)) : 1;
        const int C = NH * HS;
        const float scale = 1.0f / sqrtf((float)HS);
        const size_t nqkv = (size_t)B * T * 3 * C, ny = (size_t)B * T * C, nl = (size_t)B * NH * T;
        float *h_qkv = (float *)malloc(nqkv * sizeof(float));
        uint64_t r = 0x9E3779B97F4A7C15ull ^ (uint64_t)T;
        for (size_t i = 0; i < nqkv; i++) {   // uniform in [-1, 1), xorshift
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            h_qkv[i] = (float)((double)(r >> 11) / 4503599627370496.0 - 1.0);
        }
        float *qkv, *y[2], *lse[2];
        CUDA_CHECK(cudaMalloc((void **)&qkv, nqkv * sizeof(float)));
        CUDA_CHECK(cudaMemcpy(qkv, h_qkv, nqkv * sizeof(float), cudaMemcpyHostToDevice));
        for (int v = 0; v < 2; v++) {
            CUDA_CHECK(cudaMalloc((void **)&y[v], ny * sizeof(float)));
            CUDA_CHECK(cudaMalloc((void **)&lse[v], nl * sizeof(float)));
        }
        for (int mask = MASK_CAUSAL; mask <= MASK_NONE; mask++) {
            run(1, y[0], lse[0], qkv, B, T, C, NH, mask, scale);
            run(2, y[1], lse[1], qkv, B, T, C, NH, mask, scale);
            float *h_y[2], *h_l[2];
            for (int v = 0; v < 2; v++) {
                h_y[v] = (float *)malloc(ny * sizeof(float));
                h_l[v] = (float *)malloc(nl * sizeof(float));
                CUDA_CHECK(cudaMemcpy(h_y[v], y[v], ny * sizeof(float), cudaMemcpyDeviceToHost));
                CUDA_CHECK(cudaMemcpy(h_l[v], lse[v], nl * sizeof(float), cudaMemcpyDeviceToHost));
            }
            CHECK(!memcmp(h_y[0], h_y[1], ny * sizeof(float)) &&
                      !memcmp(h_l[0], h_l[1], nl * sizeof(float)),
                  "T=%d mask %d: v2's y or logsumexp differs from v1's", T, mask);
            // both within 2 bf16 roundings (2^-7) of the magnitude sums, rows of heads 0 and NH-1
            for (int h = 0; h < NH; h += NH > 1 ? NH - 1 : 1) {
                const double e = ref_error(h_qkv, h_y[1], T, C, NH, h, ref_rows, mask, scale);
                CHECK(e <= 1.0 / 128, "T=%d mask %d head %d: y error %.3g against the reference",
                      T, mask, h, e);
            }
            for (int v = 0; v < 2; v++) {
                free(h_y[v]);
                free(h_l[v]);
            }
        }
        const double flops = 4.0 * B * NH * (double)T * T * HS / 2;   // causal
        const char *names[3] = {"v1", "v2", "v2-kernel"};
        for (int v = 1; v <= 3; v++) {
            run(2, y[1], lse[1], qkv, B, T, C, NH, MASK_CAUSAL, scale);   // v2-kernel's staging
            for (int i = 0; i < warmup; i++) run(v, y[0], lse[0], qkv, B, T, C, NH, MASK_CAUSAL, scale);
            CUDA_CHECK(cudaDeviceSynchronize());
            const double t0 = now();
            for (int i = 0; i < reps; i++) run(v, y[0], lse[0], qkv, B, T, C, NH, MASK_CAUSAL, scale);
            CUDA_CHECK(cudaDeviceSynchronize());
            const double ms = (now() - t0) * 1e3 / (reps > 0 ? reps : 1);
            printf("FLASH_FWD version=%s T=%d B=%d NH=%d ms=%.4f tflops=%.1f\n", names[v - 1], T, B,
                   NH, ms, ms > 0 ? flops / (ms * 1e-3) / 1e12 : 0.0);
        }
        CUDA_CHECK(cudaFree(qkv));
        for (int v = 0; v < 2; v++) {
            CUDA_CHECK(cudaFree(y[v]));
            CUDA_CHECK(cudaFree(lse[v]));
        }
        free(h_qkv);
    }
    cuda_shutdown();
    return test_summary("dev_flash_forward");
}

// attention_bench.c - the attention op alone on the CUDA backend, forward and
// forward + backward, in bf16 (flash attention, backend_cuda_bf16) and fp32
// (the materialised T x T path), with the variant op after the core for x.
// bench/gpu.sh runs it beside PyTorch's SDPA (its OURS_ATTN_BENCH hook).
//
//   build/bench_attention                    on a GPU (make builds it with nvcc)
//   ATTN_T=256,1024,4096 ATTN_HS=64 ATTN_TOKENS=4194304 build/bench_attention
//
// Shapes: for each T in ATTN_T, head size ATTN_HS, 16 heads (fewer when
// ATTN_TOKENS / T is smaller) and B = ATTN_TOKENS / (T NH), the causal mask.
// ATTN_DTYPES (bf16,fp32) and ATTN_ATTNS (std,x) choose the rows; fp32 is
// skipped where its T x T probabilities would need over ATTN_FP32_MAX_GIB (16).
// Timing: ATTN_WARMUP (3) calls, then ATTN_REPS (10) timed ones between two
// synchronisations, wall clock; the figure is the mean per call. One line per
// row:
//   ATTN_RESULT attn=std dtype=bf16 T=1024 B=.. NH=.. fwd_ms=.. fwdbwd_ms=..
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../ops.h"
#include "../src/rng.h"

static int env_int(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && *e ? atoi(e) : dflt;
}

static const char *env_str(const char *name, const char *dflt) {
    const char *e = getenv(name);
    return e && *e ? e : dflt;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// a device buffer of n floats, uniform in [-1, 1)
static float *device_random(const Backend *be, size_t n, uint64_t seed) {
    float *h = malloc(n * sizeof(float));
    if (!h) {
        fprintf(stderr, "attention_bench: out of host memory\n");
        exit(1);
    }
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) h[i] = (float)(2.0 * rng_uniform(&r) - 1.0);
    float *d = be->alloc(n * sizeof(float));
    be->upload(d, h, n * sizeof(float));
    free(h);
    return d;
}

typedef struct {
    const Backend *be;
    int B, T, C, NH, x;
    float *qkv, *y, *o, *saved, *dout, *dy, *dqkv, *gamma;
} Case;

static void forward(Case *c, const AttnArgs *a, const VariantArgs *v) {
    c->be->attention_forward(c->y, c->saved, c->qkv, c->B, c->T, c->C, c->NH, a);
    if (c->x) c->be->variant_forward(c->o, c->y, c->qkv, c->B * c->T, c->C, c->NH, v);
}

static void backward(Case *c, const AttnArgs *a, const VariantArgs *v) {
    const float *dy = c->dout;
    if (c->x) {
        c->be->variant_backward(c->dy, c->dqkv, c->dout, c->y, c->qkv, c->B * c->T, c->C, c->NH, v);
        dy = c->dy;
    }
    c->be->attention_backward(c->dqkv, dy, c->qkv, c->y, c->saved, c->B, c->T, c->C, c->NH, a);
}

// mean ms per call of forward (and backward) over reps calls after warmup ones
static double time_calls(Case *c, const AttnArgs *a, const VariantArgs *v, int with_backward,
                         int warmup, int reps) {
    for (int i = 0; i < warmup; i++) {
        forward(c, a, v);
        if (with_backward) backward(c, a, v);
    }
    c->be->synchronize();
    const double t0 = now();
    for (int i = 0; i < reps; i++) {
        forward(c, a, v);
        if (with_backward) backward(c, a, v);
    }
    c->be->synchronize();
    return (now() - t0) * 1e3 / reps;
}

int main(void) {
    const int hs = env_int("ATTN_HS", 64), warmup = env_int("ATTN_WARMUP", 3);
    const int reps = env_int("ATTN_REPS", 10);
    const long long tokens = env_int("ATTN_TOKENS", 1 << 22);
    const double fp32_max = env_int("ATTN_FP32_MAX_GIB", 16) * 1073741824.0;
    char ts[256], dtypes[64], attns[64];
    snprintf(ts, sizeof ts, "%s", env_str("ATTN_T", "256,1024,4096"));
    snprintf(dtypes, sizeof dtypes, "%s", env_str("ATTN_DTYPES", "bf16,fp32"));
    snprintf(attns, sizeof attns, "%s", env_str("ATTN_ATTNS", "std,x"));
    const char *why = NULL;
    if (!backend_cuda(&why)) {
        printf("attention_bench: skipped: %s\n", why);
        return 0;
    }
    for (char *tp = strtok(ts, ","); tp; tp = strtok(NULL, ",")) {
        const int T = atoi(tp);
        if (T <= 0) continue;
        int NH = 16;
        while (NH > 1 && tokens / ((long long)T * NH) < 1) NH /= 2;
        const int B = (int)(tokens / ((long long)T * NH)) > 0 ? (int)(tokens / ((long long)T * NH)) : 1;
        const int C = NH * hs;
        for (int di = 0; di < 2; di++) {
            const char *dtype = di ? "fp32" : "bf16";
            if (!strstr(dtypes, dtype)) continue;
            const Backend *be = di ? backend_cuda(NULL) : backend_cuda_bf16(&why);
            if (!be) {
                printf("attention_bench: %s skipped: %s\n", dtype, why);
                continue;
            }
            const size_t saved = be->attention_saved_floats(B, NH, T);
            if (saved * 4.0 > fp32_max) {
                printf("attention_bench: %s T=%d skipped: %.1f GiB of saved state\n", dtype, T,
                       saved * 4.0 / 1073741824.0);
                continue;
            }
            const size_t n = (size_t)B * T * C;
            Case c = {.be = be, .B = B, .T = T, .C = C, .NH = NH};
            c.qkv = device_random(be, 3 * n, 1);
            c.dout = device_random(be, n, 2);
            c.dqkv = device_random(be, 3 * n, 3);
            c.y = be->alloc(n * 4);
            c.o = be->alloc(n * 4);
            c.dy = be->alloc(n * 4);
            c.saved = be->alloc(saved * 4);
            const float one = 1.0f, zero = 0.0f;
            c.gamma = be->alloc(4);
            be->upload(c.gamma, &one, 4);
            float *dgamma = be->alloc(4);
            be->upload(dgamma, &zero, 4);
            const AttnArgs a = {.mask = MASK_CAUSAL, .scale = 1.0f / sqrtf((float)hs)};
            const VariantArgs v = {.kind = ATTN_X, .gamma = c.gamma, .dgamma = dgamma};
            for (int x = 0; x < 2; x++) {
                if (!strstr(attns, x ? "x" : "std")) continue;
                c.x = x;
                const double f = time_calls(&c, &a, &v, 0, warmup, reps);
                const double fb = time_calls(&c, &a, &v, 1, warmup, reps);
                printf("ATTN_RESULT attn=%s dtype=%s T=%d B=%d NH=%d fwd_ms=%.4f fwdbwd_ms=%.4f\n",
                       x ? "x" : "std", dtype, T, B, NH, f, fb);
                fflush(stdout);
            }
            be->free(c.qkv); be->free(c.dout); be->free(c.dqkv); be->free(c.y); be->free(c.o);
            be->free(c.dy); be->free(c.saved); be->free(c.gamma); be->free(dgamma);
        }
    }
    backend_cuda(NULL)->shutdown();
    return 0;
}

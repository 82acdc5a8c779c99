// ops.h - the table of ops that every backend implements.
//
// The models (src/gpt.c, src/vit.c) and the optimizer driver call layers only
// through a `const Backend *`, so they never know which device they run on.
// Three backends implement it:
// - backend_ref (`--device=ref`): the CPU reference in attention.c and
//   layers.c (C + OpenMP, double accumulators), the oracle every other
//   backend is tested against;
// - backend_cpu (`--device=cpu`): the fast CPU backend in attention_fast.c and
//   layers_fast.c (SGEMM through OpenBLAS, blocked attention, fused passes);
// - the CUDA backend in attention.cu and layers.cu.
// Each op's math is written once, in a short comment above its reference;
// the other implementations sit in the files of the same name.
//
// Conventions shared by every op:
// - Tensors are row-major and contiguous; pointers are device pointers of the
//   backend (plain host memory for the CPU).
// - Every backward op ACCUMULATES (+=) into its gradient outputs, parameters
//   and inputs alike. This gives residual branches and gradient accumulation
//   for free; callers zero scratch gradients with `zero`. A gradient pointer
//   may be NULL where that gradient is not wanted (for example dbias when the
//   layer has no bias). The exceptions, which OVERWRITE (so their outputs need
//   no zeroing): xent_forward_backward's logits, which become dlogits and
//   start the backward pass; variant_backward's dy; matmul_backward's dinp
//   (its dweight and dbias accumulate); gelu_backward's dinp.
// - Fused ops (residual_layernorm_forward, matmul_gelu_forward,
//   xent_forward_backward, attention_variant_forward/backward) give what
//   their parts give; a backend fuses them to save passes over memory.
// - Matmul weights are stored (out, in), as PyTorch and llm.c store them.
// - `real` is float. The CPU reference can also be compiled with
//   -DREAL=double, which is how the tests take finite differences in double
//   precision; the fast CPU and CUDA backends are float only.
#ifndef OPS_H
#define OPS_H

#include <stddef.h>
#include <stdint.h>

#ifndef REAL
#define REAL float
#endif
typedef REAL real;

// ----------------------------------------------------------------------------
// attention arguments

typedef enum {
    MASK_CAUSAL = 0,   // GPT: M_ij = -inf for j > i
    MASK_NONE = 1,     // plain ViT
    MASK_DIAG = 2,     // ViT-small LSA: M_ii = -inf
} AttnMask;

// The attention core's arguments: softmax(s Q K^T + M) V, nothing after it.
typedef struct {
    int mask;              // AttnMask
    float scale;           // s when log_temp is NULL (1/sqrt(head size))
    const real *log_temp;  // LSA: s = exp(*log_temp), a 1-element device tensor; else NULL
    real *dlog_temp;       // backward: accumulates dL/dt when non-NULL
} AttnArgs;

// The attention variants (../shared/spec/variants.md): each is one output
// transform O = f(Y, V; gamma) of the core's Y = P V and the token's own value
// V, row by row (one head of one token), with its own backward. A new variant
// adds an enum value here, its name in src/attn_config.c and its case in each
// backend's variant ops (variants.c, variants_fast.c, variants.cu).
typedef enum {
    ATTN_STD = 0,   // O = Y
    ATTN_X = 1,     // AttentionX: O = Y - gamma V
    ATTN_XSA = 2,   // exclusive self attention: O = Y - gamma ((Y.V) / (V.V + 1e-6)) V
    ATTN_NUM_KINDS
} AttnKind;

typedef struct {
    int kind;             // AttnKind
    const real *gamma;    // device: the coefficients, gamma[h] for head h when per_head, else gamma[0]
    int per_head;
    real *dgamma;         // backward: accumulates dL/dgamma (gamma's shape) when non-NULL
} VariantArgs;

// ----------------------------------------------------------------------------
// optimizer arguments

// A parameter tensor inside the one flat parameter buffer. SET-Adam works per
// tensor; AdamW decays only tensors with decay == 1 (the 2-D ones).
typedef struct {
    size_t offset, size;
    int decay;
} ParamSlice;

typedef struct {
    float lr, beta1, beta2, eps, wd, tau;
    float clip;   // global grad-norm clipping threshold, 0 = off
    int t;        // step number, 1-based (bias correction)
} OptimArgs;

// ----------------------------------------------------------------------------
// the table

typedef struct Backend {
    const char *name;   // "ref", "cpu" or "cuda"

    // memory: device allocations, copies, zeroing, waiting for queued work
    void *(*alloc)(size_t bytes);   // zero-filled; exits with a message on failure
    void (*free)(void *p);
    void (*upload)(void *dst_dev, const void *src_host, size_t bytes);
    void (*download)(void *dst_host, const void *src_dev, size_t bytes);
    void (*copy)(void *dst_dev, const void *src_dev, size_t bytes);
    void (*zero)(void *p, size_t bytes);
    void (*synchronize)(void);
    // the end of a run, after every buffer from `alloc` is freed: frees what
    // the backend holds itself (scratch, pinned memory, library handles)
    void (*shutdown)(void);
    // Device memory, NULL on the CPU backends (their memory is the host's):
    // returns the most bytes the backend's own allocations (`alloc` and its
    // scratch buffers) held at once so far in the run. *device_total, when not
    // NULL, gets the device's memory, and *device_used the most in use on the
    // whole device (cudaMemGetInfo: the CUDA context, libraries and other
    // processes included) seen after any of those allocations or now.
    size_t (*peak_memory)(size_t *device_total, size_t *device_used);

    // Data parallelism's collective on device memory (src/dist.c), NULL where
    // the backend has none - the CPU backends, whose buffers are host memory
    // that MPI sums. comm_id writes (on rank 0) the id every process's
    // comm_init joins with (NCCL's unique id, at most 128 bytes) and returns its
    // size; allreduce_sum sums buf over the processes in place.
    size_t (*comm_id)(void *id);
    void (*comm_init)(const void *id, int rank, int size);
    void (*allreduce_sum)(real *buf, size_t n);

    // out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:]
    void (*embed_forward)(real *out, const int *tokens, const real *wte, const real *wpe,
                          int B, int T, int C);
    // tokens_host is the same B*T tokens in host memory: a deterministic GPU
    // scatter-add groups positions by token on the host, as llm.c does.
    void (*embed_backward)(real *dwte, real *dwpe, const real *dout, const int *tokens,
                           const int *tokens_host, int B, int T, int C);

    // out = (inp - mean) * rstd * weight + bias over the last dim C; eps 1e-5.
    // mean and rstd (N each) are saved for backward. bias may be NULL.
    void (*layernorm_forward)(real *out, real *mean, real *rstd, const real *inp,
                              const real *weight, const real *bias, int N, int C);
    void (*layernorm_backward)(real *dinp, real *dweight, real *dbias, const real *dout,
                               const real *inp, const real *weight, const real *mean,
                               const real *rstd, int N, int C);

    // res = a + b, then out = LayerNorm(res) as layernorm_forward: the residual
    // connection fused with the LayerNorm that follows it. bias may be NULL.
    void (*residual_layernorm_forward)(real *res, real *out, real *mean, real *rstd,
                                       const real *a, const real *b, const real *weight,
                                       const real *bias, int N, int C);

    // out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC]; bias may be NULL.
    void (*matmul_forward)(real *out, const real *inp, const real *weight, const real *bias,
                           int N, int C, int OC);
    // backward: OVERWRITES dinp = dout @ weight (N x C); accumulates
    // dweight += dout^T @ inp and dbias += the column sums of dout.
    void (*matmul_backward)(real *dinp, real *dweight, real *dbias, const real *dout,
                            const real *inp, const real *weight, int N, int C, int OC);
    // pre = matmul_forward(inp, weight, bias), out = GELU(pre): the MLP's first
    // Linear with its activation (pre is kept for gelu_backward)
    void (*matmul_gelu_forward)(real *pre, real *out, const real *inp, const real *weight,
                                const real *bias, int N, int C, int OC);

    // exact GELU: out = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); accurate
    // (relatively) for x << 0 too, where a backend takes Phi(x) as
    // 0.5 erfc(-x / sqrt 2) rather than cancel in 1 + erf.
    // backward: OVERWRITES dinp = dout * (Phi(x) + x phi(x)).
    void (*gelu_forward)(real *out, const real *inp, size_t n);
    void (*gelu_backward)(real *dinp, const real *inp, const real *dout, size_t n);

    // out = a + b (the residual connection; its backward is plain accumulation)
    void (*add_forward)(real *out, const real *a, const real *b, size_t n);

    // The multi-head attention core over a fused qkv (B, T, 3C): q, k, v are
    // the three C-wide thirds of each row, head h the columns [h*hs, (h+1)*hs)
    // of each. Writes y = P V (B, T, C) and `saved`, the softmax state backward
    // needs: attention_saved_floats() elements (the probabilities P in the
    // reference).
    size_t (*attention_saved_floats)(int B, int NH, int T);
    void (*attention_forward)(real *y, real *saved, const real *qkv,
                              int B, int T, int C, int NH, const AttnArgs *args);
    // dy is dL/dY; accumulates into dqkv (and args->dlog_temp).
    void (*attention_backward)(real *dqkv, const real *dy, const real *qkv, const real *y,
                               const real *saved, int B, int T, int C, int NH,
                               const AttnArgs *args);

    // The variant's transform after the core, over N = B*T rows of NH heads:
    // out = f(y, v) with v the third C-wide part of each qkv row. out must not
    // alias y (std, which has no transform, is a copy; the models skip it).
    void (*variant_forward)(real *out, const real *y, const real *qkv, int N, int C, int NH,
                            const VariantArgs *args);
    // From dout = G = dL/dO: WRITES dy = dL/dY, the core's input (dy may equal
    // dout, never alias anything else); accumulates the direct dL/dV into the
    // V third of dqkv and dL/dgamma into args->dgamma.
    void (*variant_backward)(real *dy, real *dqkv, const real *dout, const real *y,
                             const real *qkv, int N, int C, int NH, const VariantArgs *args);

    // Optional (NULL where a backend does not fuse them; the models call
    // attention_variant_forward/backward below, which then compose the ops
    // above): the core and the variant's transform in one op, as flash
    // attention fuses AttentionX into its epilogue.
    // forward: y = the core's P V and saved, as attention_forward; for a variant
    // (not std) also out = f(y, v), as variant_forward. out is unused for std.
    void (*attention_variant_forward)(real *out, real *y, real *saved, const real *qkv, int B,
                                      int T, int C, int NH, const AttnArgs *aa,
                                      const VariantArgs *va);
    // backward from dout = G = dL/dO (dL/dY for std): accumulates into dqkv,
    // aa->dlog_temp and va->dgamma what variant_backward then attention_backward
    // give. dy (B, T, C) is scratch the op may use for dL/dY (it may equal
    // dout; both hold unspecified values afterwards when they are the same).
    void (*attention_variant_backward)(real *dqkv, real *dy, const real *dout, const real *qkv,
                                       const real *y, const real *saved, int B, int T, int C,
                                       int NH, const AttnArgs *aa, const VariantArgs *va);

    // Softmax cross-entropy over the first V of Vp logits per row (columns
    // V..Vp-1 are vocabulary padding: probability 0, never predicted).
    // losses[i] = -(1-ls) log p[t_i] - ls * mean_k log p_k, or 0 where t_i == -1
    // (a target outside [0, V) is ignored too; the data loaders reject such ids).
    // probs may alias logits. argmax (may be NULL) gets each row's prediction.
    void (*xent_forward)(real *losses, real *probs, int *argmax, const real *logits,
                         const int *targets, int N, int V, int Vp, float smoothing);
    // The training loss and its gradient in one pass over the logits: losses
    // and argmax as xent_forward, and the logits OVERWRITTEN with
    // dlogits = scale * (p - (1-ls) onehot(t) - ls/V), 0 for ignored rows and
    // padded columns (scale is the backward's: grad_scale / the loss's count).
    void (*xent_forward_backward)(real *losses, int *argmax, real *logits, const int *targets,
                                  int N, int V, int Vp, float smoothing, float scale);

    // out[0] = sum_i x[i]^2 (a 1-element device tensor; the grad norm squared)
    void (*sumsq)(real *out, const real *x, size_t n);

    // One optimizer step over all slices of the flat parameter buffer.
    // gnorm_sq is the device scalar from sumsq over the gradients: with
    // args->clip > 0 the gradients are scaled by min(1, clip / sqrt(gnorm_sq)).
    // It may be NULL when clip is 0.
    // Math in layers.c (and ../shared/spec/setadam.md).
    void (*adamw_update)(real *params, const real *grads, real *m, real *v,
                         const ParamSlice *slices, int nslices, const OptimArgs *args,
                         const real *gnorm_sq);
    void (*setadam_update)(real *params, const real *grads, real *m, real *v,
                           const ParamSlice *slices, int nslices, const OptimArgs *args,
                           const real *gnorm_sq);

    // ViT ops (src/vit.c). Images are (B, C, H, W) normalised floats; Np = (H/P) (W/P)
    // patches in row-major patch order; token rows are (B, T, D) with T = Np + 1.

    // patch vectors, SPT order: out[b, n, (i P + j) Cs + s C + c] = img_s[b, c, py P + i, px P + j],
    // n = py (W/P) + px, Cs = 5C with shifts (img_0 the image, img_1..4 shifted one pixel
    // right, left, down, up with zero fill), Cs = C without. No backward: pixels take no gradient.
    void (*patchify_forward)(real *out, const real *images, int B, int C, int H, int W, int P,
                             int shifts);
    // out[b,0,:] = cls + pos[0,:];  out[b,1+i,:] = x[b,i,:] + pos[1+i,:]   (x: B x Np x D)
    void (*cls_pos_forward)(real *out, const real *x, const real *cls, const real *pos, int B,
                            int Np, int D);
    // dx[b,i,:] += dout[b,1+i,:];  dcls += sum_b dout[b,0,:];  dpos[t,:] += sum_b dout[b,t,:]
    // (sums over b in order). Any gradient may be NULL.
    void (*cls_pos_backward)(real *dx, real *dcls, real *dpos, const real *dout, int B, int Np,
                             int D);
    // inverted dropout: mask_i = [hash64(seed, first + i) >> 11 >= p 2^53] / (1 - p),
    // out = inp * mask; p in [0, 1); p = 0 keeps everything (mask 1). out may equal inp.
    // first: element i is element first + i of the whole batch, so a process's
    // share of a batch (data parallelism) draws the masks the whole batch would.
    void (*dropout_forward)(real *out, real *mask, const real *inp, size_t n, float p,
                            uint64_t seed, uint64_t first);
    // dinp += dout * mask
    void (*dropout_backward)(real *dinp, const real *dout, const real *mask, size_t n);
    // out[b,:] = x[b,0,:]: the cls token of each sequence (x: B x T x D)
    void (*cls_select_forward)(real *out, const real *x, int B, int T, int D);
    // dx[b,0,:] += dout[b,:]
    void (*cls_select_backward)(real *dx, const real *dout, int B, int T, int D);
} Backend;

// The attention core and the variant's transform, fused where the backend
// fuses them (its attention_variant_* entries), else as the separate ops.
static inline void attention_variant_forward(const Backend *be, real *out, real *y, real *saved,
                                             const real *qkv, int B, int T, int C, int NH,
                                             const AttnArgs *aa, const VariantArgs *va) {
    if (be->attention_variant_forward) {
        be->attention_variant_forward(out, y, saved, qkv, B, T, C, NH, aa, va);
        return;
    }
    be->attention_forward(y, saved, qkv, B, T, C, NH, aa);
    if (va->kind != ATTN_STD) be->variant_forward(out, y, qkv, B * T, C, NH, va);
}

static inline void attention_variant_backward(const Backend *be, real *dqkv, real *dy,
                                              const real *dout, const real *qkv, const real *y,
                                              const real *saved, int B, int T, int C, int NH,
                                              const AttnArgs *aa, const VariantArgs *va) {
    if (be->attention_variant_backward) {
        be->attention_variant_backward(dqkv, dy, dout, qkv, y, saved, B, T, C, NH, aa, va);
        return;
    }
    if (va->kind != ATTN_STD) {
        be->variant_backward(dy, dqkv, dout, y, qkv, B * T, C, NH, va);
        dout = dy;
    }
    be->attention_backward(dqkv, dout, qkv, y, saved, B, T, C, NH, aa);
}

extern const Backend backend_ref;   // layers.c
extern const Backend backend_cpu;   // layers_fast.c (not in -DREAL=double builds)
// NULL when this build has no CUDA backend or no usable GPU; *why says which.
const Backend *backend_cuda(const char **why);
// The same with bf16 tensor-core kernels where they exist (--dtype=bf16): the
// matmuls (cuBLASLt) and the attention core (flash attention, head sizes up to
// 64) take bf16 operands and accumulate in fp32; every tensor stays fp32.
const Backend *backend_cuda_bf16(const char **why);
// backend.c: "auto", "cpu", "ref" or "cuda" -> a backend, or NULL with *why
// set. "auto" is CUDA when usable, else the fast CPU backend; then *why (when
// why is not NULL) says why CUDA was not used, and is NULL when it was.
const Backend *backend_select(const char *device, const char **why);
// backend_select for a trainer's --device flag: dies naming the flag when the
// device cannot be had; prints one line saying what runs (and, for auto on
// the CPU, why CUDA was not used)
const Backend *backend_from_flag(const char *device);
// --dtype=auto|bf16|fp32 applied to the backend from backend_from_flag: fp32 is
// `be` itself; bf16 is backend_cuda_bf16 (CUDA only, head sizes up to
// BF16_MAX_HEAD_SIZE; anything else dies naming the flag); auto is bf16 where
// it can run and fp32 elsewhere. Prints a line saying which, on a GPU.
enum { BF16_MAX_HEAD_SIZE = 64 };
const Backend *backend_with_dtype(const Backend *be, const char *dtype, int head_size);

#endif

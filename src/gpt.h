// gpt.h - the GPT model: GPT-2 shapes, nanoGPT semantics, any backend.
//
// Parameters live in one flat buffer in llm.c's order: wte (Vp x C), wpe
// (T x C), then per-layer tensors stacked over layers - ln1w, ln1b, qkvw
// (3C x C), qkvb, attprojw (C x C), attprojb, ln2w, ln2b, fcw (4C x C), fcb,
// fcprojw (C x 4C), fcprojb - then lnfw, lnfb, then attn_gamma (the learned
// coefficients of the attention variants, cfg.attn.learn: one per variant
// layer, or one per head of each). With bias == 0 the bias tensors (ln*b, *b)
// are absent, and so is attn_gamma with a fixed gamma. The LM head is tied to
// wte.
#ifndef GPT_H
#define GPT_H

#include "../ops.h"
#include "attn_config.h"
#include "layer_stats.h"
#include "params.h"

typedef struct {
    int vocab;         // V: token ids are in [0, V)
    int padded_vocab;  // Vp: V rounded up to a multiple of 64 (embedding rows)
    int max_seq;       // block size T
    int layers, heads, embd;
    int bias;          // 1: Linear and LayerNorm biases
    AttnConfig attn;   // each layer's attention variant and its gamma
} GPTConfig;

typedef struct {
    GPTConfig cfg;
    const Backend *be;

    // parameters and their gradients: flat device buffers in the order above
    ParamLayout layout;
    real *params, *grads;

    // views into params (and the same offsets into grads), NULL where absent
    real *wte, *wpe, *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb;
    real *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb, *lnfw, *lnfb;
    real *attn_gamma;    // (variant layers, 1 or heads): learned gamma, or NULL
    real *gamma_fixed;   // (1) device: cfg.attn.gamma, for a fixed gamma

    // activations for batches up to max_batch x max_seq (device)
    int max_batch;
    real *acts;   // one block holding every activation below
    real *encoded, *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *atto, *att_saved, *attproj;
    real *residual2, *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *fcproj, *residual3;
    real *lnf, *lnf_mean, *lnf_rstd, *logits, *losses;
    int *argmax;
    // activation gradients for one layer at a time (device), zeroed per layer
    real *grad_scratch;
    size_t grad_scratch_floats;
    real *dresidual;
    int *inputs, *targets;   // device copies of the current batch

    // host side of the current batch
    int B, T;
    int *inputs_host, *targets_host;
    real *losses_host;
    int *argmax_host;
    int num_valid;        // targets != -1 in the current batch
    int has_dlogits;      // the last forward was gpt_forward_train's: logits holds dlogits
    double mean_loss;     // of the last gpt_forward with targets
} GPT;

// V rounded up to a multiple of 64
int gpt_padded_vocab(int vocab);
// Allocates parameters, gradients and activations for batches up to max_batch.
// Dies with a message on impossible shapes (heads not dividing embd, ...).
void gpt_build(GPT *m, const GPTConfig *cfg, const Backend *be, int max_batch);
void gpt_free(GPT *m);
// N(0, 0.02); the two residual projections N(0, 0.02/sqrt(2L)); biases 0;
// LayerNorm gains 1. Drawn on the host from `seed`, then uploaded.
void gpt_init_weights(GPT *m, uint64_t seed);

// Forward pass over B x T tokens (host arrays; T <= max_seq, B <= max_batch).
// With targets (entries -1 are ignored) it computes the losses and returns the
// mean over valid targets (0 when there are none); with targets NULL it stops
// at the logits and returns 0. m->logits then holds B*T x Vp logits, or the
// probabilities once targets were given.
double gpt_forward(GPT *m, const int *inputs, const int *targets, int B, int T);
// The training forward: the loss as gpt_forward, and its gradient in the same
// pass over the logits (which then hold dlogits), for the gradient of
// grad_scale * (sum of losses) / loss_count. loss_count 0 is this batch's valid
// targets (the mean loss); data parallelism passes the global batch's, so the
// gradients summed over processes are the global batch's.
double gpt_forward_train(GPT *m, const int *inputs, const int *targets, int B, int T,
                         float grad_scale, int loss_count);
// Fraction of valid targets whose argmax prediction is right in the last
// forward (with targets); *count gets the number of valid targets.
double gpt_last_accuracy(GPT *m, int *count);
// Backward pass of the last forward, which must be gpt_forward_train's:
// accumulates its gradient into m->grads. Call gpt_zero_grad first.
void gpt_backward(GPT *m);
void gpt_zero_grad(GPT *m);

// Writes the weights to `path` in safetensors with nanoGPT's state_dict names
// (transformer.wte.weight, transformer.h.{i}.attn.c_attn.weight, ...; weights
// (out, in) as nn.Linear stores them; the tied head not repeated; wte with its
// Vp padded rows). `meta` goes to __metadata__ (the caller's settings).
struct StMeta;
void gpt_export_safetensors(GPT *m, const char *path, const struct StMeta *meta, int nmeta);

// --- weights in (src/gpt_weights.c) -------------------------------------------
// A weights file to start from (--init-from): safetensors under nanoGPT's
// names (our --export, or nanoGPT's state_dict saved with safetensors), or an
// llm.c GPT-2 checkpoint (gpt2_124M.bin: magic 20240326, version 3 fp32 or 5
// bf16; formats.md). gpt_weights_open reads what the file fixes into cfg:
// embd, block size, layers and bias from the tensors' shapes (or llm.c's
// header); heads and vocab from the header or __metadata__, else 0 (the file
// does not say); attention from __metadata__ (has_attn). A malformed file
// dies naming `flag`=path.
enum { GPT_WEIGHTS_SAFETENSORS = 0, GPT_WEIGHTS_LLMC = 1 };
struct StFile;
typedef struct {
    const char *flag, *path;
    int format;          // GPT_WEIGHTS_*
    GPTConfig cfg;       // as above; padded_vocab is ours for cfg.vocab
    int file_rows;       // embedding rows in the file (the vocabulary, padded or not)
    int has_attn;        // cfg.attn came from the file
    int llmc_version;    // 3 or 5
    struct StFile *st;   // the open safetensors header
} GPTWeights;

void gpt_weights_open(GPTWeights *w, const char *flag, const char *path);
// Fills m's parameters from the file. m must have the file's embd, layers and
// bias, a vocabulary within its embedding rows and a block size no longer than
// its wpe (a shorter one keeps the first rows, as nanoGPT's crop_block_size);
// heads are free. Padded embedding rows are zero.
void gpt_weights_load(const GPTWeights *w, GPT *m);
void gpt_weights_close(GPTWeights *w);

// The per-layer diagnostic (src/layer_stats.h) of the last forward: out[layers].
void gpt_layer_stats(GPT *m, LayerStat *out);

// Number of parameters excluding the padded embedding rows.
size_t gpt_num_params_unpadded(const GPT *m);

#endif

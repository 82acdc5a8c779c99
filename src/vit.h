// vit.h - the Vision Transformers of kentaroy47/vision-transformers-cifar10 over
// the op table: ViT-small (models/vit_small.py: SPT + LSA) and the plain ViT
// (models/vit.py). See ../shared/spec/vit_small.md.
//
// Parameters live in one flat buffer, in this order (absent tensors take no
// room): patch_lnw, patch_lnb (PD; SPT only), patch_w (D x PD), patch_b (D),
// cls (D), pos (T x D), then per-layer tensors stacked over layers - ln1w,
// ln1b, qkvw (3D x D; no bias), log_temp (1; LSA only), attprojw (D x D),
// attprojb (absent for the plain ViT with one head, whose output projection is
// the identity), ln2w, ln2b, fcw (M x D), fcb, fcprojw (D x M), fcprojb - then
// head_lnw, head_lnb (D), head_w (K x D), head_b (K), then attn_gamma (the
// learned coefficients of the attention variants, cfg.attn.learn: one per
// variant layer, or one per head of each; absent with a fixed gamma).
// PD = P*P*C*5 with SPT (P*P*C without), T = Np + 1 tokens, K classes.
// vit_weights.c maps them to the reference's state_dict names (--export,
// --init-from).
#ifndef VIT_H
#define VIT_H

#include "../ops.h"
#include "attn_config.h"
#include "layer_stats.h"
#include "params.h"
#include "safetensors.h"


typedef enum {
    VIT_SMALL = 0,   // SPT patches (shifts, LayerNorm, Linear), LSA (learned temperature, diagonal mask)
    VIT_PLAIN = 1,   // Linear on raw patches, scale 1/sqrt(head size), no mask
} ViTKind;

typedef struct {
    int kind;                        // ViTKind
    int channels, height, width;     // C, H, W of the images
    int patch;                       // P: must divide H and W
    int classes;                     // K
    int dim, depth, heads, mlp_dim;  // D, L, NH (head size D / NH), M
    float dropout;                   // after the attention projection, GELU and the MLP output
    float emb_dropout;               // after cls + position embedding
    float label_smoothing;           // of the training loss (evaluation uses plain cross-entropy)
    AttnConfig attn;                 // each layer's attention variant and its gamma
} ViTConfig;

typedef struct {
    ViTConfig cfg;
    const Backend *be;
    int num_patches, seq, patch_dim;   // Np, T = Np + 1, PD
    int project_out;                   // 0 only for the plain ViT with one head

    ParamLayout layout;   // the flat buffers' tensors and optimizer slices
    real *params, *grads;
    int tensor_init[PARAMS_MAX_TENSORS];         // how vit_init_weights fills each (vit.c)
    size_t tensor_fan_in[PARAMS_MAX_TENSORS];    // of the Linear layer a weight or bias belongs to

    // views into params (the same offsets into grads), NULL where absent
    real *patch_lnw, *patch_lnb, *patch_w, *patch_b, *cls, *pos;
    real *ln1w, *ln1b, *qkvw, *log_temp, *attprojw, *attprojb;
    real *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
    real *head_lnw, *head_lnb, *head_w, *head_b;
    real *attn_gamma;    // (variant layers, 1 or heads): learned gamma, or NULL
    real *gamma_fixed;   // (1) device: cfg.attn.gamma, for a fixed gamma

    // activations for batches up to max_batch images (device); per-layer
    // arrays hold depth x max_batch x T rows
    int max_batch;
    real *acts;
    real *images, *patches, *patch_ln, *patch_ln_mean, *patch_ln_rstd, *patch_emb;
    real *encoded, *emb_mask;
    real *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *atto, *att_saved, *attproj, *attproj_mask;
    real *residual2, *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *fch_mask, *fcproj, *fcproj_mask;
    real *residual3;
    real *cls_out, *head_ln, *head_ln_mean, *head_ln_rstd, *logits, *losses;
    int *argmax, *labels;
    // activation gradients, reused layer by layer (device)
    real *grad_scratch;
    size_t grad_scratch_floats;
    real *dresidual;

    // data parallelism (vit_set_share): the batch is images share_first.. of a
    // global batch of share_total (0: the batch is the whole batch)
    int share_first, share_total;

    // the last forward
    int B;
    int train;            // 1: dropout was applied, the training loss smoothed
    int has_dlogits;      // it had labels: logits holds the loss's gradient
    int *labels_host, *argmax_host;
    real *losses_host;
    double mean_loss;
} ViT;

// Allocates parameters, gradients and activations for batches up to max_batch.
// Impossible shapes are errors: die_usage (exit 2) when the patch does not
// divide the image or the heads do not divide the dim.
void vit_build(ViT *m, const ViTConfig *cfg, const Backend *be, int max_batch);
void vit_free(ViT *m);
// cls and pos N(0, 1); Linear weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in));
// LayerNorm gains 1, biases 0; LSA temperature log(head_size^-0.5). Drawn on
// the host from `seed`, then uploaded.
void vit_init_weights(ViT *m, uint64_t seed);

// Forward over B images (host, B x C x H x W normalised values). train = 1
// applies dropout with masks drawn from dropout_seed (a pure function of it).
// With labels it returns the mean loss over the batch (label smoothing when
// training) and leaves its gradient in place of the logits for vit_backward;
// with labels NULL it stops at the logits (m->logits, B x K) and returns 0.
double vit_forward(ViT *m, const real *images, const int *labels, int B, int train,
                   uint64_t dropout_seed);
// Data parallelism: the next forwards are images first..first+B-1 of a global
// batch of `total` images: dropout draws the masks of those images in the
// global batch, and vit_backward's mean is over `total`, so the gradients
// summed over processes are the global batch's. (0, 0): the whole batch.
void vit_set_share(ViT *m, int first, int total);
// Correct top-1 predictions in the last forward with labels.
int vit_last_correct(ViT *m);
// The per-layer diagnostic (src/layer_stats.h) of the last forward: out[depth].
void vit_layer_stats(ViT *m, LayerStat *out);
// Accumulates into m->grads the gradient of the mean loss of the last forward,
// which must have had labels. Call vit_zero_grad first.
void vit_backward(ViT *m);
void vit_zero_grad(ViT *m);

// --- weights out and in (vit_weights.c) ---------------------------------------
// Writes the weights to `path` (safetensors, F32, atomically) under the state_dict
// names of the reference repository (the table in vit_weights.c), and in
// __metadata__ the settings that define the model - format, model, attn, gamma, gamma_learn,
// channels, image_height, image_width, patch_size, num_classes, dim, depth,
// heads, dim_head, mlp_dim - followed by the caller's `meta` entries.
void vit_export_safetensors(ViT *m, const char *path, const StMeta *meta, int nmeta);
// The model-defining fields of cfg (kind, attn, channels, height,
// width, patch, classes, dim, depth, heads, mlp_dim) from the __metadata__ of a
// file vit_export_safetensors wrote; the others are left as they are. A key
// missing, malformed or inconsistent is a one-line die() naming the file.
void vit_config_from_safetensors(const StFile *st, ViTConfig *cfg);
// Loads every tensor of m (built with the file's settings) from st: each must
// be there in its shape, and the file may hold no tensor m lacks; otherwise a
// one-line die() naming the tensor.
void vit_import_safetensors(ViT *m, const StFile *st);

#endif

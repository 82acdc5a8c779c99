// train_vit.c - train the ViT-small of kentaroy47/vision-transformers-cifar10
// (or its plain ViT) with standard attention or a variant, on CIFAR-10/100,
// MNIST or Fashion-MNIST, on any backend.
//
// This file is the trainer only: flags, the epoch loop, logging. The model is
// src/vit.c, the ops attention.c/layers.c (+ .cu), the optimizers src/optim.c,
// data src/images.c and src/augment.c, checkpoints src/ckpt.c, CSV src/csv.c,
// weights in and out (--export, --init-from) src/vit_weights.c.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "src/augment.h"
#include "src/attn_flags.h"
#include "src/ckpt.h"
#include "src/common.h"
#include "src/csv.h"
#include "src/dist.h"
#include "src/flags.h"
#include "src/images.h"
#include "src/optim.h"
#include "src/rng.h"
#include "src/runctl.h"
#include "src/safetensors.h"
#include "src/vit.h"
#include "src/zero.h"

static const char *SUMMARY =
    "Trains a ViT-small (SPT + LSA, kentaroy47/vision-transformers-cifar10) or its plain ViT with\n"
    "standard attention or a variant (AttentionX, XSA) on CIFAR-10/100, MNIST or Fashion-MNIST.";

static const char *CSV_HEADER =
    "epoch,step,lr,train_loss,train_acc,val_loss,val_acc,epoch_s,images_per_s";

typedef struct {
    // model
    char *model, *attn, *gamma_learn;
    int patch, dim, depth, heads, mlp_dim;
    float dropout, emb_dropout, gamma;
    // data
    char *dataset, *data_dir, *labels, *randaug, *crop, *flip;
    // optimisation
    char *optim, *schedule;
    float lr, min_lr, wd, beta1, beta2, eps, tau, clip, label_smoothing;
    int warmup, epochs, max_steps, batch, seed, zero;
    // evaluation, output
    int eval_every, log_every, save_every, overwrite, eval_only;
    char *on_nan;
    char *out, *resume, *init_from, *config, *device, *dtype, *export_path;
} Settings;

static Settings S;


static Flag FLAGS[] = {
    STR_FLAG("model", &S.model, "vit_small", "vit_small|vit",
             "vit_small (SPT + LSA) or vit (the plain ViT of the same repository)"),
    INT_FLAG("patch", &S.patch, "4", 1, 4096, "patch size P; must divide the image size"),
    INT_FLAG("dim", &S.dim, "512", 1, 65536, "token width D"),
    INT_FLAG("depth", &S.depth, "6", 1, 1024, "transformer blocks"),
    INT_FLAG("heads", &S.heads, "8", 1, 1024, "attention heads; must divide --dim (head size D/heads)"),
    INT_FLAG("mlp-dim", &S.mlp_dim, "512", 1, 1 << 20, "MLP hidden width"),
    FLOAT_FLAG("dropout", &S.dropout, "0.1", 0, 0.99, "dropout after attention projection, GELU, MLP"),
    FLOAT_FLAG("emb-dropout", &S.emb_dropout, "0.1", 0, 0.99, "dropout after cls + position embedding"),
    ATTN_FLAGS(&S.attn, &S.gamma, &S.gamma_learn),
    STR_FLAG("dataset", &S.dataset, "cifar10", "cifar10|cifar100|fashion-mnist|mnist", "dataset"),
    STR_FLAG("data-dir", &S.data_dir, "", NULL, "where the dataset is; empty: data/<dataset>"),
    STR_FLAG("labels", &S.labels, "fine", "fine|coarse", "CIFAR-100 labels: 100 fine or 20 coarse"),
    STR_FLAG("randaug", &S.randaug, "auto", NULL,
             "RandAugment N,M (ops per image, magnitude 0..30); 0: off; auto: 2,14 on CIFAR, off otherwise"),
    STR_FLAG("crop", &S.crop, "auto", NULL,
             "random crop after zero padding of N pixels (0: off); auto: 4 on CIFAR, off otherwise"),
    STR_FLAG("flip", &S.flip, "auto", "auto|0|1", "random horizontal flip; auto: on for CIFAR, off otherwise"),
    STR_FLAG("optim", &S.optim, "setadam", "setadam|adamw|adam", "optimizer (adam: AdamW with wd 0)"),
    FLOAT_FLAG("lr", &S.lr, "1e-4", 0, 1e3, "peak learning rate"),
    FLOAT_FLAG("min-lr", &S.min_lr, "0", 0, 1e3, "cosine: learning rate reached after --epochs"),
    INT_FLAG("warmup", &S.warmup, "0", 0, 1 << 30, "linear warmup over the first N optimizer steps"),
    STR_FLAG("schedule", &S.schedule, "cosine", "cosine|constant", "cosine annealing per epoch, or constant"),
    FLOAT_FLAG("wd", &S.wd, "0", 0, 1e3, "decoupled weight decay (2-D tensors only)"),
    FLOAT_FLAG("beta1", &S.beta1, "0.9", 0, 0.999999, "Adam beta1"),
    FLOAT_FLAG("beta2", &S.beta2, "0.999", 0, 0.999999, "Adam beta2"),
    FLOAT_FLAG("eps", &S.eps, "1e-8", 0, 1, "Adam epsilon"),
    FLOAT_FLAG("tau", &S.tau, "0.5", 0, 0.999, "SET-Adam down-translation tau"),
    FLOAT_FLAG("clip", &S.clip, "0", 0, 1e9, "global grad-norm clipping threshold, 0 = off"),
    FLOAT_FLAG("label-smoothing", &S.label_smoothing, "0", 0, 0.999, "label smoothing of the training loss"),
    INT_FLAG("epochs", &S.epochs, "200", 1, 1 << 20, "training epochs"),
    INT_FLAG("max-steps", &S.max_steps, "0", 0, 1 << 30,
             "stop after N optimizer steps in all, counted across epochs (0: no limit); the epoch "
             "in progress ends there: its row (train figures over its images so far) and a test"),
    INT_FLAG("batch", &S.batch, "512", 1, 1 << 20, "images per batch (the last batch of an epoch is smaller)"),
    INT_FLAG("zero", &S.zero, "0", 0, 1,
             "1: shard the optimizer state over the processes (ZeRO stage 1; with mpirun -np N)"),
    INT_FLAG("seed", &S.seed, "1", 0, 2147483647, "seed for weights, shuffling, augmentation, dropout"),
    INT_FLAG("eval-every", &S.eval_every, "1", 1, 1 << 20, "test every N epochs (and after the last)"),
    INT_FLAG("log-every", &S.log_every, "20", 1, 1 << 30, "console progress line every N steps"),
    INT_FLAG("save-every", &S.save_every, "0", 0, 1 << 20, "checkpoint every N epochs and at the end (0: never)"),
    STR_FLAG("out", &S.out, "", NULL, "run directory; empty: runs/vit-<attn>-g<gamma>[-learn-<how>]-s<seed>"),
    STR_FLAG("device", &S.device, "auto", "auto|cpu|ref|cuda",
             "backend: cpu (fast), ref (the CPU reference, the oracle), cuda; auto: CUDA when usable, else cpu"),
    STR_FLAG("dtype", &S.dtype, "auto", "auto|bf16|fp32",
             "CUDA precision: bf16 (matmuls and attention on tensor cores, fp32 accumulation, fp32 "
             "weights and optimizer), fp32; auto: bf16 on a GPU that has it, else fp32"),
    STR_FLAG("on-nan", &S.on_nan, "stop", "stop|skip",
             "non-finite loss or gradient: stop (exit 3), or skip that update"),
    RUN_FLAG("resume", &S.resume, "", "continue the run in this directory from its checkpoint"),
    RUN_FLAG("init-from", &S.init_from, "",
             "start a new run from the weights in this safetensors file (--export's); the model's "
             "shapes are the file's"),
    RUN_INT_FLAG("eval-only", &S.eval_only, "0", 0, 1,
     "1: evaluate the checkpoint of --resume (or the weights of --init-from) on the test set, print "
     "it, write nothing (but --export) and exit"),
    RUN_FLAG("export", &S.export_path, "",
             "at the end, write the weights to this safetensors file (the reference's state_dict names)"),
    RUN_FLAG("config", &S.config, "", "read name=value settings from this file"),
    RUN_INT_FLAG("overwrite", &S.overwrite, "0", 0, 1, "1: allow replacing an existing run in --out"),
};
enum { NUM_FLAGS = sizeof FLAGS / sizeof FLAGS[0] };
// the settings that define the model (or its classes and image shape): --resume refuses a change
static const char *const MODEL_FLAGS[] = {"model", "patch", "dim", "depth", "heads", "mlp-dim", "attn", "gamma",
                                          "gamma-learn",
                                          "dataset", "labels", NULL};

// what a checkpoint stores beyond the weights and the optimizer moments; the
// data order, augmentation and dropout are pure functions of (seed, epoch,
// step), so the epoch (the checkpoint's step field: epochs completed) and
// these restore them. A checkpoint written on SIGINT/SIGTERM falls inside an
// epoch: batch_in_epoch > 0 and the epoch's running sums come along.
typedef struct {
    int64_t step;            // optimizer steps taken
    int32_t optim_t;
    int32_t skipped_updates; // --on-nan=skip
    int64_t batch_in_epoch;  // batches of the current epoch already done
    int64_t correct;         // the current epoch's running train accuracy count
    double loss_sum;         // and its running loss sum
} TrainState;

// independent random streams of the seed
enum { STREAM_SHUFFLE = 1, STREAM_DROPOUT = 2 };

// ----------------------------------------------------------------------------

// --randaug=N,M, 0 (off) or auto (the dataset's default, already in cfg)
// into cfg; a usage error otherwise
static void parse_randaug(const char *text, AugmentConfig *cfg) {
    int n, m, used = 0;
    if (!strcmp(text, "auto")) return;
    if (!strcmp(text, "0")) {
        cfg->randaug_n = 0;
        return;
    }
    if (sscanf(text, "%d,%d%n", &n, &m, &used) != 2 || text[used] || n < 0 || n > 100 || m < 0 ||
        m > AUG_MAX_MAGNITUDE)
        die_usage("--randaug=%s: expected N,M (N ops per image 0..100, magnitude M 0..%d) or 0",
                  text, AUG_MAX_MAGNITUDE);
    cfg->randaug_n = n;
    cfg->randaug_m = m;
}

// --crop=N (0..1024) or auto (keeps *value, the dataset's default)
static void parse_crop(const char *text, int *value) {
    int n, used = 0;
    if (!strcmp(text, "auto")) return;
    if (sscanf(text, "%d%n", &n, &used) != 1 || text[used] || n < 0 || n > 1024)
        die_usage("--crop=%s: expected a padding of 0..1024 pixels (0: off) or auto", text);
    *value = n;
}

// The order of the training images in `epoch` (0-based): a Fisher-Yates
// shuffle drawn from (seed, epoch) alone.
static void epoch_order(int *order, int n, uint64_t seed, int epoch) {
    Rng r;
    rng_seed(&r, hash64(hash64(seed, STREAM_SHUFFLE), (uint64_t)epoch));
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(&r, (uint64_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

// Learning rate of optimizer step `step` (0-based, in `epoch`, 0-based):
// CosineAnnealingLR(T_max = epochs) stepped once per epoch,
//   lr_e = min_lr + (lr - min_lr) (1 + cos(pi e / epochs)) / 2,
// or constant; times a linear warmup (step + 1) / warmup over the first steps.
static float lr_for(int epoch, long step) {
    double lr = S.lr;
    if (!strcmp(S.schedule, "cosine"))
        lr = S.min_lr + (S.lr - S.min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * epoch / S.epochs));
    if (step < S.warmup) lr *= (double)(step + 1) / S.warmup;
    return (float)lr;
}

// This process's share of a batch of n images: [*first, *first + *count)
// (all of it in one process; under data parallelism rank r's n r / N .. n (r+1) / N)
static void share_of(int n, int *first, int *count) {
    const long r = dist_rank(), size = dist_size();
    *first = (int)(n * r / size);
    *count = (int)(n * (r + 1) / size) - *first;
}

// the test set's mean loss and top-1 accuracy, unaugmented; with `stats`, the
// per-layer diagnostic of its first batch (layers.csv)
static void evaluate(ViT *m, const ImageSet *test, const AugmentConfig *aug, float *images,
                     int *indices, int *labels, double *loss, double *acc, LayerStat *stats) {
    double sums[2] = {0, 0};   // loss sum and correct predictions over this process's images
    for (int start = 0; start < test->count; start += S.batch) {
        int n = test->count - start < S.batch ? test->count - start : S.batch, s0, ns;
        share_of(n, &s0, &ns);
        if (!ns) {   // a batch smaller than the process count: nothing here, but the collective
            if (start == 0 && stats) {
                memset(stats, 0, (size_t)S.depth * sizeof *stats);
                dist_sum_layer_stats(stats, S.depth);
            }
            continue;
        }
        for (int i = 0; i < ns; i++) indices[i] = start + s0 + i;
        augment_batch(test, indices, ns, 0, aug, 0, 0, images);
        for (int i = 0; i < ns; i++) labels[i] = test->labels[start + s0 + i];
        vit_set_share(m, s0, n);
        sums[0] += vit_forward(m, images, labels, ns, 0, 0) * ns;
        if (start == 0 && stats) {
            vit_layer_stats(m, stats);
            dist_sum_layer_stats(stats, S.depth);   // every process's share of the batch
        }
        sums[1] += vit_last_correct(m);
    }
    dist_sum_double(sums, 2);
    *loss = sums[0] / test->count;
    *acc = sums[1] / test->count;
}

// --export: the weights and, after the model's settings, what a user of the file
// needs to feed it images: the dataset and its Normalize constants
static void export_weights(ViT *m, const AugmentConfig *aug, const char *path) {
    char mean[64] = "", std[64] = "";
    for (int c = 0; c < m->cfg.channels && c < 3; c++) {
        size_t nm = strlen(mean), ns = strlen(std);
        snprintf(mean + nm, sizeof mean - nm, "%s%.7g", c ? "," : "", aug->mean[c]);
        snprintf(std + ns, sizeof std - ns, "%s%.7g", c ? "," : "", aug->std[c]);
    }
    const StMeta meta[] = {{"dataset", S.dataset}, {"normalize_mean", mean}, {"normalize_std", std}};
    vit_export_safetensors(m, path, meta, (int)(sizeof meta / sizeof meta[0]));
}

// --eval-only: the loss and accuracy of the weights (--resume's checkpoint or
// the --init-from file) over the test set, as the end of an epoch computes
// them, and --export; nothing is written to a run directory
static void eval_only(ViT *m, const ImageSet *test, const AugmentConfig *aug) {
    float *images = xmalloc((size_t)S.batch * image_bytes(test) * sizeof(float));
    int *labels = xmalloc((size_t)S.batch * sizeof(int));
    int *indices = xmalloc((size_t)S.batch * sizeof(int));
    double loss, acc;
    evaluate(m, test, aug, images, indices, labels, &loss, &acc, NULL);
    printf("val loss %.6f | val acc %.6f\n", loss, acc);
    if (*S.export_path) {
        if (dist_is_root()) export_weights(m, aug, S.export_path);
        printf("wrote %s\n", S.export_path);
    }
    free(images);
    free(labels);
    free(indices);
}

// --init-from: the settings that shape the model are the file's (f). One
// given on the command line must agree with it, or it is a usage error naming
// both values; a default or a --config file's value gives way. The attention
// (--attn, --gamma, --gamma-learn) is not a shape: the file's unless the command line says
// otherwise, so weights trained with one attention can start a run of another.
static void take_model_settings(const char *path, const ViTConfig *f) {
    const struct { const char *flag, *file; } strs[] = {
        {"model", f->kind == VIT_SMALL ? "vit_small" : "vit"},
    };
    const struct { const char *flag; int file; } ints[] = {
        {"patch", f->patch}, {"dim", f->dim}, {"depth", f->depth}, {"heads", f->heads},
        {"mlp-dim", f->mlp_dim},
    };
    for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++) {
        const Flag *fl = flags_find(FLAGS, NUM_FLAGS, strs[k].flag);
        char **value = fl->ptr;
        if (fl->from_cmdline && strcmp(*value, strs[k].file))
            die_usage("--%s=%s contradicts --init-from=%s (%s=%s)", fl->name, *value, path, fl->name,
                      strs[k].file);
        free(*value);
        *value = xstrdup(strs[k].file);
    }
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        const Flag *fl = flags_find(FLAGS, NUM_FLAGS, ints[k].flag);
        int *value = fl->ptr;
        if (fl->from_cmdline && *value != ints[k].file)
            die_usage("--%s=%d contradicts --init-from=%s (%s=%d)", fl->name, *value, path, fl->name,
                      ints[k].file);
        if (ints[k].file < fl->min || ints[k].file > fl->max)
            die("--init-from=%s: its %s=%d is outside the range of --%s (%.0f..%.0f)", path, fl->name,
                ints[k].file, fl->name, fl->min, fl->max);
        *value = ints[k].file;
    }
    attn_flags_from_file(FLAGS, NUM_FLAGS, &f->attn, f->depth);
}

static CkptInfo checkpoint_info(const ViT *m, int64_t epoch) {
    const ViTConfig *c = &m->cfg;
    CkptInfo info = {.kind = "vit", .step = epoch,
                     .shape = {c->kind, c->channels, c->height, c->width, c->patch, c->classes,
                               c->dim, c->depth, c->heads, c->mlp_dim},
                     .shape_names = {"model", "channels", "height", "width", "patch", "classes",
                                     "dim", "depth", "heads", "mlp-dim", "attn kinds (hash)", "gamma (bits)",
                                     "gamma-learn"}};
    attn_ckpt_ints(&c->attn, c->depth, info.shape + 10);
    return info;
}

// every process calls it (sharded optimizer state is gathered); rank 0 writes
static void save_checkpoint(const char *path, const ViT *m, const Optimizer *opt, const Zero *z, int epoch,
                            TrainState ts) {
    ts.optim_t = opt->t;
    CkptInfo info = checkpoint_info(m, epoch);
    real *mm, *vv;
    zero_state_gather(z, opt, m->layout.num_params, &mm, &vv);
    char err[4400];
    if (dist_is_root() && ckpt_save(path, &info, m->be, m->params, mm, vv, m->layout.num_params, &ts,
                                    sizeof ts, err, sizeof err) != 0)
        die("%s", err);
    zero_state_free(z, mm, vv);
}

// ----------------------------------------------------------------------------

int main(int argc, char **argv) {
    dist_init(&argc, &argv);
    flags_parse(FLAGS, NUM_FLAGS, argc, argv, "train_vit", SUMMARY);
    flags_check_resume(FLAGS, NUM_FLAGS, MODEL_FLAGS, S.resume);
    // --init-from starts a new run; a resumed one continues from its checkpoint
    const char *init_path = S.init_from;
    if (*S.resume && *S.init_from)
        die_usage("--init-from=%s and --resume=%s: give one (--resume continues a run from its "
                  "checkpoint, --init-from starts a new one from a file's weights)", S.init_from, S.resume);
    if (S.eval_only && !*S.resume && !*init_path)
        die_usage("--eval-only=1 needs --resume=DIR (a run's checkpoint) or --init-from=FILE (weights)");
    // the file's model settings now, its weights once the model is built
    ViTConfig init_cfg = {0};
    if (*init_path) {
        StFile *st = safetensors_open("--init-from", init_path);
        vit_config_from_safetensors(st, &init_cfg);
        safetensors_close(st);
        take_model_settings(init_path, &init_cfg);
    }
    if (S.dim % S.heads) die_usage("--heads=%d must divide --dim=%d", S.heads, S.dim);
    if (S.min_lr > S.lr) die_usage("--min-lr=%g must not exceed --lr=%g", S.min_lr, S.lr);
    if (!strcmp(S.optim, "adam") && S.wd > 0)
        die_usage("--optim=adam has no weight decay (--wd=%g): use --optim=adamw", S.wd);
    if (!strcmp(S.labels, "coarse") && strcmp(S.dataset, "cifar100"))
        die_usage("--labels=coarse applies to --dataset=cifar100 only");
    AttnConfig attn = attn_from_flags(S.attn, S.gamma, flags_find(FLAGS, NUM_FLAGS, "gamma")->from_cmdline,
                                      S.gamma_learn, S.depth);
    AugmentConfig aug;
    augment_config_default(&aug, S.dataset);
    parse_randaug(S.randaug, &aug);
    parse_crop(S.crop, &aug.crop_padding);
    if (strcmp(S.flip, "auto")) aug.hflip = !strcmp(S.flip, "1");

    const Backend *be = backend_with_dtype(backend_from_flag(S.device), S.dtype, S.dim / S.heads);
    const int nproc = dist_size();
    dist_setup_run(S.batch, be, S.device, S.zero);

    // data: the model takes its channels, image size and classes from it
    char data_dir[4096], err[8192];
    if (*S.data_dir) snprintf(data_dir, sizeof data_dir, "%s", S.data_dir);
    else snprintf(data_dir, sizeof data_dir, "data/%s", S.dataset);
    ImageSet train, test;
    if (images_load(&train, &test, S.dataset, data_dir, !strcmp(S.labels, "coarse"), err, sizeof err))
        die("--dataset=%s: %s", S.dataset, err);
    if (*init_path && (train.channels != init_cfg.channels || train.height != init_cfg.height ||
                       train.width != init_cfg.width || train.num_classes != init_cfg.classes))
        die_usage("--init-from=%s: its model takes %dx%dx%d images in %d classes, --dataset=%s has "
                  "%dx%dx%d in %d", init_path, init_cfg.channels, init_cfg.height, init_cfg.width,
                  init_cfg.classes, S.dataset, train.channels, train.height, train.width,
                  train.num_classes);
    if (train.height % S.patch || train.width % S.patch)
        die_usage("--patch=%d must divide the image size %dx%d of %s", S.patch, train.height,
                  train.width, S.dataset);

    // run directory (none for --eval-only of a file's weights)
    char default_dir[256];
    attn_run_name(default_dir, sizeof default_dir, "runs/vit", &attn, S.depth, S.seed);
    RunPaths run = {.dir = ""};
    if (!S.eval_only || *S.resume) run_paths(&run, S.resume, S.out, default_dir, S.overwrite);
    dist_barrier();   // every process has looked at the run directory before rank 0 writes to it
    const char *out = run.dir, *metrics_path = run.metrics, *ckpt_path = run.checkpoint;

    ViTConfig cfg = {.kind = strcmp(S.model, "vit") ? VIT_SMALL : VIT_PLAIN,
                     .channels = train.channels, .height = train.height, .width = train.width,
                     .patch = S.patch, .classes = train.num_classes, .dim = S.dim,
                     .depth = S.depth, .heads = S.heads, .mlp_dim = S.mlp_dim,
                     .dropout = S.dropout, .emb_dropout = S.emb_dropout,
                     .label_smoothing = S.label_smoothing, .attn = attn};
    ViT model;
    vit_build(&model, &cfg, be, S.batch / nproc);
    if (*init_path) {
        StFile *st = safetensors_open("--init-from", init_path);
        vit_import_safetensors(&model, st);
        safetensors_close(st);
    } else {
        vit_init_weights(&model, (uint64_t)S.seed);
    }
    // every process starts from rank 0's weights (the same bits already: the same seed or file)
    dist_broadcast_buffer(be, model.params, model.layout.num_params);
    // adam is AdamW with the weight decay term off (wd = 0)
    Optimizer opt = {.kind = strcmp(S.optim, "setadam") ? OPTIM_ADAMW : OPTIM_SETADAM,
                     .beta1 = S.beta1, .beta2 = S.beta2, .eps = S.eps,
                     .wd = strcmp(S.optim, "adam") ? S.wd : 0.0f, .tau = S.tau, .clip = S.clip};
    Zero zero;   // the optimizer state: whole, or this process's range of it (--zero=1)
    zero_init(&zero, S.zero, &model.layout);
    zero_optim_init(&zero, &opt, be);

    int start = 0, last_saved = -1, rc = 0;
    long step = 0;
    TrainState resumed = {0};
    if (*S.resume) {
        CkptInfo info = checkpoint_info(&model, 0);
        real *mm, *vv;
        zero_state_for_load(&zero, &opt, model.layout.num_params, &mm, &vv);
        ckpt_load(ckpt_path, &info, be, model.params, mm, vv, model.layout.num_params, &resumed,
                  sizeof resumed);
        zero_state_scatter(&zero, &opt, mm, vv);
        start = last_saved = (int)info.step;
        step = (long)resumed.step;
        opt.t = resumed.optim_t;
        if (start >= S.epochs && !S.eval_only)
            die_usage("--resume=%s is at epoch %d already; raise --epochs", out, start);
        if (S.max_steps && step >= S.max_steps && !S.eval_only)
            die_usage("--resume=%s is at step %ld already; raise --max-steps (0: no limit)", out, step);
    }
    if (S.eval_only) {
        eval_only(&model, &test, &aug);
        goto free_all;
    }
    const int root = dist_is_root();   // only rank 0 writes files (the others' Csv stay closed)
    if (root && make_dirs(out) != 0) die("cannot create the run directory %s", out);
    if (root) flags_save_config(FLAGS, NUM_FLAGS, out, "train_vit");
    Csv csv = {0}, layers_csv = {0};
    if (root) csv_open(&csv, metrics_path, CSV_HEADER, *S.resume ? (double)start : -1.0);
    // layers.csv counts optimizer steps (metrics.csv's first column is the epoch)
    char layers_path[4200];
    snprintf(layers_path, sizeof layers_path, "%s/layers.csv", out);
    if (root) csv_open(&layers_csv, layers_path, LAYERS_CSV_HEADER, *S.resume ? (double)step : -1.0);
    LayerStat *stats = xcalloc((size_t)S.depth, sizeof *stats);

    const int steps_per_epoch = (train.count + S.batch - 1) / S.batch;
    char attn_text[4 * ATTN_MAX_LAYERS + 64];
    attn_describe(attn_text, sizeof attn_text, &cfg.attn, S.depth);
    printf("train_vit: %s, %s%s on %s (%d train / %d test images, %dx%dx%d, %d classes) | "
           "device %s | patch %d, dim %d, depth %d, heads %d, mlp %d | %.2fM parameters | "
           "%d steps/epoch | run %s\n",
           S.model, attn_text, cfg.kind == VIT_SMALL ? " (LSA)" : "",
           S.dataset, train.count, test.count, train.channels, train.height, train.width,
           train.num_classes, be->name, S.patch, S.dim, S.depth, S.heads, S.mlp_dim,
           model.layout.num_params / 1e6, steps_per_epoch, out);
    printf("augmentation:");
    if (aug.randaug_n) printf(" RandAugment(%d, %d)", aug.randaug_n, aug.randaug_m);
    if (aug.crop_padding) printf(" crop (padding %d)", aug.crop_padding);
    if (aug.hflip) printf(" flip");
    printf("%s\n", aug.randaug_n || aug.crop_padding || aug.hflip ? "" : " none");
    if (nproc > 1) printf("data parallel: %d processes, %d images each per batch (%s)\n", nproc, S.batch / nproc,
                          dist_describe());
    if (zero.on) printf("zero: optimizer state sharded, m and v of %zu of the %zu parameters on rank 0\n", zero.n,
                        model.layout.num_params);
    if (*S.resume)
        printf("resumed from %s after epoch %d%s\n", ckpt_path, start,
               resumed.batch_in_epoch ? " and part of the next" : "");
    if (*init_path) printf("weights from %s (optimizer state fresh)\n", init_path);

    const size_t pixels = image_bytes(&train);
    float *images = xmalloc((size_t)S.batch * pixels * sizeof(float));
    int *labels = xmalloc((size_t)S.batch * sizeof(int));
    int *indices = xmalloc((size_t)S.batch * sizeof(int));
    int *order = xmalloc((size_t)train.count * sizeof(int));
    const uint64_t dropout_stream = hash64((uint64_t)S.seed, STREAM_DROPOUT);
    double t_run = now_seconds(), val_loss = NAN, val_acc = NAN;
    long steps_run = 0;
    int skipped = resumed.skipped_updates;
    runctl_install_signal_handlers();
    for (int epoch = start; epoch < S.epochs; epoch++) {
        double t0 = now_seconds();
        epoch_order(order, train.count, (uint64_t)S.seed, epoch);
        float lr = 0;
        // a run stopped inside this epoch continues with its next batch
        int k0 = epoch == start ? (int)resumed.batch_in_epoch : 0;
        double loss_sum = k0 ? resumed.loss_sum : 0;
        long correct = k0 ? (long)resumed.correct : 0;
        // batches of this epoch done when it ends: fewer where --max-steps stops inside it
        int batches_done = steps_per_epoch, max_steps_hit = 0;
        for (int k = k0; k < steps_per_epoch; k++, step++) {
            int first = k * S.batch;
            int n = train.count - first < S.batch ? train.count - first : S.batch;
            // this process's share of the batch: its images, their augmentation and dropout
            // masks as the whole batch would have them; the gradients summed over processes
            int s0, ns;
            share_of(n, &s0, &ns);
            augment_batch(&train, order + first + s0, ns, 1, &aug, (uint64_t)S.seed, epoch, images);
            for (int i = 0; i < ns; i++) labels[i] = train.labels[order[first + s0 + i]];
            lr = lr_for(epoch, step);
            vit_zero_grad(&model);
            vit_set_share(&model, s0, n);
            double loss = 0;
            if (ns) {
                loss = vit_forward(&model, images, labels, ns, 1, hash64(dropout_stream, (uint64_t)step));
                vit_backward(&model);
            }
            if (nproc > 1) {
                double t[2] = {loss * ns, ns ? vit_last_correct(&model) : 0};
                dist_sum_double(t, 2);
                loss = t[0] / n;
                correct += (long)t[1];
            } else {
                correct += vit_last_correct(&model);
            }
            // summed over the processes (and its norm)
            float grad_norm = zero_grads(&zero, &opt, model.grads, model.layout.num_params);
            if (!isfinite(loss) || !isfinite(grad_norm)) {
                const char *where = params_first_nonfinite(&model.layout, be, model.params);
                const char *what = where ? "parameter" : "gradient";
                if (!where)
                    where = params_first_nonfinite(&model.layout, be, model.grads);
                if (!where) where = "the loss (activations)";
                if (!strcmp(S.on_nan, "stop")) {
                    char last[4400] = "none (no checkpoint was written)";
                    if (last_saved >= 0)
                        snprintf(last, sizeof last, "%s (epoch %d)", ckpt_path, last_saved);
                    fprintf(stderr, "error: non-finite loss (%g) or gradient norm (%g) at epoch %d, "
                            "step %ld, first in %s %s; last good checkpoint: %s\n", loss, grad_norm,
                            epoch + 1, step + 1, what, where, last);
                    rc = EXIT_NAN;
                    goto done;
                }
                skipped++;
                printf("epoch %d, step %ld: non-finite loss (%g) or gradient norm (%g), first in %s "
                       "%s: update skipped (%d so far)\n", epoch + 1, step + 1, loss, grad_norm, what,
                       where, skipped);
            } else {
                zero_update(&zero, &opt, model.params, model.grads, &model.layout, lr);
            }
            loss_sum += loss * n;
            steps_run++;
            max_steps_hit = S.max_steps && step + 1 >= S.max_steps;
            if ((k + 1) % S.log_every == 0 || k + 1 == steps_per_epoch || max_steps_hit) {
                char eta[32];
                double per_step = (now_seconds() - t_run) / steps_run;
                long left = (long)(S.epochs - epoch) * steps_per_epoch - (k + 1);
                if (S.max_steps && left > S.max_steps - (step + 1)) left = S.max_steps - (step + 1);
                format_eta(per_step * left, eta, sizeof eta);
                printf("epoch %d/%d | step %d/%d | loss %.4f | lr %.2e | norm %.3f | %.0f img/s | ETA %s\n",
                       epoch + 1, S.epochs, k + 1, steps_per_epoch, loss, lr, grad_norm,
                       (first + n) / (now_seconds() - t0), eta);
                fflush(stdout);
            }
            int stop_signal = dist_max_int(runctl_stop_signal());   // any process's signal stops them all
            // (at --max-steps the epoch's end below writes the row, then the checkpoint)
            if (stop_signal && k + 1 < steps_per_epoch && !max_steps_hit) {
                TrainState ts = {.step = step + 1, .skipped_updates = skipped,
                                 .batch_in_epoch = k + 1, .correct = correct, .loss_sum = loss_sum};
                save_checkpoint(ckpt_path, &model, &opt, &zero, epoch, ts);
                printf("%s: checkpoint written in epoch %d (batch %d of %d) to %s; continue with "
                       "--resume=%s\n", stop_signal == SIGINT ? "interrupted" : "terminated",
                       epoch + 1, k + 1, steps_per_epoch, ckpt_path, out);
                rc = 128 + stop_signal;
                goto done;
            }
            if (max_steps_hit) {   // the loop's own step++ is skipped by the break
                batches_done = k + 1;
                step++;
                break;
            }
        }
        double epoch_s = now_seconds() - t0;
        // images of this epoch trained (all but where --max-steps stopped it
        // early; a partial batch is always an epoch's last)
        const int partial = batches_done < steps_per_epoch;
        const double seen = partial ? (double)batches_done * S.batch : train.count;
        // images trained in this process (a resumed epoch started part-way)
        double images_per_s = (seen - (double)k0 * S.batch) / epoch_s;
        double train_loss = loss_sum / seen, train_acc = (double)correct / seen;
        int evaluated = (epoch + 1) % S.eval_every == 0 || epoch + 1 == S.epochs || max_steps_hit;
        if (evaluated) {
            evaluate(&model, &test, &aug, images, indices, labels, &val_loss, &val_acc, stats);
            for (int l = 0; l < S.depth; l++)   // gamma empty for std
                csv_row(&layers_csv, (double[]){(double)step, l, stats[l].disc, stats[l].cos_yv,
                                                isnan(stats[l].gamma) ? CSV_EMPTY : stats[l].gamma,
                                                stats[l].out_rms});
        }
        csv_row(&csv, (double[]){epoch + 1, (double)step, lr, train_loss, train_acc,
                                 evaluated ? val_loss : CSV_EMPTY, evaluated ? val_acc : CSV_EMPTY,
                                 epoch_s, images_per_s});
        printf("epoch %d/%d done | train loss %.4f | train acc %.4f", epoch + 1, S.epochs, train_loss,
               train_acc);
        if (evaluated) printf(" | val loss %.4f | val acc %.4f", val_loss, val_acc);
        printf(" | %.1f s | %.0f img/s\n", epoch_s, images_per_s);
        fflush(stdout);
        int stop_signal = dist_max_int(runctl_stop_signal());
        if ((S.save_every && ((epoch + 1) % S.save_every == 0 || epoch + 1 == S.epochs || max_steps_hit)) ||
            stop_signal) {
            if (partial) {   // stopped inside the epoch: a checkpoint a resume continues from
                save_checkpoint(ckpt_path, &model, &opt, &zero, epoch,
                                (TrainState){.step = step, .skipped_updates = skipped,
                                             .batch_in_epoch = batches_done, .correct = correct,
                                             .loss_sum = loss_sum});
                last_saved = epoch;
            } else {
                save_checkpoint(ckpt_path, &model, &opt, &zero, epoch + 1,
                                (TrainState){.step = step, .skipped_updates = skipped});
                last_saved = epoch + 1;
            }
        }
        if (stop_signal) {
            char when[64];
            if (partial) snprintf(when, sizeof when, "in epoch %d (batch %d of %d)", epoch + 1, batches_done,
                                  steps_per_epoch);
            else snprintf(when, sizeof when, "after epoch %d", epoch + 1);
            printf("%s: checkpoint written %s to %s; continue with --resume=%s\n",
                   stop_signal == SIGINT ? "interrupted" : "terminated", when, ckpt_path, out);
            rc = 128 + stop_signal;
            goto done;
        }
        if (max_steps_hit) {
            printf("stopped after --max-steps=%d optimizer steps (epoch %d, batch %d of %d)\n",
                   S.max_steps, epoch + 1, batches_done, steps_per_epoch);
            break;
        }
    }
    if (skipped) printf("%d updates skipped for non-finite values (--on-nan=skip)\n", skipped);
    if (!isnan(val_acc)) printf("final: val loss %.4f | val acc %.4f\n", val_loss, val_acc);
    printf("wrote %s\n", metrics_path);
    if (*S.export_path) {
        if (root) export_weights(&model, &aug, S.export_path);
        printf("wrote %s\n", S.export_path);
    }

done:   // finished, stopped by a signal, or stopped by a numerical fault

    csv_close(&csv);
    csv_close(&layers_csv);
    free(stats);
    free(images);
    free(labels);
    free(indices);
    free(order);
free_all:
    optim_free(&opt);
    zero_free(&zero);
    vit_free(&model);
    print_peak_memory(be);   // (every buffer freed: the peak stays)
    be->shutdown();
    images_free(&train);
    images_free(&test);
    flags_free(FLAGS, NUM_FLAGS);
    dist_finalize();
    return rc;
}

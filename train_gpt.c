// train_gpt.c - train a GPT (nanoGPT semantics) with standard attention or
// a variant (AttentionX, XSA), on token data or on the built-in recall task, on any backend.
//
// This file is the trainer only: flags, the loop, logging. The model is
// src/gpt.c, the ops attention.c/layers.c (+ .cu), the optimizers src/optim.c,
// data src/tokens.c and src/mqar.c, checkpoints src/ckpt.c, CSV src/csv.c.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "src/attn_flags.h"
#include "src/ckpt.h"
#include "src/common.h"
#include "src/csv.h"
#include "src/dist.h"
#include "src/flags.h"
#include "src/gpt.h"
#include "src/mqar.h"
#include "src/optim.h"
#include "src/runctl.h"
#include "src/safetensors.h"
#include "src/sample.h"
#include "src/tokens.h"
#include "src/zero.h"

static const char *SUMMARY =
    "Trains a GPT (GPT-2 shapes, nanoGPT semantics) with standard attention or a variant (AttentionX, XSA).\n"
    "With no --data it trains on the built-in multi-query associative recall task (mqar).";

static const char *CSV_HEADER =
    "step,tokens,lr,train_loss,val_loss,val_acc,grad_norm,step_ms,tokens_per_s";

typedef struct {
    // model
    int layers, heads, embd, seq, bias, vocab;
    char *attn, *gamma_learn;
    float gamma;
    // data
    char *data, *val_data, *sample;
    int mqar_keys, mqar_pairs;
    char *mqar_layout;
    // optimisation
    char *optim, *schedule;
    float lr, min_lr, wd, beta1, beta2, eps, tau, clip;
    int warmup, steps, batch, grad_accum, seed, zero;
    // evaluation, output
    int eval_every, eval_batches, log_every, save_every, overwrite, eval_only;
    int sample_every, sample_tokens;   // text samples (src/sample.c)
    char *vocab_dir, *tokenizer;
    char *out, *resume, *config, *device, *dtype, *on_nan, *export_path, *init_from;
} Settings;

static Settings S;


static Flag FLAGS[] = {
    INT_FLAG("layers", &S.layers, "2", 1, 1024, "transformer blocks (L)"),
    INT_FLAG("heads", &S.heads, "4", 1, 1024, "attention heads per block; must divide --embd"),
    INT_FLAG("embd", &S.embd, "64", 1, 65536, "embedding width (C)"),
    INT_FLAG("seq", &S.seq, "32", 1, 1 << 20, "block size: tokens per sequence (T)"),
    INT_FLAG("bias", &S.bias, "1", 0, 1, "1: biases in Linear and LayerNorm layers; 0: none"),
    INT_FLAG("vocab", &S.vocab, "50257", 1, 1 << 24, "vocabulary of token data (mqar sets its own)"),
    ATTN_FLAGS(&S.attn, &S.gamma, &S.gamma_learn),
    STR_FLAG("data", &S.data, "mqar", NULL, "training data: mqar, or token files (a file or glob)"),
    STR_FLAG("val-data", &S.val_data, "", NULL, "validation token files; empty: --data with train->val"),
    STR_FLAG("sample", &S.sample, "random", "random|sequential", "how token windows are drawn"),
    INT_FLAG("mqar-keys", &S.mqar_keys, "16", 2, 1 << 20, "mqar: keys (= values); chance is 1/keys"),
    INT_FLAG("mqar-pairs", &S.mqar_pairs, "8", 1, 1 << 20, "mqar: key-value pairs per sequence"),
    STR_FLAG("mqar-layout", &S.mqar_layout, "pair", "pair|split",
             "mqar: pair (a key-value pair is one token) or split (key, value: Zoology's, needs induction)"),
    STR_FLAG("optim", &S.optim, "adamw", "adamw|setadam", "optimizer"),
    FLOAT_FLAG("lr", &S.lr, "0.003", 0, 1e3, "peak learning rate"),
    FLOAT_FLAG("min-lr", &S.min_lr, "0.0003", 0, 1e3, "learning rate at the last step (cosine)"),
    INT_FLAG("warmup", &S.warmup, "100", 0, 1 << 30, "linear warmup steps"),
    STR_FLAG("schedule", &S.schedule, "cosine", "cosine|constant", "learning-rate schedule after warmup"),
    FLOAT_FLAG("wd", &S.wd, "0.1", 0, 1e3, "decoupled weight decay (2-D tensors only)"),
    FLOAT_FLAG("beta1", &S.beta1, "0.9", 0, 0.999999, "Adam beta1"),
    FLOAT_FLAG("beta2", &S.beta2, "0.95", 0, 0.999999, "Adam beta2"),
    FLOAT_FLAG("eps", &S.eps, "1e-8", 0, 1, "Adam epsilon"),
    FLOAT_FLAG("tau", &S.tau, "0.5", 0, 0.999, "SET-Adam down-translation tau"),
    FLOAT_FLAG("clip", &S.clip, "1", 0, 1e9, "global grad-norm clipping threshold, 0 = off"),
    INT_FLAG("steps", &S.steps, "5000", 1, 1 << 30, "optimizer steps"),
    INT_FLAG("batch", &S.batch, "32", 1, 1 << 20, "sequences per micro-batch (B)"),
    INT_FLAG("grad-accum", &S.grad_accum, "1", 1, 1 << 20, "micro-batches per optimizer step"),
    INT_FLAG("zero", &S.zero, "0", 0, 1,
             "1: shard the optimizer state over the processes (ZeRO stage 1; with mpirun -np N)"),
    INT_FLAG("seed", &S.seed, "1", 0, 2147483647, "seed for weights, data order and mqar"),
    INT_FLAG("eval-every", &S.eval_every, "250", 1, 1 << 30, "validate every N steps (and at the end)"),
    INT_FLAG("eval-batches", &S.eval_batches, "8", 1, 1 << 20, "fixed validation batches"),
    INT_FLAG("log-every", &S.log_every, "100", 1, 1 << 30, "console progress line every N steps"),
    INT_FLAG("sample-every", &S.sample_every, "0", 0, 1 << 30,
             "print generated text every N steps (0: never); needs --vocab-dir or --tokenizer"),
    INT_FLAG("sample-tokens", &S.sample_tokens, "64", 1, 1 << 20, "tokens per generated sample"),
    STR_FLAG("vocab-dir", &S.vocab_dir, "", NULL, "GPT-2 vocabulary (encoder.json, vocab.bpe) for samples"),
    STR_FLAG("tokenizer", &S.tokenizer, "", NULL, "llm.c tokenizer .bin (decoding only) for samples"),
    INT_FLAG("save-every", &S.save_every, "0", 0, 1 << 30, "checkpoint every N steps (0: never)"),
    STR_FLAG("out", &S.out, "", NULL, "run directory; empty: runs/gpt-<attn>-g<gamma>[-learn-<how>]-s<seed>"),
    STR_FLAG("device", &S.device, "auto", "auto|cpu|ref|cuda",
             "backend: cpu (fast), ref (the CPU reference, the oracle), cuda; auto: CUDA when usable, else cpu"),
    STR_FLAG("dtype", &S.dtype, "auto", "auto|bf16|fp32",
             "CUDA precision: bf16 (matmuls and attention on tensor cores, fp32 accumulation, fp32 "
             "weights and optimizer), fp32; auto: bf16 on a GPU that has it, else fp32"),
    STR_FLAG("on-nan", &S.on_nan, "stop", "stop|skip",
             "non-finite loss or gradient: stop (exit 3), or skip that update"),
    RUN_FLAG("resume", &S.resume, "", "continue the run in this directory from its checkpoint"),
    RUN_FLAG("init-from", &S.init_from, "",
             "start from these weights: safetensors (nanoGPT's names) or an llm.c GPT-2 .bin; shapes from the file"),
    RUN_INT_FLAG("eval-only", &S.eval_only, "0", 0, 1,
     "1: with --resume or --init-from, evaluate the weights on the validation batches, print it, write "
     "nothing (but --export) and exit"),
    RUN_FLAG("export", &S.export_path, "",
             "at the end, write the weights to this file in safetensors (nanoGPT's names)"),
    RUN_FLAG("config", &S.config, "", "read name=value settings from this file"),
    RUN_INT_FLAG("overwrite", &S.overwrite, "0", 0, 1, "1: allow replacing an existing run in --out"),
};
enum { NUM_FLAGS = sizeof FLAGS / sizeof FLAGS[0] };
// the settings that define the model (or its vocabulary): --resume refuses a change
static const char *const MODEL_FLAGS[] = {"layers", "heads", "embd", "seq", "bias", "vocab", "attn", "gamma",
                                          "gamma-learn", "mqar-keys", "mqar-layout", NULL};

// what a checkpoint stores beyond the weights and the optimizer moments
typedef struct {
    TokenLoaderState train_data;
    int32_t optim_t;
    int32_t skipped_updates;   // --on-nan=skip
} TrainState;

// ----------------------------------------------------------------------------

typedef struct {
    int is_mqar;
    Mqar mqar;
    TokenLoader train, val;
    int has_val;
} Data;

static void open_data(Data *d, int *vocab) {
    memset(d, 0, sizeof *d);
    if (!strcmp(S.data, "mqar")) {
        d->is_mqar = 1;
        mqar_init(&d->mqar, S.mqar_keys, S.mqar_pairs, S.seq, strcmp(S.mqar_layout, "split") ? MQAR_PAIR : MQAR_SPLIT);
        *vocab = mqar_vocab(&d->mqar);
        d->has_val = 1;
        return;
    }
    *vocab = S.vocab;
    token_loader_open(&d->train, S.data, "--data", S.vocab, S.seq, !strcmp(S.sample, "random"),
                      (uint64_t)S.seed);
    char val[4096] = "";
    if (*S.val_data) {
        snprintf(val, sizeof val, "%s", S.val_data);
    } else {
        // nanoGPT's train.bin / val.bin and llm.c's *_train_* / *_val_* naming
        const char *hit = strstr(S.data, "train");
        if (hit) snprintf(val, sizeof val, "%.*sval%s", (int)(hit - S.data), S.data, hit + 5);
    }
    if (*val) {
        token_loader_open(&d->val, val, "--val-data", S.vocab, S.seq, !strcmp(S.sample, "random"),
                          (uint64_t)S.seed + 1);
        d->has_val = 1;
    } else {
        printf("no validation data (--val-data): val_loss stays empty\n");
    }
}

// The training forward of this process's share of a global batch (its rows
// rank*B/N ..; all of it in one process): returns the global batch's mean loss,
// and scales the gradient by grad_scale over the global batch's valid targets
// (every process holds the whole batch), so the gradients summed over
// processes are the one-process run's.
static double forward_share(GPT *m, const int *inputs, const int *targets, float grad_scale) {
    const int n = dist_size(), rows = S.batch / n;
    const size_t at = (size_t)dist_rank() * rows * S.seq;
    int count = 0;
    for (size_t i = 0; i < (size_t)S.batch * S.seq; i++) count += targets[i] >= 0;
    double mean = gpt_forward_train(m, inputs + at, targets + at, rows, S.seq, grad_scale, count);
    if (n == 1) return mean;
    double t[2] = {mean * m->num_valid, (double)m->num_valid};
    dist_sum_double(t, 2);
    return t[1] > 0 ? t[0] / t[1] : 0.0;
}

static void train_batch(Data *d, uint64_t index, int *inputs, int *targets) {
    if (d->is_mqar) mqar_batch(&d->mqar, (uint64_t)S.seed, MQAR_TRAIN, index, S.batch, inputs, targets);
    else token_loader_next(&d->train, S.batch, inputs, targets);
}

// mean loss and accuracy over the same eval_batches validation batches; with
// `stats`, the per-layer diagnostic of the first of them (layers.csv)
static void evaluate(GPT *m, Data *d, int *inputs, int *targets, double *loss, double *acc, LayerStat *stats) {
    if (!d->is_mqar) token_loader_rewind(&d->val, (uint64_t)S.seed + 1);
    double loss_sum = 0, correct = 0;
    long count = 0;
    for (int k = 0; k < S.eval_batches; k++) {
        if (d->is_mqar) mqar_batch(&d->mqar, (uint64_t)S.seed, MQAR_VAL, (uint64_t)k, S.batch, inputs, targets);
        else token_loader_next(&d->val, S.batch, inputs, targets);
        const size_t at = (size_t)dist_rank() * (S.batch / dist_size()) * S.seq;
        gpt_forward(m, inputs + at, targets + at, S.batch / dist_size(), S.seq);
        if (k == 0 && stats) {
            gpt_layer_stats(m, stats);
            dist_sum_layer_stats(stats, S.layers);   // every process's share of the batch
        }
        int n;
        double a = gpt_last_accuracy(m, &n);
        loss_sum += (double)m->mean_loss * n;
        correct += a * n;
        count += n;
    }
    double sums[3] = {loss_sum, correct, (double)count};   // over every process's share
    dist_sum_double(sums, 3);
    loss_sum = sums[0], correct = sums[1], count = (long)sums[2];
    *loss = count ? loss_sum / count : NAN;
    *acc = count ? correct / count : NAN;
}

// --export: the weights and, in __metadata__, every setting that defines the model
static void export_weights(GPT *m, const char *path) {
    const GPTConfig *c = &m->cfg;
    char v[8][32], kinds[4 * ATTN_MAX_LAYERS + 8];
    attn_kinds_format(&c->attn, c->layers, kinds, sizeof kinds);
    snprintf(v[0], sizeof v[0], "%d", c->vocab);
    snprintf(v[1], sizeof v[1], "%d", c->padded_vocab);
    snprintf(v[2], sizeof v[2], "%d", c->max_seq);
    snprintf(v[3], sizeof v[3], "%d", c->layers);
    snprintf(v[4], sizeof v[4], "%d", c->heads);
    snprintf(v[5], sizeof v[5], "%d", c->embd);
    snprintf(v[6], sizeof v[6], "%d", c->bias);
    snprintf(v[7], sizeof v[7], "%.9g", c->attn.gamma);
    const StMeta meta[] = {
        {"format", "pt"}, {"model", "gpt"}, {"attn", kinds}, {"gamma", v[7]},
        {"gamma_learn", gamma_learn_name(c->attn.learn)},
        {"vocab_size", v[0]}, {"padded_vocab_size", v[1]}, {"block_size", v[2]}, {"n_layer", v[3]},
        {"n_head", v[4]}, {"n_embd", v[5]}, {"bias", v[6]},
    };
    gpt_export_safetensors(m, path, meta, (int)(sizeof meta / sizeof meta[0]));
}

// --eval-only: the checkpoint's loss and accuracy over the validation batches
// (and --export); nothing is written to the run directory
static void eval_only(GPT *m, Data *d) {
    if (!d->has_val) die_usage("--eval-only=1 needs validation data (--val-data)");
    int *inputs = xmalloc((size_t)S.batch * S.seq * sizeof(int));
    int *targets = xmalloc((size_t)S.batch * S.seq * sizeof(int));
    double loss, acc;
    evaluate(m, d, inputs, targets, &loss, &acc, NULL);
    printf("val loss %.6f | val acc %.6f\n", loss, acc);
    if (*S.export_path) {
        if (dist_is_root()) export_weights(m, S.export_path);
        printf("wrote %s\n", S.export_path);
    }
    free(inputs);
    free(targets);
}

static CkptInfo checkpoint_info(const GPT *m, int64_t step) {
    CkptInfo info = {.kind = "gpt", .step = step,
                     .shape = {m->cfg.vocab, m->cfg.padded_vocab, m->cfg.max_seq, m->cfg.layers,
                               m->cfg.heads, m->cfg.embd, m->cfg.bias},
                     .shape_names = {"vocab", "padded vocab", "seq", "layers", "heads", "embd", "bias",
                                     "attn kinds (hash)", "gamma (bits)", "gamma-learn"}};
    attn_ckpt_ints(&m->cfg.attn, m->cfg.layers, info.shape + 7);
    return info;
}

// every process calls it (sharded optimizer state is gathered); rank 0 writes
static void save_checkpoint(const char *path, const GPT *m, const Optimizer *opt, const Zero *z,
                            const Data *d, int step, int skipped) {
    TrainState ts = {.optim_t = opt->t, .skipped_updates = skipped};
    if (!d->is_mqar) ts.train_data = token_loader_state(&d->train);
    CkptInfo info = checkpoint_info(m, step);
    real *mm, *vv;
    zero_state_gather(z, opt, m->layout.num_params, &mm, &vv);
    char err[4400];
    if (dist_is_root() && ckpt_save(path, &info, m->be, m->params, mm, vv, m->layout.num_params, &ts,
                                    sizeof ts, err, sizeof err) != 0)
        die("%s", err);
    zero_state_free(z, mm, vv);
}

// layers.csv: one row per layer of the diagnostic; gamma empty for std
static void write_layer_rows(Csv *csv, int step, const LayerStat *stats, const GPTConfig *c) {
    for (int l = 0; l < c->layers; l++)
        csv_row(csv, (double[]){step, l, stats[l].disc, stats[l].cos_yv,
                                isnan(stats[l].gamma) ? CSV_EMPTY : stats[l].gamma, stats[l].out_rms});
}

// --init-from: the model's shape comes from the file. A flag given on the
// command line that says otherwise is an error naming both values; the block
// size may be shorter than the file's (wpe is cropped, as nanoGPT does).
static void shape_from_file(const GPTWeights *w) {
    const GPTConfig *f = &w->cfg;
    // heads and vocab are 0 where the file does not say (safetensors without our metadata)
    const struct { const char *flag; int *value; int file, known; } fixed[] = {
        {"layers", &S.layers, f->layers, 1}, {"embd", &S.embd, f->embd, 1},
        {"bias", &S.bias, f->bias, 1},       {"heads", &S.heads, f->heads, f->heads > 0},
        {"vocab", &S.vocab, f->vocab, f->vocab > 0}, {"seq", &S.seq, f->max_seq, 1},
    };
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++) {
        const int given = flags_find(FLAGS, NUM_FLAGS, fixed[k].flag)->from_cmdline;
        if (!fixed[k].known) {
            if (!given && !strcmp(fixed[k].flag, "heads"))
                die_usage("--init-from=%s does not record the number of heads: give --heads", w->path);
            continue;
        }
        const int crop = !strcmp(fixed[k].flag, "seq") && *fixed[k].value <= fixed[k].file;
        if (given && *fixed[k].value != fixed[k].file && !crop)
            die_usage("--%s=%d contradicts --init-from=%s, which has %s %d", fixed[k].flag, *fixed[k].value,
                      w->path, fixed[k].flag, fixed[k].file);
        if (!given) *fixed[k].value = fixed[k].file;
    }
    // the attention is not a shape: the file's (our own exports) unless the command line says
    if (w->has_attn) attn_flags_from_file(FLAGS, NUM_FLAGS, &f->attn, f->layers);
}

// ----------------------------------------------------------------------------

int main(int argc, char **argv) {
    dist_init(&argc, &argv);
    flags_parse(FLAGS, NUM_FLAGS, argc, argv, "train_gpt", SUMMARY);
    flags_check_resume(FLAGS, NUM_FLAGS, MODEL_FLAGS, S.resume);
    GPTWeights init = {0};
    if (*S.init_from) {
        if (*S.resume) die_usage("--init-from and --resume: give one (a resumed run has its own weights)");
        gpt_weights_open(&init, "--init-from", S.init_from);
        shape_from_file(&init);
    }
    if (S.embd % S.heads) die_usage("--heads=%d must divide --embd=%d", S.heads, S.embd);
    if (S.min_lr > S.lr) die_usage("--min-lr=%g must not exceed --lr=%g", S.min_lr, S.lr);
    AttnConfig attn = attn_from_flags(S.attn, S.gamma, flags_find(FLAGS, NUM_FLAGS, "gamma")->from_cmdline,
                                      S.gamma_learn, S.layers);
    if (S.sample_every && !*S.vocab_dir && !*S.tokenizer)
        die_usage("--sample-every=%d needs a vocabulary: --vocab-dir=DIR or --tokenizer=FILE", S.sample_every);
    if (S.sample_every && !strcmp(S.data, "mqar"))
        die_usage("--sample-every=%d needs token data (--data=FILES): mqar has no text", S.sample_every);
    if (*S.vocab_dir && *S.tokenizer) die_usage("--vocab-dir and --tokenizer: give one, not both");

    if (S.eval_only && !*S.resume && !*S.init_from)
        die_usage("--eval-only=1 needs --resume=DIR or --init-from=FILE: the weights to evaluate");
    const Backend *be = backend_with_dtype(backend_from_flag(S.device), S.dtype, S.embd / S.heads);
    const int nproc = dist_size();
    dist_setup_run(S.batch, be, S.device, S.zero);

    // run directory
    char default_dir[256];
    attn_run_name(default_dir, sizeof default_dir, "runs/gpt", &attn, S.layers, S.seed);
    RunPaths run;
    run_paths(&run, S.resume, S.out, default_dir, S.overwrite || S.eval_only);   // eval-only writes nothing
    dist_barrier();   // every process has looked at the run directory before rank 0 writes to it
    const char *out = run.dir, *metrics_path = run.metrics, *ckpt_path = run.checkpoint;

    Data data;
    int vocab;
    open_data(&data, &vocab);
    TextSampler sampler = {0};
    if (S.sample_every)
        text_sampler_open(&sampler, S.vocab_dir, S.tokenizer, vocab, S.sample_tokens, (uint64_t)S.seed);
    GPTConfig cfg = {.vocab = vocab, .padded_vocab = gpt_padded_vocab(vocab), .max_seq = S.seq,
                     .layers = S.layers, .heads = S.heads, .embd = S.embd, .bias = S.bias, .attn = attn};
    GPT model;
    gpt_build(&model, &cfg, be, S.batch / nproc);
    gpt_init_weights(&model, (uint64_t)S.seed);
    if (*S.init_from) {
        if (vocab > init.file_rows || (init.cfg.vocab && vocab != init.cfg.vocab))
            die_usage("--init-from=%s has vocabulary %d (%d embedding rows); the data needs %d%s", S.init_from,
                      init.cfg.vocab, init.file_rows, vocab, data.is_mqar ? " (mqar: 2 * --mqar-keys + 1)" : "");
        gpt_weights_load(&init, &model);
        gpt_weights_close(&init);
    }
    // every process starts from rank 0's weights (the same bits already: the same seed or file)
    dist_broadcast_buffer(be, model.params, model.layout.num_params);
    Optimizer opt = {.kind = strcmp(S.optim, "setadam") ? OPTIM_ADAMW : OPTIM_SETADAM,
                     .beta1 = S.beta1, .beta2 = S.beta2, .eps = S.eps, .wd = S.wd, .tau = S.tau,
                     .clip = S.clip};
    Zero zero;   // the optimizer state: whole, or this process's range of it (--zero=1)
    zero_init(&zero, S.zero, &model.layout);
    zero_optim_init(&zero, &opt, be);

    int start = 0, skipped = 0, last_saved = -1, rc = 0;
    if (*S.resume) {
        TrainState ts;
        CkptInfo info = checkpoint_info(&model, 0);
        real *mm, *vv;
        zero_state_for_load(&zero, &opt, model.layout.num_params, &mm, &vv);
        ckpt_load(ckpt_path, &info, be, model.params, mm, vv, model.layout.num_params, &ts, sizeof ts);
        zero_state_scatter(&zero, &opt, mm, vv);
        start = last_saved = (int)info.step;
        opt.t = ts.optim_t;
        skipped = ts.skipped_updates;
        if (!data.is_mqar) token_loader_restore(&data.train, ts.train_data);
        if (start >= S.steps && !S.eval_only)
            die_usage("--resume=%s is at step %d already; raise --steps", out, start);
    }
    if (S.eval_only) {
        eval_only(&model, &data);
        goto free_all;
    }
    const int root = dist_is_root();   // only rank 0 writes files (the others' Csv stay closed)
    if (root && make_dirs(out) != 0) die("cannot create the run directory %s", out);
    if (root) flags_save_config(FLAGS, NUM_FLAGS, out, "train_gpt");
    Csv csv = {0}, layers_csv = {0};
    if (root) csv_open(&csv, metrics_path, CSV_HEADER, *S.resume ? (double)start : -1.0);
    char layers_path[4200];
    snprintf(layers_path, sizeof layers_path, "%s/layers.csv", out);
    if (root) csv_open(&layers_csv, layers_path, LAYERS_CSV_HEADER, *S.resume ? (double)start : -1.0);
    LayerStat *stats = xcalloc((size_t)S.layers, sizeof *stats);

    const size_t tokens_per_step = (size_t)S.batch * S.seq * S.grad_accum;
    char attn_text[4 * ATTN_MAX_LAYERS + 64];
    attn_describe(attn_text, sizeof attn_text, &cfg.attn, S.layers);
    printf("train_gpt: %s on %s | device %s | %d layers, %d heads, %d embd, seq %d, "
           "vocab %d | %.2fM parameters | %zu tokens/step | run %s\n",
           attn_text, S.data, be->name, S.layers, S.heads, S.embd, S.seq, vocab,
           gpt_num_params_unpadded(&model) / 1e6, tokens_per_step, out);
    if (nproc > 1) printf("data parallel: %d processes, %d sequences each per micro-batch (%s)\n", nproc,
                          S.batch / nproc, dist_describe());
    if (zero.on) printf("zero: optimizer state sharded, m and v of %zu of the %zu parameters on rank 0\n", zero.n,
                        model.layout.num_params);
    if (*S.resume) printf("resumed from %s at step %d\n", ckpt_path, start);
    if (*S.init_from) printf("weights from %s\n", S.init_from);

    int *inputs = xmalloc((size_t)S.batch * S.seq * sizeof(int));
    int *targets = xmalloc((size_t)S.batch * S.seq * sizeof(int));
    double val_loss = NAN, val_acc = NAN;
    if (start == 0 && data.has_val) {
        evaluate(&model, &data, inputs, targets, &val_loss, &val_acc, stats);
        csv_row(&csv, (double[]){0, 0, CSV_EMPTY, CSV_EMPTY, val_loss, val_acc, CSV_EMPTY,
                                 CSV_EMPTY, CSV_EMPTY});
        write_layer_rows(&layers_csv, 0, stats, &cfg);
        printf("step 0 | val loss %.4f | val acc %.4f\n", val_loss, val_acc);
    }

    runctl_install_signal_handlers();
    double t_start = now_seconds();
    for (int step = start + 1; step <= S.steps; step++) {
        double t0 = now_seconds();
        float lr = lr_at(strcmp(S.schedule, "constant") ? SCHEDULE_COSINE : SCHEDULE_CONSTANT,
                         step - 1, S.steps, S.warmup, S.lr, S.min_lr);
        gpt_zero_grad(&model);
        double loss = 0;
        for (int micro = 0; micro < S.grad_accum; micro++) {
            train_batch(&data, (uint64_t)(step - 1) * S.grad_accum + micro, inputs, targets);
            loss += forward_share(&model, inputs, targets, 1.0f / S.grad_accum) / S.grad_accum;
            gpt_backward(&model);
        }
        // the global batch's gradient on every process (host memory: the CPU backends)
        // (and its norm: waits for the backward pass)
        float grad_norm = zero_grads(&zero, &opt, model.grads, model.layout.num_params);
        if (!isfinite(loss) || !isfinite(grad_norm)) {
            const char *where = params_first_nonfinite(&model.layout, be, model.params);
            const char *what = where ? "parameter" : "gradient";
            if (!where)
                where = params_first_nonfinite(&model.layout, be, model.grads);
            if (!where) where = "the loss (activations)";
            if (!strcmp(S.on_nan, "stop")) {
                char last[4400] = "none (no checkpoint was written)";
                if (last_saved >= 0) snprintf(last, sizeof last, "%s (step %d)", ckpt_path, last_saved);
                fprintf(stderr, "error: non-finite loss (%g) or gradient norm (%g) at step %d, first in "
                        "%s %s; last good checkpoint: %s\n", loss, grad_norm, step, what, where, last);
                rc = EXIT_NAN;
                goto done;
            }
            skipped++;
            printf("step %d: non-finite loss (%g) or gradient norm (%g), first in %s %s: update "
                   "skipped (%d so far)\n", step, loss, grad_norm, what, where, skipped);
        } else {
            zero_update(&zero, &opt, model.params, model.grads, &model.layout, lr);
        }
        double step_s = now_seconds() - t0;

        val_loss = val_acc = NAN;
        int evaluated = data.has_val && (step % S.eval_every == 0 || step == S.steps);
        if (evaluated) {
            evaluate(&model, &data, inputs, targets, &val_loss, &val_acc, stats);
            write_layer_rows(&layers_csv, step, stats, &cfg);
        }
        csv_row(&csv, (double[]){step, (double)step * tokens_per_step, lr, loss,
                                 evaluated ? val_loss : CSV_EMPTY, evaluated ? val_acc : CSV_EMPTY,
                                 grad_norm, step_s * 1e3, tokens_per_step / step_s});
        if (step % S.log_every == 0 || step == S.steps || step == start + 1) {
            char eta[32];
            double per_step = (now_seconds() - t_start) / (step - start);
            format_eta(per_step * (S.steps - step), eta, sizeof eta);
            printf("step %d/%d | loss %.4f | lr %.2e | norm %.3f | %.1f ms | %.0f tok/s | ETA %s",
                   step, S.steps, loss, lr, grad_norm, step_s * 1e3, tokens_per_step / step_s, eta);
            if (!isnan(val_loss)) printf(" | val loss %.4f | val acc %.4f", val_loss, val_acc);
            printf("\n");
            fflush(stdout);
        }
        if (root && S.sample_every && step % S.sample_every == 0) text_sampler_print(&sampler, &model, step, stdout);
        int stop_signal = dist_max_int(runctl_stop_signal());   // any process's signal stops them all
        if ((S.save_every && (step % S.save_every == 0 || step == S.steps)) || stop_signal) {
            save_checkpoint(ckpt_path, &model, &opt, &zero, &data, step, skipped);
            last_saved = step;
        }
        if (stop_signal) {
            printf("%s: checkpoint written at step %d to %s; continue with --resume=%s\n",
                   stop_signal == SIGINT ? "interrupted" : "terminated", step, ckpt_path, out);
            rc = 128 + stop_signal;
            goto done;
        }
    }
    if (skipped) printf("%d updates skipped for non-finite values (--on-nan=skip)\n", skipped);
    if (!isnan(val_loss)) printf("final: val loss %.4f | val acc %.4f\n", val_loss, val_acc);
    printf("wrote %s\n", metrics_path);
    if (*S.export_path) {
        if (root) export_weights(&model, S.export_path);
        printf("wrote %s\n", S.export_path);
    }

done:   // finished, stopped by a signal, or stopped by a numerical fault

    csv_close(&csv);
    csv_close(&layers_csv);
    free(stats);
    free(inputs);
    free(targets);
free_all:
    optim_free(&opt);
    zero_free(&zero);
    gpt_free(&model);
    print_peak_memory(be);   // (every buffer freed: the peak stays)
    be->shutdown();
    if (!data.is_mqar) {
        token_loader_close(&data.train);
        if (data.has_val) token_loader_close(&data.val);
    }
    text_sampler_close(&sampler);
    flags_free(FLAGS, NUM_FLAGS);
    dist_finalize();
    return rc;
}

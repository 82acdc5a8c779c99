// sample.h - text generation from a GPT during training.
//
// sample_generate() continues a prompt by `n` tokens with temperature-1
// sampling: each step runs gpt_forward (targets NULL) over the last
// cfg.max_seq tokens with batch 1, downloads the logits of the last position,
// takes the softmax over the real vocabulary (the first cfg.vocab entries; the
// padded rows never appear) and draws one token with its own generator. The
// generator is the caller's, seeded for this purpose only, so sampling never
// touches the training data order; the weights are only read, so the training
// losses are the same with and without sampling.
#ifndef SAMPLE_H
#define SAMPLE_H

#include <stdint.h>
#include <stdio.h>

#include "gpt.h"
#include "rng.h"
#include "tokenizer.h"

// Writes n new tokens to out[0..n). prompt_len >= 1. Dies on impossible shapes.
void sample_generate(GPT *m, Rng *rng, const int *prompt, int prompt_len, int n, int *out);

// One token from softmax(logits[0..vocab)) at temperature 1 (host arrays).
int sample_from_logits(const real *logits, int vocab, Rng *rng);

// What train_gpt's --sample-every uses: a tokenizer for decoding, the number
// of tokens per sample and a seed. Each sample is prompted with the
// tokenizer's EOT (50256 for GPT-2) and drawn with a generator seeded from
// (seed, step) alone, so a resumed run prints the same samples as one run
// straight through.
typedef struct {
    Tokenizer *tok;
    int tokens;
    uint64_t seed;
} TextSampler;

// Loads DIR/encoder.json + DIR/vocab.bpe (vocab_dir non-empty) or llm.c's
// tokenizer file; dies with a message naming the file when it cannot (exit 1),
// or with a usage error (exit 2) when the EOT prompt is outside [0, model_vocab).
void text_sampler_open(TextSampler *s, const char *vocab_dir, const char *tokenizer_file,
                       int model_vocab, int tokens, uint64_t seed);
// Generates s->tokens tokens and prints them decoded, framed by marker lines.
void text_sampler_print(TextSampler *s, GPT *m, int step, FILE *out);
void text_sampler_close(TextSampler *s);

#endif

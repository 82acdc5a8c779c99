// sample.c - see sample.h
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int sample_from_logits(const real *logits, int vocab, Rng *rng) {
    double max = -INFINITY;
    for (int i = 0; i < vocab; i++)
        if ((double)logits[i] > max) max = logits[i];
    double total = 0;
    for (int i = 0; i < vocab; i++) total += exp((double)logits[i] - max);
    // inverse CDF: the first token whose cumulative probability exceeds u
    double u = rng_uniform(rng) * total, cum = 0;
    for (int i = 0; i < vocab; i++) {
        cum += exp((double)logits[i] - max);
        if (u < cum) return i;
    }
    // rounding left u at the very top: the last token with nonzero probability
    for (int i = vocab - 1; i > 0; i--)
        if (exp((double)logits[i] - max) > 0) return i;
    return 0;
}

void sample_generate(GPT *m, Rng *rng, const int *prompt, int prompt_len, int n, int *out) {
    const int T_max = m->cfg.max_seq, Vp = m->cfg.padded_vocab;
    if (prompt_len < 1) die("sample_generate: empty prompt");
    int total = prompt_len + n;
    int *context = xmalloc((size_t)total * sizeof(int));
    memcpy(context, prompt, (size_t)prompt_len * sizeof(int));
    real *row = xmalloc((size_t)Vp * sizeof(real));
    for (int k = 0; k < n; k++) {
        int len = prompt_len + k;
        int T = len < T_max ? len : T_max;   // the last T tokens fit the block size
        gpt_forward(m, context + (len - T), NULL, 1, T);
        m->be->download(row, m->logits + (size_t)(T - 1) * Vp, (size_t)Vp * sizeof(real));
        int tok = sample_from_logits(row, m->cfg.vocab, rng);
        context[len] = tok;
        out[k] = tok;
    }
    free(row);
    free(context);
}

void text_sampler_open(TextSampler *s, const char *vocab_dir, const char *tokenizer_file,
                       int model_vocab, int tokens, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->tok = vocab_dir && *vocab_dir ? tokenizer_load_or_die(vocab_dir)
                                     : tokenizer_load_llmc_or_die(tokenizer_file);
    s->tokens = tokens;
    s->seed = seed;
    int eot = tokenizer_eot(s->tok);
    if (eot < 0 || eot >= model_vocab)
        die_usage("--sample-every: the prompt token (end of text, %d) is outside the model's "
                  "vocabulary of %d (--vocab)", eot, model_vocab);
}

void text_sampler_print(TextSampler *s, GPT *m, int step, FILE *out) {
    // "sample" in ASCII keeps this stream apart from every other use of the seed
    Rng rng;
    rng_seed(&rng, hash64(s->seed ^ 0x73616d706c65ULL, (uint64_t)step));
    int prompt = tokenizer_eot(s->tok);
    int32_t *ids = xmalloc((size_t)s->tokens * sizeof(int32_t));
    int *gen = xmalloc((size_t)s->tokens * sizeof(int));
    sample_generate(m, &rng, &prompt, 1, s->tokens, gen);
    for (int i = 0; i < s->tokens; i++) ids[i] = gen[i];
    ByteBuffer text = {0};
    tokenizer_decode(s->tok, ids, (size_t)s->tokens, &text);
    fprintf(out, "--- sample at step %d (%d tokens) ---\n", step, s->tokens);
    if (text.len) fwrite(text.data, 1, text.len, out);
    fprintf(out, "\n--- end of sample ---\n");
    fflush(out);
    byte_buffer_free(&text);
    free(gen);
    free(ids);
}

void text_sampler_close(TextSampler *s) {
    if (s->tok) tokenizer_free(s->tok);
    s->tok = NULL;
}

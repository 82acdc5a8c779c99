// mqar.c - see mqar.h
#include "mqar.h"

#include <stdlib.h>

#include "common.h"
#include "rng.h"

void mqar_init(Mqar *task, int keys, int pairs, int T, MqarLayout layout) {
    if (keys < 2) die_usage("--mqar-keys=%d is out of range (at least 2)", keys);
    if (layout == MQAR_PAIR && keys > 4096)
        die_usage("--mqar-keys=%d is out of range for --mqar-layout=pair (at most 4096: K*K binding tokens)", keys);
    if (pairs < 1 || pairs > keys)
        die_usage("--mqar-pairs=%d is out of range (1..--mqar-keys=%d)", pairs, keys);
    const int need = layout == MQAR_PAIR ? pairs + 1 : 2 * pairs + 1;   // the context and one query
    if (T < need) die_usage("--seq=%d is too short for --mqar-pairs=%d (needs at least %d)", T, pairs, need);
    task->keys = keys;
    task->pairs = pairs;
    task->T = T;
    task->layout = layout;
}

int mqar_vocab(const Mqar *task) {
    const int K = task->keys;
    return task->layout == MQAR_PAIR ? K * K + 2 * K : 2 * K + 1;
}

int mqar_queries(const Mqar *task) {
    return task->layout == MQAR_PAIR ? task->T - task->pairs : (task->T + 1 - 2 * task->pairs) / 2;
}

void mqar_batch(const Mqar *task, uint64_t seed, int stream, uint64_t index, int B, int *inputs,
                int *targets) {
    const int K = task->keys, P = task->pairs, T = task->T, Q = mqar_queries(task);
    const int split = task->layout == MQAR_SPLIT;
    // token ids: split keys [0, K), values [K, 2K), pad 2K; pair bindings
    // [0, K*K), query keys [K*K, K*K + K), values [K*K + K, K*K + 2K)
    const int query_base = split ? 0 : K * K, value_base = split ? K : K * K + K, pad = 2 * K;
    int *seq = xmalloc((size_t)(T + 1) * sizeof(int));
    int *key = xmalloc((size_t)K * sizeof(int));
    int *value = xmalloc((size_t)P * sizeof(int));
    for (int b = 0; b < B; b++) {
        Rng rng;
        rng_seed(&rng, hash64(hash64(seed, (uint64_t)stream), index * (uint64_t)B + b));
        // P distinct keys: the first P of a shuffled 0..K-1
        for (int k = 0; k < K; k++) key[k] = k;
        for (int k = 0; k < P; k++) {
            int j = k + (int)rng_below(&rng, (uint64_t)(K - k));
            int tmp = key[k]; key[k] = key[j]; key[j] = tmp;
        }
        for (int k = 0; k < P; k++) value[k] = (int)rng_below(&rng, (uint64_t)K);
        int *in = inputs + (size_t)b * T, *tg = targets + (size_t)b * T;
        for (int t = 0; t < T; t++) tg[t] = -1;
        int n = 0;
        for (int k = 0; k < P; k++) {
            if (split) {
                seq[n++] = key[k];
                seq[n++] = value_base + value[k];
            } else {
                seq[n++] = key[k] * K + value[k];
            }
        }
        for (int q = 0; q < Q; q++) {
            int k = (int)rng_below(&rng, (uint64_t)P);
            tg[n] = value_base + value[k];   // input position n holds the query key
            seq[n++] = query_base + key[k];
            if (split) seq[n++] = value_base + value[k];
        }
        while (n < T + 1) seq[n++] = pad;
        for (int t = 0; t < T; t++) in[t] = seq[t];
    }
    free(seq);
    free(key);
    free(value);
}

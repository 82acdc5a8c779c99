// mqar.h - the built-in task: multi-query associative recall (MQAR).
//
// Each sequence first lists `pairs` key-value pairs with distinct keys, then
// asks for keys again: after a query key the model must produce its value.
//
//   k3 v7 k1 v2 k9 v4 ... | k1 v2 k9 v4 k3 v7 ... [pad ...]
//
// Only the positions holding a query key carry a target (its value); every
// other target is -1. Keys are tokens [0, K), values [K, 2K), the pad token
// 2K, so the vocabulary is 2K + 1 and chance accuracy is 1/K. Solving it needs
// attention to look a key up in context (an induction head), which is why it
// is the standard small test of attention variants (Zoology, Arora et al.).
// Batches are a pure function of (seed, stream, index): the train and
// validation streams never mix, and a run resumes by its batch index alone.
#ifndef MQAR_H
#define MQAR_H

#include <stdint.h>

typedef struct {
    int keys;      // K
    int pairs;     // key-value pairs per sequence
    int T;         // sequence length (inputs)
} Mqar;

enum { MQAR_TRAIN = 0, MQAR_VAL = 1 };

// Checks the shape; dies with exit 2 naming the flag when it cannot fit.
void mqar_init(Mqar *task, int keys, int pairs, int T);
int mqar_vocab(const Mqar *task);
// Queries per sequence: as many (key, value) pairs as fit after the context.
int mqar_queries(const Mqar *task);
void mqar_batch(const Mqar *task, uint64_t seed, int stream, uint64_t index, int B, int *inputs,
                int *targets);

#endif

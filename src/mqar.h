// mqar.h - the built-in task: multi-query associative recall (MQAR).
//
// Each sequence first shows `pairs` key-value bindings with distinct keys,
// then asks for keys again; after a query key the model must produce its
// value. Values are drawn afresh for every sequence, so the answer is in the
// context and nowhere else: chance accuracy is 1/K, and guessing among the
// values in context gives 1/pairs. Two layouts:
//
//   pair  (default)  [k3:v7] [k1:v2] [k9:v4] ... | q1 q9 q3 ...
//         each binding is one token (k*K + v, K*K of them); a query is a key
//         token of its own and its target is the value. One attention layer
//         can solve it: the query attends to the binding that holds its key
//         and reads the value out of it.
//   split            k3 v7 k1 v2 k9 v4 ... | k1 v2 k9 v4 k3 v7 ... [pad ...]
//         Zoology's layout (Arora et al. 2023): keys [0, K), values [K, 2K),
//         pad 2K. The value sits in the token after its key, so the model
//         needs an induction circuit: a previous-token head, then a head that
//         matches the query against it. Small models plateau at 1/pairs for
//         thousands of steps before it forms (README).
//
// Only the positions holding a query key carry a target (its value); every
// other target is -1. Batches are a pure function of (seed, stream, index):
// the train and validation streams never mix, and a run resumes by its batch
// index alone.
#ifndef MQAR_H
#define MQAR_H

#include <stdint.h>

typedef enum { MQAR_PAIR = 0, MQAR_SPLIT = 1 } MqarLayout;

typedef struct {
    int keys;      // K
    int pairs;     // key-value bindings per sequence
    int T;         // sequence length (inputs)
    int layout;    // MqarLayout
} Mqar;

enum { MQAR_TRAIN = 0, MQAR_VAL = 1 };

// Checks the shape; dies with exit 2 naming the flag when it cannot fit.
void mqar_init(Mqar *task, int keys, int pairs, int T, MqarLayout layout);
// pair: K*K bindings, K query keys, K values; split: 2K + 1
int mqar_vocab(const Mqar *task);
// Queries per sequence: as many as fit after the context.
int mqar_queries(const Mqar *task);
void mqar_batch(const Mqar *task, uint64_t seed, int stream, uint64_t index, int B, int *inputs,
                int *targets);

#endif

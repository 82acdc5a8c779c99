// tokens.h - token data for GPT training: llm.c shards and nanoGPT .bin files.
//
// A data argument is a file or a glob; matching files are taken in sorted
// order. Each file is recognised by its header: llm.c shards start with 256
// int32 (magic 20240520, version 1, uint16 tokens; or 20240801, version 7,
// uint32 tokens); anything else is nanoGPT's headerless uint16 stream. (A raw
// GPT-2 file cannot be mistaken for a shard: 20240520 read as uint16 tokens
// is 55272, 308 - outside GPT-2's vocabulary.)
//
// Windows of T+1 tokens give inputs (the first T) and targets (the last T).
// Random sampling draws each window's start uniformly over all shards, as
// nanoGPT's get_batch does; sequential reading walks the shards in order,
// window after window, wrapping around at the end, as llm.c does.
#ifndef TOKENS_H
#define TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

typedef struct {
    char *path;
    int width;               // bytes per token: 2 or 4
    size_t header_bytes;     // 1024 for llm.c shards, 0 for raw files
    size_t count;            // tokens
    const unsigned char *tokens;   // mapped file + header_bytes
    void *map;
    size_t map_bytes;
} TokenShard;

// what a checkpoint must store to continue reading exactly where it was
typedef struct {
    uint64_t rng_state;
    int64_t shard;
    int64_t pos;
} TokenLoaderState;

typedef struct {
    int num_shards;
    TokenShard *shards;
    size_t total_windows;    // window starts available for random sampling
    int vocab, T;
    int random;              // 1: nanoGPT-style random windows; 0: sequential
    Rng rng;
    int shard;               // sequential position
    size_t pos;
} TokenLoader;

// Opens every file matching `pattern`. Errors (no match, empty, truncated,
// bad header, shorter than T + 1 tokens) are one line naming `flag` and the
// file; "shorter than T+1" exits with 2 (--seq out of range), the rest with 1.
void token_loader_open(TokenLoader *l, const char *pattern, const char *flag, int vocab, int T,
                       int random, uint64_t seed);
void token_loader_close(TokenLoader *l);
// Fills B x T inputs and targets. A token id >= vocab is an error naming the
// file and the token's offset.
void token_loader_next(TokenLoader *l, int B, int *inputs, int *targets);
// back to the first window (validation uses the same batches every time)
void token_loader_rewind(TokenLoader *l, uint64_t seed);
TokenLoaderState token_loader_state(const TokenLoader *l);
void token_loader_restore(TokenLoader *l, TokenLoaderState s);

#endif

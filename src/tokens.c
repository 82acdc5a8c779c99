// tokens.c - see tokens.h
#define _DEFAULT_SOURCE
#include "tokens.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

enum { SHARD_HEADER_INTS = 256, MAGIC_GPT2 = 20240520, MAGIC_LLAMA3 = 20240801 };

static void shard_close(TokenShard *s);

// Errors release what the shard holds before dying, so a harness that turns
// die() into a return (tests/fuzz) does not pile up mappings.
#define SHARD_FAIL(s, ...) do { shard_close(s); die(__VA_ARGS__); } while (0)

static void shard_open(TokenShard *s, const char *path, const char *flag) {
    memset(s, 0, sizeof *s);
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("%s: cannot open %s: %s", flag, path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        die("%s: %s is not a regular file", flag, path);
    }
    if (st.st_size == 0) {
        close(fd);
        die("%s: %s is empty", flag, path);
    }
    size_t bytes = (size_t)st.st_size;
    void *map = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) die("%s: cannot map %s: %s", flag, path, strerror(errno));
    s->map = map;
    s->map_bytes = bytes;
    s->path = xstrdup(path);
    const unsigned char *p = s->map;
    int32_t head[3] = {0, 0, 0};
    if (bytes >= sizeof head) memcpy(head, p, sizeof head);
    if (head[0] == MAGIC_GPT2 || head[0] == MAGIC_LLAMA3) {
        int expect_version = head[0] == MAGIC_GPT2 ? 1 : 7;
        s->width = head[0] == MAGIC_GPT2 ? 2 : 4;
        s->header_bytes = SHARD_HEADER_INTS * sizeof(int32_t);
        if (bytes < s->header_bytes) SHARD_FAIL(s, "%s: %s: truncated shard header", flag, path);
        if (head[1] != expect_version)
            SHARD_FAIL(s, "%s: %s: shard version %d, expected %d", flag, path, head[1], expect_version);
        if (head[2] <= 0) SHARD_FAIL(s, "%s: %s: shard holds no tokens", flag, path);
        s->count = (size_t)head[2];
        size_t have = (bytes - s->header_bytes) / s->width;
        if (have < s->count)
            SHARD_FAIL(s, "%s: %s: truncated: header says %zu tokens, file holds %zu", flag, path,
                       s->count, have);
    } else {
        if (bytes % 2)
            SHARD_FAIL(s, "%s: %s: odd size %zu is not a uint16 token file (nor an llm.c shard)",
                       flag, path, bytes);
        s->width = 2;
        s->header_bytes = 0;
        s->count = bytes / 2;
    }
    s->tokens = p + s->header_bytes;
}

static void shard_close(TokenShard *s) {
    if (s->map) munmap(s->map, s->map_bytes);
    free(s->path);
    memset(s, 0, sizeof *s);
}

void token_loader_open(TokenLoader *l, const char *pattern, const char *flag, int vocab, int T,
                       int random, uint64_t seed) {
    memset(l, 0, sizeof *l);
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) die("%s=%s: no file matches", flag, pattern);
    if (rc != 0) die("%s=%s: cannot expand the pattern", flag, pattern);
    l->num_shards = (int)g.gl_pathc;
    l->shards = xcalloc(g.gl_pathc, sizeof *l->shards);
    l->vocab = vocab;
    l->T = T;
    l->random = random;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        TokenShard *s = &l->shards[i];
        shard_open(s, g.gl_pathv[i], flag);
        if (s->count < (size_t)T + 1)
            die_usage("--seq=%d is longer than the data: %s holds %zu tokens (needs seq + 1)", T,
                      s->path, s->count);
        l->total_windows += s->count - T;
    }
    globfree(&g);
    token_loader_rewind(l, seed);
}

void token_loader_close(TokenLoader *l) {
    for (int i = 0; i < l->num_shards; i++) shard_close(&l->shards[i]);
    free(l->shards);
    memset(l, 0, sizeof *l);
}

void token_loader_rewind(TokenLoader *l, uint64_t seed) {
    rng_seed(&l->rng, seed);
    l->shard = 0;
    l->pos = 0;
}

static int read_token(const TokenShard *s, size_t i, int vocab) {
    uint32_t t;
    if (s->width == 2) {
        uint16_t u;
        memcpy(&u, s->tokens + 2 * i, 2);
        t = u;
    } else {
        memcpy(&t, s->tokens + 4 * i, 4);
    }
    if (t >= (uint32_t)vocab)
        die("%s: token %u at token index %zu (byte offset %zu) is outside the vocabulary (%d)",
            s->path, t, i, s->header_bytes + i * s->width, vocab);
    return (int)t;
}

static void copy_window(const TokenLoader *l, const TokenShard *s, size_t start, int *inputs,
                        int *targets) {
    for (int t = 0; t < l->T; t++) {
        inputs[t] = read_token(s, start + t, l->vocab);
        targets[t] = read_token(s, start + t + 1, l->vocab);
    }
}

void token_loader_next(TokenLoader *l, int B, int *inputs, int *targets) {
    const int T = l->T;
    for (int b = 0; b < B; b++) {
        if (l->random) {
            // one start uniformly over every shard's windows
            size_t r = (size_t)rng_below(&l->rng, l->total_windows);
            int k = 0;
            while (r >= l->shards[k].count - T) r -= l->shards[k++].count - T;
            copy_window(l, &l->shards[k], r, inputs + (size_t)b * T, targets + (size_t)b * T);
        } else {
            if (l->pos + T + 1 > l->shards[l->shard].count) {
                l->shard = (l->shard + 1) % l->num_shards;
                l->pos = 0;
            }
            copy_window(l, &l->shards[l->shard], l->pos, inputs + (size_t)b * T,
                        targets + (size_t)b * T);
            l->pos += T;
        }
    }
}

TokenLoaderState token_loader_state(const TokenLoader *l) {
    return (TokenLoaderState){l->rng.state, l->shard, (int64_t)l->pos};
}

void token_loader_restore(TokenLoader *l, TokenLoaderState s) {
    if (s.shard < 0 || s.shard >= l->num_shards || s.pos < 0 ||
        (size_t)s.pos > l->shards[s.shard].count)
        die("checkpoint data position (shard %lld, token %lld) does not fit the data given",
            (long long)s.shard, (long long)s.pos);
    l->rng.state = s.rng_state;
    l->shard = (int)s.shard;
    l->pos = (size_t)s.pos;
}

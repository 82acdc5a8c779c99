// test_data.c - token loaders (llm.c shards, nanoGPT raw uint16) on files the
// test writes, their error cases, and the built-in mqar task.
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "src/common.h"
#include "src/mqar.h"
#include "src/tokens.h"
#include "tests/test.h"

static char dir[256];

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

// an llm.c shard: 256 int32 header, then uint16 tokens; count_in_header may lie
static void write_shard(const char *name, int magic, int version, int count_in_header,
                        const uint16_t *tokens, int n) {
    char p[512];
    path_of(p, sizeof p, name);
    int32_t header[256] = {magic, version, count_in_header};
    FILE *f = xfopen(p, "wb");
    fwrite(header, sizeof header, 1, f);
    fwrite(tokens, 2, (size_t)n, f);
    fclose(f);
}

static void write_raw(const char *name, const void *bytes, size_t n) {
    char p[512];
    path_of(p, sizeof p, name);
    FILE *f = xfopen(p, "wb");
    if (n) fwrite(bytes, 1, n, f);
    fclose(f);
}

// Runs fn in a child; checks its exit code and that stderr contains `want`.
typedef struct { const char *pattern; int vocab, T; } OpenArgs;
static void open_and_read(void *p) {
    OpenArgs *a = p;
    TokenLoader l;
    token_loader_open(&l, a->pattern, "--data", a->vocab, a->T, 0, 1);
    int in[64], tg[64];
    for (int k = 0; k < 4; k++) token_loader_next(&l, 1, in, tg);
    exit(0);
}

static void expect_failure(void (*fn)(void *), void *arg, int want_code, const char *want_text,
                           const char *what) {
    char errpath[512];
    path_of(errpath, sizeof errpath, "stderr.txt");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        fn(arg);
        exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    char text[1024] = "";
    FILE *f = fopen(errpath, "r");
    if (f) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = '\0';
        fclose(f);
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    CHECK(code == want_code, "%s: exit code %d, expected %d (stderr: %s)", what, code, want_code, text);
    CHECK(strstr(text, want_text) != NULL, "%s: stderr '%s' lacks '%s'", what, text, want_text);
    int lines = 0;
    for (char *c = text; *c; c++) lines += *c == '\n';
    CHECK(lines == 1, "%s: expected a one-line error, got %d lines", what, lines);
}

static void test_formats(void) {
    uint16_t tokens[100];
    for (int i = 0; i < 100; i++) tokens[i] = (uint16_t)(i * 7 % 50);
    write_shard("a_train_000000.bin", 20240520, 1, 100, tokens, 100);
    write_raw("raw_train.bin", tokens, sizeof tokens);
    const char *names[2] = {"a_train_000000.bin", "raw_train.bin"};
    for (int k = 0; k < 2; k++) {
        char p[512];
        path_of(p, sizeof p, names[k]);
        TokenLoader l;
        token_loader_open(&l, p, "--data", 50, 8, 0, 1);
        CHECK(l.num_shards == 1 && l.shards[0].count == 100, "%s: 100 tokens, got %zu", names[k],
              l.shards[0].count);
        int in[16], tg[16], ok = 1;
        token_loader_next(&l, 2, in, tg);   // sequential: windows at 0 and 8
        for (int t = 0; t < 16; t++) ok &= in[t] == tokens[t] && tg[t] == tokens[t + 1];
        CHECK(ok, "%s: sequential windows must be consecutive", names[k]);
        token_loader_close(&l);
    }
}

static void test_glob_and_wrap(void) {
    // two shards in sorted order; sequential reading moves on, then wraps
    uint16_t a[10], b[10];
    for (int i = 0; i < 10; i++) a[i] = (uint16_t)i, b[i] = (uint16_t)(20 + i);
    write_shard("g_train_000001.bin", 20240520, 1, 10, b, 10);
    write_shard("g_train_000000.bin", 20240520, 1, 10, a, 10);
    char p[512];
    path_of(p, sizeof p, "g_train_*.bin");
    TokenLoader l;
    token_loader_open(&l, p, "--data", 50, 4, 0, 1);
    CHECK(l.num_shards == 2 && strstr(l.shards[0].path, "000000"), "glob: shards in sorted order");
    int in[4], tg[4];
    int firsts[5];
    for (int k = 0; k < 5; k++) {
        token_loader_next(&l, 1, in, tg);
        firsts[k] = in[0];
    }
    // windows of 5 tokens advancing by 4: a[0], a[4], then b[0], b[4], then a[0]
    CHECK(firsts[0] == 0 && firsts[1] == 4 && firsts[2] == 20 && firsts[3] == 24 && firsts[4] == 0,
          "sequential order: %d %d %d %d %d", firsts[0], firsts[1], firsts[2], firsts[3], firsts[4]);
    // random: reproducible from the seed, state restores exactly
    TokenLoader r1, r2;
    token_loader_open(&r1, p, "--data", 50, 4, 1, 9);
    token_loader_open(&r2, p, "--data", 50, 4, 1, 9);
    int x1[8], y1[8], x2[8], y2[8];
    token_loader_next(&r1, 2, x1, y1);
    token_loader_next(&r2, 2, x2, y2);
    CHECK(!memcmp(x1, x2, sizeof x1), "random windows are reproducible from the seed");
    TokenLoaderState s = token_loader_state(&r1);
    token_loader_next(&r1, 2, x1, y1);
    token_loader_restore(&r2, s);
    token_loader_next(&r2, 2, x2, y2);
    CHECK(!memcmp(x1, x2, sizeof x1) && !memcmp(y1, y2, sizeof y1), "loader state restores exactly");
    int seen_b = 0;
    for (int k = 0; k < 50; k++) {
        token_loader_next(&r1, 1, x1, y1);
        seen_b |= x1[0] >= 20;
        CHECK(y1[0] == x1[1], "random window targets are inputs shifted by one");
    }
    CHECK(seen_b, "random sampling reaches every shard");
    token_loader_close(&l);
    token_loader_close(&r1);
    token_loader_close(&r2);
}

static void test_errors(void) {
    char p[512];
    uint16_t tokens[40];
    for (int i = 0; i < 40; i++) tokens[i] = (uint16_t)i;
    static char paths[8][512];
    OpenArgs a = {paths[0], 50, 8};

    write_raw("empty.bin", "", 0);
    path_of(paths[0], 512, "empty.bin");
    expect_failure(open_and_read, &a, 1, "is empty", "empty file");

    write_shard("trunc.bin", 20240520, 1, 1000, tokens, 40);
    path_of(paths[0], 512, "trunc.bin");
    expect_failure(open_and_read, &a, 1, "truncated", "truncated shard");

    write_raw("header_only.bin", (int32_t[]){20240520, 1, 5}, 12);
    path_of(paths[0], 512, "header_only.bin");
    expect_failure(open_and_read, &a, 1, "truncated shard header", "truncated header");

    write_shard("badver.bin", 20240520, 3, 40, tokens, 40);
    path_of(paths[0], 512, "badver.bin");
    expect_failure(open_and_read, &a, 1, "version 3", "bad version");

    write_raw("odd.bin", "abc", 3);
    path_of(paths[0], 512, "odd.bin");
    expect_failure(open_and_read, &a, 1, "odd size", "odd-sized raw file");

    // a file with an unknown first word is a raw file; its ids here exceed the vocabulary
    write_raw("badmagic.bin", (int32_t[]){12345678, 1, 2, 3}, 16);
    path_of(paths[0], 512, "badmagic.bin");
    a.T = 2;
    expect_failure(open_and_read, &a, 1, "outside the vocabulary", "bad magic (read as raw)");

    tokens[13] = 60000;
    write_shard("oov.bin", 20240520, 1, 40, tokens, 40);
    path_of(paths[0], 512, "oov.bin");
    a.T = 8;
    expect_failure(open_and_read, &a, 1, "token 60000 at token index 13 (byte offset 1050)",
                   "out-of-vocabulary token");

    path_of(p, sizeof p, "nothing_*.bin");
    snprintf(paths[0], 512, "%s", p);
    expect_failure(open_and_read, &a, 1, "no file matches", "no match");

    tokens[13] = 13;
    write_shard("short.bin", 20240520, 1, 5, tokens, 5);
    path_of(paths[0], 512, "short.bin");
    expect_failure(open_and_read, &a, 2, "--seq=8 is longer than the data", "seq longer than data");
}

static void test_mqar(void) {
    Mqar task;
    mqar_init(&task, 16, 6, 32, MQAR_SPLIT);
    CHECK(mqar_vocab(&task) == 33, "mqar split: vocab 2K+1");
    int Q = mqar_queries(&task);
    int in[4 * 32], tg[4 * 32], in2[4 * 32], tg2[4 * 32];
    mqar_batch(&task, 5, MQAR_TRAIN, 3, 4, in, tg);
    mqar_batch(&task, 5, MQAR_TRAIN, 3, 4, in2, tg2);
    CHECK(!memcmp(in, in2, sizeof in) && !memcmp(tg, tg2, sizeof tg), "mqar is deterministic");
    mqar_batch(&task, 5, MQAR_VAL, 3, 4, in2, tg2);
    CHECK(memcmp(in, in2, sizeof in) != 0, "mqar train and validation streams differ");
    int ok = 1, answers = 0;
    for (int b = 0; b < 4; b++) {
        const int *x = in + b * 32, *y = tg + b * 32;
        for (int t = 0; t < 32; t++) {
            if (y[t] < 0) continue;
            answers++;
            // the target is the value paired with the query key in the context
            int key = x[t], value = -1;
            for (int k = 0; k < 6; k++)
                if (x[2 * k] == key) value = x[2 * k + 1];
            ok &= t >= 12 && key < 16 && y[t] == value && y[t] >= 16 && y[t] < 32;
            if (t + 1 < 32) ok &= x[t + 1] == y[t];   // the answer follows in the input
        }
    }
    CHECK(ok, "mqar split: targets are the values of the queried keys, only at query positions");
    CHECK(answers == 4 * Q, "mqar split: %d answers, expected %d", answers, 4 * Q);

    // pair layout: bindings k*K + v, then query keys K*K + k with target K*K + K + v
    mqar_init(&task, 16, 6, 32, MQAR_PAIR);
    CHECK(mqar_vocab(&task) == 16 * 16 + 32, "mqar pair: vocab K*K + 2K");
    Q = mqar_queries(&task);
    CHECK(Q == 32 - 6, "mqar pair: %d queries, expected 26", Q);
    mqar_batch(&task, 5, MQAR_TRAIN, 3, 4, in, tg);
    ok = 1, answers = 0;
    for (int b = 0; b < 4; b++) {
        const int *x = in + b * 32, *y = tg + b * 32;
        int seen[16] = {0};
        for (int k = 0; k < 6; k++) {
            ok &= x[k] >= 0 && x[k] < 256 && y[k] == -1;
            ok &= !seen[x[k] / 16]++;   // distinct keys
        }
        for (int t = 6; t < 32; t++) {
            int key = x[t] - 256, value = -1;
            for (int k = 0; k < 6; k++)
                if (x[k] / 16 == key) value = 256 + 16 + x[k] % 16;
            ok &= key >= 0 && key < 16 && y[t] == value;
            answers += y[t] >= 0;
        }
    }
    CHECK(ok, "mqar pair: every query's target is the value bound to its key in the context");
    CHECK(answers == 4 * Q, "mqar pair: %d answers, expected %d", answers, 4 * Q);
}

int main(void) {
    snprintf(dir, sizeof dir, "tests/out/data");
    if (make_dirs(dir) != 0) {
        fprintf(stderr, "cannot create %s\n", dir);
        return 1;
    }
    test_formats();
    test_glob_and_wrap();
    test_errors();
    test_mqar();
    return test_summary("test_data");
}

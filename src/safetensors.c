// safetensors.c - the safetensors writer and reader (format in safetensors.h).
#include "safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>

#include "common.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c writes the host's float bytes: a little-endian host is assumed"
#endif

// a growing string
typedef struct {
    char *s;
    size_t len, cap;
} Buf;

static void put(Buf *b, const char *text, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, text, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void puts_(Buf *b, const char *text) { put(b, text, strlen(text)); }

// a JSON string: names and values here are printable ASCII; anything else is escaped
static void put_json_string(Buf *b, const char *s) {
    puts_(b, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\', esc[1] = (char)ch, esc[2] = 0;
        } else if (ch < 0x20 || ch >= 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
        } else {
            esc[0] = (char)ch, esc[1] = 0;
        }
        puts_(b, esc);
    }
    puts_(b, "\"");
}

void safetensors_write(const char *path, const StTensor *t, int n, const StMeta *meta, int nmeta) {
    Buf h = {0};
    char num[96];
    puts_(&h, "{\"__metadata__\":{");
    for (int k = 0; k < nmeta; k++) {
        if (k) puts_(&h, ",");
        put_json_string(&h, meta[k].key);
        puts_(&h, ":");
        put_json_string(&h, meta[k].value);
    }
    puts_(&h, "}");
    uint64_t off = 0;
    for (int k = 0; k < n; k++) {
        uint64_t count = 1;
        puts_(&h, ",");
        put_json_string(&h, t[k].name);
        puts_(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t[k].ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t[k].shape[d]);
            puts_(&h, num);
            count *= (uint64_t)t[k].shape[d];
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + 4 * count));
        puts_(&h, num);
        off += 4 * count;
    }
    puts_(&h, "}");
    while (h.len % 8) puts_(&h, " ");

    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) die("--export=%s: cannot write %s", path, tmp);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    int bad = fwrite(len8, 1, 8, f) != 8 || fwrite(h.s, 1, h.len, f) != h.len;
    for (int k = 0; k < n && !bad; k++) {
        size_t count = 1;
        for (int d = 0; d < t[k].ndim; d++) count *= (size_t)t[k].shape[d];
        bad = fwrite(t[k].data, sizeof(float), count, f) != count;   // x86 and ARM: little-endian
    }
    bad |= fclose(f) != 0;
    free(h.s);
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        die("--export=%s: write failed (disk full?)", path);
    }
}

// --- reading -----------------------------------------------------------------
// The header is JSON, parsed here by a small recursive-descent reader that
// knows the one shape safetensors uses: an object of tensor entries
// {"dtype", "shape", "data_offsets"} (other keys skipped) and a
// "__metadata__" object of strings. Any other JSON value is skipped whole, so
// files from other writers load; anything malformed dies naming the file.

enum { ST_MAX_HEADER = 100 << 20, ST_MAX_DEPTH = 64 };

// The parse owns everything it allocates: the header text, the StFile being
// filled, and every string it makes (kept in st->strings, the one in the
// making in `cur`), so that bad() can free it all before it dies and a
// malformed file leaks nothing (the fuzz harness and LeakSanitizer see).
typedef struct {
    char *text;
    const char *s, *end;   // the read position in text, its end
    StFile *st;
    Buf cur;               // the string being parsed
} Json;

// frees what the parse holds, then dies with "FLAG=PATH: <what>: <fmt...>"
NORETURN PRINTF_LIKE(3, 4) static void fail(Json *j, const char *what, const char *fmt, ...);
static void fail(Json *j, const char *what, const char *fmt, ...) {
    char msg[600], flag[64], path[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);   // before the strings it may quote are freed
    va_end(ap);
    snprintf(flag, sizeof flag, "%s", j->st->flag);
    snprintf(path, sizeof path, "%s", j->st->path);
    free(j->cur.s);
    free(j->text);
    safetensors_close(j->st);
    die("%s=%s: %s%s", flag, path, what, msg);
}
#define bad(j, ...) fail((j), "not a safetensors file: ", __VA_ARGS__)

static void skip_ws(Json *j) {
    while (j->s < j->end && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r')) j->s++;
}

static int peek(Json *j) {
    skip_ws(j);
    return j->s < j->end ? (unsigned char)*j->s : -1;
}

static void expect(Json *j, char ch) {
    if (peek(j) != (unsigned char)ch)
        bad(j, "expected '%c' at header byte %ld", ch, (long)(j->s - j->text));
    j->s++;
}

static void put_utf8(Buf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) u[0] = (char)cp, n = 1;
    else if (cp < 0x800) u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3f)), u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    else
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3f)),
        u[2] = (char)(0x80 | (cp >> 6 & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    put(b, u, n);
}

static uint32_t hex4(Json *j) {
    if (j->end - j->s < 4) bad(j, "a \\u escape is cut short");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *j->s++;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) bad(j, "a \\u escape has a non-hex digit");
        v = v * 16 + (uint32_t)d;
    }
    return v;
}

// a JSON string, unescaped (an embedded NUL is refused), owned by st->strings
static char *parse_string(Json *j) {
    expect(j, '"');
    Buf *b = &j->cur;
    b->len = 0;
    put(b, "", 0);
    for (;;) {
        if (j->s >= j->end) bad(j, "a string is not closed");
        char c = *j->s++;
        if (c == '"') break;
        if ((unsigned char)c < 0x20) bad(j, "a control character inside a string");
        if (c != '\\') { put(b, &c, 1); continue; }
        if (j->s >= j->end) bad(j, "a string is not closed");
        char e = *j->s++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char out[] = "\"\\/\b\f\n\r\t";
            put(b, &out[simple - "\"\\/bfnrt"], 1);
        } else if (e == 'u') {
            uint32_t cp = hex4(j);
            if (cp >= 0xd800 && cp < 0xdc00 && j->end - j->s >= 6 && j->s[0] == '\\' && j->s[1] == 'u') {
                j->s += 2;
                uint32_t lo = hex4(j);
                if (lo < 0xdc00 || lo >= 0xe000) bad(j, "a broken surrogate pair");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0) bad(j, "a NUL character inside a string");
            put_utf8(b, cp);
        } else {
            bad(j, "an unknown escape \\%c", e);
        }
    }
    StFile *st = j->st;
    st->strings = xrealloc(st->strings, (size_t)(st->nstrings + 1) * sizeof(char *));
    st->strings[st->nstrings++] = b->s;
    *b = (Buf){0};
    return st->strings[st->nstrings - 1];
}

// a non-negative JSON integer no larger than `max`
static uint64_t parse_uint(Json *j, uint64_t max, const char *what) {
    skip_ws(j);
    if (j->s >= j->end || *j->s < '0' || *j->s > '9') bad(j, "%s is not a non-negative integer", what);
    uint64_t v = 0;
    while (j->s < j->end && *j->s >= '0' && *j->s <= '9') {
        v = v * 10 + (uint64_t)(*j->s++ - '0');
        if (v > max) bad(j, "%s is too large", what);
    }
    if (j->s < j->end && (*j->s == '.' || *j->s == 'e' || *j->s == 'E')) bad(j, "%s is not an integer", what);
    return v;
}

// skips any JSON value
static void skip_value(Json *j, int depth) {
    if (depth > ST_MAX_DEPTH) bad(j, "nested too deeply");
    int c = peek(j);
    if (c == '"') {
        parse_string(j);
    } else if (c == '{' || c == '[') {
        const char close = c == '{' ? '}' : ']';
        j->s++;
        if (peek(j) == close) { j->s++; return; }
        for (;;) {
            if (c == '{') {
                parse_string(j);
                expect(j, ':');
            }
            skip_value(j, depth + 1);
            if (peek(j) == ',') { j->s++; continue; }
            expect(j, close);
            return;
        }
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        j->s++;
        while (j->s < j->end && strchr("0123456789.eE+-", *j->s) && *j->s) j->s++;
    } else {
        static const char *const words[] = {"true", "false", "null"};
        for (int w = 0; w < 3; w++) {
            size_t n = strlen(words[w]);
            if ((size_t)(j->end - j->s) >= n && !memcmp(j->s, words[w], n)) { j->s += n; return; }
        }
        bad(j, "an unexpected character in the header");
    }
}

static int dtype_of(const char *name) {
    if (!strcmp(name, "F32")) return ST_F32;
    if (!strcmp(name, "BF16")) return ST_BF16;
    if (!strcmp(name, "F16")) return ST_F16;
    return -1;
}
static const size_t dtype_bytes[] = {4, 2, 2};

// {"dtype": ..., "shape": [...], "data_offsets": [b, e]} into *t
static void parse_entry(Json *j, StEntry *t) {
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    expect(j, '{');
    if (peek(j) != '}') {
        for (;;) {
            char *key = parse_string(j);
            expect(j, ':');
            if (!strcmp(key, "dtype")) {
                char *d = parse_string(j);
                t->dtype = dtype_of(d);
                if (t->dtype < 0) bad(j, "tensor %.96s has dtype %.32s (F32, BF16 or F16 are read)", t->name, d);
                have_dtype = 1;
            } else if (!strcmp(key, "shape")) {
                expect(j, '[');
                t->ndim = 0;
                if (peek(j) != ']') {
                    for (;;) {
                        if (t->ndim == 4) bad(j, "tensor %s has more than 4 dimensions", t->name);
                        t->shape[t->ndim++] = (int64_t)parse_uint(j, (uint64_t)1 << 40, "a shape entry");
                        if (peek(j) == ',') { j->s++; continue; }
                        break;
                    }
                }
                expect(j, ']');
                have_shape = 1;
            } else if (!strcmp(key, "data_offsets")) {
                expect(j, '[');
                t->begin = parse_uint(j, (uint64_t)1 << 62, "a data offset");
                expect(j, ',');
                t->end = parse_uint(j, (uint64_t)1 << 62, "a data offset");
                expect(j, ']');
                have_offsets = 1;
            } else {
                skip_value(j, 1);
            }
            if (peek(j) == ',') { j->s++; continue; }
            break;
        }
    }
    expect(j, '}');
    if (!have_dtype || !have_shape || !have_offsets)
        bad(j, "tensor %s lacks %s", t->name, !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
}

static void parse_metadata(Json *j, StFile *st) {
    expect(j, '{');
    if (peek(j) == '}') { j->s++; return; }
    for (;;) {
        char *key = parse_string(j);
        expect(j, ':');
        if (peek(j) != '"') bad(j, "__metadata__ value of %.64s is not a string", key);
        char *value = parse_string(j);
        st->meta_key = xrealloc(st->meta_key, (size_t)(st->nmeta + 1) * sizeof(char *));
        st->meta_value = xrealloc(st->meta_value, (size_t)(st->nmeta + 1) * sizeof(char *));
        st->meta_key[st->nmeta] = key;
        st->meta_value[st->nmeta++] = value;
        if (peek(j) == ',') { j->s++; continue; }
        break;
    }
    expect(j, '}');
}

void safetensors_close(StFile *st) {
    if (!st) return;
    for (int i = 0; i < st->nstrings; i++) free(st->strings[i]);   // names, metadata
    free(st->strings), free(st->t), free(st->meta_key), free(st->meta_value), free(st->flag), free(st->path);
    free(st);
}

StFile *safetensors_open(const char *flag, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("%s=%s: cannot open it", flag, path);
    unsigned char len8[8];
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); die("%s=%s: cannot seek in it", flag, path); }
    const long size = ftell(f);
    rewind(f);
    if (size < 8 || fread(len8, 1, 8, f) != 8) {
        fclose(f);
        die("%s=%s: not a safetensors file: %ld bytes, shorter than the 8-byte header length", flag, path, size);
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > (uint64_t)size - 8) {
        fclose(f);
        die("%s=%s: not a safetensors file: header length %llu in a %ld-byte file", flag, path,
            (unsigned long long)hlen, size);
    }
    char *text = xmalloc(hlen + 1);
    if (fread(text, 1, hlen, f) != hlen) { fclose(f); free(text); die("%s=%s: a short read", flag, path); }
    fclose(f);
    text[hlen] = 0;

    StFile *st = xcalloc(1, sizeof *st);
    st->flag = xstrdup(flag);
    st->path = xstrdup(path);
    st->data_start = 8 + hlen;
    st->file_size = (uint64_t)size;
    Json j = {.text = text, .s = text, .end = text + hlen, .st = st};
    expect(&j, '{');
    if (peek(&j) != '}') {
        for (;;) {
            char *name = parse_string(&j);
            expect(&j, ':');
            if (!strcmp(name, "__metadata__")) {
                parse_metadata(&j, st);
            } else {
                if (safetensors_find(st, name)) bad(&j, "tensor %.96s appears twice", name);
                st->t = xrealloc(st->t, (size_t)(st->n + 1) * sizeof *st->t);
                StEntry *t = &st->t[st->n++];
                memset(t, 0, sizeof *t);
                t->name = name;
                parse_entry(&j, t);
            }
            if (peek(&j) == ',') { j.s++; continue; }
            break;
        }
    }
    expect(&j, '}');
    if (peek(&j) != -1) bad(&j, "text after the header's closing brace");
    // every tensor's bytes inside the data, sized by its shape and dtype
    const uint64_t data_bytes = st->file_size - st->data_start;
    for (int i = 0; i < st->n; i++) {
        const StEntry *t = &st->t[i];
        uint64_t count = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] && count > ((uint64_t)1 << 62) / (uint64_t)t->shape[d])
                bad(&j, "tensor %.96s is too large", t->name);
            count *= (uint64_t)t->shape[d];
        }
        if (t->begin > t->end || t->end > data_bytes)
            fail(&j, "", "tensor %.96s's data [%llu, %llu) is outside the file's %llu data bytes (truncated?)",
                 t->name, (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)data_bytes);
        if (count > ((uint64_t)1 << 62) / 4 || t->end - t->begin != count * dtype_bytes[t->dtype])
            bad(&j, "tensor %.96s has %llu data bytes for %llu elements", t->name,
                (unsigned long long)(t->end - t->begin), (unsigned long long)count);
    }
    free(text);
    return st;
}

const StEntry *safetensors_find(const StFile *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

const char *safetensors_meta(const StFile *st, const char *key) {
    for (int i = 0; i < st->nmeta; i++)
        if (!strcmp(st->meta_key[i], key)) return st->meta_value[i];
    return NULL;
}

static void shape_string(char *out, size_t size, int ndim, const int64_t *shape) {
    int n = snprintf(out, size, "[");
    for (int d = 0; d < ndim && n > 0 && (size_t)n < size; d++)
        n += snprintf(out + n, size - (size_t)n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (n > 0 && (size_t)n < size) snprintf(out + n, size - (size_t)n, "]");
}

// bf16 is the top half of an fp32; fp16 widens exactly (subnormals, inf, NaN)
static float bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

void bf16_widen(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_to_float(src[i]);
}
static float f16_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h >> 15) << 31, e = h >> 10 & 0x1f, m = h & 0x3ff;
    uint32_t u;
    if (e == 0x1f) {
        u = sign | 0x7f800000u | m << 13;
    } else if (e) {
        u = sign | (e + 112) << 23 | m << 13;
    } else {   // zero or subnormal: m * 2^-24
        float x = (float)m * 5.9604644775390625e-8f;
        return sign ? -x : x;
    }
    float x;
    memcpy(&x, &u, 4);
    return x;
}

void safetensors_read(const StFile *st, const char *name, int ndim, const int64_t *shape, float *dst) {
    const StEntry *t = safetensors_find(st, name);
    char want[128], got[128];
    shape_string(want, sizeof want, ndim, shape);
    if (!t) die("%s=%s: tensor %s %s is missing", st->flag, st->path, name, want);
    int64_t count = 1, tcount = 1;
    for (int d = 0; d < ndim; d++) count *= shape[d];
    for (int d = 0; d < t->ndim; d++) tcount *= t->shape[d];
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same && !(count == 1 && tcount == 1)) {
        shape_string(got, sizeof got, t->ndim, t->shape);
        die("%s=%s: tensor %s has shape %s, the model needs %s", st->flag, st->path, name, got, want);
    }
    FILE *f = fopen(st->path, "rb");
    if (!f) die("%s=%s: cannot open it", st->flag, st->path);
    const size_t bytes = (size_t)(t->end - t->begin);
    void *raw = t->dtype == ST_F32 ? (void *)dst : xmalloc(bytes ? bytes : 1);
    const int ok = fseek(f, (long)(st->data_start + t->begin), SEEK_SET) == 0 && fread(raw, 1, bytes, f) == bytes;
    fclose(f);
    if (!ok) {
        if (raw != dst) free(raw);
        die("%s=%s: a short read of tensor %s (the file changed?)", st->flag, st->path, name);
    }
    if (t->dtype != ST_F32) {
        const uint16_t *h = raw;
        if (t->dtype == ST_BF16) bf16_widen(h, dst, (size_t)count);
        else for (int64_t i = 0; i < count; i++) dst[i] = f16_to_float(h[i]);
        free(raw);
    }
}

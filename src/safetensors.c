// safetensors.c - the safetensors writer (format in safetensors.h).
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

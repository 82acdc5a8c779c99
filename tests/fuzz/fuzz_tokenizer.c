// fuzz_tokenizer.c - the GPT-2 vocabulary parsers (encoder.json, vocab.bpe,
// llm.c's tokenizer file) and, with a small valid vocabulary, encode/decode
// round trips of arbitrary bytes. The first byte chooses.
#include "tests/fuzz/fuzz.h"
#include "src/tokenizer.h"

#include <sys/stat.h>

static const char *dir_with(const char *encoder, size_t ne, const char *bpe, size_t nb) {
    static char dir[256];
    snprintf(dir, sizeof dir, "/tmp/fuzz-%d-vocab", (int)getpid());
    mkdir(dir, 0700);
    char path[300];
    snprintf(path, sizeof path, "%s/encoder.json", dir);
    FILE *f = fopen(path, "wb");
    fwrite(encoder, 1, ne, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/vocab.bpe", dir);
    f = fopen(path, "wb");
    fwrite(bpe, 1, nb, f);
    fclose(f);
    return dir;
}

// all 256 byte tokens (GPT-2's printable mapping) + one merge, as a valid vocabulary
static Tokenizer *small_vocab(void) {
    static Tokenizer *t;
    if (t) return t;
    char *json = malloc(1 << 16);
    size_t n = 0;
    n += sprintf(json + n, "{");
    int id = 0;
    for (int b = 0; b < 256; b++) {
        // GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256+k
        static int next = 0;
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        int cp = printable ? b : 256 + next++;
        char utf8[4];
        int len = cp < 0x80 ? 1 : 2;
        if (cp < 0x80) utf8[0] = (char)cp;
        else { utf8[0] = (char)(0xC0 | (cp >> 6)); utf8[1] = (char)(0x80 | (cp & 0x3F)); }
        n += sprintf(json + n, "%s\"", id ? "," : "");
        for (int k = 0; k < len; k++) {
            if (utf8[k] == '"' || utf8[k] == '\\') json[n++] = '\\';
            json[n++] = utf8[k];
        }
        n += sprintf(json + n, "\":%d", id++);
    }
    n += sprintf(json + n, ",\"ab\":%d,\"<|endoftext|>\":%d}", id, id + 1);
    const char *bpe = "#version: 0.2\na b\n";
    const char *dir = dir_with(json, n, bpe, strlen(bpe));
    free(json);
    char err[512];
    if (tokenizer_load(&t, dir, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_tokenizer: the small vocabulary does not load: %s\n", err);
        abort();
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    fuzz_errors_expected = 0;
    const char *body = (const char *)data + 1;
    size_t n = size - 1;
    char err[512];
    Tokenizer *t = NULL;
    switch (data[0] % 4) {
    case 0: {   // encoder.json from the input, a fixed vocab.bpe
        const char *bpe = "#version: 0.2\na b\n";
        if (tokenizer_load(&t, dir_with(body, n, bpe, strlen(bpe)), err, sizeof err) == 0)
            tokenizer_free(t);
        break;
    }
    case 1: {   // a fixed encoder.json, vocab.bpe from the input
        const char *json = "{\"a\":0,\"b\":1,\"ab\":2,\"<|endoftext|>\":3}";
        if (tokenizer_load(&t, dir_with(json, strlen(json), body, n), err, sizeof err) == 0)
            tokenizer_free(t);
        break;
    }
    case 2: {   // llm.c tokenizer file
        if (tokenizer_load_llmc(&t, fuzz_write_file("tok.bin", (const uint8_t *)body, n), err,
                                sizeof err) == 0)
            tokenizer_free(t);
        break;
    }
    default: {  // encode then decode arbitrary bytes: the round trip must be exact
        Tokenizer *v = small_vocab();
        TokenList ids = {0};
        ByteBuffer back = {0};
        tokenizer_encode(v, body, n, &ids);
        if (tokenizer_decode(v, ids.ids, ids.len, &back) != 0) abort();
        if (back.len != n || (n && memcmp(back.data, body, n))) abort();
        token_list_free(&ids);
        byte_buffer_free(&back);
        break;
    }
    }
    return 0;
}

// fuzz_tokens.c - the token file parser (llm.c shards and nanoGPT raw files):
// open, then read windows sequentially and at random.
#include "tests/fuzz/fuzz.h"
#include "src/tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file("tokens.bin", data, size);
    int inputs[4 * 8], targets[4 * 8];
    TokenLoader loader;
    fuzz_errors_expected = 1;
    for (int random = 0; random < 2; random++) {
        if (setjmp(fuzz_on_error) == 0) {
            token_loader_open(&loader, path, "--data", 50257, 8, random, 1);
            for (int k = 0; k < 3; k++) token_loader_next(&loader, 4, inputs, targets);
            TokenLoaderState st = token_loader_state(&loader);
            token_loader_restore(&loader, st);
            token_loader_close(&loader);
        }
    }
    return 0;
}

// fuzz_ckpt.c - the checkpoint reader, against a tiny GPT's shapes.
#include "tests/fuzz/fuzz.h"
#include "src/ckpt.h"
#include "src/gpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static GPT model;
    static real *m, *v;
    if (!m) {
        GPTConfig cfg = {.vocab = 9, .padded_vocab = 64, .max_seq = 4, .layers = 1, .heads = 1,
                         .embd = 4, .bias = 1};
        gpt_build(&model, &cfg, &backend_ref, 1);
        m = calloc(model.layout.num_params, sizeof(real));
        v = calloc(model.layout.num_params, sizeof(real));
    }
    const char *path = fuzz_write_file("ckpt.bin", data, size);
    CkptInfo info = {.kind = "gpt", .shape = {9, 64, 4, 1, 1, 4, 1}};
    char state[24], err[512];
    fuzz_errors_expected = 0;   // ckpt_read reports errors; it must never die
    ckpt_read(path, &info, &backend_ref, model.params, m, v, model.layout.num_params, state, sizeof state,
              err, sizeof err);
    return 0;
}

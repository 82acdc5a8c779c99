// fuzz_weights.c - --init-from's readers (safetensors and llm.c checkpoints):
// open a file, and load it into a tiny GPT when its shapes fit.
#include "tests/fuzz/fuzz.h"
#include "src/gpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static GPT model;
    if (!model.params) {
        GPTConfig cfg = {.vocab = 9, .padded_vocab = 64, .max_seq = 4, .layers = 1, .heads = 1,
                         .embd = 4, .bias = 1};
        gpt_build(&model, &cfg, &backend_ref, 1);
    }
    const char *path = fuzz_write_file("weights.bin", data, size);
    static GPTWeights w;   // static: it survives the jump back from die()
    fuzz_errors_expected = 1;
    if (setjmp(fuzz_on_error) == 0) {
        gpt_weights_open(&w, "--init-from", path);
        const GPTConfig *f = &w.cfg;
        if (f->embd == 4 && f->layers == 1 && f->bias == 1 && f->max_seq >= 4 && w.file_rows >= 9)
            gpt_weights_load(&w, &model);
        gpt_weights_close(&w);
    }
    return 0;
}

// fuzz_config.c - config files and command lines through the flag parser.
// The input's first byte chooses: a config file (--config) or an argv split
// at NUL bytes.
#include "tests/fuzz/fuzz.h"
#include "src/flags.h"

static int n_int;
static float x_float;
static char *s_str, *s_choice, *s_config, *s_resume;
static Flag flags[] = {
    {"layers", FLAG_INT, &n_int, "2", "an int", 1, 1024, NULL, 0, 0, NULL},
    {"lr", FLAG_FLOAT, &x_float, "0.1", "a float", 0, 10, NULL, 0, 0, NULL},
    {"data", FLAG_STRING, &s_str, "mqar", "a string", 0, 0, NULL, 0, 0, NULL},
    {"attn", FLAG_STRING, &s_choice, "std", "a choice", 0, 0, "std|x", 0, 0, NULL},
    {"config", FLAG_STRING, &s_config, "", "config", 0, 0, NULL, 1, 0, NULL},
    {"resume", FLAG_STRING, &s_resume, "", "resume", 0, 0, NULL, 1, 0, NULL},
};
enum { N = sizeof flags / sizeof flags[0] };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    char *argv[66] = {"prog"};
    int argc = 1;
    char *copy = NULL, config_arg[300];
    if (data[0] & 1) {
        const char *path = fuzz_write_file("config.txt", data + 1, size - 1);
        snprintf(config_arg, sizeof config_arg, "--config=%s", path);
        argv[argc++] = config_arg;
    } else {
        copy = malloc(size);
        memcpy(copy, data + 1, size - 1);
        copy[size - 1] = '\0';
        for (char *p = copy; p < copy + size - 1 && argc < 64; p += strlen(p) + 1) {
            if (!strcmp(p, "--help") || !strcmp(p, "-h") || !strncmp(p, "--resume", 8)) continue;
            argv[argc++] = p;
        }
    }
    fuzz_errors_expected = 1;
    if (setjmp(fuzz_on_error) == 0) {
        flags_parse(flags, N, argc, argv, "prog", "fuzz");
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        flags_write_config(flags, N, f);
        fclose(f);
        free(out);
    }
    flags_free(flags, N);
    free(copy);
    return 0;
}

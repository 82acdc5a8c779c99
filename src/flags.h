// flags.h - command-line flags and config files, one table per trainer.
//
// Every setting is a flag `--name=value` (or `--name value`). A config file
// holds `name=value` lines with the same names ('#' starts a comment); values
// apply in this order: defaults, the run's own config.txt when resuming
// (--resume=DIR), --config=FILE, then the command line. Unknown names,
// malformed numbers and out-of-range values are one-line errors naming the
// flag, with exit code 2. `--help` prints every flag with its default.
#ifndef FLAGS_H
#define FLAGS_H

#include <stdio.h>

typedef enum { FLAG_INT, FLAG_FLOAT, FLAG_STRING } FlagType;

typedef struct {
    const char *name;      // without the leading "--"
    FlagType type;
    void *ptr;             // int*, float* or char** (a strdup'd string)
    const char *def;       // default, as text
    const char *help;
    double min, max;       // numeric range, inclusive
    const char *choices;   // strings: "a|b|c" or NULL for any
    int not_saved;         // 1: not written to config.txt (--config, --resume, ...)
    int from_cmdline;      // set by flags_parse: given on the command line
    char *resumed;         // set by flags_parse with --resume: the value in the run's config.txt
} Flag;

// Table entries. RUN_* flags are not saved in config.txt (--resume, --config,
// --out, ...): they say how to run, not what the run is.
#define INT_FLAG(name, ptr, def, lo, hi, help) {name, FLAG_INT, ptr, def, help, lo, hi, NULL, 0, 0, NULL}
#define FLOAT_FLAG(name, ptr, def, lo, hi, help) {name, FLAG_FLOAT, ptr, def, help, lo, hi, NULL, 0, 0, NULL}
#define STR_FLAG(name, ptr, def, choices, help) {name, FLAG_STRING, ptr, def, help, 0, 0, choices, 0, 0, NULL}
#define RUN_FLAG(name, ptr, def, help) {name, FLAG_STRING, ptr, def, help, 0, 0, NULL, 1, 0, NULL}
#define RUN_INT_FLAG(name, ptr, def, lo, hi, help) {name, FLAG_INT, ptr, def, help, lo, hi, NULL, 1, 0, NULL}

// Parses argv into the table. `resume_flag` names the flag whose value is a
// run directory with a config.txt to load first (NULL if none).
void flags_parse(Flag *flags, int n, int argc, char **argv, const char *program,
                 const char *summary);
// Writes every saved flag as name=value lines (what --config reads back).
void flags_write_config(const Flag *flags, int n, FILE *f);
// Writes DIR/config.txt (through a temporary file and a rename), headed by a
// comment naming `program`; dies naming the file if it cannot.
void flags_save_config(const Flag *flags, int n, const char *dir, const char *program);
// After flags_parse of a resumed run (--resume=DIR): compares every setting
// with the run's own config.txt. A change of one named in `model` (a
// NULL-terminated list: the settings that define the model) is a one-line
// usage error naming the setting and both values, before anything is
// written; any other change is printed once ("resume: lr 0.003 -> 0.001")
// and then recorded in config.txt by the trainer. Nothing without --resume.
void flags_check_resume(const Flag *flags, int n, const char *const *model, const char *resume_dir);
void flags_free(Flag *flags, int n);
const Flag *flags_find(const Flag *flags, int n, const char *name);

#endif

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
} Flag;

// Parses argv into the table. `resume_flag` names the flag whose value is a
// run directory with a config.txt to load first (NULL if none).
void flags_parse(Flag *flags, int n, int argc, char **argv, const char *program,
                 const char *summary);
// Writes every saved flag as name=value lines (what --config reads back).
void flags_write_config(const Flag *flags, int n, FILE *f);
// Writes DIR/config.txt (through a temporary file and a rename), headed by a
// comment naming `program`; dies naming the file if it cannot.
void flags_save_config(const Flag *flags, int n, const char *dir, const char *program);
void flags_free(Flag *flags, int n);
const Flag *flags_find(const Flag *flags, int n, const char *name);

#endif

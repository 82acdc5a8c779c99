// flags.c - see flags.h
#define _POSIX_C_SOURCE 200809L
#include "flags.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

const Flag *flags_find(const Flag *flags, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(flags[i].name, name)) return &flags[i];
    return NULL;
}

static int choice_ok(const char *choices, const char *v) {
    size_t len = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && !strncmp(p, v, n)) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

// Sets one flag from text; `where` says where the value came from.
static void flag_set(Flag *f, const char *value, const char *where) {
    char *end;
    switch (f->type) {
    case FLAG_INT: {
        errno = 0;
        long v = strtol(value, &end, 10);
        if (end == value || *end || errno)
            die_usage("%s--%s=%s is not an integer", where, f->name, value);
        if (v < f->min || v > f->max)
            die_usage("%s--%s=%s is out of range (%.0f..%.0f)", where, f->name, value, f->min, f->max);
        *(int *)f->ptr = (int)v;
        break;
    }
    case FLAG_FLOAT: {
        errno = 0;
        double v = strtod(value, &end);
        if (end == value || *end || errno || !isfinite(v))
            die_usage("%s--%s=%s is not a finite number", where, f->name, value);
        if (v < f->min || v > f->max)
            die_usage("%s--%s=%s is out of range (%g..%g)", where, f->name, value, f->min, f->max);
        *(float *)f->ptr = (float)v;
        break;
    }
    case FLAG_STRING:
        if (f->choices && !choice_ok(f->choices, value))
            die_usage("%s--%s=%s: expected one of %s", where, f->name, value, f->choices);
        free(*(char **)f->ptr);
        *(char **)f->ptr = xstrdup(value);
        break;
    }
}

// A flag's value as config.txt writes it (and --resume compares it)
static void flag_text(const Flag *f, char *buf, size_t size) {
    switch (f->type) {
    case FLAG_INT: snprintf(buf, size, "%d", *(int *)f->ptr); break;
    case FLAG_FLOAT: {   // the shortest text that reads back as the same float (%.9g always does)
        const float v = *(float *)f->ptr;
        for (int digits = 6; digits <= 9; digits++) {
            snprintf(buf, size, "%.*g", digits, v);
            if ((float)strtod(buf, NULL) == v) break;
        }
        break;
    }
    case FLAG_STRING: snprintf(buf, size, "%s", *(char **)f->ptr); break;
    }
}

static Flag *find_mutable(Flag *flags, int n, const char *name) {
    return (Flag *)flags_find(flags, n, name);
}

// Reads the whole file first, so that an error while parsing leaves no file open.
static char *read_text_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t len = 0, cap = 4096;
    char *text = xmalloc(cap);
    size_t got;
    while ((got = fread(text + len, 1, cap - 1 - len, f)) > 0) {
        len += got;
        if (len + 1 == cap) text = xrealloc(text, cap *= 2);
    }
    fclose(f);
    text[len] = '\0';
    return text;
}

static void load_config_file(Flag *flags, int n, const char *path) {
    char *text = read_text_file(path);
    if (!text) die_usage("--config=%s: cannot open: %s", path, strerror(errno));
    int lineno = 0;
    for (char *s = text, *next; s; s = next) {
        lineno++;
        next = strchr(s, '\n');
        if (next) *next++ = '\0';
        char *hash = strchr(s, '#');
        if (hash) *hash = '\0';
        while (*s == ' ' || *s == '\t') s++;
        size_t len = strlen(s);
        while (len && strchr(" \t\r", s[len - 1])) s[--len] = '\0';
        if (!len) continue;
        char *eq = strchr(s, '=');
        if (!eq) die_usage("%s:%d: expected name=value, got '%.64s'", path, lineno, s);
        *eq = '\0';
        char *key = s, *value = eq + 1;
        size_t klen = strlen(key);
        while (klen && (key[klen - 1] == ' ' || key[klen - 1] == '\t')) key[--klen] = '\0';
        while (*value == ' ' || *value == '\t') value++;
        if (!strncmp(key, "--", 2)) key += 2;
        Flag *fl = find_mutable(flags, n, key);
        if (!fl || fl->not_saved) die_usage("%s:%d: unknown key '%.64s'", path, lineno, key);
        char where[4200];
        snprintf(where, sizeof where, "%s:%d: ", path, lineno);
        flag_set(fl, value, where);
    }
    free(text);
}

static void print_help(const Flag *flags, int n, const char *program, const char *summary) {
    printf("usage: %s [--flag=value ...]\n%s\n\nflags (default in brackets):\n", program, summary);
    for (int i = 0; i < n; i++) {
        const Flag *f = &flags[i];
        char left[64];
        snprintf(left, sizeof left, "--%s=%s", f->name,
                 f->type == FLAG_INT ? "N" : f->type == FLAG_FLOAT ? "X" : f->choices ? f->choices : "S");
        printf("  %-28s %s [%s]\n", left, f->help, f->def);
    }
}

// the value of --name in argv ("--name=v" or "--name v"), or NULL
static const char *argv_value(int argc, char **argv, const char *name) {
    size_t len = strlen(name);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) || strncmp(a + 2, name, len)) continue;
        if (a[2 + len] == '=') return a + 3 + len;
        if (a[2 + len] == '\0' && i + 1 < argc) return argv[i + 1];
    }
    return NULL;
}

void flags_parse(Flag *flags, int n, int argc, char **argv, const char *program,
                 const char *summary) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            print_help(flags, n, program, summary);
            exit(0);
        }
    }
    for (int i = 0; i < n; i++) {
        if (flags[i].type == FLAG_STRING) *(char **)flags[i].ptr = NULL;
        flag_set(&flags[i], flags[i].def, "default ");
    }
    // a resumed run starts from its own settings
    const char *resume = flags_find(flags, n, "resume") ? argv_value(argc, argv, "resume") : NULL;
    if (resume && *resume) {
        char path[4200];
        snprintf(path, sizeof path, "%s/config.txt", resume);
        FILE *probe = fopen(path, "r");
        if (!probe) die_usage("--resume=%s: no config.txt there (is it a run directory?)", resume);
        fclose(probe);
        load_config_file(flags, n, path);
        char text[4200];
        for (int i = 0; i < n; i++) {
            flag_text(&flags[i], text, sizeof text);
            free(flags[i].resumed);
            flags[i].resumed = xstrdup(text);
        }
    }
    const char *config = flags_find(flags, n, "config") ? argv_value(argc, argv, "config") : NULL;
    if (config && *config) load_config_file(flags, n, config);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) die_usage("unexpected argument '%s' (flags start with --)", a);
        const char *eq = strchr(a, '=');
        char name[128];
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (len >= sizeof name) die_usage("unknown flag %s", a);
        memcpy(name, a + 2, len);
        name[len] = '\0';
        Flag *f = find_mutable(flags, n, name);
        if (!f) die_usage("unknown flag --%s (see --help)", name);
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (i + 1 >= argc) die_usage("flag --%s needs a value", name);
            value = argv[++i];
        }
        flag_set(f, value, "");
        f->from_cmdline = 1;
    }
}

void flags_write_config(const Flag *flags, int n, FILE *f) {
    for (int i = 0; i < n; i++) {
        const Flag *fl = &flags[i];
        if (fl->not_saved) continue;
        char text[4200];
        flag_text(fl, text, sizeof text);
        fprintf(f, "%s=%s\n", fl->name, text);
    }
}

void flags_save_config(const Flag *flags, int n, const char *dir, const char *program) {
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/config.txt", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) die("cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "# %s settings: accepted back by --config=%s\n", program, path);
    flags_write_config(flags, n, f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) die("cannot write %s: %s", path, strerror(errno));
}

void flags_check_resume(const Flag *flags, int n, const char *const *model, const char *resume_dir) {
    char text[4200];
    for (int i = 0; i < n; i++) {
        const Flag *f = &flags[i];
        if (!f->resumed || f->not_saved) continue;
        flag_text(f, text, sizeof text);
        if (!strcmp(text, f->resumed)) continue;
        for (const char *const *m = model; *m; m++)
            if (!strcmp(*m, f->name))
                die_usage("--%s=%s: --resume=%s is a run with %s=%s, and a resumed run keeps its model "
                          "(start a new run, or one --init-from its exported weights)", f->name, text,
                          resume_dir, f->name, f->resumed);
        printf("resume: %s %s -> %s\n", f->name, f->resumed, text);
    }
}

void flags_free(Flag *flags, int n) {
    for (int i = 0; i < n; i++) {
        free(flags[i].resumed);
        flags[i].resumed = NULL;
        if (flags[i].type == FLAG_STRING) {
            free(*(char **)flags[i].ptr);
            *(char **)flags[i].ptr = NULL;
        }
    }
}

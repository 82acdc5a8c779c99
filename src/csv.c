// csv.c - see csv.h
#define _POSIX_C_SOURCE 200809L
#include "csv.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static int count_columns(const char *header) {
    int n = 1;
    for (const char *p = header; *p; p++) n += *p == ',';
    return n;
}

void csv_open(Csv *csv, const char *path, const char *header, double keep_upto) {
    memset(csv, 0, sizeof *csv);
    snprintf(csv->path, sizeof csv->path, "%s", path);
    csv->columns = count_columns(header);
    if (keep_upto < 0) {
        csv->f = xfopen(path, "w");
        fprintf(csv->f, "%s\n", header);
        fflush(csv->f);
        return;
    }
    // resume: rewrite through a temporary file, keeping rows up to keep_upto
    FILE *in = fopen(path, "r");
    if (!in) die("cannot reopen %s to resume: %s", path, strerror(errno));
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = xfopen(tmp, "w");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len = getline(&line, &cap, in);
    if (len <= 0 || strncmp(line, header, strlen(header)) != 0)
        die("%s does not start with the header %s", path, header);
    fprintf(out, "%s\n", header);
    while ((len = getline(&line, &cap, in)) > 0) {
        char *end;
        double first = strtod(line, &end);
        if (end == line || first > keep_upto) break;
        fputs(line, out);
    }
    free(line);
    fclose(in);
    if (fflush(out) != 0 || fclose(out) != 0) die("cannot write %s: %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0) die("cannot replace %s: %s", path, strerror(errno));
    csv->f = xfopen(path, "a");
}

void csv_row(Csv *csv, const double *values) {
    if (!csv->f) return;   // not opened: a rank other than 0 under data parallelism
    for (int k = 0; k < csv->columns; k++) {
        double v = values[k];
        if (k) fputc(',', csv->f);
        if (v == CSV_EMPTY) continue;
        if (isnan(v)) fputs("nan", csv->f);
        else if (isinf(v)) fputs(v > 0 ? "inf" : "-inf", csv->f);
        else if (v == floor(v) && fabs(v) < 1e15) fprintf(csv->f, "%.0f", v);
        else fprintf(csv->f, "%.9g", v);
    }
    fputc('\n', csv->f);
    if (fflush(csv->f) != 0) die("cannot write %s: %s", csv->path, strerror(errno));
}

void csv_close(Csv *csv) {
    if (csv->f) fclose(csv->f);
    csv->f = NULL;
}

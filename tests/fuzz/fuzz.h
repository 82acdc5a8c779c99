// fuzz.h - shared scaffolding for the libFuzzer harnesses in tests/fuzz/.
//
// The parsers under test read files, so each input is written to a private
// temporary file first. die() and die_usage() (weak in src/common.c) are
// replaced here by a jump back into the harness: a clean one-line error is
// the expected outcome for bad input, and only a crash, a sanitizer report or
// a hang counts as a finding.
#ifndef FUZZ_H
#define FUZZ_H

#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static jmp_buf fuzz_on_error;
static int fuzz_errors_expected;

void die(const char *fmt, ...) {
    (void)fmt;
    if (!fuzz_errors_expected) abort();
    longjmp(fuzz_on_error, 1);
}
void die_usage(const char *fmt, ...) {
    (void)fmt;
    if (!fuzz_errors_expected) abort();
    longjmp(fuzz_on_error, 2);
}

// the input as a file; returns its path (valid until the next call)
static const char *fuzz_write_file(const char *name, const uint8_t *data, size_t size) {
    static char path[256];
    snprintf(path, sizeof path, "/tmp/fuzz-%d-%s", (int)getpid(), name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return path;
}

#endif

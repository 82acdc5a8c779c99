// common.h - error exits, checked allocation and file I/O, a clock.
//
// Exit codes: 1 for a runtime failure (a file that cannot be read, a corrupt
// checkpoint, a device error), 2 for bad usage (an unknown flag, a malformed
// or out-of-range value). Every message is one line naming what was wrong.
#ifndef COMMON_H
#define COMMON_H

#include <stddef.h>
#include <stdio.h>

#define EXIT_USAGE 2

#if defined(__GNUC__)
#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))
#define NORETURN __attribute__((noreturn))
#else
#define PRINTF_LIKE(a, b)
#define NORETURN
#endif

void die(const char *fmt, ...) PRINTF_LIKE(1, 2) NORETURN;        // "error: ...", exit 1
void die_usage(const char *fmt, ...) PRINTF_LIKE(1, 2) NORETURN;  // "error: ...", exit 2
// 1: die_usage exits without printing (data parallelism: every process parses
// the same flags, so a usage error is rank 0's to print)
void die_usage_quiet(int quiet);

void *xmalloc(size_t bytes);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t bytes);
char *xstrdup(const char *s);

FILE *xfopen(const char *path, const char *mode);   // dies naming the path
void xfread(void *dst, size_t bytes, FILE *f, const char *path);  // dies on a short read
void xfwrite(const void *src, size_t bytes, FILE *f, const char *path);

double now_seconds(void);   // monotonic clock
int make_dirs(const char *path);   // mkdir -p; 0 on success

#endif

// test.h - the smallest test harness that does the job.
//
// CHECK(cond, fmt, ...) counts a pass or prints the failure with its location.
// Each test program ends with test_summary(), which prints "N passed, N failed"
// and returns the exit status; tests/run_all.sh adds the programs' counts up.
#ifndef TEST_H
#define TEST_H

#include <math.h>
#include <stdio.h>

static int test_passed_count = 0, test_failed_count = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            test_passed_count++;                                           \
        } else {                                                           \
            test_failed_count++;                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

// |a - b| <= tol * max(1, |b|)-style checks are written out at the call site;
// this one is for "relative to the reference's scale" comparisons of arrays.
static inline double max_abs_diff_d(const double *a, const double *b, long n, double *ref_max) {
    double md = 0, mb = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (d > md || d != d) md = d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    if (ref_max) *ref_max = mb;
    return md;
}

static inline int test_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, test_passed_count, test_failed_count);
    return test_failed_count ? 1 : 0;
}

#endif

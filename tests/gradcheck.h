// gradcheck.h - finite-difference checks shared by test_gradcheck.c and
// test_gradcheck_vit.c (both built with -DREAL=double).
//
// For an op y = f(x, params) take L = sum_i w_i y_i with random fixed w, run
// the op's backward with dL/dy = w, and compare each gradient entry with
// (L(x + h e_i) - L(x - h e_i)) / 2h. The error per tensor is
// max_i |analytic_i - numeric_i| / max_i |numeric_i|.
#ifndef GRADCHECK_H
#define GRADCHECK_H

#include <math.h>

#include "ops.h"
#include "src/common.h"
#include "src/rng.h"
#include "tests/test.h"

_Static_assert(sizeof(real) == sizeof(double), "finite differences need -DREAL=double");

static const Backend *be = &backend_ref;
static Rng rng;
static const double H = 1e-5, TOL = 1e-7;

static real *randn(size_t n, double scale) {
    real *x = xmalloc(n * sizeof(real));
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(&rng) * scale;
    return x;
}
static real *zeros(size_t n) { return xcalloc(n, sizeof(real)); }
// NaN everywhere: the prior contents of an output the op must overwrite
static inline real *nans(size_t n) {
    real *x = xmalloc(n * sizeof(real));
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

static double dot(const real *a, const real *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

// the op under test: runs forward on the current inputs, returns L
typedef double (*LossFn)(void *ctx);

// Compares grad (n entries) with finite differences of loss over x.
static double fd_error(LossFn loss, void *ctx, real *x, const real *grad, size_t n) {
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < n; i++) {
        real keep = x[i];
        x[i] = keep + H;
        double lp = loss(ctx);
        x[i] = keep - H;
        double lm = loss(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2 * H);
        if (fabs(grad[i] - num) > max_diff || isnan(grad[i])) max_diff = fabs(grad[i] - num);
        if (fabs(num) > max_ref) max_ref = fabs(num);
    }
    return max_ref > 0 ? max_diff / max_ref : max_diff;
}

#define CHECK_GRAD(what, loss, ctx, x, g, n)                                         \
    do {                                                                             \
        double e_ = fd_error(loss, ctx, x, g, n);                                    \
        CHECK(e_ < TOL, "%s: relative error %.3g >= %g", what, e_, TOL);             \
    } while (0)

#endif

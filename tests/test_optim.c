// test_optim.c - SET-Adam against the worked example of setadam.md, AdamW
// against values computed by hand, clipping, and the LR schedule's boundaries.
#include <math.h>
#include <string.h>

#include "ops.h"
#include "src/optim.h"
#include "tests/test.h"

static const Backend *be = &backend_ref;

static void test_setadam_worked_example(void) {
    // ../shared/spec/setadam.md: one tensor, theta_0 = 0, g_1 = [0.1, -0.2, 0.3]
    real params[3] = {0, 0, 0}, grads[3] = {0.1f, -0.2f, 0.3f}, m[3] = {0}, v[3] = {0};
    ParamSlice slice = {0, 3, 1};
    real gnorm_sq;
    be->sumsq(&gnorm_sq, grads, 3);
    OptimArgs a = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .wd = 0, .tau = 0.5f,
                   .clip = 0, .t = 1};
    be->setadam_update(params, grads, m, v, &slice, 1, &a, &gnorm_sq);
    const double expect[3] = {-0.0024494879, 0.0016329932, -0.0014696939};
    for (int i = 0; i < 3; i++)
        CHECK(fabs(params[i] - expect[i]) < 1e-8, "setadam theta_1[%d] = %.10f, expected %.10f", i,
              params[i], expect[i]);
}

static void test_setadam_zero_gradient(void) {
    // all-zero gradient: c = 1 by the guard, and the update stays finite (zero)
    real params[4] = {1, 2, 3, 4}, grads[4] = {0}, m[4] = {0}, v[4] = {0}, gnorm_sq = 0;
    ParamSlice slice = {0, 4, 1};
    OptimArgs a = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .tau = 0.5f, .t = 1};
    be->setadam_update(params, grads, m, v, &slice, 1, &a, &gnorm_sq);
    int ok = 1;
    for (int i = 0; i < 4; i++) ok &= params[i] == (real)(i + 1);
    CHECK(ok, "setadam with a zero gradient must leave parameters unchanged");
}

static void test_setadam_per_slice(void) {
    // two slices must be normalised separately: the result for slice 0 equals
    // running slice 0 alone
    real p2[6] = {0}, g2[6] = {0.1f, -0.2f, 0.3f, 5, 6, -7}, m2[6] = {0}, v2[6] = {0};
    real p1[3] = {0}, m1[3] = {0}, v1[3] = {0}, gn = 0;
    ParamSlice two[2] = {{0, 3, 1}, {3, 3, 0}}, one = {0, 3, 1};
    OptimArgs a = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .tau = 0.5f, .t = 1};
    be->setadam_update(p2, g2, m2, v2, two, 2, &a, &gn);
    be->setadam_update(p1, g2, m1, v1, &one, 1, &a, &gn);
    CHECK(!memcmp(p1, p2, sizeof p1), "setadam slices must not influence each other");
}

static void test_adamw_by_hand(void) {
    // two steps on one decayed and one non-decayed element, lr 0.1, wd 0.5
    real params[2] = {1.0f, -2.0f}, grads[2] = {0.5f, 0.25f}, m[2] = {0}, v[2] = {0}, gn;
    ParamSlice slices[2] = {{0, 1, 1}, {1, 1, 0}};
    OptimArgs a = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .wd = 0.5f, .t = 1};
    be->sumsq(&gn, grads, 2);
    be->adamw_update(params, grads, m, v, slices, 2, &a, &gn);
    // step 1: mhat = g, vhat = g^2 -> update = sign(g) (up to eps)
    //   p0 = 1 - 0.1 * (1 + 0.5 * 1) = 0.85;  p1 = -2 - 0.1 * 1 = -2.1
    CHECK(fabs(params[0] - 0.85) < 1e-6, "adamw step 1 decayed: %.8f", params[0]);
    CHECK(fabs(params[1] - -2.1) < 1e-6, "adamw step 1 not decayed: %.8f", params[1]);
    grads[0] = -1.0f;
    a.t = 2;
    be->sumsq(&gn, grads, 2);
    be->adamw_update(params, grads, m, v, slices, 2, &a, &gn);
    // step 2, element 0: m = 0.9*0.05 + 0.1*(-1) = -0.055, v = 0.99*0.0025 + 0.01*1 = 0.012475
    //   mhat = -0.055/0.19, vhat = 0.012475/0.0199
    double mhat = -0.055 / 0.19, vhat = 0.012475 / 0.0199;
    double expect0 = 0.85 - 0.1 * (mhat / (sqrt(vhat) + 1e-8) + 0.5 * 0.85);
    CHECK(fabs(params[0] - expect0) < 1e-6, "adamw step 2: %.8f, expected %.8f", params[0], expect0);
}

static void test_clipping(void) {
    // gradient norm 5 clipped to 1: identical to the update from g / 5
    real g[2] = {3, 4}, gs[2] = {0.6f, 0.8f};
    real pa[2] = {0}, ma[2] = {0}, va[2] = {0}, pb[2] = {0}, mb[2] = {0}, vb[2] = {0}, na, nb;
    ParamSlice s = {0, 2, 1};
    OptimArgs a = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-3f, .clip = 1, .t = 1};
    be->sumsq(&na, g, 2);
    be->sumsq(&nb, gs, 2);
    CHECK(fabs(sqrt(na) - 5) < 1e-6, "sumsq: norm %.8f, expected 5", sqrt(na));
    be->adamw_update(pa, g, ma, va, &s, 1, &a, &na);
    be->adamw_update(pb, gs, mb, vb, &s, 1, &a, &nb);
    CHECK(fabs(pa[0] - pb[0]) < 1e-7 && fabs(pa[1] - pb[1]) < 1e-7 && fabs(ma[1] - mb[1]) < 1e-7,
          "clipping to norm 1 must equal the update from the rescaled gradient");
}

static void test_schedule(void) {
    // warmup 10 of 100 steps, lr 1, min 0.1
    CHECK(fabsf(lr_at(SCHEDULE_COSINE, 0, 100, 10, 1, 0.1f) - 0.1f) < 1e-7, "warmup step 0 -> lr/10");
    CHECK(fabsf(lr_at(SCHEDULE_COSINE, 9, 100, 10, 1, 0.1f) - 1.0f) < 1e-7, "end of warmup -> lr");
    CHECK(fabsf(lr_at(SCHEDULE_COSINE, 10, 100, 10, 1, 0.1f) - 1.0f) < 1e-7, "first decay step -> lr");
    CHECK(fabsf(lr_at(SCHEDULE_COSINE, 99, 100, 10, 1, 0.1f) - 0.1f) < 1e-7, "last step -> min lr");
    float mid = lr_at(SCHEDULE_COSINE, 10 + 89 / 2, 100, 10, 1, 0.1f);
    CHECK(mid > 0.1f && mid < 1.0f, "cosine midpoint %.6f inside (min, lr)", mid);
    float half = lr_at(SCHEDULE_COSINE, 50, 101, 0, 1, 0);   // progress exactly 0.5
    CHECK(fabsf(half - 0.5f) < 1e-6, "cosine at half-way: %.6f", half);
    CHECK(lr_at(SCHEDULE_CONSTANT, 99, 100, 10, 1, 0.1f) == 1.0f, "constant after warmup");
    CHECK(lr_at(SCHEDULE_CONSTANT, 4, 100, 10, 1, 0.1f) == 0.5f, "constant schedule still warms up");
    int monotone = 1;
    for (int s = 11; s < 100; s++)
        monotone &= lr_at(SCHEDULE_COSINE, s, 100, 10, 1, 0.1f) <= lr_at(SCHEDULE_COSINE, s - 1, 100, 10, 1, 0.1f);
    CHECK(monotone, "cosine decay is monotone");
}

int main(void) {
    test_setadam_worked_example();
    test_setadam_zero_gradient();
    test_setadam_per_slice();
    test_adamw_by_hand();
    test_clipping();
    test_schedule();
    return test_summary("test_optim");
}

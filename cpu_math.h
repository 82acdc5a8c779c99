// cpu_math.h - float exp and erfc that vectorise, for the fast CPU backend.
//
// glibc's expf and erff are scalar calls; in a loop under `#pragma omp simd`
// these inline versions become vector code. exp_fast: Cody-Waite range
// reduction x = n ln2 + r, |r| <= ln2/2, and a degree-6 polynomial for e^r
// (the Cephes expf coefficients), within 2 ulp of expf over [-87, 88]; inputs
// below -87.3 return 0 (not a denormal), so exp_fast(-inf) = 0; NaN stays NaN.
// erfc_fast: the Chebyshev fit of Numerical Recipes' erfcc, fractional error
// below 1.2e-7 for every x in exact arithmetic, so 1 - erf is accurate in the
// tails too; evaluated in float, within 3.5e-7 + 2.4e-7 x^2 relative (tested).
#ifndef CPU_MATH_H
#define CPU_MATH_H

#include <stdint.h>
#include <string.h>

static inline float exp_fast(float x) {
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    float xc = x > 88.3762626647949f ? 88.3762626647949f : x;
    xc = xc < -87.3365447505531f ? -87.3365447505531f : xc;
    xc = xc == xc ? xc : 0.0f;   // NaN: no float-to-int conversion of it; returned below
    // n = round(x log2 e) by the 1.5 * 2^23 trick (floorf does not vectorise
    // without -fno-trapping-math)
    const float shifter = 12582912.0f;
    float n = (xc * log2e + shifter) - shifter;
    float r = xc - n * ln2_hi - n * ln2_lo;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x != x ? x : x < -87.3365447505531f ? 0.0f : p * scale;
}

static inline float erfc_fast(float x) {
    float z = x < 0 ? -x : x;
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float r = t * exp_fast(-z * z + p);
    return x < 0 ? 2.0f - r : r;
}

#endif

// cuda_bf16.h (emulated) - the part of CUDA's bfloat16 type that the backend
// uses: storage, and conversions from float rounded to nearest even as
// cuda_bf16.hpp does (a NaN becomes 0x7fff), to float exactly.
#ifndef CUDA_EMU_BF16_H
#define CUDA_EMU_BF16_H

#include <stdint.h>
#include <string.h>

struct __nv_bfloat16 {
    unsigned short __x;   // the top 16 bits of the float it stands for
};

static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    __nv_bfloat16 b;
    if ((u & 0x7fffffffu) > 0x7f800000u) b.__x = 0x7fff;   // NaN
    else b.__x = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return b;
}
static inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }

static inline float __bfloat162float(__nv_bfloat16 b) {
    uint32_t u = (uint32_t)b.__x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif

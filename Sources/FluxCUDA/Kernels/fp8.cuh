// fp8.cuh — f8 e4m3 helpers shared by the kernels that write fp8 rows (quantize.cu, normalization.cu): the
// conversion and row-scale rule of Sources/FluxCore/Quantization.swift (handed to NVRTC as a header named "fp8.cuh").
#pragma once
#include "common.cuh"

#define E4M3_MAX 448.0f

// f32 → e4m3fn bits, round to nearest even, saturating (the host's floatToFloat8E4M3). Hopper and Ada convert in
// hardware; older GPUs take the same steps in software.
__device__ __forceinline__ unsigned int e4m3_bits(float x) {
#if __CUDA_ARCH__ >= 890
    unsigned short pair;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(0.0f), "f"(x));
    return pair & 0xffu;
#else
    if (x != x) return 0x7fu;
    const unsigned int sign = x < 0.0f ? 0x80u : 0u;
    const float a = fabsf(x);
    if (a >= E4M3_MAX) return sign | 0x7eu;
    if (a < 0.015625f) return sign | (unsigned int)rintf(a * 512.0f);  // subnormal, steps of 2^-9
    int e;
    frexpf(a, &e);                                                      // a = m · 2^e, m in [0.5, 1)
    e -= 1;                                                             // 2^e ≤ a < 2^(e+1)
    float steps = rintf(ldexpf(a, 3 - e));                              // 8 ... 16
    if (steps == 16.0f) { e += 1; steps = 8.0f; }
    return sign | (unsigned int)((e + 7) << 3) | ((unsigned int)steps - 8u);
#endif
}

// e4m3fn bits → f32 (the host's float8E4M3ToFloat).
__device__ __forceinline__ float e4m3_value(unsigned int bits) {
    const float sign = (bits & 0x80u) ? -1.0f : 1.0f;
    const int exponent = (bits >> 3) & 0xf, mantissa = bits & 0x7;
    if (exponent == 0xf && mantissa == 0x7) return __int_as_float(0x7fc00000);
    if (exponent == 0) return sign * (float)mantissa * 0.001953125f;    // m · 2^-9
    return sign * ldexpf(1.0f + (float)mantissa * 0.125f, exponent - 7);
}

__device__ __forceinline__ float row_scale(float abs_max) {
    const float scale = abs_max / E4M3_MAX;
    return scale > 0.0f && scale <= 3.402823466e38f ? scale : 1.0f;
}

// Eight values divided by `scale`, as e4m3 bytes in one 8-byte store.
__device__ __forceinline__ void store8_e4m3(unsigned char* out, const float* f, float scale) {
    uint2 packed = make_uint2(0u, 0u);
#pragma unroll
    for (int e = 0; e < 4; e++) {
        packed.x |= e4m3_bits(__fdiv_rn(f[e], scale)) << (8 * e);
        packed.y |= e4m3_bits(__fdiv_rn(f[e + 4], scale)) << (8 * e);
    }
    *(uint2*)out = packed;
}

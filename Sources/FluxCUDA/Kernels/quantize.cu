// quantize.cu — f8 e4m3 row quantization for fp8 linear layers (the rule of Sources/FluxCore/Quantization.swift).
//
//   row r of the input, the concatenation [a[r, 0 ..< wa], b[r, 0 ..< wb]] of K = wa + wb bf16 values:
//     scale[r] = max_k |x[r, k]| / 448        (1 when that is 0, or not a positive finite number)
//     q[r, k]  = e4m3(x[r, k] / scale[r])     round to nearest even, saturating to ±448 (e4m3fn, as torch)
//   so the largest entry of a row lands on e4m3's largest finite value. Used on weights (rows = output features, at
//   load) and on activations (rows = tokens, before each fp8 product; two parts feed linear2 of the single blocks
//   without concatenating them first).
//   dequantize: y[r, k] = bf16(e4m3_value(q[r, k]) · scale[r]) — for products cuBLASLt cannot run in fp8.
//
// quantize_rows_e4m3: one block per row, grid (rows), block 128 threads for rows up to 4096 values and 256 beyond
// (the host's choice: small blocks keep more rows in flight per SM); pass 1 takes the row's |max| (block reduction),
// pass 2 writes bytes. With wa and wb multiples of 8 each thread moves 8 values at a time (16-byte loads, 8-byte
// stores) and, for rows up to blockDim · 8 · QUANT_CACHE values (16384 at 256 threads; FLUX's widest input is
// 15360), keeps its vectors in registers so the row is read once; otherwise pass 2 reads the row again (from L1/L2),
// one value at a time when the widths are not multiples of 8.
#include "common.cuh"

#define QUANT_CACHE 8   // vectors of 8 values per thread held in registers
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

extern "C" __global__ void quantize_rows_e4m3(const bf16* __restrict__ a, int wa, const bf16* __restrict__ b, int wb,
                                              long long rows, unsigned char* __restrict__ q,
                                              float* __restrict__ scales) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    if (row >= rows) return;
    const int width = wa + wb, t = threadIdx.x, threads = blockDim.x;
    const bf16* ra = a + row * wa;
    const bf16* rb = b + row * wb;
    unsigned char* out = q + row * width;
    const bool vectors = (wa & 7) == 0 && (wb & 7) == 0;

    if (vectors && width <= threads * 8 * QUANT_CACHE) {
        uint4 cache[QUANT_CACHE];
        float m = 0.0f;
#pragma unroll
        for (int c = 0; c < QUANT_CACHE; c++) {
            const int k = (t + threads * c) * 8;
            if (k < width) {
                cache[c] = k < wa ? *(const uint4*)(ra + k) : *(const uint4*)(rb + (k - wa));
                float f[8];
                unpack8(cache[c], f);
#pragma unroll
                for (int e = 0; e < 8; e++) m = fmaxf(m, fabsf(f[e]));
            }
        }
        const float scale = row_scale(block_max(m, scratch));
        if (t == 0) scales[row] = scale;
#pragma unroll
        for (int c = 0; c < QUANT_CACHE; c++) {
            const int k = (t + threads * c) * 8;
            if (k < width) {
                float f[8];
                unpack8(cache[c], f);
                store8_e4m3(out + k, f, scale);
            }
        }
        return;
    }

    float m = 0.0f;
    if (vectors) {
        for (int k = t * 8; k < width; k += threads * 8) {
            float f[8];
            unpack8(k < wa ? *(const uint4*)(ra + k) : *(const uint4*)(rb + (k - wa)), f);
#pragma unroll
            for (int e = 0; e < 8; e++) m = fmaxf(m, fabsf(f[e]));
        }
    } else {
        for (int k = t; k < width; k += threads) m = fmaxf(m, fabsf(bf16_to_f32(k < wa ? ra[k] : rb[k - wa])));
    }
    const float scale = row_scale(block_max(m, scratch));
    if (t == 0) scales[row] = scale;

    if (vectors) {
        for (int k = t * 8; k < width; k += threads * 8) {
            float f[8];
            unpack8(k < wa ? *(const uint4*)(ra + k) : *(const uint4*)(rb + (k - wa)), f);
            store8_e4m3(out + k, f, scale);
        }
    } else {
        for (int k = t; k < width; k += threads) {
            out[k] = (unsigned char)e4m3_bits(__fdiv_rn(bf16_to_f32(k < wa ? ra[k] : rb[k - wa]), scale));
        }
    }
}

extern "C" __global__ void dequantize_rows_e4m3(const unsigned char* __restrict__ q, const float* __restrict__ scales,
                                                long long rows, int cols, bf16* __restrict__ y) {
    const long long count = rows * cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
         i += (long long)gridDim.x * blockDim.x) {
        y[i] = f32_to_bf16(e4m3_value(q[i]) * scales[i / cols]);
    }
}

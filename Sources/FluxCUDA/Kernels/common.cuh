// common.cuh — helpers shared by every FluxServe kernel (handed to NVRTC as a header named "common.cuh").
//
// Storage is bf16, math is f32. bf16 is the top half of an f32 (1 sign, 8 exponent, 7 mantissa bits); these helpers
// replace cuda_bf16.h so that kernels compile with NVRTC and no include path. Rounding f32 -> bf16 is to nearest even,
// NaN stays a quiet NaN — the same rule as the host's floatToBfloat16 and torch's .to(torch.bfloat16).
#pragma once

typedef unsigned short bf16;

// −∞ and +∞ without math.h.
#define NEG_INF __int_as_float(0xff800000)
#define POS_INF __int_as_float(0x7f800000)

__device__ __forceinline__ float bf16_to_f32(bf16 v) { return __uint_as_float(((unsigned int)v) << 16); }

__device__ __forceinline__ bf16 f32_to_bf16(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16)(u >> 16);
}

// Activation kinds, in the order of Swift's `Activation` cases.
#define ACT_IDENTITY 0
#define ACT_SILU 1
#define ACT_GELU_TANH 2
#define ACT_GELU 3
#define ACT_QUICK_GELU 4

__device__ __forceinline__ float activate(float x, int kind) {
    switch (kind) {
    case ACT_SILU: return x / (1.0f + expf(-x));
    case ACT_GELU_TANH: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.7071067811865475f));
    case ACT_QUICK_GELU: return x / (1.0f + expf(-1.702f * x));
    default: return x;
    }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum (or maximum) over a block of blockDim.x threads (a multiple of 32, at most 1024); every thread gets the
// result. `scratch` holds 32 floats of shared memory; the call ends with a barrier so scratch can be reused.
template <bool Max>
__device__ __forceinline__ float block_reduce(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = Max ? warp_max(v) : warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float total = lane < warps ? scratch[lane] : (Max ? NEG_INF : 0.0f);
    total = Max ? warp_max(total) : warp_sum(total);
    __syncthreads();
    return total;
}

__device__ __forceinline__ float block_sum(float v, float* scratch) { return block_reduce<false>(v, scratch); }
__device__ __forceinline__ float block_max(float v, float* scratch) { return block_reduce<true>(v, scratch); }

// Eight bf16 in one 16-byte word, for vectorised loads and stores (`((const uint4*)p)[i]`). Every tensor starts at an
// allocation (256-byte aligned), so element offsets that are multiples of 8 are 16-byte aligned.
__device__ __forceinline__ void unpack8(uint4 w, float* f) {
    f[0] = __uint_as_float(w.x << 16); f[1] = __uint_as_float(w.x & 0xffff0000u);
    f[2] = __uint_as_float(w.y << 16); f[3] = __uint_as_float(w.y & 0xffff0000u);
    f[4] = __uint_as_float(w.z << 16); f[5] = __uint_as_float(w.z & 0xffff0000u);
    f[6] = __uint_as_float(w.w << 16); f[7] = __uint_as_float(w.w & 0xffff0000u);
}

__device__ __forceinline__ unsigned int pack2(float lo, float hi) {
    return (unsigned int)f32_to_bf16(lo) | ((unsigned int)f32_to_bf16(hi) << 16);
}

__device__ __forceinline__ uint4 pack8(const float* f) {
    uint4 w;
    w.x = pack2(f[0], f[1]); w.y = pack2(f[2], f[3]); w.z = pack2(f[4], f[5]); w.w = pack2(f[6], f[7]);
    return w;
}

// Four bf16 in one 8-byte word.
__device__ __forceinline__ void unpack4(uint2 w, float* f) {
    f[0] = __uint_as_float(w.x << 16); f[1] = __uint_as_float(w.x & 0xffff0000u);
    f[2] = __uint_as_float(w.y << 16); f[3] = __uint_as_float(w.y & 0xffff0000u);
}

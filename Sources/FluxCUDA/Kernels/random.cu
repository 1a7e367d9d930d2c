// random.cu — seeded normal random values written as bf16 (benchmark weights drawn on the device). The same numbers
// as the host's GaussianNoise (FluxModel Latents.swift) run chunk by chunk, as RandomWeights draws them:
//
//   element i: chunk c = i / chunk_length, k = i mod chunk_length (chunk_length even), pair p = k / 2
//   chunk stream: state_n = seed + c·γ + n·γ (n ≥ 1, γ = 0x9E3779B97F4A7C15, wrapping), draw_n = mix(state_n)
//                 (SplitMix64: z ^= z >> 30, z *= 0xBF58476D1CE4E5B9, z ^= z >> 27, z *= 0x94D049BB133111EB, z ^= z >> 31)
//   u1 = (draw_{2p+1} >> 11 + 1) / 2^53, u2 = (draw_{2p+2} >> 11 + 1) / 2^53        uniforms in (0, 1], f64
//   z  = √(−2 ln u1) · (k even ? cos(2π·u2) : sin(2π·u2))                            Box–Muller, f64, then f32
//   y[i] = bf16(mean + std · z)     f32 multiply then add, each rounded (no fused multiply-add, as the host)
//
// Launch: 1-D grid-stride loop over pairs P < ⌈n / 2⌉ (elements 2P and 2P + 1 share their draws), 256 threads per
// block. f64 log/sin/cos differ from the host's libm by an ulp or so, which survives the rounding to bf16 only in
// rare ties.
#include "common.cuh"

__device__ __forceinline__ unsigned long long splitmix(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

extern "C" __global__ void random_normal_bf16(bf16* __restrict__ y, long long n, unsigned long long seed,
                                              long long chunk_length, float mean, float std) {
    const unsigned long long gamma = 0x9E3779B97F4A7C15ull;
    const long long pairs = (n + 1) / 2;
    for (long long pair = blockIdx.x * (long long)blockDim.x + threadIdx.x; pair < pairs;
         pair += (long long)gridDim.x * blockDim.x) {
        const long long i = 2 * pair, c = i / chunk_length, p = (i - c * chunk_length) / 2;
        const unsigned long long start = seed + (unsigned long long)c * gamma;
        const unsigned long long d1 = splitmix(start + (unsigned long long)(2 * p + 1) * gamma);
        const unsigned long long d2 = splitmix(start + (unsigned long long)(2 * p + 2) * gamma);
        const double u1 = ((double)(d1 >> 11) + 1.0) / 9007199254740992.0;
        const double u2 = ((double)(d2 >> 11) + 1.0) / 9007199254740992.0;
        const double radius = sqrt(-2.0 * log(u1)), angle = (2.0 * 3.141592653589793) * u2;
        const float z0 = (float)(radius * cos(angle)), z1 = (float)(radius * sin(angle));
        y[i] = f32_to_bf16(__fadd_rn(mean, __fmul_rn(std, z0)));
        if (i + 1 < n) y[i + 1] = f32_to_bf16(__fadd_rn(mean, __fmul_rn(std, z1)));
    }
}

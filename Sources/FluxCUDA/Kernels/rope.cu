// rope.cu — rotary position embedding on interleaved pairs (FLUX / diffusers use_real_unbind_dim=-1).
//
//   for token t = (b, s), head h, pair i < D/2:
//     (y[2i], y[2i+1]) = (x[2i]·cos[s, i] − x[2i+1]·sin[s, i],  x[2i+1]·cos[s, i] + x[2i]·sin[s, i])
//
// x, y (B, S, H, D) row-major bf16; cos, sin (S, D/2) bf16. Launch: 1-D grid-stride loop over B·S·H·D/2 pairs,
// 256 threads per block; pair p → (token = p / (H·D/2), s = token mod S, i = p mod D/2).
#include "common.cuh"

extern "C" __global__ void rope_bf16(const bf16* __restrict__ x, const bf16* __restrict__ cosines,
                                     const bf16* __restrict__ sines, bf16* __restrict__ y, long long pairs, int seq,
                                     int heads, int half) {
    for (long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x; p < pairs;
         p += (long long)gridDim.x * blockDim.x) {
        const long long token = p / ((long long)heads * half);
        const int i = (int)(p % half);
        const long long s = token % seq;
        const float c = bf16_to_f32(cosines[s * half + i]), sn = bf16_to_f32(sines[s * half + i]);
        const float re = bf16_to_f32(x[2 * p]), im = bf16_to_f32(x[2 * p + 1]);
        y[2 * p] = f32_to_bf16(re * c - im * sn);
        y[2 * p + 1] = f32_to_bf16(im * c + re * sn);
    }
}

// normalization.cu — normalisation over the last axis of bf16 rows, f32 math.
//
//   mode 0, layer norm:  y = (x − mean) / √(var + eps)           var biased (÷ D), as torch.nn.LayerNorm
//   mode 1, RMS norm:    y = x / √(mean(x²) + eps)
//   then, each optional (null pointer = absent):
//     y = y · weight[j] + bias[j]                                 weight, bias (D)
//     y = y · (1 + scale[b, j]) + shift[b, j],  b = row / seq     shift, scale (B, D): AdaLN modulation
//
// x, y: rows × D, row-major. Variance is Σ(x − mean)², not E[x²] − mean², so large means do not cancel.
//   norm_rows_x8_bf16, D % 8 == 0 and 512 ≤ D ≤ 4096 (FLUX 3072, T5 4096, CLIP 768): one block of 128 threads per
//     row, grid (rows); thread t holds vectors t, t + 128, ... of 8 bf16 (16-byte loads, at most 4 per thread) in
//     registers: one read of the row, one write; block sums through shared memory; weight, bias, shift and scale
//     read 8 at a time.
//   norm_rows_x8_e4m3: the same, writing e4m3 bytes and one f32 scale per row instead of bf16 (fp8.cuh's rule:
//     scale = max |y| / 448 over the row, from the f32 values) — the input of an fp8 product in one pass.
//   norm_rows_bf16, any D: one warp per row, 8 warps (256 threads) per block, grid ⌈rows / 8⌉; each lane strides
//     over the row element by element, three passes (mean, variance, write), the second and third from L1/L2.
#include "common.cuh"
#include "fp8.cuh"

#define NORM_THREADS 128
#define NORM_CACHE 4    // vectors of 8 per thread: D ≤ 128 · 8 · 4 = 4096

// FP8 false: bf16 rows to y. FP8 true: e4m3 rows to q and their scales to q_scales.
template <bool FP8>
__device__ __forceinline__ void norm_rows_x8(const bf16* __restrict__ x, bf16* __restrict__ y,
                                             unsigned char* __restrict__ q, float* __restrict__ q_scales,
                                             long long rows, int dim, float eps, int mode,
                                             const bf16* __restrict__ weight, const bf16* __restrict__ bias,
                                             const bf16* __restrict__ shift, const bf16* __restrict__ scale, int seq) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    if (row >= rows) return;  // the whole block: block_sum below sees every thread
    const uint4* in = (const uint4*)(x + row * dim);
    uint4* out = (uint4*)(y + row * dim);
    const int vectors = dim >> 3, t = threadIdx.x;
    float kept[FP8 ? NORM_CACHE : 1][8];  // FP8: the f32 outputs, until the row's scale is known
    float abs_max = 0.0f;

    uint4 cache[NORM_CACHE];
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < NORM_CACHE; c++) {
        const int j = t + NORM_THREADS * c;
        if (j < vectors) {
            cache[c] = in[j];
            float f[8];
            unpack8(cache[c], f);
#pragma unroll
            for (int e = 0; e < 8; e++) s += f[e];
        }
    }
    const float mean = mode == 0 ? block_sum(s, scratch) / dim : 0.0f;
    float squares = 0.0f;
#pragma unroll
    for (int c = 0; c < NORM_CACHE; c++) {
        if (t + NORM_THREADS * c < vectors) {
            float f[8];
            unpack8(cache[c], f);
#pragma unroll
            for (int e = 0; e < 8; e++) squares += (f[e] - mean) * (f[e] - mean);
        }
    }
    const float inv = rsqrtf(block_sum(squares, scratch) / dim + eps);

    const long long modulation = (seq > 0 ? row / seq : 0) * dim;
#pragma unroll
    for (int c = 0; c < NORM_CACHE; c++) {
        const int j = t + NORM_THREADS * c;
        if (j < vectors) {
            float f[8], p[8];
            unpack8(cache[c], f);
#pragma unroll
            for (int e = 0; e < 8; e++) f[e] = (f[e] - mean) * inv;
            if (weight) {
                unpack8(((const uint4*)weight)[j], p);
#pragma unroll
                for (int e = 0; e < 8; e++) f[e] *= p[e];
            }
            if (bias) {
                unpack8(((const uint4*)bias)[j], p);
#pragma unroll
                for (int e = 0; e < 8; e++) f[e] += p[e];
            }
            if (scale) {
                unpack8(*(const uint4*)(scale + modulation + 8 * j), p);
#pragma unroll
                for (int e = 0; e < 8; e++) f[e] *= 1.0f + p[e];
            }
            if (shift) {
                unpack8(*(const uint4*)(shift + modulation + 8 * j), p);
#pragma unroll
                for (int e = 0; e < 8; e++) f[e] += p[e];
            }
            if (FP8) {
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    kept[FP8 ? c : 0][e] = f[e];
                    abs_max = fmaxf(abs_max, fabsf(f[e]));
                }
            } else {
                out[j] = pack8(f);
            }
        }
    }
    if (FP8) {
        const float s = row_scale(block_max(abs_max, scratch));
        if (t == 0) q_scales[row] = s;
#pragma unroll
        for (int c = 0; c < NORM_CACHE; c++) {
            const int j = t + NORM_THREADS * c;
            if (j < vectors) store8_e4m3(q + row * dim + 8 * j, kept[FP8 ? c : 0], s);
        }
    }
}

extern "C" __global__ void norm_rows_x8_bf16(const bf16* __restrict__ x, bf16* __restrict__ y, long long rows,
                                             int dim, float eps, int mode, const bf16* __restrict__ weight,
                                             const bf16* __restrict__ bias, const bf16* __restrict__ shift,
                                             const bf16* __restrict__ scale, int seq) {
    norm_rows_x8<false>(x, y, nullptr, nullptr, rows, dim, eps, mode, weight, bias, shift, scale, seq);
}

extern "C" __global__ void norm_rows_x8_e4m3(const bf16* __restrict__ x, unsigned char* __restrict__ q,
                                             float* __restrict__ q_scales, long long rows, int dim, float eps,
                                             int mode, const bf16* __restrict__ weight,
                                             const bf16* __restrict__ bias, const bf16* __restrict__ shift,
                                             const bf16* __restrict__ scale, int seq) {
    norm_rows_x8<true>(x, nullptr, q, q_scales, rows, dim, eps, mode, weight, bias, shift, scale, seq);
}

extern "C" __global__ void norm_rows_bf16(const bf16* __restrict__ x, bf16* __restrict__ y, long long rows, int dim,
                                          float eps, int mode, const bf16* __restrict__ weight,
                                          const bf16* __restrict__ bias, const bf16* __restrict__ shift,
                                          const bf16* __restrict__ scale, int seq) {
    const int lane = threadIdx.x & 31;
    const long long row = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const bf16* in = x + row * dim;
    bf16* out = y + row * dim;

    float mean = 0.0f;
    if (mode == 0) {
        float s = 0.0f;
        for (int j = lane; j < dim; j += 32) s += bf16_to_f32(in[j]);
        mean = warp_sum(s) / dim;
    }
    float squares = 0.0f;
    for (int j = lane; j < dim; j += 32) {
        const float d = bf16_to_f32(in[j]) - mean;
        squares += d * d;
    }
    const float inv = rsqrtf(warp_sum(squares) / dim + eps);

    const long long b = seq > 0 ? row / seq : 0;
    for (int j = lane; j < dim; j += 32) {
        float v = (bf16_to_f32(in[j]) - mean) * inv;
        if (weight) v *= bf16_to_f32(weight[j]);
        if (bias) v += bf16_to_f32(bias[j]);
        if (scale) v *= 1.0f + bf16_to_f32(scale[b * dim + j]);
        if (shift) v += bf16_to_f32(shift[b * dim + j]);
        out[j] = f32_to_bf16(v);
    }
}

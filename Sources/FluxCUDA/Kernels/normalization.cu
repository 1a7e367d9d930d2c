// normalization.cu — normalisation over the last axis of bf16 rows, f32 math.
//
//   mode 0, layer norm:  y = (x − mean) / √(var + eps)           var biased (÷ D), as torch.nn.LayerNorm
//   mode 1, RMS norm:    y = x / √(mean(x²) + eps)
//   then, each optional (null pointer = absent):
//     y = y · weight[j] + bias[j]                                 weight, bias (D)
//     y = y · (1 + scale[b, j]) + shift[b, j],  b = row / seq     shift, scale (B, D): AdaLN modulation
//
// x, y: rows × D, row-major. Launch: one warp per row, 8 warps (256 threads) per block, grid ⌈rows / 8⌉ (x) — rows may
// be any count, D any size (each lane strides over the row). Three passes over the row (mean, variance, write); the
// second and third hit L1/L2. Variance is Σ(x − mean)², not E[x²] − mean², so large means do not cancel.
#include "common.cuh"

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

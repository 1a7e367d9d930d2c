// softmax.cu — the middle step of attention run as batched matrix products (T5's biased attention, CLIP's causal
// mask): cuBLASLt writes the raw scores s = q·kᵀ in f32, this kernel turns them into probabilities, and cuBLASLt
// multiplies those by v. The probabilities go out as two bf16 arrays whose sum carries 16 significant bits,
// p ≈ p_hi + p_lo, and the caller multiplies both by v into one f32 output: as accurate as f32 probabilities
// (the products accumulate in f32), with bf16 operands.
//
//   p[h, i, j] = exp(t_ij − max_j t) / Σ_j exp(t_ij − max_j t),   t_ij = scale · s[h, i, j] + bias[h, i, j]
//   p_hi = bf16(p), p_lo = bf16(p − p_hi)
//   with t_ij = −∞ for j > i when causal; bias (H, Sq, Sk) bf16 optional (null). A row with no finite t (only
//   through a −∞ bias) comes out as 0, as in attention.cu.
//
// s (H, Sq, ld) f32, p_hi and p_lo (H, Sq, ld) bf16, rows padded to ld ≥ Sk (a multiple of 8, so every row starts
// 16-byte aligned for cuBLASLt); columns Sk..<ld are not written. Launch: one warp per row (h, i), 8 rows per
// 256-thread block, grid ⌈H·Sq / 8⌉. Three passes over the row (max, sum, write), the second and third from L1.
#include "common.cuh"

extern "C" __global__ void softmax_scores_bf16(const float* __restrict__ s, const bf16* __restrict__ bias,
                                               bf16* __restrict__ p_hi, bf16* __restrict__ p_lo, int heads, int sq,
                                               int sk, int ld, float scale, int causal) {
    const int lane = threadIdx.x & 31;
    const long long row = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= (long long)heads * sq) return;
    const int i = (int)(row % sq);
    const float* in = s + row * ld;
    const bf16* b = bias ? bias + row * sk : nullptr;   // (h·Sq + i)·Sk: row-major (H, Sq, Sk)
    bf16* hi = p_hi + row * ld;
    bf16* lo = p_lo + row * ld;
    const int last = causal ? min(sk, i + 1) : sk;     // keys j < last take part

    float m = NEG_INF;
    for (int j = lane; j < last; j += 32) m = fmaxf(m, scale * in[j] + (b ? bf16_to_f32(b[j]) : 0.0f));
    m = warp_max(m);
    float sum = 0.0f;
    if (m != NEG_INF)
        for (int j = lane; j < last; j += 32) sum += expf(scale * in[j] + (b ? bf16_to_f32(b[j]) : 0.0f) - m);
    sum = warp_sum(sum);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int j = lane; j < sk; j += 32) {
        const float t = j < last ? scale * in[j] + (b ? bf16_to_f32(b[j]) : 0.0f) : NEG_INF;
        const float value = m == NEG_INF || t == NEG_INF ? 0.0f : expf(t - m) * inv;
        const bf16 rounded = f32_to_bf16(value);
        hi[j] = rounded;
        lo[j] = f32_to_bf16(value - bf16_to_f32(rounded));
    }
}

// attention.cu — exact softmax attention, simple and correct first (CUDA cores, f32 math, online softmax).
//
//   y[b, i, h, :] = Σ_j softmax_j(s_ij) · v[b, j, h, :],   s_ij = scale · q[b, i, h, :]·k[b, j, h, :] + bias[h, i, j]
//   with s_ij = −∞ for j > i when causal. bias (H, Sq, Sk) optional (null), shared over the batch.
//
// q, y (B, Sq, H, D); k, v (B, Sk, H, D); all bf16 row-major, so head h of token t starts at (t·H + h)·D.
// D may be odd. Two entry points of one template: attention_bf16 for D ≤ 256 (8 output columns per lane) and
// attention_wide_bf16 for D ≤ 512 (16 per lane: the VAE's single-head mid-block attention over 512 channels).
//
// Launch: grid (⌈Sq / 16⌉, H, B), 128 threads = 4 warps; each warp owns 4 query rows of the block's 16.
// Dynamic shared memory: K and V tiles of 32 keys × P bf16 (P = 4⌈D/4⌉ + 2: even, so rows hold aligned bf16 pairs,
// and P/2 odd, so the 32 lanes reading 32 different key rows hit 32 different banks), plus the block's 16 query rows
// of DE = 2⌈D/2⌉ bf16. Bytes: 2·(2·32·P + 16·DE) — above 48 KB for D > 256, which the launcher allows per kernel.
// Per key tile: lane l scores key k0 + l for each of its warp's rows (a D-long dot product from shared memory), the
// warp reduces the row maximum and sum with shuffles, rescales its running output (flash-attention's online
// softmax: m, l, acc per row), then accumulates p_j · v_j with p_j broadcast by shuffle; lane l owns output columns
// l, l + 32, ... Rows with no unmasked key (possible only through a −∞ bias) come out as 0.
#include "common.cuh"

#define ATT_WARPS 4
#define ATT_ROWS 4
#define ATT_BQ (ATT_WARPS * ATT_ROWS)
#define ATT_BK 32

__device__ __forceinline__ float lo_bf16(unsigned int w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float hi_bf16(unsigned int w) { return __uint_as_float(w & 0xffff0000u); }

template <int ATT_MAXC>
__device__ __forceinline__ void attention_body(
    const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const bf16* __restrict__ bias, bf16* __restrict__ y, int sq, int sk, int heads, int dim, float scale, int causal) {
    extern __shared__ unsigned int shared_words[];
    const int P = 4 * ((dim + 3) / 4) + 2, DE = 2 * ((dim + 1) / 2);
    bf16* Ks = (bf16*)shared_words;
    bf16* Vs = Ks + ATT_BK * P;
    bf16* Qs = Vs + ATT_BK * P;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int q0 = blockIdx.x * ATT_BQ, h = blockIdx.y, b = blockIdx.z;
    const long long token_stride = (long long)heads * dim;
    const bf16* qb = q + ((long long)b * sq) * token_stride + (long long)h * dim;
    const bf16* kb = k + ((long long)b * sk) * token_stride + (long long)h * dim;
    const bf16* vb = v + ((long long)b * sk) * token_stride + (long long)h * dim;

    for (int idx = threadIdx.x; idx < ATT_BQ * DE; idx += blockDim.x) {
        const int r = idx / DE, d = idx - r * DE;
        Qs[r * DE + d] = (q0 + r < sq && d < dim) ? qb[(long long)(q0 + r) * token_stride + d] : (bf16)0;
    }

    float m[ATT_ROWS], l[ATT_ROWS], acc[ATT_ROWS][ATT_MAXC];
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
        m[r] = NEG_INF;
        l[r] = 0.0f;
#pragma unroll
        for (int c = 0; c < ATT_MAXC; c++) acc[r][c] = 0.0f;
    }

    const int last_query = min(q0 + ATT_BQ, sq) - 1;
    for (int k0 = 0; k0 < sk; k0 += ATT_BK) {
        if (causal && k0 > last_query) break;
        __syncthreads();
        for (int idx = threadIdx.x; idx < ATT_BK * DE; idx += blockDim.x) {
            const int j = idx / DE, d = idx - j * DE;
            const bool inside = k0 + j < sk && d < dim;
            const long long at = (long long)(k0 + j) * token_stride + d;
            Ks[j * P + d] = inside ? kb[at] : (bf16)0;
            Vs[j * P + d] = inside ? vb[at] : (bf16)0;
        }
        __syncthreads();

        const int j = k0 + lane;
        const unsigned int* krow = (const unsigned int*)(Ks + lane * P);
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) {
            const int row = warp * ATT_ROWS + r, i = q0 + row;
            if (i >= sq) continue;
            float s = NEG_INF;
            if (j < sk && !(causal && j > i)) {
                const unsigned int* qrow = (const unsigned int*)(Qs + row * DE);
                float dot = 0.0f;
                for (int w = 0; w < DE / 2; w++) {
                    const unsigned int a = qrow[w], c = krow[w];
                    dot = fmaf(lo_bf16(a), lo_bf16(c), dot);
                    dot = fmaf(hi_bf16(a), hi_bf16(c), dot);
                }
                s = dot * scale;
                if (bias) s += bf16_to_f32(bias[((long long)h * sq + i) * sk + j]);
            }
            const float m_new = fmaxf(m[r], warp_max(s));
            if (m_new == NEG_INF) continue;
            const float p = s == NEG_INF ? 0.0f : expf(s - m_new);
            const float correction = m[r] == NEG_INF ? 0.0f : expf(m[r] - m_new);
            l[r] = l[r] * correction + warp_sum(p);
            m[r] = m_new;
#pragma unroll
            for (int c = 0; c < ATT_MAXC; c++) acc[r][c] *= correction;
            for (int jj = 0; jj < ATT_BK; jj++) {
                const float pj = __shfl_sync(0xffffffffu, p, jj);
                if (pj == 0.0f) continue;
                const bf16* vrow = Vs + jj * P;
#pragma unroll
                for (int c = 0; c < ATT_MAXC; c++) {
                    const int d = lane + 32 * c;
                    if (d < dim) acc[r][c] = fmaf(pj, bf16_to_f32(vrow[d]), acc[r][c]);
                }
            }
        }
    }

#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
        const int i = q0 + warp * ATT_ROWS + r;
        if (i >= sq) continue;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        bf16* out = y + ((long long)b * sq + i) * token_stride + (long long)h * dim;
#pragma unroll
        for (int c = 0; c < ATT_MAXC; c++) {
            const int d = lane + 32 * c;
            if (d < dim) out[d] = f32_to_bf16(acc[r][c] * inv);
        }
    }
}

extern "C" __global__ void __launch_bounds__(128) attention_bf16(
    const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const bf16* __restrict__ bias, bf16* __restrict__ y, int sq, int sk, int heads, int dim, float scale, int causal) {
    attention_body<8>(q, k, v, bias, y, sq, sk, heads, dim, scale, causal);
}

extern "C" __global__ void __launch_bounds__(128) attention_wide_bf16(
    const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const bf16* __restrict__ bias, bf16* __restrict__ y, int sq, int sk, int heads, int dim, float scale, int causal) {
    attention_body<16>(q, k, v, bias, y, sq, sk, heads, dim, scale, causal);
}

// attention_inputs.cu — FLUX attention inputs from one stream's fused q/k/v projection, in one pass
// (the split into heads, QKNorm, RoPE and the join of the streams, which would otherwise be ten passes).
//
//   qkv (B, S, 3·H·D) bf16. Token t = (b, s), component c (0 q, 1 k, 2 v), head h: x = qkv[b, s, (c·H + h)·D ..][D]
//   q, k:  n_d = x_d / √(Σ_d x_d² / D + eps) · scale_c[d]            per-head RMSNorm (BFL QKNorm), f32
//          (y_2i, y_2i+1) = (n_2i·cos − n_2i+1·sin, n_2i+1·cos + n_2i·sin),  cos, sin = table[s0 + s, i]   RoPE
//   v:     y = x
//   y goes to out_c[b, s0 + s, h, :] (out_c (B, S_total, H, D)): the stream's place in the joint sequence, s0 the
//   length of the streams before it. Rounded to bf16 once.
//
// Launch: rows r < B·S·3·H in the order (b, s, c, h) of qkv memory. A group of G lanes per row (32/G rows per warp),
// 256 threads per block, grid ⌈rows / (8·32/G)⌉. Lanes take chunks of V elements: V = 8 (16-byte accesses, the
// attention_inputs_x8 entry, D % 8 == 0) or V = 2 (one rotary pair, attention_inputs_x2, any even D); chunk j = lane
// in group, + G, ... < D/V, G = D/V when that is a power of two ≤ 32, else 32. Sum of squares: xor shuffles over the
// group (every lane takes part, rows past the end included, so the full-warp mask holds); the row is read twice,
// the second time from L1.
// attention_inputs_rows4_bf16, when D/8 is a power of two ≤ 32 (FLUX's D = 128: 16 lanes a row): each lane group
// takes 4 consecutive rows and issues all their 16-byte loads before the first reduction, keeping the values in
// registers for the write; 4× fewer, longer-lived blocks and 4 loads in flight per thread. Grid ⌈rows / (4·8·32/G)⌉.
#include "common.cuh"

template <int V> __device__ __forceinline__ void load_chunk(const bf16* p, float* f) {
    if (V == 8) {
        unpack8(*(const uint4*)p, f);
    } else {
        const unsigned int w = *(const unsigned int*)p;
        f[0] = __uint_as_float(w << 16);
        f[1] = __uint_as_float(w & 0xffff0000u);
    }
}

template <int V> __device__ __forceinline__ void load_half(const bf16* p, float* f) {
    if (V == 8) unpack4(*(const uint2*)p, f);
    else f[0] = bf16_to_f32(p[0]);
}

template <int V> __device__ __forceinline__ void store_chunk(bf16* p, const float* f) {
    if (V == 8) *(uint4*)p = pack8(f);
    else *(unsigned int*)p = pack2(f[0], f[1]);
}

// Where row r of qkv (order (b, s, c, h)) goes: component c, and the offset of its head's first channel in
// out_c (B, S_total, H, D), the stream placed at s0; `s` is the token's position in its stream (the RoPE table row
// is s0 + s).
struct RowPlace {
    int c, s;
    long long out_offset;
};

__device__ __forceinline__ RowPlace row_place(long long r, int seq, int total, int s0, int heads, int dim) {
    const int h = (int)(r % heads), c = (int)((r / heads) % 3);
    const long long token = r / (3LL * heads), b = token / seq;
    const int s = (int)(token - b * seq);
    return {c, s, ((b * total + s0 + s) * heads + h) * (long long)dim};
}

// RMSNorm (1/rms `inv`, scales w) then RoPE on P interleaved pairs: f, w, y hold 2P values, cs and sn P.
template <int P>
__device__ __forceinline__ void norm_rotate(const float* f, float inv, const float* w, const float* cs, const float* sn,
                                            float* y) {
#pragma unroll
    for (int p = 0; p < P; p++) {
        const float re = f[2 * p] * inv * w[2 * p], im = f[2 * p + 1] * inv * w[2 * p + 1];
        y[2 * p] = re * cs[p] - im * sn[p];
        y[2 * p + 1] = im * cs[p] + re * sn[p];
    }
}

template <int V>
__device__ __forceinline__ void attention_inputs_body(
    const bf16* __restrict__ qkv, const bf16* __restrict__ query_scale, const bf16* __restrict__ key_scale,
    const bf16* __restrict__ cosines, const bf16* __restrict__ sines, bf16* __restrict__ q, bf16* __restrict__ k,
    bf16* __restrict__ v, long long rows, int seq, int total, int s0, int heads, int dim, int group, float eps) {
    const int lane = threadIdx.x & 31, sub = lane & (group - 1);
    const long long warp = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
    const long long row = warp * (32 / group) + lane / group;
    const bool active = row < rows;
    const long long r = active ? row : 0;
    const RowPlace place = row_place(r, seq, total, s0, heads, dim);
    const int c = place.c, s = place.s;
    const bf16* in = qkv + r * dim;  // rows are contiguous in qkv memory
    const int chunks = dim / V;

    float squares = 0.0f;
    for (int j = sub; j < chunks; j += group) {
        float f[V];
        load_chunk<V>(in + j * V, f);
#pragma unroll
        for (int e = 0; e < V; e++) squares += f[e] * f[e];
    }
    for (int o = group >> 1; o > 0; o >>= 1) squares += __shfl_xor_sync(0xffffffffu, squares, o);
    if (!active) return;

    const long long out_offset = place.out_offset;
    if (c == 2) {
        for (int j = sub; j < chunks; j += group) {
            if (V == 8) *(uint4*)(v + out_offset + j * V) = *(const uint4*)(in + j * V);
            else *(unsigned int*)(v + out_offset + j * V) = *(const unsigned int*)(in + j * V);
        }
        return;
    }
    const float inv = rsqrtf(squares / dim + eps);
    const bf16* scale = c == 0 ? query_scale : key_scale;
    bf16* out = (c == 0 ? q : k) + out_offset;
    const long long table_row = (long long)(s0 + s) * (dim / 2);
    for (int j = sub; j < chunks; j += group) {
        float f[V], w[V], cs[V / 2], sn[V / 2], y[V];
        load_chunk<V>(in + j * V, f);
        load_chunk<V>(scale + j * V, w);
        load_half<V>(cosines + table_row + j * (V / 2), cs);
        load_half<V>(sines + table_row + j * (V / 2), sn);
        norm_rotate<V / 2>(f, inv, w, cs, sn, y);
        store_chunk<V>(out + j * V, y);
    }
}

extern "C" __global__ void attention_inputs_x8_bf16(
    const bf16* __restrict__ qkv, const bf16* __restrict__ query_scale, const bf16* __restrict__ key_scale,
    const bf16* __restrict__ cosines, const bf16* __restrict__ sines, bf16* __restrict__ q, bf16* __restrict__ k,
    bf16* __restrict__ v, long long rows, int seq, int total, int s0, int heads, int dim, int group, float eps) {
    attention_inputs_body<8>(qkv, query_scale, key_scale, cosines, sines, q, k, v, rows, seq, total, s0, heads, dim,
                             group, eps);
}

extern "C" __global__ void attention_inputs_x2_bf16(
    const bf16* __restrict__ qkv, const bf16* __restrict__ query_scale, const bf16* __restrict__ key_scale,
    const bf16* __restrict__ cosines, const bf16* __restrict__ sines, bf16* __restrict__ q, bf16* __restrict__ k,
    bf16* __restrict__ v, long long rows, int seq, int total, int s0, int heads, int dim, int group, float eps) {
    attention_inputs_body<2>(qkv, query_scale, key_scale, cosines, sines, q, k, v, rows, seq, total, s0, heads, dim,
                             group, eps);
}

template <int R>
__device__ __forceinline__ void attention_inputs_rows_body(
    const bf16* __restrict__ qkv, const bf16* __restrict__ query_scale, const bf16* __restrict__ key_scale,
    const bf16* __restrict__ cosines, const bf16* __restrict__ sines, bf16* __restrict__ q, bf16* __restrict__ k,
    bf16* __restrict__ v, long long rows, int seq, int total, int s0, int heads, int dim, int group, float eps) {
    const int lane = threadIdx.x & 31, sub = lane & (group - 1);
    const long long warp = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
    const long long first = (warp * (32 / group) + lane / group) * R;
    float f[R][8], squares[R];
#pragma unroll
    for (int i = 0; i < R; i++) {
        // Rows are contiguous in qkv memory: row r starts at r·D.
        if (first + i < rows) {
            unpack8(*(const uint4*)(qkv + (first + i) * dim + sub * 8), f[i]);
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++) f[i][e] = 0.0f;
        }
    }
#pragma unroll
    for (int i = 0; i < R; i++) {
        squares[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++) squares[i] += f[i][e] * f[i][e];
    }
    for (int o = group >> 1; o > 0; o >>= 1) {
#pragma unroll
        for (int i = 0; i < R; i++) squares[i] += __shfl_xor_sync(0xffffffffu, squares[i], o);
    }
#pragma unroll
    for (int i = 0; i < R; i++) {
        const long long row = first + i;
        if (row >= rows) break;
        const RowPlace place = row_place(row, seq, total, s0, heads, dim);
        const int c = place.c, s = place.s;
        const long long out_offset = place.out_offset + sub * 8;
        if (c == 2) {
            *(uint4*)(v + out_offset) = pack8(f[i]);  // bf16 → f32 → bf16 is exact
            continue;
        }
        const float inv = rsqrtf(squares[i] / dim + eps);
        float w[8], cs[4], sn[4], y[8];
        unpack8(*(const uint4*)((c == 0 ? query_scale : key_scale) + sub * 8), w);
        const long long table = (long long)(s0 + s) * (dim / 2) + sub * 4;
        unpack4(*(const uint2*)(cosines + table), cs);
        unpack4(*(const uint2*)(sines + table), sn);
        norm_rotate<4>(f[i], inv, w, cs, sn, y);
        *(uint4*)((c == 0 ? q : k) + out_offset) = pack8(y);
    }
}

extern "C" __global__ void attention_inputs_rows4_bf16(
    const bf16* __restrict__ qkv, const bf16* __restrict__ query_scale, const bf16* __restrict__ key_scale,
    const bf16* __restrict__ cosines, const bf16* __restrict__ sines, bf16* __restrict__ q, bf16* __restrict__ k,
    bf16* __restrict__ v, long long rows, int seq, int total, int s0, int heads, int dim, int group, float eps) {
    attention_inputs_rows_body<4>(qkv, query_scale, key_scale, cosines, sines, q, k, v, rows, seq, total, s0, heads,
                                  dim, group, eps);
}

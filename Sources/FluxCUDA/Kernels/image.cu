// image.cu — image ops on NCHW bf16 tensors (the VAE), f32 math.
//
//   im2col: cols[(c·kh + dy)·kw + dx, oy·Wo + ox] = x[b, c, oy·stride + dy − top, ox·stride + dx − left] (0 outside)
//           cols (Cin·kh·kw, Ho·Wo) row-major for one image b; conv2d's fallback is then out (Cout, Ho·Wo) =
//           W (Cout, Cin·kh·kw) · cols, by cuBLASLt (or the fallback GEMM); the channel bias is added by
//           bias_activation_f32_bf16 (elementwise.cu) from cuBLASLt's f32 product, so it rounds once.
//   transpose_pad: y[b, j, i] = i < rows ? x[b, i, j] : 0   for j < cols, i < ld_y
//           x rows ld_x apart (only the first `cols` of each read), y rows ld_y apart (ld_y ≥ rows: the extra
//           entries are zeros), images batch_x / batch_y apart. conv2d's channels-last path uses it three ways:
//             NCHW → NHWC with channels padded to Cp:  x (B, C, HW) rows C, cols HW, ld_x HW, ld_y Cp
//             NHWC (Kp channels) → NCHW:             x (B, HW, Kp) rows HW, cols K, ld_x Kp, ld_y HW
//             weights (K, C, R·S) → (K, R·S, Cp):    batch K, rows C, cols R·S, ld_x R·S, ld_y Cp
//           Tiles of 32 × 32 through shared memory (coalesced reads along j, writes along i); the _pairs variant
//           tiles 64 × 64 and moves two bf16 (4 bytes) per access, for even ld_x, ld_y and batch strides.
//   fill_channels: y[i] = c < valid ? bias[c] : 0,  c = (i / inner) % channels — the bias as the starting value of a
//           convolution that accumulates into y (NCHW: inner H·W, channels K; NHWC: inner 1, channels Kp, valid K).
//   group_stats: stats[2g] += Σ x, stats[2g+1] += Σ x²  over group g = (b, group) of C/G channels × P positions,
//           stats f64 zeroed by the launcher; grid (chunks, B·G): many blocks per group, each adds its f64 partial sums
//           with atomicAdd (f64 sums, so E[x²] − mean² keeps its precision for bf16 data). _vec8: 16-byte loads,
//           for groups of a multiple of 8 elements.
//   group_norm_apply: y = act((x − mean_g) / √(var_g + eps) · weight[c] + bias[c]),  var biased, as torch GroupNorm.
//           _planes: grid (chunks, B·C), one channel plane per blockIdx.y, the plane's scale and shift computed once
//           per block, 16-byte loads and stores (H·W a multiple of 8).
//   upsample_nearest: y[b, c, oy, ox] = x[b, c, oy / f, ox / f].  _x2: factor 2, W a multiple of 4: each thread
//           reads 4 inputs (8 bytes) and writes the 8 outputs of one row (16 bytes).
//   max_abs_diff: out[0] = max |a − b| (NaN counts as +∞), out[1] = max |b|, as f32 bit patterns raised with
//           atomicMax (non-negative floats order like their bits); out zeroed by the launcher. For checks only.
//
// Launch: grid-stride loops of 256 threads, except group_stats (grid (chunks, B·G), 256 threads, f64 block
// reduction), group_norm_apply_planes (grid (chunks, B·C)) and transpose_pad (grid (tiles, 1, B), block (32, 8)).
#include "common.cuh"

// Eight bf16 in one 16-byte word (this file's own helpers, so it depends on nothing but the basics of common.cuh).
__device__ __forceinline__ void image_unpack8(uint4 w, float* f) {
    f[0] = __uint_as_float(w.x << 16); f[1] = __uint_as_float(w.x & 0xffff0000u);
    f[2] = __uint_as_float(w.y << 16); f[3] = __uint_as_float(w.y & 0xffff0000u);
    f[4] = __uint_as_float(w.z << 16); f[5] = __uint_as_float(w.z & 0xffff0000u);
    f[6] = __uint_as_float(w.w << 16); f[7] = __uint_as_float(w.w & 0xffff0000u);
}

__device__ __forceinline__ unsigned int image_pack2(float lo, float hi) {
    return (unsigned int)f32_to_bf16(lo) | ((unsigned int)f32_to_bf16(hi) << 16);
}

extern "C" __global__ void im2col_bf16(const bf16* __restrict__ x, bf16* __restrict__ cols, int channels, int height,
                                       int width, int kh, int kw, int stride, int top, int left, int out_h, int out_w) {
    const long long pixels = (long long)out_h * out_w;
    const long long n = (long long)channels * kh * kw * pixels;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long row = i / pixels, p = i - row * pixels;
        const int c = (int)(row / (kh * kw)), dy = (int)((row / kw) % kh), dx = (int)(row % kw);
        const int oy = (int)(p / out_w), ox = (int)(p % out_w);
        const int iy = oy * stride + dy - top, ix = ox * stride + dx - left;
        cols[i] = (iy >= 0 && iy < height && ix >= 0 && ix < width)
                      ? x[((long long)c * height + iy) * width + ix] : (bf16)0;
    }
}

// Tile (i0, j0) of image blockIdx.z: grid.x enumerates tiles_i × tiles_j tiles, j fastest.
extern "C" __global__ void transpose_pad_bf16(const bf16* __restrict__ x, bf16* __restrict__ y, int rows, int cols,
                                              long long ld_x, long long ld_y, long long batch_x, long long batch_y,
                                              int tiles_j) {
    __shared__ unsigned int tile[32][33];
    const long long i0 = (long long)(blockIdx.x / tiles_j) * 32, j0 = (long long)(blockIdx.x % tiles_j) * 32;
    const bf16* xb = x + blockIdx.z * batch_x;
    bf16* yb = y + blockIdx.z * batch_y;
    const int tx = threadIdx.x, ty = threadIdx.y;
#pragma unroll
    for (int k = 0; k < 32; k += 8) {
        const long long i = i0 + ty + k, j = j0 + tx;
        tile[ty + k][tx] = (i < rows && j < cols) ? xb[i * ld_x + j] : 0u;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 32; k += 8) {
        const long long j = j0 + ty + k, i = i0 + tx;
        if (j < cols && i < ld_y) yb[j * ld_y + i] = (bf16)tile[tx][ty + k];
    }
}

// The same map with 64 × 64 tiles and 4-byte accesses: needs ld_x, ld_y, batch_x, batch_y even (so every pair
// starts 4-byte aligned); cols and rows may be odd (a lone last element is moved on its own).
extern "C" __global__ void transpose_pad_pairs_bf16(const bf16* __restrict__ x, bf16* __restrict__ y, int rows,
                                                    int cols, long long ld_x, long long ld_y, long long batch_x,
                                                    long long batch_y, int tiles_j) {
    __shared__ bf16 tile[64][66];
    const long long i0 = (long long)(blockIdx.x / tiles_j) * 64, j0 = (long long)(blockIdx.x % tiles_j) * 64;
    const bf16* xb = x + blockIdx.z * batch_x;
    bf16* yb = y + blockIdx.z * batch_y;
    const int tx = threadIdx.x, ty = threadIdx.y;
#pragma unroll
    for (int k = 0; k < 64; k += 8) {
        const long long i = i0 + ty + k, j = j0 + 2 * tx;
        unsigned int pair = 0u;
        if (i < rows) {
            if (j + 1 < cols) pair = *(const unsigned int*)(xb + i * ld_x + j);
            else if (j < cols) pair = xb[i * ld_x + j];
        }
        tile[ty + k][2 * tx] = (bf16)(pair & 0xffffu);
        tile[ty + k][2 * tx + 1] = (bf16)(pair >> 16);
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 64; k += 8) {
        const long long j = j0 + ty + k, i = i0 + 2 * tx;
        if (j >= cols || i >= ld_y) continue;
        const unsigned int lo = tile[2 * tx][ty + k], hi = tile[2 * tx + 1][ty + k];
        if (i + 1 < ld_y) *(unsigned int*)(yb + j * ld_y + i) = lo | (hi << 16);
        else yb[j * ld_y + i] = (bf16)lo;
    }
}

extern "C" __global__ void fill_channels_bf16(bf16* __restrict__ y, const bf16* __restrict__ bias, long long n,
                                              long long inner, int channels, int valid) {
    if ((n & 7) == 0) {
        for (long long v = blockIdx.x * (long long)blockDim.x + threadIdx.x; v < (n >> 3);
             v += (long long)gridDim.x * blockDim.x) {
            unsigned short h[8];
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const int c = (int)(((v * 8 + e) / inner) % channels);
                h[e] = c < valid ? bias[c] : (bf16)0;
            }
            uint4 w;
            w.x = h[0] | ((unsigned int)h[1] << 16); w.y = h[2] | ((unsigned int)h[3] << 16);
            w.z = h[4] | ((unsigned int)h[5] << 16); w.w = h[6] | ((unsigned int)h[7] << 16);
            ((uint4*)y)[v] = w;
        }
        return;
    }
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const int c = (int)((i / inner) % channels);
        y[i] = c < valid ? bias[c] : (bf16)0;
    }
}

// f64 sums of one block into stats[2g], stats[2g + 1].
__device__ __forceinline__ void group_stats_commit(double s, double ss, double* __restrict__ stats, long long g) {
    __shared__ double sums[256], squares[256];
    sums[threadIdx.x] = s;
    squares[threadIdx.x] = ss;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) {
            sums[threadIdx.x] += sums[threadIdx.x + stride];
            squares[threadIdx.x] += squares[threadIdx.x + stride];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        atomicAdd(&stats[2 * g], sums[0]);
        atomicAdd(&stats[2 * g + 1], squares[0]);
    }
}

extern "C" __global__ void group_stats_bf16(const bf16* __restrict__ x, long long per_group, double* __restrict__ stats) {
    const long long g = blockIdx.y;
    const bf16* base = x + g * per_group;
    double s = 0.0, ss = 0.0;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < per_group;
         i += (long long)gridDim.x * blockDim.x) {
        const double v = bf16_to_f32(base[i]);
        s += v;
        ss += v * v;
    }
    group_stats_commit(s, ss, stats, g);
}

// per_group a multiple of 8: each thread sums 8 values in f32 (exact enough: 8 bf16 values and their squares), then
// adds them to its f64 sums.
extern "C" __global__ void group_stats_vec8_bf16(const bf16* __restrict__ x, long long per_group,
                                                 double* __restrict__ stats) {
    const long long g = blockIdx.y;
    const uint4* base = (const uint4*)(x + g * per_group);
    const long long vectors = per_group >> 3;
    double s = 0.0, ss = 0.0;
    for (long long v = blockIdx.x * (long long)blockDim.x + threadIdx.x; v < vectors;
         v += (long long)gridDim.x * blockDim.x) {
        float f[8];
        image_unpack8(base[v], f);
        float a = 0.0f, q = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++) {
            a += f[e];
            q = fmaf(f[e], f[e], q);
        }
        s += a;
        ss += q;
    }
    group_stats_commit(s, ss, stats, g);
}

extern "C" __global__ void group_norm_apply_bf16(const bf16* __restrict__ x, bf16* __restrict__ y,
                                                 const double* __restrict__ stats, const bf16* __restrict__ weight,
                                                 const bf16* __restrict__ bias, long long n, int channels, int groups,
                                                 long long spatial, float eps, int act) {
    const long long per_group = (long long)(channels / groups) * spatial;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long g = i / per_group;  // (b, group) index
        const int c = (int)((i / spatial) % channels);
        const double mean = stats[2 * g] / per_group;
        const double var = fmax(stats[2 * g + 1] / per_group - mean * mean, 0.0);
        const float inv = rsqrtf((float)var + eps);
        const float v = (bf16_to_f32(x[i]) - (float)mean) * inv * bf16_to_f32(weight[c]) + bf16_to_f32(bias[c]);
        y[i] = f32_to_bf16(activate(v, act));
    }
}

// One (b, c) plane per blockIdx.y; spatial a multiple of 8. The same formula as group_norm_apply: the plane's
// scale inv·weight[c] is formed once, (x − mean) is taken first.
extern "C" __global__ void group_norm_apply_planes_bf16(const bf16* __restrict__ x, bf16* __restrict__ y,
                                                        const double* __restrict__ stats,
                                                        const bf16* __restrict__ weight, const bf16* __restrict__ bias,
                                                        int channels, int groups, long long spatial, float eps,
                                                        int act) {
    const long long plane = blockIdx.y;
    const int c = (int)(plane % channels);
    const long long g = (plane / channels) * groups + c / (channels / groups);
    const long long per_group = (long long)(channels / groups) * spatial;
    const double mean = stats[2 * g] / per_group;
    const double var = fmax(stats[2 * g + 1] / per_group - mean * mean, 0.0);
    const float inv = rsqrtf((float)var + eps);
    const float m = (float)mean, scale = inv * bf16_to_f32(weight[c]), shift = bf16_to_f32(bias[c]);
    const uint4* in = (const uint4*)(x + plane * spatial);
    uint4* out = (uint4*)(y + plane * spatial);
    const long long vectors = spatial >> 3;
    for (long long v = blockIdx.x * (long long)blockDim.x + threadIdx.x; v < vectors;
         v += (long long)gridDim.x * blockDim.x) {
        float f[8];
        image_unpack8(in[v], f);
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = activate((f[e] - m) * scale + shift, act);
        uint4 w;
        w.x = image_pack2(f[0], f[1]); w.y = image_pack2(f[2], f[3]);
        w.z = image_pack2(f[4], f[5]); w.w = image_pack2(f[6], f[7]);
        out[v] = w;
    }
}

extern "C" __global__ void upsample_nearest_bf16(const bf16* __restrict__ x, bf16* __restrict__ y, long long planes,
                                                 int height, int width, int factor) {
    const long long out_w = (long long)width * factor, out_plane = (long long)height * factor * out_w;
    const long long n = planes * out_plane;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long plane = i / out_plane, r = i - plane * out_plane;
        const long long oy = r / out_w, ox = r - oy * out_w;
        y[i] = x[(plane * height + oy / factor) * width + ox / factor];
    }
}

// Factor 2, width a multiple of 4: thread v writes output row r = v / (W / 4) (of all planes' 2H rows), columns
// 8q … 8q + 7 with q = v % (W / 4), from input columns 4q … 4q + 3 of row r / 2.
extern "C" __global__ void upsample_nearest_x2_bf16(const bf16* __restrict__ x, bf16* __restrict__ y,
                                                    long long out_rows, int width) {
    const long long quads = width >> 2, n = out_rows * quads;
    for (long long v = blockIdx.x * (long long)blockDim.x + threadIdx.x; v < n; v += (long long)gridDim.x * blockDim.x) {
        const long long r = v / quads, q = v - r * quads;
        // Output row r of the stacked planes is input row r / 2 of them (each plane's 2H rows map onto its H).
        const uint2 in = *(const uint2*)(x + (r >> 1) * width + 4 * q);
        uint4 w;
        w.x = (in.x & 0xffffu) | (in.x << 16);
        w.y = (in.x >> 16) | (in.x & 0xffff0000u);
        w.z = (in.y & 0xffffu) | (in.y << 16);
        w.w = (in.y >> 16) | (in.y & 0xffff0000u);
        *(uint4*)(y + r * 2 * width + 8 * q) = w;
    }
}

extern "C" __global__ void max_abs_diff_bf16(const bf16* __restrict__ a, const bf16* __restrict__ b, long long n,
                                             unsigned int* __restrict__ out) {
    float diff = 0.0f, scale = 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float u = bf16_to_f32(a[i]), v = bf16_to_f32(b[i]);
        const float d = fabsf(u - v);
        diff = (d != d || u != u) ? POS_INF : fmaxf(diff, d);
        scale = fmaxf(scale, fabsf(v));
    }
    diff = warp_max(diff);
    scale = warp_max(scale);
    if ((threadIdx.x & 31) == 0) {
        atomicMax(&out[0], __float_as_uint(diff));
        atomicMax(&out[1], __float_as_uint(scale));
    }
}

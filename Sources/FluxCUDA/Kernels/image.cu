// image.cu — image ops on NCHW bf16 tensors (the VAE), f32 math.
//
//   im2col: cols[(c·kh + dy)·kw + dx, oy·Wo + ox] = x[b, c, oy·stride + dy − top, ox·stride + dx − left] (0 outside)
//           cols (Cin·kh·kw, Ho·Wo) row-major for one image b; conv2d is then out (Cout, Ho·Wo) = W (Cout, Cin·kh·kw)
//           · cols, by cuBLASLt (or the fallback GEMM); the channel bias is added by bias_activation_f32_bf16
//           (elementwise.cu) from cuBLASLt's f32 product, so it rounds once.
//   group_stats: stats[2g] += Σ x, stats[2g+1] += Σ x²  over group g = (b, group) of C/G channels × P positions,
//           stats f64 zeroed by the launcher; grid (chunks, B·G): many blocks per group, each adds its f64 partial sums
//           with atomicAdd (f64 sums, so E[x²] − mean² keeps its precision for bf16 data).
//   group_norm_apply: y = act((x − mean_g) / √(var_g + eps) · weight[c] + bias[c]),  var biased, as torch GroupNorm
//   upsample_nearest: y[b, c, oy, ox] = x[b, c, oy / f, ox / f]
//
// Launch: grid-stride loops of 256 threads, except group_stats (grid (chunks, B·G), 256 threads, f64 block reduction).
#include "common.cuh"

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

extern "C" __global__ void group_stats_bf16(const bf16* __restrict__ x, long long per_group, double* __restrict__ stats) {
    __shared__ double sums[256], squares[256];
    const long long g = blockIdx.y;
    const bf16* base = x + g * per_group;
    double s = 0.0, ss = 0.0;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < per_group;
         i += (long long)gridDim.x * blockDim.x) {
        const double v = bf16_to_f32(base[i]);
        s += v;
        ss += v * v;
    }
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

// gemm.cu — fallback matrix product for `linear` and `conv2d` when cuBLASLt is absent or has no algorithm for a shape.
//
//   y[m·sym + n·syn] = act(Σ_k a[m·sam + k·sak] · b[n·sbn + k·sbk] + bias[m·bias_m + n·bias_n])
//   linear:  a = x (M, K): sam = K, sak = 1;  b = w (N, K): sbn = K, sbk = 1;  y (M, N): sym = N, syn = 1;
//            bias per column (bias_m = 0, bias_n = 1)
//   conv2d:  a = weight (Cout, K): sam = K, sak = 1; b = cols (K, P): sbn = 1, sbk = P; y (Cout, P): sym = P, syn = 1
//   bias null = none. Strides in elements (any layout), so one kernel serves every case.
//
// bf16 in and out, f32 accumulation. Launch: grid (⌈N / 64⌉, ⌈M / 64⌉), 256 threads; each block computes a 64 × 64
// tile of y, each thread a 4 × 4 sub-tile, stepping over K in slices of 16 staged in shared memory as f32
// (columns padded by 4 floats against bank conflicts). Any M, N, K (edges are guarded). Correct, not fast: the fast
// path is cuBLASLt.
#include "common.cuh"

#define GEMM_T 64
#define GEMM_K 16

extern "C" __global__ void __launch_bounds__(256) gemm_bf16_strided(
    const bf16* __restrict__ a, const bf16* __restrict__ b, const bf16* __restrict__ bias, bf16* __restrict__ y,
    int M, int N, int K, long long sam, long long sak, long long sbn, long long sbk, long long sym, long long syn,
    int bias_m, int bias_n, int act) {
    __shared__ float As[GEMM_K][GEMM_T + 4];
    __shared__ float Bs[GEMM_K][GEMM_T + 4];
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int m0 = blockIdx.y * GEMM_T, n0 = blockIdx.x * GEMM_T;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += GEMM_K) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int idx = threadIdx.x + 256 * e, r = idx >> 4, kk = idx & 15;
            const int gk = k0 + kk;
            As[kk][r] = (m0 + r < M && gk < K) ? bf16_to_f32(a[(m0 + r) * sam + gk * sak]) : 0.0f;
            Bs[kk][r] = (n0 + r < N && gk < K) ? bf16_to_f32(b[(n0 + r) * sbn + gk * sbk]) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GEMM_K; kk++) {
            float av[4], bv[4];
#pragma unroll
            for (int i = 0; i < 4; i++) { av[i] = As[kk][ty * 4 + i]; bv[i] = Bs[kk][tx * 4 + i]; }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int m = m0 + ty * 4 + i;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int n = n0 + tx * 4 + j;
            if (n >= N) continue;
            float v = acc[i][j];
            if (bias) v += bf16_to_f32(bias[(long long)m * bias_m + (long long)n * bias_n]);
            y[m * sym + n * syn] = f32_to_bf16(activate(v, act));
        }
    }
}

// quantize.cu — f8 e4m3 row quantization for fp8 linear layers (the rule of Sources/FluxCore/Quantization.swift).
//
//   row r of the input, the concatenation [a[r, 0 ..< wa], b[r, 0 ..< wb]] of K = wa + wb bf16 values:
//     scale[r] = max_k |x[r, k]| / 448        (1 when that is 0, or not a positive finite number)
//     q[r, k]  = e4m3(x[r, k] / scale[r])     round to nearest even, saturating to ±448 (e4m3fn, as torch)
//   so the largest entry of a row lands on e4m3's largest finite value. Used on weights (rows = output features, at
//   load) and on activations (rows = tokens, before each fp8 product; two parts feed linear2 of the single blocks
//   without concatenating them first).
//   dequantize: y[r, k] = bf16(e4m3_value(q[r, k]) · scale[r]) — for products cuBLASLt cannot run in fp8.
//
// quantize_rows_e4m3: one block per row, grid (rows), block 128 threads for rows up to 4096 values and 256 beyond
// (the host's choice: small blocks keep more rows in flight per SM); pass 1 takes the row's |max| (block reduction),
// pass 2 writes bytes. With wa and wb multiples of 8 each thread moves 8 values at a time (16-byte loads, 8-byte
// stores) and, for rows up to blockDim · 8 · QUANT_CACHE values (16384 at 256 threads; FLUX's widest input is
// 15360), keeps its vectors in registers so the row is read once; otherwise pass 2 reads the row again (from L1/L2),
// one value at a time when the widths are not multiples of 8.
#include "common.cuh"
#include "fp8.cuh"

#define QUANT_CACHE 8   // vectors of 8 values per thread held in registers
extern "C" __global__ void quantize_rows_e4m3(const bf16* __restrict__ a, int wa, const bf16* __restrict__ b, int wb,
                                              long long rows, unsigned char* __restrict__ q,
                                              float* __restrict__ scales) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    if (row >= rows) return;
    const int width = wa + wb, t = threadIdx.x, threads = blockDim.x;
    const bf16* ra = a + row * wa;
    const bf16* rb = b + row * wb;
    unsigned char* out = q + row * width;
    const bool vectors = (wa & 7) == 0 && (wb & 7) == 0;

    if (vectors && width <= threads * 8 * QUANT_CACHE) {
        uint4 cache[QUANT_CACHE];
        float m = 0.0f;
#pragma unroll
        for (int c = 0; c < QUANT_CACHE; c++) {
            const int k = (t + threads * c) * 8;
            if (k < width) {
                cache[c] = k < wa ? *(const uint4*)(ra + k) : *(const uint4*)(rb + (k - wa));
                float f[8];
                unpack8(cache[c], f);
#pragma unroll
                for (int e = 0; e < 8; e++) m = fmaxf(m, fabsf(f[e]));
            }
        }
        const float scale = row_scale(block_max(m, scratch));
        if (t == 0) scales[row] = scale;
#pragma unroll
        for (int c = 0; c < QUANT_CACHE; c++) {
            const int k = (t + threads * c) * 8;
            if (k < width) {
                float f[8];
                unpack8(cache[c], f);
                store8_e4m3(out + k, f, scale);
            }
        }
        return;
    }

    float m = 0.0f;
    if (vectors) {
        for (int k = t * 8; k < width; k += threads * 8) {
            float f[8];
            unpack8(k < wa ? *(const uint4*)(ra + k) : *(const uint4*)(rb + (k - wa)), f);
#pragma unroll
            for (int e = 0; e < 8; e++) m = fmaxf(m, fabsf(f[e]));
        }
    } else {
        for (int k = t; k < width; k += threads) m = fmaxf(m, fabsf(bf16_to_f32(k < wa ? ra[k] : rb[k - wa])));
    }
    const float scale = row_scale(block_max(m, scratch));
    if (t == 0) scales[row] = scale;

    if (vectors) {
        for (int k = t * 8; k < width; k += threads * 8) {
            float f[8];
            unpack8(k < wa ? *(const uint4*)(ra + k) : *(const uint4*)(rb + (k - wa)), f);
            store8_e4m3(out + k, f, scale);
        }
    } else {
        for (int k = t; k < width; k += threads) {
            out[k] = (unsigned char)e4m3_bits(__fdiv_rn(bf16_to_f32(k < wa ? ra[k] : rb[k - wa]), scale));
        }
    }
}

extern "C" __global__ void dequantize_rows_e4m3(const unsigned char* __restrict__ q, const float* __restrict__ scales,
                                                long long rows, int cols, bf16* __restrict__ y) {
    const long long count = rows * cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
         i += (long long)gridDim.x * blockDim.x) {
        y[i] = f32_to_bf16(e4m3_value(q[i]) * scales[i / cols]);
    }
}

// elementwise.cu — pointwise ops over bf16 tensors, f32 math.
//
//   activation:       y[i] = act(x[i])                     act: identity, silu, geluTanh, gelu, quickGelu (common.cuh)
//   add / multiply:   y[i] = a[i] + b[i] / a[i] * b[i]     same shapes, n elements
//   gated_add:        y[r, j] = res[r, j] + gate[r / seq, j] * x[r, j]
//                     res, x, y (B, S, D) as rows r < B·S of D; gate (B, D)
//   scale_shift:      y[i] = x[i] · scale + shift          scalar scale and shift
//   add_scaled:       y[i] = a[i] + scale · b[i]           same shapes (Euler step, residual differences)
//   bias_activation:  y[r, j] = act(y[r, j] + bias[j])      in place, rows of n; bias may be null
//   bias_activation_f32: y[i] = bf16(act(x[i] + bias[(i / inner) mod count]))   x f32 (a product cuBLASLt wrote in
//                     f32), so bias and activation round once: linear (inner 1, count N) for activations cuBLASLt
//                     cannot fuse, conv2d (inner H·W, count Cout) for the channel bias. bias may be null.
//
// Layout: dense row-major; all indices 64-bit. Accesses are 16 bytes wide (8 bf16, `uint4`; tensors start 256-byte
// aligned) over the first ⌊n/8⌋·8 elements, then one element at a time for the rest; gated_add and
// bias_activation_f32 take the wide path only when a group of 8 shares its gate row / bias rule (D % 8 == 0; inner
// % 8 == 0, or inner = 1 with count % 8 == 0), else go element by element. Launch: 1-D grid-stride loops, 256
// threads per block, grid capped by the launcher (a few waves of the SMs); n may be any size, including odd and 0
// (the launcher skips empty tensors).
#include "common.cuh"

#define GRID_STRIDE(i, n) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// The wide loop over vectors v < n/8 (body sees `v`), then the element loop over the tail (body sees `i`).
#define VECTORS(n) const long long vectors = (n) >> 3, tail_start = vectors << 3;

extern "C" __global__ void activation_bf16(const bf16* __restrict__ x, bf16* __restrict__ y, long long n, int kind) {
    VECTORS(n)
    GRID_STRIDE(v, vectors) {
        float f[8];
        unpack8(((const uint4*)x)[v], f);
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = activate(f[e], kind);
        ((uint4*)y)[v] = pack8(f);
    }
    GRID_STRIDE(t, n - tail_start) {
        const long long i = tail_start + t;
        y[i] = f32_to_bf16(activate(bf16_to_f32(x[i]), kind));
    }
}

extern "C" __global__ void add_bf16(const bf16* __restrict__ a, const bf16* __restrict__ b, bf16* __restrict__ y,
                                    long long n) {
    VECTORS(n)
    GRID_STRIDE(v, vectors) {
        float fa[8], fb[8];
        unpack8(((const uint4*)a)[v], fa);
        unpack8(((const uint4*)b)[v], fb);
#pragma unroll
        for (int e = 0; e < 8; e++) fa[e] += fb[e];
        ((uint4*)y)[v] = pack8(fa);
    }
    GRID_STRIDE(t, n - tail_start) {
        const long long i = tail_start + t;
        y[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
    }
}

extern "C" __global__ void multiply_bf16(const bf16* __restrict__ a, const bf16* __restrict__ b, bf16* __restrict__ y,
                                         long long n) {
    VECTORS(n)
    GRID_STRIDE(v, vectors) {
        float fa[8], fb[8];
        unpack8(((const uint4*)a)[v], fa);
        unpack8(((const uint4*)b)[v], fb);
#pragma unroll
        for (int e = 0; e < 8; e++) fa[e] *= fb[e];
        ((uint4*)y)[v] = pack8(fa);
    }
    GRID_STRIDE(t, n - tail_start) {
        const long long i = tail_start + t;
        y[i] = f32_to_bf16(bf16_to_f32(a[i]) * bf16_to_f32(b[i]));
    }
}

extern "C" __global__ void gated_add_bf16(const bf16* __restrict__ res, const bf16* __restrict__ x,
                                          const bf16* __restrict__ gate, bf16* __restrict__ y, long long n, int seq,
                                          int dim) {
    if ((dim & 7) == 0) {  // n is a multiple of 8 and a vector never crosses a row
        GRID_STRIDE(v, n >> 3) {
            const long long e0 = v << 3, row = e0 / dim;
            const long long g = (row / seq) * dim + (e0 - row * dim);
            float fr[8], fx[8], fg[8];
            unpack8(((const uint4*)res)[v], fr);
            unpack8(((const uint4*)x)[v], fx);
            unpack8(*(const uint4*)(gate + g), fg);
#pragma unroll
            for (int e = 0; e < 8; e++) fr[e] += fg[e] * fx[e];
            ((uint4*)y)[v] = pack8(fr);
        }
        return;
    }
    GRID_STRIDE(i, n) {
        const long long row = i / dim;
        const int j = (int)(i - row * dim);
        const long long b = row / seq;
        y[i] = f32_to_bf16(bf16_to_f32(res[i]) + bf16_to_f32(gate[b * dim + j]) * bf16_to_f32(x[i]));
    }
}

extern "C" __global__ void bias_activation_bf16(bf16* __restrict__ y, const bf16* __restrict__ bias, long long n,
                                                int cols, int kind) {
    GRID_STRIDE(i, n) {
        float v = bf16_to_f32(y[i]);
        if (bias) v += bf16_to_f32(bias[i % cols]);
        y[i] = f32_to_bf16(activate(v, kind));
    }
}

extern "C" __global__ void scale_shift_bf16(const bf16* __restrict__ x, bf16* __restrict__ y, long long n, float scale,
                                            float shift) {
    VECTORS(n)
    GRID_STRIDE(v, vectors) {
        float f[8];
        unpack8(((const uint4*)x)[v], f);
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = fmaf(f[e], scale, shift);
        ((uint4*)y)[v] = pack8(f);
    }
    GRID_STRIDE(t, n - tail_start) {
        const long long i = tail_start + t;
        y[i] = f32_to_bf16(fmaf(bf16_to_f32(x[i]), scale, shift));
    }
}

extern "C" __global__ void add_scaled_bf16(const bf16* __restrict__ a, const bf16* __restrict__ b,
                                           bf16* __restrict__ y, long long n, float scale) {
    VECTORS(n)
    GRID_STRIDE(v, vectors) {
        float fa[8], fb[8];
        unpack8(((const uint4*)a)[v], fa);
        unpack8(((const uint4*)b)[v], fb);
#pragma unroll
        for (int e = 0; e < 8; e++) fa[e] = fmaf(scale, fb[e], fa[e]);
        ((uint4*)y)[v] = pack8(fa);
    }
    GRID_STRIDE(t, n - tail_start) {
        const long long i = tail_start + t;
        y[i] = f32_to_bf16(fmaf(scale, bf16_to_f32(b[i]), bf16_to_f32(a[i])));
    }
}

extern "C" __global__ void bias_activation_f32_bf16(const float* __restrict__ x, const bf16* __restrict__ bias,
                                                    bf16* __restrict__ y, long long n, long long inner, int count,
                                                    int kind) {
    const bool channel_runs = inner % 8 == 0, row_bias = inner == 1 && count % 8 == 0;
    if ((n & 7) == 0 && (!bias || channel_runs || row_bias)) {
        GRID_STRIDE(v, n >> 3) {
            const long long e0 = v << 3;
            const float4 lo = ((const float4*)x)[2 * v], hi = ((const float4*)x)[2 * v + 1];
            float f[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
            if (bias && channel_runs) {
                const float b = bf16_to_f32(bias[(e0 / inner) % count]);
#pragma unroll
                for (int e = 0; e < 8; e++) f[e] += b;
            } else if (bias) {
                float b[8];
                unpack8(*(const uint4*)(bias + e0 % count), b);
#pragma unroll
                for (int e = 0; e < 8; e++) f[e] += b[e];
            }
#pragma unroll
            for (int e = 0; e < 8; e++) f[e] = activate(f[e], kind);
            ((uint4*)y)[v] = pack8(f);
        }
        return;
    }
    GRID_STRIDE(i, n) {
        float v = x[i];
        if (bias) v += bf16_to_f32(bias[(i / inner) % count]);
        y[i] = f32_to_bf16(activate(v, kind));
    }
}

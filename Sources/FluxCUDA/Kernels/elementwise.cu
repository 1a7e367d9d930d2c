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
// Layout: dense row-major; all indices 64-bit. Launch: 1-D grid-stride loops, 256 threads per block, grid capped by the
// launcher (a few waves of the SMs); n may be any size, including odd and 0 (the launcher skips empty tensors).
#include "common.cuh"

extern "C" __global__ void activation_bf16(const bf16* __restrict__ x, bf16* __restrict__ y, long long n, int kind) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = f32_to_bf16(activate(bf16_to_f32(x[i]), kind));
}

extern "C" __global__ void add_bf16(const bf16* __restrict__ a, const bf16* __restrict__ b, bf16* __restrict__ y,
                                    long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
}

extern "C" __global__ void multiply_bf16(const bf16* __restrict__ a, const bf16* __restrict__ b, bf16* __restrict__ y,
                                         long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = f32_to_bf16(bf16_to_f32(a[i]) * bf16_to_f32(b[i]));
}

extern "C" __global__ void gated_add_bf16(const bf16* __restrict__ res, const bf16* __restrict__ x,
                                          const bf16* __restrict__ gate, bf16* __restrict__ y, long long n, int seq,
                                          int dim) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long row = i / dim;
        const int j = (int)(i - row * dim);
        const long long b = row / seq;
        y[i] = f32_to_bf16(bf16_to_f32(res[i]) + bf16_to_f32(gate[b * dim + j]) * bf16_to_f32(x[i]));
    }
}

extern "C" __global__ void bias_activation_bf16(bf16* __restrict__ y, const bf16* __restrict__ bias, long long n,
                                                int cols, int kind) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float v = bf16_to_f32(y[i]);
        if (bias) v += bf16_to_f32(bias[i % cols]);
        y[i] = f32_to_bf16(activate(v, kind));
    }
}

extern "C" __global__ void scale_shift_bf16(const bf16* __restrict__ x, bf16* __restrict__ y, long long n, float scale,
                                            float shift) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = f32_to_bf16(fmaf(bf16_to_f32(x[i]), scale, shift));
}

extern "C" __global__ void add_scaled_bf16(const bf16* __restrict__ a, const bf16* __restrict__ b,
                                           bf16* __restrict__ y, long long n, float scale) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = f32_to_bf16(fmaf(scale, bf16_to_f32(b[i]), bf16_to_f32(a[i])));
}

extern "C" __global__ void bias_activation_f32_bf16(const float* __restrict__ x, const bf16* __restrict__ bias,
                                                    bf16* __restrict__ y, long long n, long long inner, int count,
                                                    int kind) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float v = x[i];
        if (bias) v += bf16_to_f32(bias[(i / inner) % count]);
        y[i] = f32_to_bf16(activate(v, kind));
    }
}

// reduction.cu — reductions of a whole bf16 tensor to one number for the host.
//
//   abs_sum: total[0] += Σ_i |x[i]|     x of n elements; total one f64 in device memory, zeroed by the launcher
//
// Launch: 1-D grid-stride loop, 256 threads per block, grid capped at a few waves. Each thread sums in f64, the block
// reduces through shared memory, and one thread per block adds the block's sum with a f64 atomicAdd (sm_60+), so the
// result does not depend on the rounding of long f32 chains (the order of the block sums does vary, by ~1 ulp of f64).
#include "common.cuh"

extern "C" __global__ void abs_sum_bf16(const bf16* __restrict__ x, long long n, double* __restrict__ total) {
    __shared__ double partial[256];
    double s = 0.0;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        s += fabs((double)bf16_to_f32(x[i]));
    partial[threadIdx.x] = s;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) atomicAdd(total, partial[0]);
}

// layout.cu — copies that rearrange bf16 tensors (no arithmetic; values are copied bit for bit).
//
//   copy_rows: dst[o · dst_pitch + dst_offset + i] = src[o · src_pitch + src_offset + i],  o < outer, i < width
//     concat along axis a: for each part, outer = Π shape[..<a], width = part[a] · inner,
//                          src_pitch = width, dst_pitch = out[a] · inner, dst_offset = Σ earlier widths
//     slice along axis a:  outer as above, width = count · inner, src_pitch = x[a] · inner,
//                          src_offset = start · inner, dst_pitch = width
//
//     When width, pitches and offsets are all multiples of 8, 16 bytes are copied at a time.
//   permute: y[o] = x[Σ_a coord_a(o) · stride_a],  coord_a the coordinates of output index o in the output shape,
//            stride_a the input stride of the input axis that output axis a comes from (torch.permute, copied).
//            Shapes of rank ≤ 8 passed by value in PermuteShape; reads gather, writes are coalesced.
//   embedding: y[t, d] = table[ids[t], d]   table (V, D), ids (T) int32 on the device, already checked < V on the host
//
// Launch: each a 1-D grid-stride loop over its output elements, 256 threads per block.
#include "common.cuh"

extern "C" __global__ void copy_rows_bf16(const bf16* __restrict__ src, bf16* __restrict__ dst, long long outer,
                                          long long width, long long src_pitch, long long src_offset,
                                          long long dst_pitch, long long dst_offset) {
    if (((width | src_pitch | src_offset | dst_pitch | dst_offset) & 7) == 0) {  // 16-byte copies
        const long long w8 = width >> 3, n8 = outer * w8;
        for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n8;
             i += (long long)gridDim.x * blockDim.x) {
            const long long o = i / w8, c = i - o * w8;
            *(uint4*)(dst + o * dst_pitch + dst_offset + 8 * c) = *(const uint4*)(src + o * src_pitch + src_offset + 8 * c);
        }
        return;
    }
    const long long n = outer * width;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long o = i / width, c = i - o * width;
        dst[o * dst_pitch + dst_offset + c] = src[o * src_pitch + src_offset + c];
    }
}

struct PermuteShape {
    long long dims[8];     // output shape, axes rank..7 unused
    long long strides[8];  // input stride of each output axis
    int rank;
};

extern "C" __global__ void permute_bf16(const bf16* __restrict__ x, bf16* __restrict__ y, long long n,
                                        PermuteShape shape) {
    for (long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; o < n; o += (long long)gridDim.x * blockDim.x) {
        long long rest = o, offset = 0;
        for (int a = shape.rank - 1; a >= 0; a--) {
            const long long c = rest % shape.dims[a];
            rest /= shape.dims[a];
            offset += c * shape.strides[a];
        }
        y[o] = x[offset];
    }
}

extern "C" __global__ void embedding_bf16(const bf16* __restrict__ table, const int* __restrict__ ids,
                                          bf16* __restrict__ y, long long tokens, int dim) {
    const long long n = tokens * dim;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long t = i / dim;
        y[i] = table[(long long)ids[t] * dim + (i - t * dim)];
    }
}

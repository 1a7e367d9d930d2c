import FluxCore

extension CUDABackend {
    /// Convolution as im2col (`image.cu`) + one matrix product per image: cols (Cin·kh·kw, Ho·Wo), then
    /// out (Cout, Ho·Wo) = weight (Cout, Cin·kh·kw) · cols on cuBLASLt (fallback: the strided GEMM kernel, bias
    /// included). cuBLASLt's bias epilogue runs along the other axis, so with a bias the product is written in f32 and
    /// one pass adds the channel bias and rounds once. The cols and f32 buffers are one image's worth, reused across
    /// the batch (stream order keeps that safe).
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding p: Padding2D) throws -> Tensor {
        let op = "conv2d"
        try expect(x.rank == 4, op, "x", x.shape, "(B, Cin, H, W)")
        let (batch, channels, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        try expect(weight.rank == 4 && weight.shape[1] == channels, op, "weight", weight.shape,
                   "(Cout, \(channels), kh, kw)")
        let (outChannels, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        if let bias { try expect(bias.shape == [outChannels], op, "bias", bias.shape, "[\(outChannels)]") }
        try expect(stride >= 1 && min(p.top, p.bottom, p.left, p.right) >= 0, op, "stride/padding", [stride],
                   "stride ≥ 1 and padding ≥ 0")
        let outHeight = (height + p.top + p.bottom - kh) / stride + 1
        let outWidth = (width + p.left + p.right - kw) / stride + 1
        try expect(outHeight > 0 && outWidth > 0, op, "x", x.shape, "an image at least as large as the kernel")
        return try locked {
            let xp = try pointer(x, op), wp = try pointer(weight, op), bp = try optionalPointer(bias, op)
            let (out, y) = try empty([batch, outChannels, outHeight, outWidth], op)
            let k = channels * kh * kw, pixels = outHeight * outWidth
            guard batch > 0, outChannels > 0, k > 0 else { return out }
            let columns = try allocator.allocate(k * pixels * 2)
            let withBias = bias != nil
            let shape = CuBLASLt.Shape(m: pixels, n: outChannels, k: k, transA: false, lda: pixels, ldb: k,
                                       ldd: pixels, epilogue: .none, outputF32: withBias)
            let plan = try matmul?.plan(shape)
            let product = plan != nil && withBias ? try allocator.allocate(outChannels * pixels * 4) : nil
            for image in 0..<batch {
                let input = xp + UInt64(image * channels * height * width * 2)
                let result = y + UInt64(image * outChannels * pixels * 2)
                try launchElements("image", "im2col_bf16", count: k * pixels,
                                   [.pointer(input), .pointer(columns.pointer), .int(channels), .int(height),
                                    .int(width), .int(kh), .int(kw), .int(stride), .int(p.top), .int(p.left),
                                    .int(outHeight), .int(outWidth)])
                if let engine = matmul, let plan {
                    try engine.run(plan, a: columns.pointer, b: wp, bias: nil, d: product?.pointer ?? result,
                                   stream: stream)
                    if let product {
                        try launchElements("elementwise", "bias_activation_f32_bf16", count: outChannels * pixels,
                                           [.pointer(product.pointer), .pointer(bp), .pointer(result),
                                            .long(outChannels * pixels), .long(pixels), .int(outChannels), .int(0)])
                    }
                } else {
                    try gemmKernel(a: wp, b: columns.pointer, bias: bp, y: result, m: outChannels, n: pixels, k: k,
                                   sam: k, sak: 1, sbn: 1, sbk: pixels, sym: pixels, syn: 1, biasPerRow: true,
                                   activation: 0)
                }
            }
            return out
        }
    }

    /// Statistics per (image, group) in f64 with many blocks per group (`group_stats_bf16`), then one elementwise
    /// pass that normalises, applies weight and bias and the activation.
    public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float,
                          activation: Activation) throws -> Tensor {
        let op = "groupNorm"
        try expect(x.rank >= 2 && groups > 0 && x.shape[1] % groups == 0, op, "x", x.shape,
                   "(B, C, ...) with C divisible by \(groups) groups")
        let (batch, channels) = (x.shape[0], x.shape[1])
        try expect(weight.shape == [channels], op, "weight", weight.shape, "[\(channels)]")
        try expect(bias.shape == [channels], op, "bias", bias.shape, "[\(channels)]")
        return try locked {
            let xp = try pointer(x, op), wp = try pointer(weight, op), bp = try pointer(bias, op)
            let (out, y) = try empty(x.shape, op)
            let spatial = x.count / max(batch * channels, 1), perGroup = channels / groups * spatial
            guard x.count > 0 else { return out }
            let items = batch * groups
            try expect(items <= 65_535, op, "x", x.shape, "batch × groups ≤ 65535 on \(name)")
            let stats = try allocator.allocate(items * 16)
            try driver.check(driver.cuMemsetD8Async(stats.pointer, 0, items * 16, stream), "cuMemsetD8Async")
            let chunks = max(1, min((perGroup + 4095) / 4096, max(1, multiprocessorCount * 8 / items)))
            try launch("image", "group_stats_bf16", grid: (chunks, items, 1), block: (256, 1, 1),
                       [.pointer(xp), .long(perGroup), .pointer(stats.pointer)])
            let act = Activation.allCases.firstIndex(of: activation) ?? 0
            try launchElements("image", "group_norm_apply_bf16", count: x.count,
                               [.pointer(xp), .pointer(y), .pointer(stats.pointer), .pointer(wp), .pointer(bp),
                                .long(x.count), .int(channels), .int(groups), .long(spatial), .float(eps), .int(act)])
            return out
        }
    }

    public func upsampleNearest(_ x: Tensor, factor: Int) throws -> Tensor {
        let op = "upsampleNearest"
        try expect(x.rank == 4 && factor >= 1, op, "x", x.shape, "(B, C, H, W) and factor ≥ 1")
        return try locked {
            let (planes, height, width) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
            let xp = try pointer(x, op)
            let (out, y) = try empty([x.shape[0], x.shape[1], height * factor, width * factor], op)
            try launchElements("image", "upsample_nearest_bf16", count: out.count,
                               [.pointer(xp), .pointer(y), .long(planes), .int(height), .int(width), .int(factor)])
            return out
        }
    }
}

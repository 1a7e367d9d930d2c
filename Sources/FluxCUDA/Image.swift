import FluxCore
import Foundation

extension CUDABackend {
    /// Convolution on cuDNN's convolution forward (`Convolution.swift`): per shape, the NCHW tensors described to
    /// cuDNN as they are, or channels-last copies around it, with the bias added before the one rounding; the first
    /// call of a shape times the candidates. Otherwise (no cuDNN, no engine for the shape, the fallback-kernel
    /// backend, `--conv im2col`) im2col + a matrix product (`convolveByColumns`).
    public func uncheckedConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding p: Padding2D) throws
        -> Tensor
    {
        let op = "conv2d"
        let g = OpShapes.Convolution(x, weight: weight, stride: stride, padding: p)
        let (batch, channels, height, width) = (g.batch, g.channels, g.height, g.width)
        let (outChannels, kh, kw, outHeight, outWidth) = (g.outChannels, g.kernelHeight, g.kernelWidth, g.outHeight,
                                                          g.outWidth)
        return try locked {
            let xp = try pointer(x, op), wp = try pointer(weight, op), bp = try bias.map { try pointer($0, op) }
            let (out, y) = try empty([batch, outChannels, outHeight, outWidth], op)
            guard batch > 0, outChannels > 0 else { return out }
            let shape = CuDNNConvolution.Shape(batch: batch, channels: channels, height: height, width: width,
                                               outChannels: outChannels, kernelHeight: kh, kernelWidth: kw,
                                               stride: stride, top: p.top, bottom: p.bottom, left: p.left,
                                               right: p.right)
            guard channels * kh * kw > 0 else {  // an empty sum: the bias alone
                let count = out.count
                if let bp {
                    try fillChannels(y, bias: bp, count: count, inner: outHeight * outWidth, channels: outChannels,
                                     valid: outChannels)
                } else {
                    try driver.check(driver.cuMemsetD16Async(y, 0, count, stream), "cuMemsetD16Async")
                }
                return out
            }
            try profiled("conv2d", "\(shape)\(bias != nil ? " +bias" : "")") {
                if let engine = try convolutionEngine().engine,
                   let used = try convolveWithCuDNN(engine, shape, x: xp, w: wp, bias: bp, y: y)
                {
                    if options.imageDiagnostics.checking, ImageDiagnostics.firstTime("conv2d \(shape) \(bp != nil)") {
                        let plain = try allocator.allocate(out.count * 2)
                        try convolveByColumns(shape, x: xp, w: wp, bias: bp, y: plain.pointer)
                        let error = try relativeDifference(y, plain.pointer, count: out.count)
                        ImageDiagnostics.log("conv2d \(shape): cuDNN (\(used)) vs im2col: max rel diff "
                                             + String(format: "%.2e", error))
                    }
                    return "\(used)"
                }
                try convolveByColumns(shape, x: xp, w: wp, bias: bp, y: y)
                return "im2col"
            }
            return out
        }
    }

    /// im2col (`image.cu`) + one matrix product per image: cols (Cin·kh·kw, Ho·Wo), then out (Cout, Ho·Wo) =
    /// weight (Cout, Cin·kh·kw) · cols on cuBLASLt (fallback: the strided GEMM kernel, bias included). cuBLASLt's
    /// bias epilogue runs along the other axis, so with a bias the product is written in f32 and one pass adds the
    /// channel bias and rounds once. The cols and f32 buffers are one image's worth, reused across the batch (stream
    /// order keeps that safe).
    func convolveByColumns(_ s: CuDNNConvolution.Shape, x xp: CUdeviceptr, w wp: CUdeviceptr, bias bp: CUdeviceptr?,
                           y: CUdeviceptr) throws
    {
        let k = s.channels * s.kernelHeight * s.kernelWidth, pixels = s.outHeight * s.outWidth
        let columns = try allocator.allocate(k * pixels * 2)
        let shape = CuBLASLt.Shape(m: pixels, n: s.outChannels, k: k, transA: false, lda: pixels, ldb: k,
                                   ldd: pixels, epilogue: .none, outputF32: bp != nil)
        let plan = try matmul?.plan(shape)
        let product = plan != nil && bp != nil ? try allocator.allocate(s.outChannels * pixels * 4) : nil
        for image in 0..<s.batch {
            let input = xp + UInt64(image * s.channels * s.height * s.width * 2)
            let result = y + UInt64(image * s.outChannels * pixels * 2)
            try launchElements("image", "im2col_bf16", count: k * pixels,
                               [.pointer(input), .pointer(columns.pointer), .int(s.channels), .int(s.height),
                                .int(s.width), .int(s.kernelHeight), .int(s.kernelWidth), .int(s.stride),
                                .int(s.top), .int(s.left), .int(s.outHeight), .int(s.outWidth)])
            if let engine = matmul, let plan {
                try engine.run(plan, a: columns.pointer, b: wp, bias: nil, d: product?.pointer ?? result,
                               stream: stream)
                if let product {
                    try launchElements("elementwise", "bias_activation_f32_bf16", count: s.outChannels * pixels,
                                       [.pointer(product.pointer), .pointer(bp ?? 0), .pointer(result),
                                        .long(s.outChannels * pixels), .long(pixels), .int(s.outChannels), .int(0)])
                }
            } else {
                try gemmKernel(a: wp, b: columns.pointer, bias: bp ?? 0, y: result, m: s.outChannels, n: pixels, k: k,
                               sam: k, sak: 1, sbn: 1, sbk: pixels, sym: pixels, syn: 1, biasPerRow: true,
                               activation: 0)
            }
        }
    }

    /// Statistics per (image, group) in f64 with many blocks per group (`group_stats_bf16`), then one elementwise
    /// pass that normalises, applies weight and bias and the activation. When H·W is a multiple of 8 (every VAE
    /// shape) both passes move 16 bytes per access and the second runs one channel plane per block.
    public func uncheckedGroupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float,
                                   activation: Activation) throws -> Tensor {
        let op = "groupNorm"
        let (batch, channels) = (x.shape[0], x.shape[1])
        return try locked {
            let xp = try pointer(x, op), wp = try pointer(weight, op), bp = try pointer(bias, op)
            let (out, y) = try empty(x.shape, op)
            let spatial = x.count / max(batch * channels, 1), perGroup = channels / groups * spatial
            guard x.count > 0 else { return out }
            let items = batch * groups
            try expect(items <= 65_535, op, "x", x.shape, "batch × groups ≤ 65535 on \(name)")
            let act = Activation.allCases.firstIndex(of: activation) ?? 0
            let planes = !options.imageDiagnostics.scalarKernels && spatial % 8 == 0 && batch * channels <= 65_535
            func run(vectorised: Bool, into y: CUdeviceptr) throws {
                let stats = try allocator.allocate(items * 16)
                try driver.check(driver.cuMemsetD8Async(stats.pointer, 0, items * 16, stream), "cuMemsetD8Async")
                let perBlock = vectorised ? 256 * 8 * 8 : 4096
                let chunks = max(1, min((perGroup + perBlock - 1) / perBlock, max(1, multiprocessorCount * 8 / items)))
                try launch("image", vectorised ? "group_stats_vec8_bf16" : "group_stats_bf16", grid: (chunks, items, 1),
                           block: (256, 1, 1), [.pointer(xp), .long(perGroup), .pointer(stats.pointer)])
                if vectorised {
                    let vectors = spatial / 8
                    try launch("image", "group_norm_apply_planes_bf16", grid: (max(1, (vectors + 1023) / 1024),
                                                                               batch * channels, 1),
                               block: (256, 1, 1),
                               [.pointer(xp), .pointer(y), .pointer(stats.pointer), .pointer(wp), .pointer(bp),
                                .int(channels), .int(groups), .long(spatial), .float(eps), .int(act)])
                } else {
                    try launchElements("image", "group_norm_apply_bf16", count: x.count,
                                       [.pointer(xp), .pointer(y), .pointer(stats.pointer), .pointer(wp), .pointer(bp),
                                        .long(x.count), .int(channels), .int(groups), .long(spatial), .float(eps),
                                        .int(act)])
                }
            }
            try profiled("groupNorm", "\(x.shape) groups \(groups) \(activation)") {
                try run(vectorised: planes, into: y)
                if planes, options.imageDiagnostics.checking, ImageDiagnostics.firstTime("groupNorm \(x.shape) \(groups)") {
                    let plain = try allocator.allocate(x.count * 2)
                    try run(vectorised: false, into: plain.pointer)
                    let error = try relativeDifference(y, plain.pointer, count: x.count)
                    ImageDiagnostics.log("groupNorm \(x.shape) groups \(groups): vectorised vs scalar: max rel diff "
                                         + String(format: "%.2e", error))
                }
                return planes ? "planes" : "scalar"
            }
            return out
        }
    }

    public func uncheckedUpsampleNearest(_ x: Tensor, factor: Int) throws -> Tensor {
        let op = "upsampleNearest"
        return try locked {
            let (planes, height, width) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
            let xp = try pointer(x, op)
            let (out, y) = try empty([x.shape[0], x.shape[1], height * factor, width * factor], op)
            let doubled = !options.imageDiagnostics.scalarKernels && factor == 2 && width % 4 == 0
            func run(vectorised: Bool, into y: CUdeviceptr) throws {
                if vectorised {
                    try launchElements("image", "upsample_nearest_x2_bf16", count: planes * 2 * height * (width / 4),
                                       [.pointer(xp), .pointer(y), .long(planes * 2 * height), .int(width)])
                } else {
                    try launchElements("image", "upsample_nearest_bf16", count: out.count,
                                       [.pointer(xp), .pointer(y), .long(planes), .int(height), .int(width),
                                        .int(factor)])
                }
            }
            try profiled("upsampleNearest", "\(x.shape) ×\(factor)") {
                try run(vectorised: doubled, into: y)
                if doubled, options.imageDiagnostics.checking, ImageDiagnostics.firstTime("upsample \(x.shape)") {
                    let plain = try allocator.allocate(out.count * 2)
                    try run(vectorised: false, into: plain.pointer)
                    let error = try relativeDifference(y, plain.pointer, count: out.count)
                    ImageDiagnostics.log("upsampleNearest \(x.shape) ×2: vectorised vs scalar: max rel diff "
                                         + String(format: "%.2e", error))
                }
                return doubled ? "x2" : "scalar"
            }
            return out
        }
    }

    /// Runs `body` (which returns the path it took); with `options.imageDiagnostics.profiling`, also times it on the device
    /// and prints `image-profile <op> <ms> <path> <detail>`.
    func profiled(_ op: String, _ detail: @autoclosure () -> String, _ body: () throws -> String) throws {
        guard options.imageDiagnostics.profiling else {
            _ = try body()
            return
        }
        var path = ""
        let ms = try timeOnStream(repeats: 1, warm: false) { path = try body() }
        ImageDiagnostics.log("image-profile \(op) " + String(format: "%.3f", ms) + " ms  \(path)  \(detail())")
    }
}

import FluxCore

extension CPUBackend {
    /// Convolution as im2col + one matrix product per image: columns (Cin·kh·kw, Ho·Wo), then
    /// out (Cout, Ho·Wo) = weight (Cout, Cin·kh·kw) · columns.
    public func uncheckedConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding p: Padding2D) throws
        -> Tensor
    {
        let op = "conv2d"
        let g = OpShapes.Convolution(x, weight: weight, stride: stride, padding: p)
        let (batch, channels, height, width) = (g.batch, g.channels, g.height, g.width)
        let (outChannels, kh, kw, outHeight, outWidth) = (g.outChannels, g.kernelHeight, g.kernelWidth, g.outHeight,
                                                          g.outWidth)
        let (out, y) = empty([batch, outChannels, outHeight, outWidth])
        let k = channels * kh * kw, pixels = outHeight * outWidth
        let columns = UnsafeMutablePointer<Float>.allocate(capacity: k * pixels)
        defer { columns.deallocate() }
        let src = try values(x, op), w = try values(weight, op), b = try bias.map { try values($0, op) }
        for image in 0..<batch {
            let shared = UncheckedSendable((src + image * channels * height * width, columns))
            parallelFor(k, minChunk: max(1, 4096 / max(pixels, 1))) { rows in
                let (input, columns) = shared.value
                for row in rows {
                    let c = row / (kh * kw), dy = (row / kw) % kh, dx = row % kw
                    let dst = columns + row * pixels, plane = input + c * height * width
                    for oy in 0..<outHeight {
                        let iy = oy * stride + dy - p.top
                        for ox in 0..<outWidth {
                            let ix = ox * stride + dx - p.left
                            dst[oy * outWidth + ox] = iy >= 0 && iy < height && ix >= 0 && ix < width
                                ? plane[iy * width + ix] : 0
                        }
                    }
                }
            }
            let result = y + image * outChannels * pixels
            sgemm(m: outChannels, n: pixels, k: k, a: w, lda: k, b: columns, ldb: pixels, transposedB: false,
                  c: result, ldc: pixels, accumulate: false)
            if let b { for o in 0..<outChannels { for i in 0..<pixels { result[o * pixels + i] += b[o] } } }
        }
        return out
    }

    public func uncheckedGroupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float,
                                   activation: Activation) throws -> Tensor {
        let op = "groupNorm"
        let (batch, channels) = (x.shape[0], x.shape[1])
        let spatial = x.count / max(batch * channels, 1), perGroup = channels / groups * spatial
        let (out, y) = empty(x.shape)
        let shared = UncheckedSendable((try values(x, op), try values(weight, op), try values(bias, op), y))
        parallelFor(batch * groups) { items in
            let (x, w, b, y) = shared.value
            for item in items {
                let base = item * perGroup, firstChannel = (item % groups) * (channels / groups)
                let (mean, invStd) = meanAndInvStd(x + base, perGroup, eps)
                for i in 0..<perGroup {
                    let c = firstChannel + i / spatial
                    y[base + i] = activate((x[base + i] - mean) * invStd * w[c] + b[c], activation)
                }
            }
        }
        return out
    }

    public func uncheckedUpsampleNearest(_ x: Tensor, factor: Int) throws -> Tensor {
        let op = "upsampleNearest"
        let (planes, height, width) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        let (out, y) = empty([x.shape[0], x.shape[1], height * factor, width * factor])
        let shared = UncheckedSendable((try values(x, op), y))
        parallelFor(planes) { range in
            let (x, y) = shared.value
            for plane in range {
                let src = x + plane * height * width, dst = y + plane * height * width * factor * factor
                for oy in 0..<(height * factor) {
                    for ox in 0..<(width * factor) {
                        dst[oy * width * factor + ox] = src[(oy / factor) * width + ox / factor]
                    }
                }
            }
        }
        return out
    }
}

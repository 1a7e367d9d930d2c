import Foundation

/// Resizing with a separable Lanczos-3 filter, computed as Pillow's `Image.resize(size, Image.LANCZOS)`
/// (libImaging/Resample.c): for each output column/row a window of input pixels weighted by
/// `L(x) = sinc(x)·sinc(x/3)` on −3 ≤ x < 3. When shrinking by `scale` = in/out > 1 the filter is stretched
/// (support 3·scale, argument divided by scale) so it also low-passes; weights are normalised to sum 1.
/// Horizontal pass first, then vertical, as Pillow.
///
/// Alpha: colour is premultiplied by alpha before filtering and divided after, as Pillow does by converting RGBA to
/// "RGBa" and back, so a transparent pixel's arbitrary colour never bleeds into its neighbours. The premultiplied
/// input is rounded to 8-bit levels and the final division truncates, as Pillow's conversions; the filtering and
/// the intermediate between the passes stay in f32 (clipped to 0…255 as Pillow's 8-bit intermediate is), so
/// results differ from Pillow's by rounding (measured in `ResizeTests`: ≤ 1 level opaque, ≤ 2 premultiplied).
/// Where alpha rounds to 0 the colour is 0.
extension DecodedImage {
    /// This image resized to `width`×`height` (each 1…, within `limits`).
    public func resized(width newWidth: Int, height newHeight: Int,
                        limits: ImageLimits = ImageLimits()) throws -> DecodedImage {
        guard newWidth >= 1, newHeight >= 1 else { throw ImageError.badTargetSize(width: newWidth, height: newHeight) }
        try limits.checkDimensions(width: newWidth, height: newHeight)
        if newWidth == width && newHeight == height { return self }

        // (H, W, 4) premultiplied f32.
        var planes = [Float](repeating: 0, count: width * height * 4)
        for i in 0..<(width * height) {
            let alpha = Float(pixels[4 * i + 3])
            // Rounded to 8-bit levels as Pillow's RGBA → RGBa conversion does (measured: premultiplied colour
            // within 2 levels of Pillow instead of 3 with unrounded values).
            for c in 0..<3 { planes[4 * i + c] = (Float(pixels[4 * i + c]) * alpha / 255).rounded() }
            planes[4 * i + 3] = alpha
        }
        var (w, h) = (width, height)
        if newWidth != w {
            planes = Self.resample(planes, count: w, stride: 1, lines: h, lineStride: w, to: newWidth)
            // Clipped to 0…255 between the passes, as Pillow's 8-bit intermediate is: an edge's overshoot in one
            // direction does not ring again in the other.
            for i in planes.indices { planes[i] = min(max(planes[i], 0), 255) }
            w = newWidth
        }
        if newHeight != h {
            planes = Self.resample(planes, count: h, stride: w, lines: w, lineStride: 1, to: newHeight)
            h = newHeight
        }

        var out = [UInt8](repeating: 0, count: w * h * 4)
        for i in 0..<(w * h) {
            let alpha = min(max(planes[4 * i + 3], 0), 255)
            let alpha8 = UInt8(alpha.rounded())
            out[4 * i + 3] = alpha8
            guard alpha8 > 0 else { continue }
            // Pillow's RGBa → RGBA: the premultiplied value in 8 bits, times 255, divided by alpha, truncated.
            for c in 0..<3 {
                let premultiplied = Int(min(max(planes[4 * i + c], 0), 255).rounded())
                out[4 * i + c] = UInt8(min(premultiplied * 255 / Int(alpha8), 255))
            }
        }
        return DecodedImage(width: w, height: h, pixels: out, hasAlpha: hasAlpha, format: format)
    }

    /// Resamples RGBA f32 pixels along one axis. The axis has `count` pixels `stride` pixels apart; there are
    /// `lines` lines, `lineStride` pixels apart (horizontal: stride 1, lineStride W; vertical: stride W, 1).
    /// The result has the same layout with `outCount` pixels along the axis.
    static func resample(_ input: [Float], count: Int, stride: Int, lines: Int, lineStride: Int,
                         to outCount: Int) -> [Float] {
        let kernel = LanczosKernel(inSize: count, outSize: outCount)
        // Output strides: along the axis, `stride` becomes 1 → lines × outCount (horizontal) or outCount × lines.
        let (outStride, outLineStride) = stride == 1 ? (1, outCount) : (lines, 1)
        var output = [Float](repeating: 0, count: outCount * lines * 4)
        for line in 0..<lines {
            for o in 0..<outCount {
                var acc: (Float, Float, Float, Float) = (0, 0, 0, 0)
                let first = kernel.first[o]
                for t in 0..<kernel.counts[o] {
                    let weight = kernel.weights[o * kernel.taps + t]
                    let p = 4 * (line * lineStride + (first + t) * stride)
                    acc.0 += weight * input[p]
                    acc.1 += weight * input[p + 1]
                    acc.2 += weight * input[p + 2]
                    acc.3 += weight * input[p + 3]
                }
                let q = 4 * (line * outLineStride + o * outStride)
                (output[q], output[q + 1], output[q + 2], output[q + 3]) = acc
            }
        }
        return output
    }
}

/// Pillow's `precompute_coeffs` for the Lanczos filter (support 3): for output pixel `o`, the input pixels
/// `first[o] ..< first[o] + counts[o]` and their normalised weights `weights[o * taps ..< o * taps + counts[o]]`.
struct LanczosKernel {
    let first: [Int]
    let counts: [Int]
    let weights: [Float]
    let taps: Int

    init(inSize: Int, outSize: Int) {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 3 * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        var first = [Int](repeating: 0, count: outSize), counts = first
        var weights = [Float](repeating: 0, count: outSize * taps)
        for o in 0..<outSize {
            let center = (Double(o) + 0.5) * scale
            let low = max(Int(center - support + 0.5), 0)  // Int() truncates toward zero, as C's (int) cast
            let high = min(Int(center + support + 0.5), inSize)
            var k = [Double](repeating: 0, count: min(max(high - low, 0), taps))
            for x in 0..<k.count { k[x] = Self.lanczos((Double(x + low) - center + 0.5) / filterScale) }
            let sum = k.reduce(0, +)
            for x in 0..<k.count { weights[o * taps + x] = Float(sum != 0 ? k[x] / sum : k[x]) }
            (first[o], counts[o]) = (low, k.count)
        }
        (self.first, self.counts, self.weights, self.taps) = (first, counts, weights, taps)
    }

    /// sinc(x)·sinc(x/3) on [−3, 3), else 0.
    static func lanczos(_ x: Double) -> Double {
        guard -3 <= x && x < 3 else { return 0 }
        return sinc(x) * sinc(x / 3)
    }

    static func sinc(_ x: Double) -> Double {
        if x == 0 { return 1 }
        let px = x * Double.pi
        return sin(px) / px
    }
}

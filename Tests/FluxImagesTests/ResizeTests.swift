import Testing
@testable import FluxImages

/// Lanczos-3 resizing against Pillow 13.0's `resize(size, Image.LANCZOS)` (fixtures `resize_*.rgba`), down, up,
/// one axis and mixed. Pillow filters in 8-bit fixed point with an 8-bit intermediate; we filter in f32, so results
/// differ by rounding. Measured when written, over the five sizes: opaque source ≤ 1 level; RGBA source alpha ≤ 1,
/// premultiplied colour `round(c·a/255)` ≤ 2, straight colour where alpha ≥ 128 ≤ 4 (one premultiplied level is up
/// to 2 colour levels there). Straight colour where alpha is small is not compared: at alpha 3 one premultiplied
/// level is 85 colour levels, and either value is an artefact of 8-bit rounding.
struct ResizeTests {
    static let sizes = [(17, 13), (64, 48), (40, 12), (7, 50), (99, 31)]

    @Test func opaqueMatchesPillow() throws {
        let source = try ImageDecoder.decode(path: imageFixture("resize_source_rgb.png"))
        for (width, height) in Self.sizes {
            let resized = try source.resized(width: width, height: height)
            #expect(resized.width == width && resized.height == height)
            let difference = maxDifference(resized.pixels, try fixtureBytes("resize_rgb_\(width)x\(height).rgba"))
            print("Lanczos 40×30 → \(width)×\(height), opaque: max difference from Pillow \(difference)")
            #expect(difference <= 2)
        }
    }

    @Test func alphaMatchesPillowPremultiplied() throws {
        let source = try ImageDecoder.decode(path: imageFixture("resize_source.png"))
        func premultiplied(_ pixels: [UInt8]) -> [UInt8] {
            (0..<pixels.count).map { i in
                let alpha = Int(pixels[i | 3])
                return i & 3 == 3 ? UInt8(alpha) : UInt8((Int(pixels[i]) * alpha + 127) / 255)
            }
        }
        for (width, height) in Self.sizes {
            let resized = try source.resized(width: width, height: height)
            let expected = try fixtureBytes("resize_\(width)x\(height).rgba")
            let alpha = maxDifference(stride(from: 3, to: expected.count, by: 4).map { resized.pixels[$0] },
                                      stride(from: 3, to: expected.count, by: 4).map { expected[$0] })
            let colour = maxDifference(premultiplied(resized.pixels), premultiplied(expected))
            // Straight colour where both alphas are at least 128 (one premultiplied level ≤ 2 colour levels there).
            var straight = 0
            for i in 0..<expected.count where i & 3 != 3 && resized.pixels[i | 3] >= 128 && expected[i | 3] >= 128 {
                straight = max(straight, abs(Int(resized.pixels[i]) - Int(expected[i])))
            }
            print("Lanczos 40×30 → \(width)×\(height), RGBA: alpha \(alpha), premultiplied colour \(colour), "
                  + "colour where alpha ≥ 128 \(straight)")
            #expect(alpha <= 2 && colour <= 2 && straight <= 4)
            #expect(resized.hasAlpha)
        }
    }

    /// A uniform image stays uniform (weights sum to 1), the same size is the same image, and bad sizes are refused.
    @Test func invariantsAndRefusals() throws {
        let flat = DecodedImage(width: 9, height: 7, pixels: [UInt8]((0..<63).flatMap { _ in [10, 200, 77, 255] }),
                                hasAlpha: false, format: .png)
        for (width, height) in [(1, 1), (3, 20), (50, 2), (9, 7)] {
            let resized = try flat.resized(width: width, height: height)
            #expect(resized.pixels == [UInt8]((0..<(width * height)).flatMap { _ in [10, 200, 77, 255] }))
        }
        #expect(throws: ImageError.badTargetSize(width: 0, height: 5)) { try flat.resized(width: 0, height: 5) }
        #expect(throws: ImageError.badSide(width: 100_000, height: 5, limit: 8192)) {
            try flat.resized(width: 100_000, height: 5)
        }
        // Fully transparent pixels never lend their colour.
        let holes = DecodedImage(width: 4, height: 1, pixels: [255, 0, 0, 0, 0, 0, 255, 255, 0, 0, 255, 255,
                                                               255, 0, 0, 0], hasAlpha: true, format: .png)
        let wide = try holes.resized(width: 9, height: 1)
        for x in 0..<9 where wide.pixels[4 * x + 3] > 0 { #expect(wide.pixels[4 * x] == 0, "x \(x)") }
    }

    /// Pillow's coefficients: support 3 when enlarging, 3·scale when shrinking, normalised.
    @Test func kernelWindows() {
        let up = LanczosKernel(inSize: 10, outSize: 20)
        #expect(up.taps == 7)
        let down = LanczosKernel(inSize: 100, outSize: 10)
        #expect(down.taps == 61)
        for kernel in [up, down] {
            for o in kernel.first.indices {
                let sum = (0..<kernel.counts[o]).reduce(Float(0)) { $0 + kernel.weights[o * kernel.taps + $1] }
                #expect(abs(sum - 1) < 1e-5)
                #expect(kernel.first[o] >= 0 && kernel.first[o] + kernel.counts[o] <= (kernel.taps == 7 ? 10 : 100))
            }
        }
    }
}

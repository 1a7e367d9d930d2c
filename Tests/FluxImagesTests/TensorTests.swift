import FluxCore
import Testing
@testable import FluxImages

/// The pipeline's tensors: the image in [0, 1] (alpha over white), and masks by both rules.
struct TensorTests {
    /// Two pixels: opaque orange, and half-transparent white.
    static let image = DecodedImage(width: 2, height: 1, pixels: [255, 128, 0, 255, 255, 255, 255, 128],
                                    hasAlpha: true, format: .png)

    @Test func imageTensorIsPlanarRGB() {
        let tensor = Self.image.imageTensor()
        #expect(tensor.shape == [1, 3, 1, 2] && tensor.dtype == .f32)
        let values = tensor.floats()
        #expect(values == [1, 1, Float(128) / 255, 1, 0, 1])  // white over white stays white
        let overBlack = Self.image.imageTensor(over: .black).floats()
        #expect(abs(overBlack[1] - Float(128) / 255) < 1e-6 && overBlack[4] == 0)
    }

    @Test func whiteRepaintsIsLumaOverBlack() throws {
        let tensor = Self.image.maskTensor(rule: .whiteRepaints)
        #expect(tensor.shape == [1, 1, 1, 2])
        let values = tensor.floats()
        #expect(abs(values[0] - (299 * 255 + 587 * 128) / 1000 / 255) < 1e-6)
        #expect(abs(values[1] - Float(128) / 255) < 1e-6)  // white at half alpha over black
        // Against Pillow's convert("L") of the RGBA picture composited over black (8-bit, rounded): measured
        // ≤ 0.88/255 (its composite and its luma are each rounded to 8 bits; ours are not).
        let picture = try ImageDecoder.decode(path: imageFixture("mask_source.png"))
        let pillow = try fixtureBytes("mask_luma.rgba")
        let mask = picture.maskTensor(rule: .whiteRepaints).floats()
        let difference = mask.indices.map { abs(mask[$0] * 255 - Float(pillow[4 * $0])) }.max() ?? 0
        print("whiteRepaints mask: max difference from Pillow's convert(\"L\") \(difference)/255")
        #expect(difference <= 1)
    }

    @Test func transparentRepaintsIsOneMinusAlpha() {
        let values = Self.image.maskTensor(rule: .transparentRepaints).floats()
        #expect(values == [0, 1 - Float(128) / 255])
        let opaque = DecodedImage(width: 1, height: 1, pixels: [0, 0, 0, 255], hasAlpha: false, format: .jpeg)
        #expect(opaque.maskTensor(rule: .transparentRepaints).floats() == [0])
        let clear = DecodedImage(width: 1, height: 1, pixels: [9, 9, 9, 0], hasAlpha: true, format: .png)
        #expect(clear.maskTensor(rule: .transparentRepaints).floats() == [1])
        #expect(clear.maskTensor(rule: .whiteRepaints).floats() == [0])
    }
}

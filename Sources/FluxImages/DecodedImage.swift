/// Pixels decoded from a file: RGBA 8-bit, shape (height, width, 4), row-major, top row first, upright (JPEG EXIF
/// orientation applied). Colour is not premultiplied by alpha. `hasAlpha` says whether the file carried transparency
/// (an alpha channel or a tRNS chunk); when false every alpha byte is 255.
public struct DecodedImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// (height, width, 4) RGBA8.
    public let pixels: [UInt8]
    public let hasAlpha: Bool
    public let format: ImageFormat

    /// `pixels.count` must be `width * height * 4` (a programming error otherwise, not a property of the file).
    public init(width: Int, height: Int, pixels: [UInt8], hasAlpha: Bool, format: ImageFormat) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 4,
                     "DecodedImage: \(pixels.count) bytes for \(width)×\(height) RGBA")
        (self.width, self.height, self.pixels, self.hasAlpha, self.format) = (width, height, pixels, hasAlpha, format)
    }

    /// What transparent pixels become when alpha is flattened away.
    public enum Background: Sendable, Hashable {
        /// 255: how a browser or an image viewer shows a transparent PNG on a page; the default for images.
        case white
        /// 0: what a mask's transparent area means when white marks the region to repaint.
        case black

        var value: Float { self == .white ? 255 : 0 }
    }

    /// (height, width, 3) RGB8: each pixel composited over `background`,
    /// `round((c·a + bg·(255 − a)) / 255)`. The caller chooses the background; nothing flattens alpha implicitly.
    public func rgbComposited(over background: Background) -> [UInt8] {
        let bg = background.value
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            let alpha = Float(pixels[4 * i + 3])
            for c in 0..<3 {
                let value = (Float(pixels[4 * i + c]) * alpha + bg * (255 - alpha)) / 255
                out[3 * i + c] = UInt8((value + 0.5).rounded(.down))
            }
        }
        return out
    }
}

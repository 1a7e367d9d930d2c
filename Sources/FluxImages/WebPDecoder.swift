import CImageCodecs

/// WebP through libwebp's simple decoding API (decode.h): `WebPGetFeaturesInternal` parses the RIFF header (VP8,
/// VP8L or VP8X canvas) for the size, alpha and animation flags without decoding; we check the limits on that size,
/// then `WebPDecodeRGBA` decodes into a buffer libwebp allocates (`width * height * 4`, alpha 255 when the file has
/// none), copied and released with `WebPFree`. libwebp reports every failure by return value (NULL or a status
/// code); it has no abort path on bad data.
enum WebPDecoder {
    /// decode.h's WEBP_DECODER_ABI_VERSION of libwebp 1.2 (Debian bookworm); libwebp accepts any 0x02xx.
    static let decoderABIVersion: Int32 = 0x0209

    typealias GetFeatures = @convention(c) (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<flux_webp_features>,
                                            Int32) -> Int32
    typealias DecodeRGBA = @convention(c) (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<Int32>,
                                           UnsafeMutablePointer<Int32>) -> UnsafeMutablePointer<UInt8>?
    typealias Free = @convention(c) (UnsafeMutableRawPointer?) -> Void

    /// VP8StatusCode names (decode.h), for the error text.
    static let statusNames = [1: "out of memory", 2: "invalid parameter", 3: "bitstream error",
                              4: "unsupported feature", 5: "suspended", 6: "user abort", 7: "not enough data"]

    static func decode(_ bytes: [UInt8], limits: ImageLimits, libraries: ImageLibraries) throws -> DecodedImage {
        let library = try LoadedLibrary.open(libraries.webp, name: "libwebp", package: "libwebp7")
        let getFeatures: GetFeatures = try library.function("WebPGetFeaturesInternal")
        let decodeRGBA: DecodeRGBA = try library.function("WebPDecodeRGBA")
        let free: Free = try library.function("WebPFree")

        return try bytes.withUnsafeBufferPointer { data in
            var features = flux_webp_features()
            let status = getFeatures(data.baseAddress, data.count, &features, decoderABIVersion)
            guard status == 0 else {
                throw ImageError.corrupt(format: .webp, reason: statusNames[Int(status)] ?? "status \(status)")
            }
            try limits.checkDimensions(width: Int(features.width), height: Int(features.height))
            if features.has_animation != 0 {
                throw ImageError.unsupportedContent(format: .webp, reason: "animated WebP (save one frame)")
            }
            var (width, height): (Int32, Int32) = (0, 0)
            guard let decoded = decodeRGBA(data.baseAddress, data.count, &width, &height) else {
                throw ImageError.corrupt(format: .webp, reason: "libwebp could not decode the bitstream")
            }
            defer { free(decoded) }
            // The frame must be the size the header declared (libwebp checks this too; a mismatch is refused).
            guard width == features.width, height == features.height else {
                throw ImageError.corrupt(format: .webp, reason: "decoded \(width)×\(height), header declared "
                                         + "\(features.width)×\(features.height)")
            }
            let pixels = Array(UnsafeBufferPointer(start: decoded, count: Int(width) * Int(height) * 4))
            return DecodedImage(width: Int(width), height: Int(height), pixels: pixels,
                                hasAlpha: features.has_alpha != 0, format: .webp)
        }
    }
}

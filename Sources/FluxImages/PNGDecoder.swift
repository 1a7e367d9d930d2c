import CImageCodecs

/// PNG through libpng's simplified API (png.h, "Simplified API", libpng 1.6): `png_image_begin_read_from_memory`
/// reads the signature and every chunk before the first IDAT and fills `png_image` (size, format); we check the
/// limits on that header, allocate `width * height * 4` bytes ourselves, and `png_image_finish_read` converts any
/// colour type and bit depth into them as 8-bit RGBA (palette, grey, grey+alpha and tRNS expanded; 16-bit scaled
/// with rounding; a gAMA/cHRM/iCCP-tagged file converted to sRGB).
///
/// Why this API: libpng's classic API reports errors by `longjmp` to a `setjmp` the caller must set (undefined
/// behaviour across Swift frames) and calls `abort` when none is set; the simplified API sets its own `setjmp`
/// inside libpng (`png_safe_execute`) and returns 0 with the message in `png_image.message`. libpng itself bounds
/// ancillary chunks (1000 of them, 8 MB each, zTXt/iCCP decompression likewise) and rejects sides over 1,000,000.
enum PNGDecoder {
    // png.h: PNG_IMAGE_VERSION, PNG_FORMAT_FLAG_ALPHA, PNG_FORMAT_RGBA (= FLAG_COLOR | FLAG_ALPHA).
    static let imageVersion: UInt32 = 1
    static let formatFlagAlpha: UInt32 = 0x01
    static let formatRGBA: UInt32 = 0x03
    /// PNG_IMAGE_FLAG_16BIT_sRGB: a 16-bit file without gAMA/sRGB is sRGB-encoded, as every editor writes them and
    /// Pillow reads them. Without it libpng takes such samples as linear light and re-encodes them (72 levels off).
    static let flag16BitSRGB: UInt32 = 0x04

    typealias BeginRead = @convention(c) (UnsafeMutablePointer<flux_png_image>, UnsafeRawPointer?, Int) -> Int32
    typealias FinishRead = @convention(c) (UnsafeMutablePointer<flux_png_image>, UnsafeRawPointer?,
                                           UnsafeMutableRawPointer?, Int32, UnsafeMutableRawPointer?) -> Int32
    typealias Free = @convention(c) (UnsafeMutablePointer<flux_png_image>) -> Void

    static func decode(_ bytes: [UInt8], limits: ImageLimits, libraries: ImageLibraries) throws -> DecodedImage {
        let library = try LoadedLibrary.open(libraries.png, name: "libpng16", package: "libpng16-16")
        let begin: BeginRead = try library.function("png_image_begin_read_from_memory")
        let finish: FinishRead = try library.function("png_image_finish_read")
        let free: Free = try library.function("png_image_free")

        var image = flux_png_image()
        image.version = imageVersion
        image.flags = flag16BitSRGB
        return try bytes.withUnsafeBytes { memory in
            // libpng keeps a pointer to `memory` until the image is freed: everything happens inside this closure.
            guard begin(&image, memory.baseAddress, memory.count) != 0 else {
                throw ImageError.corrupt(format: .png, reason: message(image))
            }
            defer { free(&image) }  // a no-op once finish_read has freed it (opaque is then NULL)
            let (width, height) = (Int(image.width), Int(image.height))
            try limits.checkDimensions(width: width, height: height)
            let hasAlpha = image.format & formatFlagAlpha != 0
            image.format = formatRGBA
            image.flags |= flag16BitSRGB
            var pixels = [UInt8](repeating: 0, count: width * height * 4)
            // row_stride 0: rows packed at width * 4 bytes, which is exactly PNG_IMAGE_SIZE(image) for RGBA8.
            let ok = pixels.withUnsafeMutableBytes { finish(&image, nil, $0.baseAddress, 0, nil) }
            guard ok != 0 else { throw ImageError.corrupt(format: .png, reason: message(image)) }
            return DecodedImage(width: width, height: height, pixels: pixels, hasAlpha: hasAlpha, format: .png)
        }
    }

    /// `png_image.message`, NUL-terminated within its 64 bytes.
    static func message(_ image: flux_png_image) -> String {
        var copy = image.message
        let text = withUnsafeBytes(of: &copy) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return text.isEmpty ? "libpng refused the data" : text
    }
}

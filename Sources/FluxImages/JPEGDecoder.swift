/// JPEG through libjpeg-turbo's TurboJPEG 2.x API (turbojpeg.h; Debian bookworm ships 2.1.5, which has no tj3
/// functions): `tjDecompressHeader3` parses the markers up to SOF for the size and colour space without decoding; we
/// check the limits on that size, allocate `width * height * 4` bytes, and `tjDecompress2` decodes into them as RGBA
/// (TJPF_RGBA fills alpha with 255; greyscale and YCbCr of any subsampling converted; libjpeg's defaults as Pillow's:
/// accurate integer IDCT, fancy upsampling). The EXIF orientation is then applied (`ExifOrientation`).
///
/// Why this API and these flags: libjpeg's classic API reports errors through `error_exit`, which calls `exit()`
/// unless the caller installs a `longjmp` handler; TurboJPEG installs its own (`setjmp` inside the library) and
/// returns -1 with `tjGetErrorStr2`. Warnings (a truncated file, corrupt entropy data) normally let it finish with
/// grey filling; `TJFLAG_STOPONWARNING` makes them errors, so a damaged file is refused, as Pillow refuses a
/// truncated one. `TJFLAG_LIMITSCANS` (2.1+) refuses a progressive file of more than 500 scans, a CPU bomb that
/// a size limit cannot catch.
enum JPEGDecoder {
    // turbojpeg.h constants.
    static let pixelFormatRGBA: Int32 = 7            // TJPF_RGBA
    static let flagStopOnWarning: Int32 = 8192       // TJFLAG_STOPONWARNING
    static let flagLimitScans: Int32 = 16384         // TJFLAG_LIMITSCANS
    static let colorspaceCMYK: Int32 = 3             // TJCS_CMYK
    static let colorspaceYCCK: Int32 = 4             // TJCS_YCCK

    typealias Handle = UnsafeMutableRawPointer
    typealias InitDecompress = @convention(c) () -> Handle?
    typealias DecompressHeader3 = @convention(c) (Handle?, UnsafePointer<UInt8>?, UInt, UnsafeMutablePointer<Int32>,
                                                  UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>,
                                                  UnsafeMutablePointer<Int32>) -> Int32
    typealias Decompress2 = @convention(c) (Handle?, UnsafePointer<UInt8>?, UInt, UnsafeMutablePointer<UInt8>?,
                                            Int32, Int32, Int32, Int32, Int32) -> Int32
    typealias GetErrorStr2 = @convention(c) (Handle?) -> UnsafeMutablePointer<CChar>?
    typealias Destroy = @convention(c) (Handle?) -> Int32

    static func decode(_ bytes: [UInt8], limits: ImageLimits, libraries: ImageLibraries) throws -> DecodedImage {
        let library = try LoadedLibrary.open(libraries.jpeg, name: "libturbojpeg", package: "libturbojpeg0")
        let initDecompress: InitDecompress = try library.function("tjInitDecompress")
        let decompressHeader: DecompressHeader3 = try library.function("tjDecompressHeader3")
        let decompress: Decompress2 = try library.function("tjDecompress2")
        let errorString: GetErrorStr2 = try library.function("tjGetErrorStr2")
        let destroy: Destroy = try library.function("tjDestroy")

        guard let handle = initDecompress() else {
            throw ImageError.corrupt(format: .jpeg, reason: "tjInitDecompress failed (out of memory?)")
        }
        defer { _ = destroy(handle) }
        func failure() -> ImageError {
            let text = errorString(handle).map { String(cString: $0) } ?? "libjpeg-turbo refused the data"
            return .corrupt(format: .jpeg, reason: text)
        }

        let decoded = try bytes.withUnsafeBufferPointer { data -> DecodedImage in
            var (width, height, subsampling, colorspace): (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
            guard decompressHeader(handle, data.baseAddress, UInt(data.count), &width, &height, &subsampling,
                                   &colorspace) == 0 else { throw failure() }
            // A stream that ends before its frame header (or holds only tables) "succeeds" with a 0×0 size.
            guard width > 0, height > 0 else {
                throw ImageError.corrupt(format: .jpeg, reason: "no frame header (SOF) before the data ends")
            }
            try limits.checkDimensions(width: Int(width), height: Int(height))
            if colorspace == colorspaceCMYK || colorspace == colorspaceYCCK {
                throw ImageError.unsupportedContent(format: .jpeg, reason: "CMYK (print) colour; convert it to RGB")
            }
            var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * 4)
            let status = pixels.withUnsafeMutableBufferPointer { out in
                decompress(handle, data.baseAddress, UInt(data.count), out.baseAddress, width, width * 4, height,
                           pixelFormatRGBA, flagStopOnWarning | flagLimitScans)
            }
            guard status == 0 else { throw failure() }
            return DecodedImage(width: Int(width), height: Int(height), pixels: pixels, hasAlpha: false,
                                format: .jpeg)
        }
        return ExifOrientation.upright(decoded, orientation: ExifOrientation.jpegOrientation(bytes))
    }
}

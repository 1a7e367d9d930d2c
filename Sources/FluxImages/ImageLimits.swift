/// How large an untrusted image may be, checked on the file size before reading and on the dimensions its header
/// declares before any pixel buffer is allocated, so a decompression bomb (a few hundred bytes declaring 60000×60000)
/// is refused at the cost of parsing its header.
///
/// Defaults: 50 MB of file, 4096×4096 = 16.8 M pixels (a 64 MiB RGBA buffer; FLUX works at ≤ 2 MP, so anything
/// larger is downscaled anyway), 8192 pixels on a side (so a 8192×2048 panorama passes, 16384×1 does not).
public struct ImageLimits: Sendable, Hashable {
    /// Largest file or buffer, in bytes.
    public var maxBytes: Int
    /// Largest width × height.
    public var maxPixels: Int
    /// Largest width or height.
    public var maxSide: Int

    public init(maxBytes: Int = 50_000_000, maxPixels: Int = 4096 * 4096, maxSide: Int = 8192) {
        (self.maxBytes, self.maxPixels, self.maxSide) = (maxBytes, maxPixels, maxSide)
    }

    /// Throws unless `byteCount` is within `maxBytes`.
    public func checkBytes(_ byteCount: Int) throws {
        if byteCount > maxBytes { throw ImageError.tooManyBytes(byteCount: byteCount, limit: maxBytes) }
    }

    /// Throws unless a `width`×`height` image (as the header declares it) is within the limits. The product is
    /// taken only once both sides are known to be at most `maxSide`, so it cannot overflow.
    public func checkDimensions(width: Int, height: Int) throws {
        guard width >= 1, height >= 1, width <= maxSide, height <= maxSide else {
            throw ImageError.badSide(width: width, height: height, limit: maxSide)
        }
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        if overflow || pixels > maxPixels {
            throw ImageError.tooManyPixels(width: width, height: height, limit: maxPixels)
        }
    }
}

/// Why an image was refused: one case per reason, each naming the format, the limit or the library involved, so the
/// CLI can print it as one `error:` line and the service as one 400 message.
public enum ImageError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Zero bytes.
    case empty
    /// Not PNG, JPEG or WebP; `looksLike` says what the first bytes suggest ("a GIF image", "text", …).
    case unsupportedFormat(looksLike: String)
    /// The file (or buffer) is larger than `ImageLimits.maxBytes`.
    case tooManyBytes(byteCount: Int, limit: Int)
    /// The header declares a side longer than `ImageLimits.maxSide`, or zero.
    case badSide(width: Int, height: Int, limit: Int)
    /// The header declares more pixels than `ImageLimits.maxPixels` (a decompression bomb, or just too large).
    case tooManyPixels(width: Int, height: Int, limit: Int)
    /// The library the format needs could not be loaded; `package` is the Debian package that provides it.
    case libraryMissing(library: String, package: String, tried: [String])
    /// The library loaded but lacks a function this code calls (a version older than the one documented).
    case libraryTooOld(library: String, symbol: String)
    /// The library refused the data: its own message (truncated, bad CRC, corrupt Huffman table, …).
    case corrupt(format: ImageFormat, reason: String)
    /// A valid file of a kind not accepted: CMYK JPEG, animated WebP.
    case unsupportedContent(format: ImageFormat, reason: String)
    /// A resize or conversion asked for a size that cannot be (zero, negative, over the limits).
    case badTargetSize(width: Int, height: Int)
    /// A file could not be read (missing, a folder, unreadable); `reason` says which.
    case unreadable(path: String, reason: String)
    /// An error about the file at `path` (what `ImageDecoder.decode(path:)` throws around the others).
    indirect case inFile(path: String, ImageError)

    public var description: String {
        switch self {
        case .empty:
            return "empty file: not an image"
        case .unsupportedFormat(let looksLike):
            return "not a PNG, JPEG or WebP image: it looks like \(looksLike)"
        case .tooManyBytes(let count, let limit):
            return "image file of \(count) bytes is over the limit of \(limit) bytes (ImageLimits.maxBytes)"
        case .badSide(let width, let height, let limit):
            return "image declares \(width)×\(height): each side must be 1…\(limit) pixels (ImageLimits.maxSide)"
        case .tooManyPixels(let width, let height, let limit):
            let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
            return "image declares \(width)×\(height) = \(overflow ? "over \(Int.max)" : "\(pixels)") pixels, over "
                + "the limit of \(limit) pixels (ImageLimits.maxPixels)"
        case .libraryMissing(let library, let package, let tried):
            return "\(library) not found (install the Debian/Ubuntu package \(package)); tried "
                + tried.joined(separator: ", ")
        case .libraryTooOld(let library, let symbol):
            return "\(library) lacks \(symbol) (library too old?)"
        case .corrupt(let format, let reason):
            return "corrupt \(format.name) image: \(reason)"
        case .unsupportedContent(let format, let reason):
            return "unsupported \(format.name) image: \(reason)"
        case .badTargetSize(let width, let height):
            return "cannot make a \(width)×\(height) image"
        case .unreadable(let path, let reason):
            return "\(path): \(reason)"
        case .inFile(let path, let error):
            return "\(path): \(error)"
        }
    }

    /// The error without the file it came from (for tests and callers that branch on the reason).
    public var reason: ImageError {
        if case .inFile(_, let inner) = self { return inner.reason }
        return self
    }
}

import FluxCore

/// The formats FluxImages decodes, told apart by their magic bytes (never by a file name or a declared MIME type).
public enum ImageFormat: String, Sendable, CaseIterable, Codable {
    case png, jpeg, webp

    /// How errors name the format.
    public var name: String {
        switch self {
        case .png: "PNG"
        case .jpeg: "JPEG"
        case .webp: "WebP"
        }
    }

    /// The format `bytes` start with: PNG's 8-byte signature, JPEG's SOI + a marker (FF D8 FF), WebP's
    /// "RIFF" size "WEBP". Anything else throws `unsupportedFormat` saying what it looks like.
    public static func detect(_ bytes: [UInt8]) throws -> ImageFormat {
        if bytes.isEmpty { throw ImageError.empty }
        if starts(bytes, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if starts(bytes, [0xFF, 0xD8, 0xFF]) { return .jpeg }
        if starts(bytes, Array("RIFF".utf8)) && starts(bytes, Array("WEBP".utf8), at: 8) { return .webp }
        throw ImageError.unsupportedFormat(looksLike: describe(Array(bytes.prefix(64))))
    }

    /// What a file that is none of ours looks like: the image formats people upload by mistake, web pages and text,
    /// then FluxCore's `FileSignature` for the rest (its first clause: "a ZIP archive", "a Git LFS pointer"; the
    /// remainder of its text advises about checkpoints, which does not fit an image), else the first bytes in hex.
    static func describe(_ prefix: [UInt8]) -> String {
        let ascii = { (text: String) in Array(text.utf8) }
        if starts(prefix, ascii("GIF8")) { return "a GIF image (convert it to PNG)" }
        if starts(prefix, ascii("BM")) && prefix.count >= 14 && prefix[6..<10].allSatisfy({ $0 == 0 }) { return "a BMP image (convert it to PNG)" }
        if starts(prefix, [0x49, 0x49, 0x2A, 0x00]) || starts(prefix, [0x4D, 0x4D, 0x00, 0x2A]) {
            return "a TIFF image (convert it to PNG)"
        }
        if starts(prefix, ascii("ftyp"), at: 4) {
            let brand = String(decoding: prefix.dropFirst(8).prefix(4), as: UTF8.self)
            if ["heic", "heix", "hevc", "mif1", "msf1"].contains(brand) { return "a HEIC/HEIF image (convert it to JPEG)" }
            if ["avif", "avis"].contains(brand) { return "an AVIF image (convert it to PNG)" }
            return "an ISO media file (MP4/MOV/HEIF, brand '\(brand)')"
        }
        if starts(prefix, [0xFF, 0x0A]) || starts(prefix, [0x00, 0x00, 0x00, 0x0C, 0x4A, 0x58, 0x4C, 0x20]) {
            return "a JPEG XL image (convert it to PNG)"
        }
        if starts(prefix, [0x00, 0x00, 0x01, 0x00]) { return "an ICO icon" }
        if starts(prefix, ascii("%PDF")) { return "a PDF document" }
        if starts(prefix, ascii("RIFF")) { return "a RIFF file that is not WebP (WAV or AVI?)" }
        if starts(prefix, [0xFF, 0xD8]) { return "a damaged JPEG (no marker after the start of image)" }
        if starts(prefix, [0x89, 0x50, 0x4E, 0x47]) { return "a damaged PNG (its 8-byte signature is cut or altered)" }
        if let other = FileSignature.describe(prefix), !other.contains(" image") {
            let cuts = [",", ";", " (", " —"].compactMap { other.range(of: $0)?.lowerBound }
            return String(other[..<(cuts.min() ?? other.endIndex)])
        }
        let text = prefix.drop(while: { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 || $0 == 0xEF
                                        || $0 == 0xBB || $0 == 0xBF })
        if let first = text.first, first == UInt8(ascii: "<") {
            let head = String(decoding: text.prefix(32), as: UTF8.self).lowercased()
            if head.hasPrefix("<svg") || head.contains("<svg") { return "an SVG drawing (rasterise it to PNG)" }
            if head.hasPrefix("<!doctype html") || head.hasPrefix("<html") { return "an HTML page" }
            return "XML or HTML text"
        }
        if prefix.allSatisfy({ $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || (0x20...0x7E).contains($0) || $0 >= 0x80 }) {
            return "text"
        }
        let hex = prefix.prefix(8).map { String($0, radix: 16, uppercase: true) }
            .map { $0.count == 1 ? "0" + $0 : $0 }.joined(separator: " ")
        return "an unknown format (first bytes \(hex))"
    }

    private static func starts(_ bytes: [UInt8], _ magic: [UInt8], at offset: Int = 0) -> Bool {
        bytes.count >= offset + magic.count && bytes[offset..<(offset + magic.count)].elementsEqual(magic)
    }
}

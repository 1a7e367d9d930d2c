#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// PNG encoding of 8-bit RGB and RGBA images, with text chunks (`tEXt`/`iTXt`) that common tools show (exiftool, PIL's
/// `Image.info`, browsers' "image properties").
///
/// The pixel stream is compressed by the system zlib (`libz.so.1`, loaded at run time like every other native library
/// here) and falls back to stored (uncompressed) deflate blocks where there is none — still a valid PNG.
public enum PNG {
    /// Encodes `rgb` (height × width × 3 bytes, rows top to bottom) with `text` as metadata chunks, in key order.
    public static func encode(rgb: [UInt8], width: Int, height: Int, text: [(key: String, value: String)] = [])
        throws -> [UInt8]
    {
        try encode(pixels: rgb, channels: 3, width: width, height: height, text: text)
    }

    /// Encodes `rgba` (height × width × 4 bytes, straight alpha, rows top to bottom), as `encode(rgb:)` does.
    public static func encode(rgba: [UInt8], width: Int, height: Int, text: [(key: String, value: String)] = [])
        throws -> [UInt8]
    {
        try encode(pixels: rgba, channels: 4, width: width, height: height, text: text)
    }

    /// 8-bit truecolour (3 channels, colour type 2) or truecolour with alpha (4 channels, colour type 6).
    private static func encode(pixels: [UInt8], channels: Int, width: Int, height: Int,
                               text: [(key: String, value: String)]) throws -> [UInt8] {
        let name = channels == 4 ? "RGBA" : "RGB"
        guard width > 0, height > 0, width <= 1 << 20, height <= 1 << 20, pixels.count == width * height * channels
        else {
            throw TensorError.backend("png: \(pixels.count) bytes for a \(width)×\(height) \(name) image")
        }
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var header = bigEndian(UInt32(width)) + bigEndian(UInt32(height))
        // 8 bits, truecolour (with alpha), deflate, adaptive filtering, no interlace
        header += [8, channels == 4 ? 6 : 2, 0, 0, 0]
        appendChunk("IHDR", header, to: &out)
        for (key, value) in text {
            let keyword = Array(key.utf8.prefix(79))
            if value.utf8.allSatisfy({ $0 < 0x80 }) {
                appendChunk("tEXt", keyword + [0] + Array(value.utf8), to: &out)
            } else {  // iTXt: keyword, 0, uncompressed, method 0, empty language and translated keyword, UTF-8 text
                appendChunk("iTXt", keyword + [0, 0, 0, 0, 0] + Array(value.utf8), to: &out)
            }
        }
        // Each row: filter type 0 (none), then the pixels.
        let stride = width * channels
        var raw = [UInt8]()
        raw.reserveCapacity(height * (stride + 1))
        for y in 0..<height {
            raw.append(0)
            raw += pixels[(y * stride)..<((y + 1) * stride)]
        }
        appendChunk("IDAT", zlibCompress(raw), to: &out)
        appendChunk("IEND", [], to: &out)
        return out
    }

    /// The text metadata of a PNG: `tEXt` (Latin-1) and uncompressed `iTXt` (UTF-8) chunks, in file order.
    public static func textChunks(_ png: [UInt8]) throws -> [(key: String, value: String)] {
        try chunks(png).compactMap { chunk -> (key: String, value: String)? in
            guard chunk.type == "tEXt" || chunk.type == "iTXt",
                  let zero = chunk.data.firstIndex(of: 0) else { return nil }
            let key = String(decoding: chunk.data[..<zero], as: UTF8.self)
            if chunk.type == "tEXt" {
                return (key, String(chunk.data[(zero + 1)...].map { Character(Unicode.Scalar($0)) }))
            }
            // iTXt: compression flag and method, then language and translated keyword, each ended by 0.
            var at = zero + 3
            guard at <= chunk.data.count, chunk.data[zero + 1] == 0 else { return nil }
            for _ in 0..<2 {
                guard let end = chunk.data[at...].firstIndex(of: 0) else { return nil }
                at = end + 1
            }
            return (key, String(decoding: chunk.data[at...], as: UTF8.self))
        }
    }

    /// Parses the chunks of a PNG (for tests and `inspect`): type and data, after checking signature and CRCs.
    public static func chunks(_ png: [UInt8]) throws -> [(type: String, data: [UInt8])] {
        guard png.count >= 8, Array(png[0..<8]) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else {
            throw TensorError.backend("png: bad signature")
        }
        var chunks: [(String, [UInt8])] = [], i = 8
        while i + 12 <= png.count {
            let length = Int(png[i]) << 24 | Int(png[i + 1]) << 16 | Int(png[i + 2]) << 8 | Int(png[i + 3])
            guard i + 12 + length <= png.count else { throw TensorError.backend("png: truncated chunk") }
            let typeAndData = Array(png[(i + 4)..<(i + 8 + length)])
            let stored = png[(i + 8 + length)..<(i + 12 + length)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard crc32(typeAndData) == stored else { throw TensorError.backend("png: bad CRC") }
            chunks.append((String(decoding: typeAndData[0..<4], as: UTF8.self), Array(typeAndData[4...])))
            i += 12 + length
        }
        return chunks
    }

    private static func appendChunk(_ type: String, _ data: [UInt8], to out: inout [UInt8]) {
        let typeAndData = Array(type.utf8) + data
        out += bigEndian(UInt32(data.count)) + typeAndData + bigEndian(crc32(typeAndData))
    }

    private static func bigEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }

    private static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 (ISO 3309), as PNG chunks use.
    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// A zlib stream of `data`: the system zlib at level 6 if present, else stored blocks.
    static func zlibCompress(_ data: [UInt8]) -> [UInt8] {
        if let compress = SystemZlib.compress2 {
            var capacity = UInt(data.count + data.count / 1000 + 64)
            var out = [UInt8](repeating: 0, count: Int(capacity))
            let status = data.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    compress(dst.baseAddress!, &capacity, src.baseAddress!, UInt(data.count), 6)
                }
            }
            if status == 0 { return Array(out[0..<Int(capacity)]) }
        }
        return storedZlib(data)
    }

    /// zlib header, deflate "stored" blocks of up to 65535 bytes, Adler-32.
    static func storedZlib(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65535, data.count - offset)
            let final: UInt8 = offset + n == data.count ? 1 : 0
            out += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += data[offset..<(offset + n)]
            offset += n
        } while offset < data.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in data { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        return out + bigEndian(b << 16 | a)
    }
}

/// `compress2` from the system zlib, if it can be loaded.
enum SystemZlib {
    typealias Compress2 = @convention(c) (UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt>,
                                          UnsafePointer<UInt8>, UInt, Int32) -> Int32
    static let compress2: Compress2? = {
        for name in ["libz.so.1", "libz.so", "libz.dylib"] {
            if let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL), let symbol = dlsym(handle, "compress2") {
                return unsafeBitCast(symbol, to: Compress2.self)
            }
        }
        return nil
    }()
}

@testable import FluxCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// PNG output: structure, CRCs, metadata chunks, and pixels that decompress back to the input.
@Suite struct PNGTests {
    static func image(_ width: Int, _ height: Int) -> [UInt8] {
        (0..<(width * height * 3)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 3) }
    }

    /// Inflates a zlib stream with the system zlib (present wherever the encoder used it).
    static func inflate(_ data: [UInt8], size: Int) -> [UInt8]? {
        typealias Uncompress = @convention(c) (UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt>,
                                               UnsafePointer<UInt8>, UInt) -> Int32
        guard let handle = dlopen("libz.so.1", RTLD_NOW), let symbol = dlsym(handle, "uncompress") else { return nil }
        var length = UInt(size)
        var out = [UInt8](repeating: 0, count: size)
        let status = unsafeBitCast(symbol, to: Uncompress.self)(&out, &length, data, UInt(data.count))
        return status == 0 && Int(length) == size ? out : nil
    }

    @Test func encodesChunksAndMetadata() throws {
        let (w, h) = (5, 3)
        let png = try PNG.encode(rgb: Self.image(w, h), width: w, height: h,
                                 text: [("prompt", "a red fox"), ("Comment", "naïve ☃")])
        let chunks = try PNG.chunks(png)
        #expect(chunks.map(\.type) == ["IHDR", "tEXt", "iTXt", "IDAT", "IEND"])
        #expect(chunks[0].data == [0, 0, 0, 5, 0, 0, 0, 3, 8, 2, 0, 0, 0])
        #expect(chunks[1].data == Array("prompt".utf8) + [0] + Array("a red fox".utf8))
        let pixels = Self.image(w, h)
        var rows = [UInt8]()
        for y in 0..<h {
            rows.append(0)
            rows += pixels[(y * w * 3)..<((y + 1) * w * 3)]
        }
        if let inflated = Self.inflate(chunks[3].data, size: rows.count) { #expect(inflated == rows) }
    }

    @Test func storedBlocksRoundTrip() throws {
        let data = (0..<150_000).map { UInt8(truncatingIfNeeded: $0 * 31) }
        let stream = PNG.storedZlib(data)
        if let inflated = Self.inflate(stream, size: data.count) { #expect(inflated == data) }
        // Parse the stored blocks by hand as well, so the check holds without a system zlib.
        var i = 2, out = [UInt8]()
        while true {
            let final = stream[i] & 1, n = Int(stream[i + 1]) | Int(stream[i + 2]) << 8
            out += stream[(i + 5)..<(i + 5 + n)]
            i += 5 + n
            if final == 1 { break }
        }
        #expect(out == data)
    }

    @Test func rejectsBadSizesAndCorruptFiles() throws {
        #expect(throws: TensorError.self) { try PNG.encode(rgb: [1, 2, 3], width: 2, height: 1) }
        #expect(throws: TensorError.self) { try PNG.encode(rgb: [], width: 0, height: 0) }
        var png = try PNG.encode(rgb: Self.image(2, 2), width: 2, height: 2)
        png[20] ^= 0xFF
        #expect(throws: TensorError.self) { try PNG.chunks(png) }
        #expect(PNG.crc32(Array("IEND".utf8)) == 0xAE42_6082)
    }
}

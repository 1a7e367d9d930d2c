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

    /// An RGBA PNG (OpenAI's masks need alpha): `alpha(x, y)` per pixel; the colour is black.
    static func rgbaPNG(width: Int, height: Int, alpha: (Int, Int) -> UInt8) -> [UInt8] {
        var pixels: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width { pixels += [0, 0, 0, alpha(x, y)] }
        }
        return (try? PNG.encode(rgba: pixels, width: width, height: height)) ?? []
    }


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

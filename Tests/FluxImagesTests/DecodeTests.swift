import Foundation
import FluxCore
import Testing
@testable import FluxImages

/// Every fixture file decodes to the pixels Pillow 13.0 decoded, upright, with the right size, format and alpha
/// flag (16-bit PNGs: to round(v·255/65535), written by the script; Pillow keeps the high byte, up to 1 level lower).
/// Measured when written: every case equal to its expected pixels (max difference 0): PNG of all colour types,
/// JPEG baseline/progressive/grey and the eight EXIF orientations (the system's libjpeg-turbo 2.1.5 and Pillow's
/// 3.x give the same IDCT and fancy upsampling), WebP lossy (libwebp 1.2.4 against Pillow's 1.6.0) and lossless.
/// The JPEG and lossy WebP cases still allow 1–2 levels (cases.json) for other library versions.
@Test(arguments: ImageCase.all)
func decodesLikePillow(_ fixture: ImageCase) throws {
    let image = try ImageDecoder.decode(path: imageFixture(fixture.file))
    #expect(image.format.rawValue == fixture.format)
    #expect(image.width == fixture.width && image.height == fixture.height)
    #expect(image.hasAlpha == fixture.hasAlpha)
    let difference = maxDifference(image.pixels, try fixtureBytes(fixture.expected))
    print("\(fixture.file): max difference from Pillow \(difference) (allowed \(fixture.tolerance))")
    #expect(difference <= fixture.tolerance, "\(fixture.note)")
    if !fixture.hasAlpha { #expect(stride(from: 3, to: image.pixels.count, by: 4).allSatisfy { image.pixels[$0] == 255 }) }
}

/// The eight orientations all come out as the same upright 27×18 picture (the files store it transposed 8 ways).
@Test func everyOrientationIsUpright() throws {
    let upright = try ImageDecoder.decode(path: imageFixture("jpeg_orientation_1.jpg"))
    for orientation in 2...8 {
        let image = try ImageDecoder.decode(path: imageFixture("jpeg_orientation_\(orientation).jpg"))
        #expect(image.width == 27 && image.height == 18, "orientation \(orientation)")
        // Different JPEG blocks after the transposition: equal within compression noise, the marker in place.
        let difference = maxDifference(image.pixels, upright.pixels)
        #expect(difference <= 40, "orientation \(orientation): \(difference)")
        // The yellow marker (250, 250, 20) is top-left.
        #expect(image.pixels[0] > 200 && image.pixels[1] > 200 && image.pixels[2] < 90, "orientation \(orientation)")
    }
}

/// FluxServe's own PNG writer (FluxCore.PNG) round-trips exactly.
@Test func readsOurOwnPNGs() throws {
    let (width, height) = (5, 3)
    let rgb = (0..<(width * height * 3)).map { UInt8(($0 * 37) % 256) }
    let png = try PNG.encode(rgb: rgb, width: width, height: height, text: [(key: "prompt", value: "a cat")])
    let image = try ImageDecoder.decode(png)
    #expect(image.width == width && image.height == height && !image.hasAlpha && image.format == .png)
    #expect(image.rgbComposited(over: .black) == rgb)
}

/// Alpha is kept in the pixels; flattening is the caller's choice of background.
@Test func compositesOverTheChosenBackground() throws {
    let image = DecodedImage(width: 3, height: 1, pixels: [200, 100, 0, 255, 200, 100, 0, 0, 200, 100, 0, 128],
                             hasAlpha: true, format: .png)
    #expect(image.rgbComposited(over: .white) == [200, 100, 0, 255, 255, 255, 227, 177, 127])
    #expect(image.rgbComposited(over: .black) == [200, 100, 0, 0, 0, 0, 100, 50, 0])
}

/// Files are refused by what they are, before any library is involved.
@Test func namesWhatOtherFilesLookLike() throws {
    func reason(_ bytes: [UInt8]) -> String {
        do { _ = try ImageDecoder.decode(bytes); return "decoded" } catch { return "\(error)" }
    }
    let ascii = { (text: String) in Array(text.utf8) }
    #expect(reason([]) == "empty file: not an image")
    #expect(reason(ascii("GIF89a\u{1}\0\u{1}\0")).contains("a GIF image"))
    #expect(reason(ascii("BM") + [0x46, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 0x28, 0]).contains("a BMP image"))
    #expect(reason([0, 0, 0, 0x18] + ascii("ftypheic") + [0, 0, 0, 0]).contains("HEIC"))
    #expect(reason([0, 0, 0, 0x1C] + ascii("ftypavif") + [0, 0, 0, 0]).contains("AVIF"))
    #expect(reason(ascii("II*\0\u{8}\0\0\0")).contains("TIFF"))
    #expect(reason(ascii("<!DOCTYPE html><html>")).contains("an HTML page"))
    #expect(reason(ascii("<svg xmlns=\"http://www.w3.org/2000/svg\"/>")).contains("SVG"))
    #expect(reason(ascii("hello, this is a text file\n")).hasSuffix("it looks like text"))
    #expect(reason(ascii("version https://git-lfs.github.com/spec/v1\noid sha256:")).hasSuffix("a Git LFS pointer"))
    #expect(reason(ascii("{\"a\": 1}")).hasSuffix("a JSON file"))
    #expect(reason([0x50, 0x4B, 0x03, 0x04, 0, 0]).hasSuffix("a ZIP archive"))
    #expect(reason(ascii("RIFF\u{4}\0\0\0WAVE")).contains("not WebP"))
    #expect(reason([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A]).contains("damaged PNG"))
    #expect(reason([0x00, 0x01, 0x02, 0xF3]).contains("unknown format (first bytes 00 01 02 F3)"))
    // Truncated to its magic only: the library says so.
    #expect(reason([0xFF, 0xD8, 0xFF]).hasPrefix("corrupt JPEG image: "))
    #expect(reason(Array(try fixtureBytes("png_rgb.png").prefix(8))).hasPrefix("corrupt PNG image: "))
    #expect(reason(Array(try fixtureBytes("webp_lossy.webp").prefix(12))).hasPrefix("corrupt WebP image: "))
}

/// decode(path:) names the file, and refuses folders and missing files by what they are.
@Test func fileErrorsNameThePath() throws {
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: folder) }
    let text = folder.appendingPathComponent("notes.png")
    try Data("not really a png".utf8).write(to: text)
    #expect(throws: ImageError.inFile(path: text.path, .unsupportedFormat(looksLike: "text"))) {
        try ImageDecoder.decode(path: text.path)
    }
    #expect(throws: ImageError.unreadable(path: folder.path, reason: "a folder, not an image file")) {
        try ImageDecoder.decode(path: folder.path)
    }
    let missing = folder.appendingPathComponent("missing.png").path
    #expect(throws: ImageError.unreadable(path: missing, reason: "no such file")) {
        try ImageDecoder.decode(path: missing)
    }
}

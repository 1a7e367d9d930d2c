import Testing
@testable import FluxImages

/// The Exif parser reads untrusted bytes: every malformed structure means "no orientation", never a trap.
struct ExifOrientationTests {
    /// A TIFF block holding IFD0 with the given 12-byte entries.
    static func tiff(little: Bool, entries: [(tag: Int, type: Int, value: Int)], ifdOffset: Int = 8) -> [UInt8] {
        func u16(_ v: Int) -> [UInt8] { little ? [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] : [UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        func u32(_ v: Int) -> [UInt8] { little ? u16(v & 0xFFFF) + u16(v >> 16) : u16(v >> 16) + u16(v & 0xFFFF) }
        var out = (little ? [0x49, 0x49] : [0x4D, 0x4D]) + u16(42) + u32(ifdOffset)
        out += [UInt8](repeating: 0, count: max(0, ifdOffset - 8)) + u16(entries.count)
        for entry in entries {
            out += u16(entry.tag) + u16(entry.type) + u32(1)
            out += entry.type == 4 ? u32(entry.value) : u16(entry.value) + [0, 0]
        }
        return out + u32(0)
    }

    /// A JPEG prefix: SOI, an APP0, APP1 "Exif\0\0" + `tiff`, then SOS.
    static func jpeg(exif tiff: [UInt8]) -> [UInt8] {
        let app0: [UInt8] = [0xFF, 0xE0, 0, 16] + Array("JFIF\0".utf8) + [1, 1, 0, 0, 1, 0, 1, 0, 0]
        let body = Array("Exif\0\0".utf8) + tiff
        let app1: [UInt8] = [0xFF, 0xE1, UInt8((body.count + 2) >> 8), UInt8((body.count + 2) & 0xFF)] + body
        return [0xFF, 0xD8] + app0 + app1 + [0xFF, 0xDA, 0, 2, 0xFF, 0xD9]
    }

    @Test func readsBothByteOrdersAndTypes() {
        for little in [true, false] {
            for value in 1...8 {
                let entries = [(tag: 0x010F, type: 2, value: 0), (tag: 0x0112, type: 3, value: value)]
                #expect(ExifOrientation.jpegOrientation(Self.jpeg(exif: Self.tiff(little: little, entries: entries)))
                        == value)
            }
            let long = Self.tiff(little: little, entries: [(tag: 0x0112, type: 4, value: 6)])
            #expect(ExifOrientation.tiffOrientation(long) == 6)
            let gap = Self.tiff(little: little, entries: [(tag: 0x0112, type: 3, value: 3)], ifdOffset: 20)
            #expect(ExifOrientation.tiffOrientation(gap) == 3)
        }
    }

    @Test func malformedMeansNone() {
        let good = Self.tiff(little: true, entries: [(tag: 0x0112, type: 3, value: 6)])
        #expect(ExifOrientation.tiffOrientation(good) == 6)
        // Out-of-range values, wrong types, bad magic, IFD offsets past the end or near Int limits, truncations.
        #expect(ExifOrientation.tiffOrientation(Self.tiff(little: true, entries: [(0x0112, 3, 9)])) == nil)
        #expect(ExifOrientation.tiffOrientation(Self.tiff(little: true, entries: [(0x0112, 3, 0)])) == nil)
        #expect(ExifOrientation.tiffOrientation(Self.tiff(little: true, entries: [(0x0112, 7, 6)])) == nil)
        var magic = good
        magic[2] = 43
        #expect(ExifOrientation.tiffOrientation(magic) == nil)
        for offset in [0xFFFF_FFFF, 0x7FFF_FFFF, 1_000, 7, 0] {
            var moved = good
            (moved[4], moved[5], moved[6], moved[7]) = (UInt8(offset & 0xFF), UInt8(offset >> 8 & 0xFF),
                                                        UInt8(offset >> 16 & 0xFF), UInt8(offset >> 24 & 0xFF))
            _ = ExifOrientation.tiffOrientation(moved)
        }
        var manyEntries = good
        (manyEntries[8], manyEntries[9]) = (0xFF, 0xFF)  // 65535 entries declared, one present
        #expect(ExifOrientation.tiffOrientation(manyEntries) == nil || ExifOrientation.tiffOrientation(manyEntries) == 6)
        for cut in 0..<good.count { _ = ExifOrientation.tiffOrientation(Array(good.prefix(cut))) }
        let file = Self.jpeg(exif: good)
        for cut in 0..<file.count { _ = ExifOrientation.jpegOrientation(Array(file.prefix(cut))) }
        // A segment length running past the end, or shorter than its own length field.
        var long = file
        (long[24], long[25]) = (0xFF, 0xFF)
        #expect(ExifOrientation.jpegOrientation(long) == nil)
        #expect(ExifOrientation.jpegOrientation([0xFF, 0xD8, 0xFF, 0xE1, 0, 0, 0, 0]) == nil)
    }

    /// The transpositions on a 3×2 image of distinct pixels, against Pillow's methods written out by hand.
    @Test func transposesAsPillow() {
        // Pixel values 0…5 in the red channel: row 0 = 0 1 2, row 1 = 3 4 5.
        let pixels: [UInt8] = (0..<6).flatMap { [UInt8($0), 0, 0, 255] }
        let image = DecodedImage(width: 3, height: 2, pixels: pixels, hasAlpha: false, format: .jpeg)
        let expected: [Int: (Int, Int, [UInt8])] = [
            1: (3, 2, [0, 1, 2, 3, 4, 5]),
            2: (3, 2, [2, 1, 0, 5, 4, 3]),  // FLIP_LEFT_RIGHT
            3: (3, 2, [5, 4, 3, 2, 1, 0]),  // ROTATE_180
            4: (3, 2, [3, 4, 5, 0, 1, 2]),  // FLIP_TOP_BOTTOM
            5: (2, 3, [0, 3, 1, 4, 2, 5]),  // TRANSPOSE
            6: (2, 3, [3, 0, 4, 1, 5, 2]),  // ROTATE_270 (90° clockwise)
            7: (2, 3, [5, 2, 4, 1, 3, 0]),  // TRANSVERSE
            8: (2, 3, [2, 5, 1, 4, 0, 3]),  // ROTATE_90 (counter-clockwise)
        ]
        for (orientation, (width, height, red)) in expected {
            let upright = ExifOrientation.upright(image, orientation: orientation)
            #expect(upright.width == width && upright.height == height, "\(orientation)")
            #expect(stride(from: 0, to: upright.pixels.count, by: 4).map { upright.pixels[$0] } == red,
                    "orientation \(orientation)")
        }
    }
}

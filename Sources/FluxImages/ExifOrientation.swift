/// The EXIF Orientation tag (0x0112) of a JPEG, and the transposition that makes its pixels upright, as Pillow's
/// `ImageOps.exif_transpose`.
///
/// The file's bytes are untrusted: every offset is checked against the segment before it is read, counts are bounded
/// by the bytes present, and anything unexpected means "no orientation" (the image is decoded as stored) rather than
/// an error, as Pillow does with a broken Exif block.
enum ExifOrientation {
    /// Orientation 1…8 from the first APP1 segment that starts with "Exif\0\0" before the image data (as Pillow reads
    /// it), or nil.
    static func jpegOrientation(_ bytes: [UInt8]) -> Int? {
        var offset = 2  // after SOI (FF D8)
        while offset + 4 <= bytes.count {
            guard bytes[offset] == 0xFF else { return nil }
            let marker = bytes[offset + 1]
            if marker == 0xFF { offset += 1; continue }  // fill byte
            if marker == 0x01 || (0xD0...0xD8).contains(marker) { offset += 2; continue }  // no length field
            if marker == 0xDA || marker == 0xD9 { return nil }  // start of scan / end of image: no Exif before it
            let length = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])  // includes its own two bytes
            guard length >= 2, offset + 2 + length <= bytes.count else { return nil }
            let body = bytes[(offset + 4)..<(offset + 2 + length)]
            if marker == 0xE1, body.starts(with: [0x45, 0x78, 0x69, 0x66, 0, 0]) {  // "Exif\0\0"
                return tiffOrientation(Array(body.dropFirst(6)))
            }
            offset += 2 + length
        }
        return nil
    }

    /// Orientation from a TIFF structure: byte order "II" (little-endian) or "MM" (big-endian), 42, the offset of
    /// IFD0; IFD0 is a 16-bit entry count then 12-byte entries (tag, type, count, value or offset). Orientation is a
    /// SHORT (type 3; a LONG, type 4, is accepted too) held in the entry itself. Nil unless it is 1…8.
    static func tiffOrientation(_ tiff: [UInt8]) -> Int? {
        guard tiff.count >= 8 else { return nil }
        let little: Bool
        switch (tiff[0], tiff[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return nil
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= tiff.count else { return nil }
            return little ? Int(tiff[at]) | Int(tiff[at + 1]) << 8 : Int(tiff[at]) << 8 | Int(tiff[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard let a = u16(at), let b = u16(at + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return nil }
        for index in 0..<count {
            let entry = ifd + 2 + 12 * index
            guard let tag = u16(entry), let type = u16(entry + 2) else { return nil }
            guard tag == 0x0112 else { continue }
            let value = type == 3 ? u16(entry + 8) : type == 4 ? u32(entry + 8) : nil
            return value.flatMap { (1...8).contains($0) ? $0 : nil }
        }
        return nil
    }

    /// `image` turned upright for `orientation` (nil or 1: unchanged). With (x, y) the output pixel and W×H the
    /// stored size, the source pixel is, per tag value (Pillow's transpose method in brackets):
    /// 2 (W−1−x, y) [FLIP_LEFT_RIGHT]; 3 (W−1−x, H−1−y) [ROTATE_180]; 4 (x, H−1−y) [FLIP_TOP_BOTTOM];
    /// 5 (y, x) [TRANSPOSE]; 6 (y, H−1−x) [ROTATE_270, i.e. 90° clockwise]; 7 (W−1−y, H−1−x) [TRANSVERSE];
    /// 8 (W−1−y, x) [ROTATE_90, counter-clockwise]. 5–8 swap width and height.
    static func upright(_ image: DecodedImage, orientation: Int?) -> DecodedImage {
        guard let orientation, (2...8).contains(orientation) else { return image }
        let (w, h) = (image.width, image.height)
        let swaps = orientation >= 5
        let (outW, outH) = swaps ? (h, w) : (w, h)
        var out = [UInt8](repeating: 0, count: image.pixels.count)
        image.pixels.withUnsafeBytes { source in
            let src = source.bindMemory(to: UInt32.self)  // one RGBA pixel per UInt32: a plain copy
            out.withUnsafeMutableBytes { destination in
                let dst = destination.bindMemory(to: UInt32.self)
                for y in 0..<outH {
                    for x in 0..<outW {
                        let (sx, sy): (Int, Int)
                        switch orientation {
                        case 2: (sx, sy) = (w - 1 - x, y)
                        case 3: (sx, sy) = (w - 1 - x, h - 1 - y)
                        case 4: (sx, sy) = (x, h - 1 - y)
                        case 5: (sx, sy) = (y, x)
                        case 6: (sx, sy) = (y, h - 1 - x)
                        case 7: (sx, sy) = (w - 1 - y, h - 1 - x)
                        default: (sx, sy) = (w - 1 - y, x)
                        }
                        dst[y * outW + x] = src[sy * w + sx]
                    }
                }
            }
        }
        return DecodedImage(width: outW, height: outH, pixels: out, hasAlpha: image.hasAlpha, format: image.format)
    }
}

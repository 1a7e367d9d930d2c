import Foundation

/// Untrusted bytes to upright RGBA8 pixels: the format from the magic bytes, the size limits checked on the byte
/// count and then on the header's dimensions before any pixel buffer exists, the pixels decoded by the format's
/// library (libpng, libjpeg-turbo, libwebp, loaded at run time). Every failure is one `ImageError`.
public enum ImageDecoder {
    /// Decodes a PNG, JPEG or WebP held in memory.
    public static func decode(_ bytes: [UInt8], limits: ImageLimits = ImageLimits(),
                              libraries: ImageLibraries = .system) throws -> DecodedImage {
        try limits.checkBytes(bytes.count)
        switch try ImageFormat.detect(bytes) {
        case .png: return try PNGDecoder.decode(bytes, limits: limits, libraries: libraries)
        case .jpeg: return try JPEGDecoder.decode(bytes, limits: limits, libraries: libraries)
        case .webp: return try WebPDecoder.decode(bytes, limits: limits, libraries: libraries)
        }
    }

    /// Decodes the file at `path`; its size is checked against `limits.maxBytes` before it is read. Errors are
    /// `ImageError.inFile(path, reason)`.
    public static func decode(path: String, limits: ImageLimits = ImageLimits(),
                              libraries: ImageLibraries = .system) throws -> DecodedImage {
        do {
            return try decode(readFile(path, limits: limits), limits: limits, libraries: libraries)
        } catch let error as ImageError {
            if case .unreadable = error { throw error }
            throw ImageError.inFile(path: path, error)
        }
    }

    static func readFile(_ path: String, limits: ImageLimits) throws -> [UInt8] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw ImageError.unreadable(path: path, reason: "no such file")
        }
        if isFolder.boolValue { throw ImageError.unreadable(path: path, reason: "a folder, not an image file") }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
        if let size { try limits.checkBytes(size) }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ImageError.unreadable(path: path, reason: "cannot be opened for reading")
        }
        defer { try? handle.close() }
        // Read at most one byte past the limit, in case the file grew (or is a pipe whose size was unknown).
        let data: Data
        do { data = try handle.read(upToCount: limits.maxBytes + 1) ?? Data() } catch {
            throw ImageError.unreadable(path: path, reason: "read failed: \(error.localizedDescription)")
        }
        try limits.checkBytes(data.count)
        return [UInt8](data)
    }
}

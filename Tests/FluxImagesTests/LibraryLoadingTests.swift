import Testing
@testable import FluxImages

/// A missing library is one error naming it and the Debian package that provides it; the other formats still work.
struct LibraryLoadingTests {
    @Test func missingLibrariesAreNamed() throws {
        let missing = ImageLibraries(png: ["/nonexistent/libpng16.so.16"], jpeg: ["/nonexistent/libturbojpeg.so.0"],
                                     webp: ["/nonexistent/libwebp.so.7", "libwebp-not-here.so.99"])
        let cases: [(String, String, String, [String])] = [
            ("png_rgb.png", "libpng16", "libpng16-16", missing.png),
            ("jpeg_baseline.jpg", "libturbojpeg", "libturbojpeg0", missing.jpeg),
            ("webp_lossy.webp", "libwebp", "libwebp7", missing.webp),
        ]
        for (file, library, package, tried) in cases {
            let error = #expect(throws: ImageError.self) {
                try ImageDecoder.decode(try fixtureBytes(file), libraries: missing)
            }
            #expect(error == .libraryMissing(library: library, package: package, tried: tried))
            let text = "\(error!)"
            print(text)
            #expect(text.contains(package) && text.contains(tried[0]))
        }
        // Only WebP's library missing: PNG and JPEG decode as usual.
        let noWebP = ImageLibraries(webp: ["/nonexistent/libwebp.so.7"])
        #expect(try ImageDecoder.decode(try fixtureBytes("png_rgb.png"), libraries: noWebP).width == 27)
        #expect(try ImageDecoder.decode(try fixtureBytes("jpeg_baseline.jpg"), libraries: noWebP).width == 27)
    }

    /// A library that loads but lacks the functions (here libwebp given as libpng) is named as too old.
    @Test func wrongLibraryIsNamed() throws {
        let wrong = ImageLibraries(png: ImageLibraries.system.webp)
        #expect(throws: ImageError.libraryTooOld(library: "libpng16", symbol: "png_image_begin_read_from_memory")) {
            try ImageDecoder.decode(try fixtureBytes("png_rgb.png"), libraries: wrong)
        }
    }
}

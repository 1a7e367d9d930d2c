import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the three decoding libraries are looked for: for each, file names (tried through the dynamic loader's own
/// search) or paths, most preferred first. Opened with `dlopen` at first use, so FluxServe builds without any -dev
/// package and a machine without, say, libwebp still decodes PNG and JPEG.
///
/// This is a loader of its own rather than FluxCUDA's `DynamicLibrary`: that one is built around CUDA's search
/// (`CUDABackend.LibraryPaths`, the toolkit folders, `TensorError.backend` texts that CUDA tests check), while these
/// libraries are found by name in the system's folders and their errors name a Debian package.
public struct ImageLibraries: Sendable, Hashable {
    /// libpng 1.6 (its simplified API, 1.6.0+). Debian: libpng16-16.
    public var png: [String]
    /// libjpeg-turbo's TurboJPEG API 2.x (tjDecompress2; 2.1+ for TJFLAG_LIMITSCANS). Debian: libturbojpeg0.
    public var jpeg: [String]
    /// libwebp 1.x. Debian: libwebp7.
    public var webp: [String]

    public init(png: [String] = ["libpng16.so.16", "libpng16.16.dylib"],
                jpeg: [String] = ["libturbojpeg.so.0", "libturbojpeg.0.dylib"],
                webp: [String] = ["libwebp.so.7", "libwebp.7.dylib"]) {
        (self.png, self.jpeg, self.webp) = (png, jpeg, webp)
    }

    /// The names above, through the loader's search path.
    public static let system = ImageLibraries()
}

/// One opened library: `dlsym` through it, typed as the C function pointer the caller names.
struct LoadedLibrary: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    let name: String

    /// The first of `candidates` that `dlopen` accepts, kept open for the process (a library is opened once per
    /// candidate list; later calls find it in the cache). Throws `libraryMissing` naming `name` and `package`.
    static func open(_ candidates: [String], name: String, package: String) throws -> LoadedLibrary {
        try cache.withLock { opened in
            if let handle = opened[candidates] { return LoadedLibrary(handle: handle, name: name) }
            for candidate in candidates {
                if let handle = dlopen(candidate, RTLD_NOW | RTLD_LOCAL) {
                    opened[candidates] = handle
                    return LoadedLibrary(handle: handle, name: name)
                }
            }
            throw ImageError.libraryMissing(library: name, package: package, tried: candidates)
        }
    }

    /// The function `symbol`, as `T` (a `@convention(c)` type matching the library's documented prototype).
    func function<T>(_ symbol: String, as type: T.Type = T.self) throws -> T {
        guard let address = dlsym(handle, symbol) else { throw ImageError.libraryTooOld(library: name, symbol: symbol) }
        return unsafeBitCast(address, to: T.self)
    }

    private static let cache = LockedHandles()
}

/// Opened handles by candidate list, behind a lock (decoders run on any thread). Handles are never closed.
private final class LockedHandles: @unchecked Sendable {
    private let lock = NSLock()
    private var handles: [[String]: UnsafeMutableRawPointer] = [:]

    func withLock<R>(_ body: (inout [[String]: UnsafeMutableRawPointer]) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&handles)
    }
}

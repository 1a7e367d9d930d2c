import FluxCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A shared library opened with `dlopen` at run time, so that nothing links against CUDA at build time.
///
/// Where it is looked for: `LibrarySearch`, from `CUDABackend.LibraryPaths` (search order there).
final class DynamicLibrary: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    /// What was opened: a path, or the bare name resolved by the loader.
    let path: String

    private init(handle: UnsafeMutableRawPointer, path: String) {
        self.handle = handle
        self.path = path
    }

    /// Opens the first of `names` (most preferred first, e.g. `libnvrtc.so.13`, `libnvrtc.so.12`) found on the
    /// search path. `what` explains in the error what a missing library means (e.g. "no NVIDIA driver").
    /// `override` is the library's own entry of `LibraryPaths` (a file or a folder), tried first.
    static func open(_ names: [String], override: String?, what: String, search: LibrarySearch) throws
        -> DynamicLibrary
    {
        var tried: [String] = []
        for candidate in search.candidates(names, override: override) {
            tried.append(candidate)
            if let handle = dlopen(candidate, RTLD_NOW | RTLD_LOCAL) {
                return DynamicLibrary(handle: handle, path: candidate)
            }
        }
        let first = names.first ?? "library"
        let detail = search.verbose ? "; tried \(tried.joined(separator: ", "))" : ""
        throw TensorError.backend("\(first) not found (\(what))\(detail)")
    }

    /// The address of the first of `names` the library exports, as a C function pointer of type `T`.
    func function<T>(_ names: String...) throws -> T {
        for name in names {
            if let address = dlsym(handle, name) { return unsafeBitCast(address, to: T.self) }
        }
        throw TensorError.backend("cuda: \(path) lacks \(names.joined(separator: " / ")) (library too old?)")
    }

    /// The address of a symbol, or nil when the library lacks it (optional entry points).
    func optionalFunction<T>(_ name: String) -> T? {
        dlsym(handle, name).map { unsafeBitCast($0, to: T.self) }
    }
}

/// Where `DynamicLibrary` looks: the backend's `LibraryPaths`, then standard folders, then the loader's own search.
struct LibrarySearch: Sendable, Hashable {
    /// The CUDA 13 image of the GPU machines: toolkit libraries, PyTorch's wheel copies, the distribution's folder.
    static let standardDirectories = [
        "/usr/local/cuda-13.0/targets/x86_64-linux/lib",
        "/usr/local/cuda/targets/x86_64-linux/lib",
        "/usr/local/cuda/lib64",
        "/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib",
    ]

    /// The backend's overrides and folders (`CUDABackend.Options.libraries`).
    var paths: CUDABackend.LibraryPaths
    /// Folders searched after `paths`.
    var directories: [String]
    /// Whether to try the bare name through the loader's own search.
    var useLoaderPath: Bool

    /// `paths`, then the standard folders and the loader's search (what a backend uses).
    init(_ paths: CUDABackend.LibraryPaths = .init(), directories: [String] = LibrarySearch.standardDirectories,
         useLoaderPath: Bool = true) {
        (self.paths, self.directories, self.useLoaderPath) = (paths, directories, useLoaderPath)
    }

    /// Errors list every path tried (`LibraryPaths.verbose`).
    var verbose: Bool { paths.verbose }

    /// Paths to try, in order, for a library with these file names and its own override (a file or a folder).
    func candidates(_ names: [String], override: String?) -> [String] {
        var out: [String] = []
        func addFolder(_ folder: String) {
            for name in names { out.append((folder as NSString).appendingPathComponent(name)) }
        }
        if let value = override, !value.isEmpty {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: value, isDirectory: &isFolder), isFolder.boolValue {
                addFolder(value)
            } else {
                out.append(value)
            }
        }
        for folder in paths.directories where !folder.isEmpty { addFolder(folder) }
        for folder in directories where FileManager.default.fileExists(atPath: folder) { addFolder(folder) }
        if useLoaderPath { out.append(contentsOf: names) }
        return out
    }
}

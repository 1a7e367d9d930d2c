import FluxCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A shared library opened with `dlopen` at run time, so that nothing links against CUDA at build time.
///
/// Search order for a library (first hit wins):
/// 1. its own variable (e.g. `FLUXSERVE_LIBNVRTC`): a file, or a folder holding one of its names;
/// 2. `FLUXSERVE_CUDA_LIB_DIR` (a folder, or several joined by `:`);
/// 3. the folders of the GPU machines' image (`LibrarySearch.standardDirectories`);
/// 4. the bare name, which `dlopen` resolves through `LD_LIBRARY_PATH` and the loader cache.
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
    static func open(_ names: [String], variable: String, what: String,
                     search: LibrarySearch = .fromEnvironment()) throws -> DynamicLibrary
    {
        var tried: [String] = []
        for candidate in search.candidates(names, variable: variable) {
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

/// Where `DynamicLibrary` looks, read from the environment (or given by tests).
struct LibrarySearch: Sendable {
    /// The CUDA 13 image of the GPU machines: toolkit libraries, PyTorch's wheel copies, the distribution's folder.
    static let standardDirectories = [
        "/usr/local/cuda-13.0/targets/x86_64-linux/lib",
        "/usr/local/cuda/targets/x86_64-linux/lib",
        "/usr/local/cuda/lib64",
        "/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib",
    ]

    /// The process environment (or a test's stand-in).
    var environment: [String: String]
    /// Folders searched after the variables.
    var directories: [String]
    /// Whether to try the bare name through the loader's own search.
    var useLoaderPath: Bool

    /// Errors list every path tried when `FLUXSERVE_CUDA_DEBUG` is set.
    var verbose: Bool { environment["FLUXSERVE_CUDA_DEBUG"].map { !$0.isEmpty && $0 != "0" } ?? false }

    static func fromEnvironment() -> LibrarySearch {
        LibrarySearch(environment: ProcessInfo.processInfo.environment, directories: standardDirectories,
                      useLoaderPath: true)
    }

    /// Paths to try, in order, for a library with these file names.
    func candidates(_ names: [String], variable: String) -> [String] {
        var out: [String] = []
        func addFolder(_ folder: String) {
            for name in names { out.append((folder as NSString).appendingPathComponent(name)) }
        }
        if let value = environment[variable], !value.isEmpty {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: value, isDirectory: &isFolder), isFolder.boolValue {
                addFolder(value)
            } else {
                out.append(value)
            }
        }
        for folder in (environment["FLUXSERVE_CUDA_LIB_DIR"] ?? "").split(separator: ":") { addFolder(String(folder)) }
        for folder in directories where FileManager.default.fileExists(atPath: folder) { addFolder(folder) }
        if useLoaderPath { out.append(contentsOf: names) }
        return out
    }
}

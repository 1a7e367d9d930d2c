import FluxCore
import Foundation

/// NVRTC, the run-time CUDA C++ compiler (`libnvrtc.so.13`), loaded with `dlopen`. Compiles a kernel source to a
/// CUBIN for one architecture; the driver loads the CUBIN with `cuModuleLoadData`.
final class NVRTC: @unchecked Sendable {
    typealias Status = Int32
    typealias Program = OpaquePointer
    typealias CStrings = UnsafePointer<UnsafePointer<CChar>?>?

    let library: DynamicLibrary
    /// (major, minor) of the compiler, part of every cache key.
    let version: (major: Int, minor: Int)

    private let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Status
    private let nvrtcCreateProgram: @convention(c) (
        UnsafeMutablePointer<Program?>, UnsafePointer<CChar>, UnsafePointer<CChar>, Int32, CStrings, CStrings
    ) -> Status
    private let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<Program?>) -> Status
    private let nvrtcCompileProgram: @convention(c) (Program?, Int32, CStrings) -> Status
    private let nvrtcGetCUBINSize: @convention(c) (Program?, UnsafeMutablePointer<Int>) -> Status
    private let nvrtcGetCUBIN: @convention(c) (Program?, UnsafeMutablePointer<CChar>) -> Status
    private let nvrtcGetProgramLogSize: @convention(c) (Program?, UnsafeMutablePointer<Int>) -> Status
    private let nvrtcGetProgramLog: @convention(c) (Program?, UnsafeMutablePointer<CChar>) -> Status
    private let nvrtcGetErrorString: @convention(c) (Status) -> UnsafePointer<CChar>?

    init(search: LibrarySearch = LibrarySearch()) throws {
        let lib = try DynamicLibrary.open(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"],
                                          override: search.paths.nvrtc,
                                          what: "CUDA run-time compiler; give its folder with --cuda-lib-dir",
                                          search: search)
        library = lib
        NVRTC.preloadBuiltins(besides: lib.path)
        nvrtcVersion = try lib.function("nvrtcVersion")
        nvrtcCreateProgram = try lib.function("nvrtcCreateProgram")
        nvrtcDestroyProgram = try lib.function("nvrtcDestroyProgram")
        nvrtcCompileProgram = try lib.function("nvrtcCompileProgram")
        nvrtcGetCUBINSize = try lib.function("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try lib.function("nvrtcGetCUBIN")
        nvrtcGetProgramLogSize = try lib.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try lib.function("nvrtcGetProgramLog")
        nvrtcGetErrorString = try lib.function("nvrtcGetErrorString")
        var major: Int32 = 0, minor: Int32 = 0
        _ = nvrtcVersion(&major, &minor)
        version = (Int(major), Int(minor))
    }

    /// NVRTC opens `libnvrtc-builtins.so.<major>.<minor>` by bare name at the first compile, which fails when the
    /// toolkit folder is not on the loader path. Opening it first from the folder `libnvrtc` came from makes the
    /// later lookup (matched by soname) succeed.
    private static func preloadBuiltins(besides libraryPath: String) {
        guard libraryPath.contains("/") else { return }
        let folder = (libraryPath as NSString).deletingLastPathComponent
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        for file in files.sorted() where file.hasPrefix("libnvrtc-builtins.so.") {
            _ = dlopen((folder as NSString).appendingPathComponent(file), RTLD_NOW | RTLD_GLOBAL)
        }
    }

    private func check(_ status: Status, _ call: String) throws {
        guard status != 0 else { return }
        let text = nvrtcGetErrorString(status).map { String(cString: $0) } ?? "nvrtcResult \(status)"
        throw TensorError.backend("cuda: \(call): \(text)")
    }

    /// Compiles `source` (named `name` in messages) with `headers` (include name → text) and `options`; returns the
    /// CUBIN. A compile error throws with NVRTC's log.
    func compile(source: String, name: String, headers: [(name: String, text: String)], options: [String]) throws
        -> [UInt8]
    {
        var program: Program?
        let created = withCStrings(headers.map(\.text)) { texts in
            withCStrings(headers.map(\.name)) { names in
                nvrtcCreateProgram(&program, source, name, Int32(headers.count), texts, names)
            }
        }
        try check(created, "nvrtcCreateProgram(\(name))")
        defer { _ = nvrtcDestroyProgram(&program) }
        let compiled = withCStrings(options) { nvrtcCompileProgram(program, Int32(options.count), $0) }
        if compiled != 0 {
            let message = nvrtcGetErrorString(compiled).map { String(cString: $0) } ?? "nvrtcResult \(compiled)"
            throw TensorError.backend("cuda: nvrtcCompileProgram(\(name)): \(message)\n\(log(program))")
        }
        var size = 0
        try check(nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize(\(name))")
        var cubin = [UInt8](repeating: 0, count: size)
        try cubin.withUnsafeMutableBytes { raw in
            try check(nvrtcGetCUBIN(program, raw.baseAddress!.assumingMemoryBound(to: CChar.self)),
                      "nvrtcGetCUBIN(\(name))")
        }
        return cubin
    }

    private func log(_ program: Program?) -> String {
        var size = 0
        guard nvrtcGetProgramLogSize(program, &size) == 0, size > 1 else { return "" }
        var text = [CChar](repeating: 0, count: size)
        guard nvrtcGetProgramLog(program, &text) == 0 else { return "" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Calls `body` with a C array of C strings for `strings` (valid only during the call).
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    let pointers = copies.map { UnsafePointer<CChar>($0) }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
}

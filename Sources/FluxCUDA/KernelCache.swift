import FluxCore
import Foundation

/// Compiles the kernel modules (`KernelSources`, one `.cu` file each) with NVRTC at first use, keeps the CUBINs on
/// disk, and loads them into the device's context.
///
/// A CUBIN's file name holds the SHA-256 of everything that decides its contents: the module and header text, the
/// NVRTC options, the target architecture and the NVRTC version. A changed kernel, compiler or GPU therefore misses
/// the cache and compiles afresh; a stale file is never loaded. Folder: `CUDABackend.Options.kernelCacheDirectory`
/// (the command line's `--kernel-cache`, by default `~/.cache/fluxserve/kernels`); without one, or when it cannot be
/// written, the CUBINs are kept in memory only.
final class KernelCache: @unchecked Sendable {
    /// How one module was made ready.
    struct LoadReport: Sendable {
        let module: String
        /// `compiled` (NVRTC ran), `disk` (CUBIN read from the cache folder) or `memory` (already loaded).
        let source: String
        let milliseconds: Double
        let cubinBytes: Int
    }

    let driver: CUDADriver
    /// NVRTC target, e.g. `sm_90a`.
    let architecture: String
    let directory: URL?
    private let nvrtc: NVRTC
    private var modules: [String: CUhandle] = [:]
    private var functions: [String: CUhandle] = [:]
    private var sharedLimits: [String: Int] = [:]
    private let lock = NSLock()

    init(driver: CUDADriver, computeCapability: (Int, Int), nvrtc: NVRTC, directory: URL?) {
        self.driver = driver
        self.nvrtc = nvrtc
        architecture = KernelCache.architecture(computeCapability)
        self.directory = directory
    }

    /// `sm_XY`, with the `a` suffix on 9.0 so Hopper-only instructions (wgmma, setmaxnreg) are allowed.
    static func architecture(_ capability: (Int, Int)) -> String {
        let base = "sm_\(capability.0)\(capability.1)"
        return capability == (9, 0) ? base + "a" : base
    }

    var nvrtcVersion: (major: Int, minor: Int) { nvrtc.version }

    var options: [String] { ["--gpu-architecture=\(architecture)", "--std=c++17"] }

    /// The cache key of a module: hex SHA-256 over source, headers, options, architecture and NVRTC version.
    func key(module: String, source: String) -> String {
        var h = SHA256()
        h.update("fluxserve-kernel-v1\u{0}\(module)\u{0}\(source)\u{0}")
        for header in KernelSources.headers { h.update("\(header.name)\u{0}\(header.text)\u{0}") }
        h.update(options.joined(separator: " ") + "\u{0}\(architecture)\u{0}nvrtc \(nvrtc.version.major).\(nvrtc.version.minor)")
        return h.finalize().map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// A kernel function by module (file) and `extern "C"` name. The caller holds the backend's context current.
    func function(_ module: String, _ name: String) throws -> CUhandle {
        lock.lock()
        defer { lock.unlock() }
        let id = module + "." + name
        if let f = functions[id] { return f }
        let handle = try loadLocked(module).handle
        var f: CUhandle?
        try driver.check(driver.cuModuleGetFunction(&f, handle, name), "cuModuleGetFunction(\(id))")
        guard let f else { throw TensorError.backend("cuda: cuModuleGetFunction(\(id)) returned nothing") }
        functions[id] = f
        return f
    }

    /// Lets `function` use up to `bytes` of dynamic shared memory (needed above 48 KB), once per size.
    func allowSharedMemory(_ function: CUhandle, id: String, bytes: Int) throws {
        lock.lock()
        defer { lock.unlock() }
        guard bytes > 48 * 1024, bytes > sharedLimits[id, default: 0] else { return }
        try driver.check(driver.cuFuncSetAttribute(function, CUDADriver.functionMaxDynamicSharedBytes, Int32(bytes)),
                         "cuFuncSetAttribute(\(id), max dynamic shared \(bytes))")
        sharedLimits[id] = bytes
    }

    /// Compiles (or reads from disk) and loads every module; for `fluxserve warmup`.
    func loadAll() throws -> [LoadReport] {
        lock.lock()
        defer { lock.unlock() }
        return try KernelSources.modules.map { try loadLocked($0.name).report }
    }

    private func loadLocked(_ module: String) throws -> (handle: CUhandle, report: LoadReport) {
        if let handle = modules[module] {
            return (handle, LoadReport(module: module, source: "memory", milliseconds: 0, cubinBytes: 0))
        }
        guard let source = KernelSources.modules.first(where: { $0.name == module })?.text else {
            throw TensorError.backend("cuda: no kernel module named \(module)")
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let key = key(module: module, source: source)
        let file = directory?.appendingPathComponent("\(module)-\(architecture)-\(key.prefix(32)).cubin")
        var origin = "disk"
        var cubin: [UInt8]
        var handle: CUhandle?
        if let file, let data = try? Data(contentsOf: file), !data.isEmpty,
           let loaded = try? loadCubin([UInt8](data), module: module)
        {
            cubin = [UInt8](data)
            handle = loaded
        } else {
            origin = "compiled"
            cubin = try nvrtc.compile(source: source, name: "\(module).cu", headers: KernelSources.headers,
                                      options: options)
            handle = try loadCubin(cubin, module: module)
            if let file { store(cubin, at: file) }
        }
        guard let handle else { throw TensorError.backend("cuda: cuModuleLoadData(\(module)) returned nothing") }
        modules[module] = handle
        let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        return (handle, LoadReport(module: module, source: origin, milliseconds: ms, cubinBytes: cubin.count))
    }

    private func loadCubin(_ cubin: [UInt8], module: String) throws -> CUhandle? {
        var handle: CUhandle?
        try cubin.withUnsafeBytes { raw in
            try driver.check(driver.cuModuleLoadData(&handle, raw.baseAddress!), "cuModuleLoadData(\(module))")
        }
        return handle
    }

    /// Writes atomically (temporary file, then rename), so a concurrent reader never sees half a CUBIN. Failure to
    /// write only costs a recompile next time.
    private func store(_ cubin: [UInt8], at file: URL) {
        let folder = file.deletingLastPathComponent()
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let temporary = folder.appendingPathComponent(".\(file.lastPathComponent).\(getpid()).tmp")
        do {
            try Data(cubin).write(to: temporary)
            _ = rename(temporary.path, file.path)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
        }
    }
}

import ArgumentParser
import FluxCPU
import FluxCUDA
import FluxCore
import Foundation

/// `--threads`, `--blas`: the CPU backend's process-wide options (every command that runs ops; `bench-cpu` too).
struct CPUFlags: ParsableArguments {
    @Option(help: "CPU worker threads (default: every active core). Alias: FLUXSERVE_THREADS.")
    var threads: String?

    @Option(help: """
        CPU matrix products: auto (first of OpenBLAS, BLIS, MKL, reference BLAS found), none (the Swift kernel), or a \
        library path. Alias: FLUXSERVE_BLAS.
        """)
    var blas: String?
}

/// The GPU flags; rarely used knobs have only their environment alias (docs/configuration.md).
struct CUDAFlags: ParsableArguments {
    @Option(help: """
        Folder of compiled GPU kernels (CUBINs), or 'none' to keep them in memory (default: \
        ~/.cache/fluxserve/kernels). Alias: FLUXSERVE_CACHE (its kernels subfolder).
        """)
    var kernelCache: String?

    @Option(help: """
        Folders (joined by ':') searched first for libcuda, NVRTC, cuBLASLt and cuDNN. Alias: FLUXSERVE_CUDA_LIB_DIR.
        """)
    var cudaLibDir: String?

    @Option(help: """
        cuBLASLt algorithm choice: on (time candidates per shape), off, or words such as candidates=N, repeats=N, all, \
        pick=N, log. Alias: FLUXSERVE_GEMM_TUNE.
        """)
    var gemmTune: String?

    @Option(help: """
        fp8 products with cuBLASLt's fast accumulation: on or off (default on). Alias: FLUXSERVE_FP8_FAST_ACCUM.
        """)
    var fp8FastAccum: String?

    @Option(help: """
        Convolution engine: auto (cuDNN, timed), im2col, or words such as nchw, nhwc, first, nortc, configs=N. Alias: \
        FLUXSERVE_CONV.
        """)
    var conv: String?
}

/// Where a device's options come from: `--device`.
enum DeviceChoice: Equatable, CustomStringConvertible {
    case cpu
    case cuda(Int)

    init(parsing text: String) throws {
        let name = text.lowercased()
        if name == "cpu" { self = .cpu; return }
        if name == "cuda" || name.hasPrefix("cuda:"), let ordinal = name == "cuda" ? 0 : Int(name.dropFirst(5)),
           ordinal >= 0
        {
            self = .cuda(ordinal)
            return
        }
        throw ValidationError("--device '\(text)': expected cpu, cuda or cuda:N")
    }

    var description: String {
        switch self {
        case .cpu: "cpu"
        case .cuda(let ordinal): "cuda:\(ordinal)"
        }
    }
}

/// The backend options of one command, and the line and JSON object that say what they are.
struct BackendConfiguration {
    var device: DeviceChoice
    var cpu: CPUBackend.Options
    var cuda: CUDABackend.Options

    /// The effective values, in the order of the `config:` line (also `bench --json`'s `config` object).
    var entries: [(key: String, value: String)] {
        var list: [(String, String)] = [("device", device.description), ("threads", "\(cpu.threads)"),
                                        ("blas", cpu.blas.description)]
        if case .cuda = device {
            list += [
                ("gemm-tune", cuda.gemmTuning.summary),
                ("fp8-fast-accum", cuda.fp8FastAccumulation ? "on" : "off"),
                ("conv", cuda.convolution.summary),
                ("kernel-cache", cuda.kernelCacheDirectory ?? "none"),
                ("cuda-lib-dir", cuda.libraries.directories.isEmpty ? "-" : cuda.libraries.directories.joined(separator: ":")),
            ]
            let overrides = [("libcuda", cuda.libraries.driver), ("libnvrtc", cuda.libraries.nvrtc),
                             ("libcublaslt", cuda.libraries.cublasLt), ("libcudnn", cuda.libraries.cudnn)]
            list += overrides.compactMap { name, path in path.map { (name, $0) } }
            if cuda.libraries.verbose { list.append(("cuda-debug", "on")) }
            if cuda.imageDiagnostics.summary != "off" { list.append(("image-diagnostics", cuda.imageDiagnostics.summary)) }
        }
        return list.map { (key: $0.0, value: $0.1) }
    }

    /// `config: device=cuda:0 threads=16 blas=auto gemm-tune=on ...`
    var line: String { "config: " + entries.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }

    var dictionary: [String: String] {
        Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
    }

    /// Applies the CPU options (process-wide) and makes the backend of `device`.
    func makeBackend() throws -> any Backend {
        try CPUBackend.configure(cpu)
        switch device {
        case .cpu:
            return CPUBackend()
        case .cuda:
            do {
                return try CUDABackend(options: cuda)
            } catch {
                throw ValidationError("--device \(device): \(error); use --device cpu")
            }
        }
    }

    /// Prints `line` to standard error, once per process however many backends are made.
    func announce() {
        BackendConfiguration.announced.withLock { done in
            guard !done else { return }
            done = true
            printError(line)
        }
    }

    private static let announced = LockedFlag()
}

/// A flag behind a lock (`announce` may run from a worker thread of `serve`).
final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func withLock(_ body: (inout Bool) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        body(&value)
    }
}

/// Builds backend options from command-line flags and, where a flag is not given, from its environment alias.
///
/// This is the one place FluxServe reads its `FLUXSERVE_*` backend variables: the libraries take the values built
/// here. A flag beats its alias; each bad value is refused with one line naming the flag or the variable it came from.
/// The table of options, flags and aliases is docs/configuration.md.
struct BackendOptionsBuilder {
    let environment: [String: String]

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    /// The flag's value with its name, else the alias's (nil when neither is set; an empty variable counts as unset).
    private func value(_ flag: String?, _ flagName: String, _ alias: String) -> (text: String, source: String)? {
        if let flag { return (flag, flagName) }
        if let text = environment[alias], !text.isEmpty { return (text, alias) }
        return nil
    }

    func cpu(_ flags: CPUFlags) throws -> CPUBackend.Options {
        var options = CPUBackend.Options()
        if let given = value(flags.threads, "--threads", "FLUXSERVE_THREADS") {
            options.threads = try CPUBackend.Options.threads(parsing: given.text, option: given.source)
        }
        if let given = value(flags.blas, "--blas", "FLUXSERVE_BLAS") {
            options.blas = try CPUBackend.Options.blas(parsing: given.text, option: given.source)
        }
        return options
    }

    func cuda(device: Int, _ flags: CUDAFlags) throws -> CUDABackend.Options {
        var options = CUDABackend.Options(device: device)
        if let given = value(flags.gemmTune, "--gemm-tune", "FLUXSERVE_GEMM_TUNE") {
            options.gemmTuning = try GemmTuneSettings(parsing: given.text, option: given.source)
        }
        if let given = value(flags.fp8FastAccum, "--fp8-fast-accum", "FLUXSERVE_FP8_FAST_ACCUM") {
            options.fp8FastAccumulation = try CUDABackend.Options.onOff(parsing: given.text, option: given.source)
        }
        if let given = value(flags.conv, "--conv", "FLUXSERVE_CONV") {
            options.convolution = try ConvolutionSettings(parsing: given.text, option: given.source)
        }
        options.kernelCacheDirectory = try kernelCache(flags.kernelCache)
        if let given = value(flags.cudaLibDir, "--cuda-lib-dir", "FLUXSERVE_CUDA_LIB_DIR") {
            options.libraries.directories = CUDABackend.LibraryPaths.directories(parsing: given.text)
        }
        options.libraries.driver = environment["FLUXSERVE_LIBCUDA"].flatMap { $0.isEmpty ? nil : $0 }
        options.libraries.nvrtc = environment["FLUXSERVE_LIBNVRTC"].flatMap { $0.isEmpty ? nil : $0 }
        options.libraries.cublasLt = environment["FLUXSERVE_LIBCUBLASLT"].flatMap { $0.isEmpty ? nil : $0 }
        options.libraries.cudnn = environment["FLUXSERVE_LIBCUDNN"].flatMap { $0.isEmpty ? nil : $0 }
        options.libraries.verbose = try switchAlias("FLUXSERVE_CUDA_DEBUG")
        options.imageDiagnostics = .init(checking: try switchAlias("FLUXSERVE_IMAGE_CHECK"),
                                          profiling: try switchAlias("FLUXSERVE_IMAGE_PROFILE"),
                                          scalarKernels: try switchAlias("FLUXSERVE_IMAGE_SCALAR"))
        return options
    }

    /// An on/off knob that has only its environment variable.
    private func switchAlias(_ name: String) throws -> Bool {
        try environment[name].map { try CUDABackend.Options.onOff(parsing: $0, option: name) } ?? false
    }

    /// `--kernel-cache DIR|none`, else `$FLUXSERVE_CACHE/kernels`, else `$HOME/.cache/fluxserve/kernels`, else none.
    func kernelCache(_ flag: String?) throws -> String? {
        if let flag {
            let trimmed = flag.trimmingCharacters(in: .whitespaces)
            if trimmed.lowercased() == "none" { return nil }
            guard !trimmed.isEmpty else {
                throw ValidationError("--kernel-cache '': expected a folder, or none to keep kernels in memory")
            }
            return trimmed
        }
        if let root = environment["FLUXSERVE_CACHE"], !root.isEmpty {
            return URL(fileURLWithPath: root).appendingPathComponent("kernels").path
        }
        guard let home = environment["HOME"], !home.isEmpty else { return nil }
        return URL(fileURLWithPath: home).appendingPathComponent(".cache/fluxserve/kernels").path
    }

    func configuration(device: String, cpu: CPUFlags, cuda: CUDAFlags) throws -> BackendConfiguration {
        let choice = try DeviceChoice(parsing: device)
        // The GPU options are read (and checked) only for a GPU run, so a stale GPU variable cannot stop a CPU one.
        var cudaOptions = CUDABackend.Options()
        if case .cuda(let ordinal) = choice { cudaOptions = try self.cuda(device: ordinal, cuda) }
        return BackendConfiguration(device: choice, cpu: try self.cpu(cpu), cuda: cudaOptions)
    }
}

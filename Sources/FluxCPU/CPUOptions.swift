import Foundation

extension CPUBackend {
    /// How the CPU backend runs: worker threads and the BLAS library behind `sgemm`. Built by the command line
    /// (`--threads`, `--blas`) and applied with `CPUBackend.configure` or `CPUBackend(options:)`.
    ///
    /// Both settings are process-wide, not per backend: `parallelFor` and `sgemm` are free functions shared by every
    /// CPU backend (and by code that runs them outside any backend), and a BLAS library is opened with `dlopen` once
    /// per process with its own thread pool switched off. So the command line sets them once, before the first
    /// backend is made; a later backend reuses them.
    public struct Options: Sendable, Equatable {
        /// Which CBLAS library `sgemm` uses.
        public enum BLAS: Sendable, Hashable, CustomStringConvertible {
            /// The first of `SystemBLAS.candidates` that loads and exports an sgemm (OpenBLAS, BLIS, MKL, reference).
            case automatic
            /// None: `sgemm` runs the Swift kernel (`GemmKernel`).
            case none
            /// This file (a path, or a name for the loader's search).
            case library(String)

            /// `auto`, `none` or the path, as `--blas` takes it.
            public var description: String {
                switch self {
                case .automatic: "auto"
                case .none: "none"
                case .library(let path): path
                }
            }
        }

        /// Worker threads of `parallelFor` and of `sgemm` (1 or more).
        public var threads: Int
        public var blas: BLAS

        /// Every active core, and the first BLAS found.
        public init(threads: Int = Options.defaultThreads, blas: BLAS = .automatic) {
            self.threads = max(1, threads)
            self.blas = blas
        }

        /// Every active core.
        public static var defaultThreads: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

        /// A thread count from text (`--threads`, or its environment alias, named by `option` in the error).
        public static func threads(parsing text: String, option: String) throws -> Int {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            guard let n = Int(trimmed), n >= 1, n <= 4096 else {
                throw CPUOptionError(option: option, value: text, expected: "a whole number of threads, 1 to 4096")
            }
            return n
        }

        /// A BLAS choice from text: `auto`, `none`, or a library file (path or loader name).
        public static func blas(parsing text: String, option: String) throws -> BLAS {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            switch trimmed.lowercased() {
            case "auto", "automatic": return .automatic
            case "none", "off": return .none
            case "": throw CPUOptionError(option: option, value: text, expected: "auto, none, or a library path")
            default: return .library(trimmed)
            }
        }
    }

    /// Sets the process-wide CPU options (see `Options`). Threads take effect at the next op. The BLAS choice must
    /// be made before the first product opens a library: changing it afterwards throws, since the open library stays
    /// in use for the life of the process.
    public static func configure(_ options: Options) throws {
        try CPUSettings.shared.configure(options)
    }

    /// The options in effect now (the defaults until `configure` is called).
    public static var configuration: Options { CPUSettings.shared.options }

    /// A CPU backend after applying `options` process-wide (`configure`).
    public convenience init(options: Options) throws {
        try CPUBackend.configure(options)
        self.init()
    }
}

/// A CPU option that cannot be used: names the flag or variable it came from, the value and what was expected.
public struct CPUOptionError: Error, CustomStringConvertible, Equatable {
    public let option: String
    public let value: String
    public let expected: String

    public var description: String { "\(option) '\(value)': expected \(expected)" }
}

/// The process-wide state behind `CPUBackend.configure`: the options and the BLAS library opened for them.
final class CPUSettings: @unchecked Sendable {
    static let shared = CPUSettings()

    private let lock = NSLock()
    private var current = CPUBackend.Options()
    /// The library opened for `current.blas`, once a product asked for it (nil inside: none found or `.none`).
    private var loaded: (choice: CPUBackend.Options.BLAS, library: SystemBLAS?)?

    var options: CPUBackend.Options {
        lock.lock()
        defer { lock.unlock() }
        return current
    }

    var threads: Int {
        lock.lock()
        defer { lock.unlock() }
        return current.threads
    }

    func configure(_ options: CPUBackend.Options) throws {
        lock.lock()
        defer { lock.unlock() }
        if let loaded, loaded.choice != options.blas {
            throw CPUOptionError(option: "blas", value: options.blas.description,
                                 expected: "the library already in use (\(loaded.choice)): the BLAS is chosen once per "
                                     + "process, before the first product")
        }
        current = options
    }

    /// The BLAS for the current choice, opened at the first call.
    var blas: SystemBLAS? {
        lock.lock()
        defer { lock.unlock() }
        if let loaded { return loaded.library }
        let library = SystemBLAS.load(current.blas)
        loaded = (current.blas, library)
        return library
    }
}

import FluxCore
import Foundation

extension CUDABackend {
    /// Everything that decides how a CUDA backend runs, as a value: built by the command line (flags and their
    /// documented environment aliases, `docs/configuration.md`) and passed to `CUDABackend(options:)`. Nothing in
    /// FluxCUDA reads the environment.
    public struct Options: Sendable, Equatable {
        /// Device ordinal (`cuda:N`).
        public var device: Int
        /// Fills every op's output with NaN before the op runs, so an element the kernel forgets to write shows up
        /// in a comparison (the selftest turns this on).
        public var poisonOutputs: Bool
        public var matmul: MatmulPath
        public var attention: AttentionPath
        /// How products choose their cuBLASLt algorithm (`--gemm-tune`).
        public var gemmTuning: GemmTuneSettings
        /// fp8 products accumulate without periodic promotion to f32 (cuBLASLt's FAST_ACCUM; `--fp8-fast-accum`).
        /// Measured on an H100 (bench/results/2026-11-26-gpu-fp8/README.md): a step in 91.3 ms instead of 101.5, and the
        /// error against diffusers f32 3.80e-2 instead of 3.76e-2 (fp8's rounding dominates).
        public var fp8FastAccumulation: Bool
        /// How `conv2d` chooses its implementation (`--conv`).
        public var convolution: ConvolutionSettings
        /// Opt-in diagnostics of the image ops (environment aliases only).
        public var imageDiagnostics: ImageDiagnosticOptions
        /// Folder of the on-disk CUBIN cache (`--kernel-cache`); nil keeps compiled kernels in memory only.
        public var kernelCacheDirectory: String?
        /// Where the CUDA libraries are looked for (`--cuda-lib-dir` and per-library overrides).
        public var libraries: LibraryPaths

        public init(device: Int = 0, poisonOutputs: Bool = false, matmul: MatmulPath = .automatic,
                    attention: AttentionPath = .automatic, gemmTuning: GemmTuneSettings = GemmTuneSettings(),
                    fp8FastAccumulation: Bool = true, convolution: ConvolutionSettings = ConvolutionSettings(),
                    imageDiagnostics: ImageDiagnosticOptions = ImageDiagnosticOptions(),
                    kernelCacheDirectory: String? = nil, libraries: LibraryPaths = LibraryPaths()) {
            self.device = device
            self.poisonOutputs = poisonOutputs
            self.matmul = matmul
            self.attention = attention
            self.gemmTuning = gemmTuning
            self.fp8FastAccumulation = fp8FastAccumulation
            self.convolution = convolution
            self.imageDiagnostics = imageDiagnostics
            self.kernelCacheDirectory = kernelCacheDirectory
            self.libraries = libraries
        }
    }

    /// Where the CUDA libraries (driver, NVRTC, cuBLASLt, cuDNN) are opened from. For each library, first hit wins:
    /// 1. its own override (`driver`, `nvrtc`, `cublasLt`, `cudnn`): a file, or a folder holding one of its names;
    /// 2. `directories`, in order;
    /// 3. the folders of the GPU machines' image (`LibrarySearch.standardDirectories`);
    /// 4. the bare name, which `dlopen` resolves through `LD_LIBRARY_PATH` and the loader cache.
    public struct LibraryPaths: Sendable, Hashable {
        /// Folders searched before the standard ones (`--cuda-lib-dir`).
        public var directories: [String]
        public var driver: String?
        public var nvrtc: String?
        public var cublasLt: String?
        public var cudnn: String?
        /// A library that is not found is reported with every path tried.
        public var verbose: Bool

        public init(directories: [String] = [], driver: String? = nil, nvrtc: String? = nil,
                    cublasLt: String? = nil, cudnn: String? = nil, verbose: Bool = false) {
            (self.directories, self.driver, self.nvrtc, self.cublasLt, self.cudnn, self.verbose) =
                (directories, driver, nvrtc, cublasLt, cudnn, verbose)
        }

        /// Folders from text: one folder, or several joined by `:` (empty parts are skipped).
        public static func directories(parsing text: String) -> [String] {
            text.split(separator: ":").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
    }

    /// Opt-in diagnostics of the image ops; lines go to standard error.
    public struct ImageDiagnosticOptions: Sendable, Equatable {
        /// At the first call of each shape, log the convolution candidates with their timings, and compare the
        /// result of the fast path (cuDNN; vectorised group norm and upsampling) with the plain one (im2col; the
        /// scalar kernels), printing max |fast − plain| / max |plain|.
        public var checking: Bool
        /// Time every conv2d, groupNorm and upsampleNearest call on the device (events around it, then a wait) and
        /// print one line each — for finding where a VAE decode spends its time, not for speed.
        public var profiling: Bool
        /// Group norm and upsampling on the scalar kernels (with `ConvolutionSettings.enabled` off, the image ops as
        /// they were before the cuDNN convolutions, for a same-card comparison).
        public var scalarKernels: Bool

        public init(checking: Bool = false, profiling: Bool = false, scalarKernels: Bool = false) {
            (self.checking, self.profiling, self.scalarKernels) = (checking, profiling, scalarKernels)
        }

        /// `off`, or the diagnostics on joined by `+` (`check+profile`).
        public var summary: String {
            let on = [(checking, "check"), (profiling, "profile"), (scalarKernels, "scalar")].filter(\.0).map(\.1)
            return on.isEmpty ? "off" : on.joined(separator: "+")
        }
    }
}

/// A CUDA option that cannot be used: names the flag or variable it came from, the value and what was expected.
public struct CUDAOptionError: Error, CustomStringConvertible, Equatable {
    public let option: String
    public let value: String
    public let expected: String

    public init(option: String, value: String, expected: String) {
        (self.option, self.value, self.expected) = (option, value, expected)
    }

    public var description: String { "\(option) '\(value)': expected \(expected)" }
}

extension CUDABackend.Options {
    /// On/off from text (`1`, `on`, `true`, `yes` / `0`, `off`, `false`, `no`, or empty for off), for switches
    /// such as `--fp8-fast-accum`; the error names `option`.
    public static func onOff(parsing text: String, option: String) throws -> Bool {
        switch text.trimmingCharacters(in: .whitespaces).lowercased() {
        case "1", "on", "true", "yes": return true
        case "0", "off", "false", "no", "": return false
        default:
            throw CUDAOptionError(option: option, value: text,
                                  expected: "on or off (1, on, true, yes / 0, off, false, no)")
        }
    }
}

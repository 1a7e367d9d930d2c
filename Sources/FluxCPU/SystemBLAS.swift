#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A CBLAS `sgemm` found at run time with `dlopen`, so that FluxServe builds and runs without any BLAS and uses one
/// when the machine has it (Debian: `apt-get install -y libopenblas0`).
///
/// Which library: `CPUBackend.Options.blas` (`--blas`, set once per process by the command line). `.library(path)`
/// opens that file; `.none` opens nothing; `.automatic` tries `libopenblas.so.0`, `libopenblas.so`, `libblis.so.4`,
/// `libmkl_rt.so`, `libblas.so.3` (each only if it exports `cblas_sgemm`). A library built with 64-bit integers and
/// suffixed symbols — numpy's bundled `scipy_openblas64_` — is used when `--blas` names it. Anything that fails to
/// load is skipped silently; `sgemm` then runs the Swift kernel.
///
/// Threads: the library's own threads are switched off (`openblas_set_num_threads(1)` and its MKL and BLIS
/// equivalents) and `sgemm` splits C across `parallelFor` workers itself, each calling the library on its own block.
/// So `threaded: false` calls from inside parallel workers (attention) run on the calling thread with no second
/// thread pool to oversubscribe the cores or to wait on. When no way to set the library's threads is found, the
/// library keeps its own threading and is used only for `threaded: true` calls; `threaded: false` ones take the
/// Swift kernel.
struct SystemBLAS: @unchecked Sendable {
    /// `cblas_sgemm` with 32-bit integers (LP64 interface).
    typealias Sgemm32 = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float,
                                        UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32, Float,
                                        UnsafeMutablePointer<Float>?, Int32) -> Void
    /// `cblas_sgemm` with 64-bit integers (ILP64 interface); the order and transpose enums stay C `int`.
    typealias Sgemm64 = @convention(c) (Int32, Int32, Int32, Int, Int, Int, Float,
                                        UnsafePointer<Float>?, Int, UnsafePointer<Float>?, Int, Float,
                                        UnsafeMutablePointer<Float>?, Int) -> Void

    enum Entry {
        case lp64(Sgemm32)
        case ilp64(Sgemm64)
    }

    /// The file that was opened, as given to `dlopen`.
    let path: String
    /// The symbol that provides sgemm.
    let symbol: String
    let entry: Entry
    /// True when the library's own threading was set to one thread, so that `sgemm` may call it from any worker.
    let singleThreaded: Bool
    /// OpenBLAS's name for the CPU kernels it chose (`Haswell`, `SkylakeX`, `Zen`), when it says.
    let coreName: String?

    /// The library of the process's `CPUBackend.Options.blas`, opened at first use; nil when none was found or the
    /// choice is `.none`.
    static var shared: SystemBLAS? { CPUSettings.shared.blas }

    /// Names tried, in order, for `.automatic`.
    static let candidates = ["libopenblas.so.0", "libopenblas.so", "libblis.so.4", "libmkl_rt.so", "libblas.so.3"]

    static func load(_ choice: CPUBackend.Options.BLAS) -> SystemBLAS? {
        switch choice {
        case .none: return nil
        case .library(let path): return open(path)
        case .automatic: return candidates.lazy.compactMap { open($0) }.first
        }
    }

    /// Opens `path` and binds its sgemm, or returns nil (closing the handle) when it has none.
    static func open(_ path: String) -> SystemBLAS? {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else { return nil }
        func symbol(_ name: String) -> UnsafeMutableRawPointer? { dlsym(handle, name) }

        let entry: Entry, name: String, prefix: String, suffix: String
        if let f = symbol("cblas_sgemm") {
            (entry, name, prefix, suffix) = (.lp64(unsafeBitCast(f, to: Sgemm32.self)), "cblas_sgemm", "", "")
        } else if let f = symbol("scipy_cblas_sgemm64_") {
            (entry, name, prefix, suffix) = (.ilp64(unsafeBitCast(f, to: Sgemm64.self)), "scipy_cblas_sgemm64_",
                                             "scipy_", "64_")
        } else if let f = symbol("cblas_sgemm64_") {
            (entry, name, prefix, suffix) = (.ilp64(unsafeBitCast(f, to: Sgemm64.self)), "cblas_sgemm64_", "", "64_")
        } else {
            dlclose(handle)
            return nil
        }

        // Switch the library's own thread pool off; `sgemm` threads over blocks of C itself.
        typealias SetThreads32 = @convention(c) (Int32) -> Void
        typealias SetThreads64 = @convention(c) (Int) -> Void
        var singleThreaded = false
        if let f = symbol("\(prefix)openblas_set_num_threads\(suffix)") {
            unsafeBitCast(f, to: SetThreads32.self)(1)
            singleThreaded = true
        } else if let f = symbol("MKL_Set_Num_Threads") {
            unsafeBitCast(f, to: SetThreads32.self)(1)
            singleThreaded = true
        } else if let f = symbol("bli_thread_set_num_threads") {
            unsafeBitCast(f, to: SetThreads64.self)(1)
            singleThreaded = true
        }

        typealias CoreName = @convention(c) () -> UnsafePointer<CChar>?
        let coreName = symbol("\(prefix)openblas_get_corename\(suffix)")
            .flatMap { unsafeBitCast($0, to: CoreName.self)() }
            .map { String(cString: $0) }
        // The handle stays open for the life of the process: `shared` holds function pointers into it.
        return SystemBLAS(path: path, symbol: name, entry: entry, singleThreaded: singleThreaded, coreName: coreName)
    }

    /// True when the arguments are ones CBLAS accepts (leading dimensions at least the row length, integers in
    /// range); otherwise the library would reject them through `xerbla` instead of computing.
    func accepts(m: Int, n: Int, k: Int, lda: Int, ldb: Int, transposedB: Bool, ldc: Int) -> Bool {
        guard m > 0, n > 0, k > 0, lda >= k, ldb >= (transposedB ? k : n), ldc >= n else { return false }
        if case .lp64 = entry {
            let limit = Int(Int32.max)
            return m <= limit && n <= limit && k <= limit && lda <= limit && ldb <= limit && ldc <= limit
        }
        return true
    }

    /// C = A·op(B) (+ C) on the calling thread (when `singleThreaded`), row-major.
    func sgemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
               transposedB: Bool, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        let rowMajor: Int32 = 101, noTrans: Int32 = 111, trans: Int32 = 112
        let beta: Float = accumulate ? 1 : 0
        switch entry {
        case .lp64(let f):
            f(rowMajor, noTrans, transposedB ? trans : noTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(lda),
              b, Int32(ldb), beta, c, Int32(ldc))
        case .ilp64(let f):
            f(rowMajor, noTrans, transposedB ? trans : noTrans, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
        }
    }

    /// One line for logs and `bench-cpu`: the file, the symbol and the threading.
    var summary: String {
        let core = coreName.map { ", kernels \($0)" } ?? ""
        let threads = singleThreaded ? "threads set to 1, split by FluxServe" : "its own threads"
        return "\(path) (\(symbol)\(core), \(threads))"
    }
}

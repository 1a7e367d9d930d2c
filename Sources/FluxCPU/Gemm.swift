/// Single-precision matrix product, the one tuned CPU kernel.
///
/// C (m×n, row stride ldc) = A (m×k, row stride lda) · op(B) (+ C if `accumulate`), where op(B) = Bᵀ for B stored
/// (n×k) — the PyTorch `Linear` weight layout — when `transposedB`, else B stored (k×n).
///
/// `threaded: false` keeps the work on the calling thread (for callers that already run in parallel).
///
/// Runs on the system BLAS when one was loaded (see `SystemBLAS`), else on the Swift kernel (`GemmKernel`).
public func sgemm(m: Int, n: Int, k: Int,
                  a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int, transposedB: Bool,
                  c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, threaded: Bool = true) {
    sgemm(path: .systemBLAS, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposedB: transposedB,
          c: c, ldc: ldc, accumulate: accumulate, threaded: threaded)
}

/// Which implementation computes a product.
public enum GemmPath: String, Sendable, CaseIterable {
    /// The CBLAS library loaded at run time, falling back to `.swift` for a call it cannot take.
    case systemBLAS = "blas"
    /// The packed, blocked Swift kernel.
    case swift = "swift"
}

/// The system BLAS in use (file, symbol, kernels, threading), or nil when none loaded.
public var systemBLASDescription: String? { SystemBLAS.shared?.summary }

/// The path a call with these arguments takes when `path` is asked for: `.swift` when no BLAS is loaded, when the
/// BLAS keeps its own threads and the call is `threaded: false`, or when the BLAS would reject the arguments.
public func resolvedGemmPath(_ path: GemmPath, m: Int, n: Int, k: Int, lda: Int, ldb: Int, transposedB: Bool,
                             ldc: Int, threaded: Bool) -> GemmPath {
    guard path == .systemBLAS, let blas = SystemBLAS.shared,
          blas.singleThreaded || threaded,
          blas.accepts(m: m, n: n, k: k, lda: lda, ldb: ldb, transposedB: transposedB, ldc: ldc)
    else { return .swift }
    return .systemBLAS
}

/// `sgemm` on a chosen path (benchmarks and tests compare the two); same arguments and result.
public func sgemm(path: GemmPath, m: Int, n: Int, k: Int,
                  a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int, transposedB: Bool,
                  c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, threaded: Bool = true) {
    guard m > 0, n > 0 else { return }
    guard resolvedGemmPath(path, m: m, n: n, k: k, lda: lda, ldb: ldb, transposedB: transposedB, ldc: ldc,
                           threaded: threaded) == .systemBLAS, let blas = SystemBLAS.shared
    else {
        GemmKernel.run(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposedB: transposedB,
                       c: c, ldc: ldc, accumulate: accumulate, threaded: threaded)
        return
    }
    let workers = threaded && blas.singleThreaded
        ? min(cpuThreadCount, max(1, m * n * k / GemmKernel.minParallelWork)) : 1
    if workers <= 1 {
        blas.sgemm(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposedB: transposedB,
                   c: c, ldc: ldc, accumulate: accumulate)
        return
    }
    // One block of C per worker, each a single-threaded library call. Splitting the columns makes every worker pack
    // all of A and its share of B; splitting the rows, the reverse: take the split that packs less (columns when
    // n ≥ m). Blocks are whole multiples of 16 so that each starts on a vector boundary of C's rows.
    let shared = UncheckedSendable((a, b, c))
    let byColumns = n >= m
    let extent = byColumns ? n : m
    let unit = 16, units = (extent + unit - 1) / unit
    parallelFor(units, minChunk: max(1, units / workers)) { range in
        let (a, b, c) = shared.value
        let lo = range.lowerBound * unit, hi = min(extent, range.upperBound * unit)
        if byColumns {
            blas.sgemm(m: m, n: hi - lo, k: k, a: a, lda: lda, b: transposedB ? b + lo * ldb : b + lo, ldb: ldb,
                       transposedB: transposedB, c: c + lo, ldc: ldc, accumulate: accumulate)
        } else {
            blas.sgemm(m: hi - lo, n: n, k: k, a: a + lo * lda, lda: lda, b: b, ldb: ldb, transposedB: transposedB,
                       c: c + lo * ldc, ldc: ldc, accumulate: accumulate)
        }
    }
}

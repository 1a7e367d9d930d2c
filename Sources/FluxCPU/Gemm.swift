/// Single-precision matrix product, the one tuned CPU kernel.
///
/// C (m×n, row stride ldc) = A (m×k, row stride lda) · op(B) (+ C if `accumulate`), where op(B) = Bᵀ for B stored
/// (n×k) — the PyTorch `Linear` weight layout — when `transposedB`, else B stored (k×n).
///
/// `threaded: false` keeps the work on the calling thread (for callers that already run in parallel).
///
/// PLACEHOLDER: straightforward blocked loops threaded over rows of C; replaced by the tuned kernel.
public func sgemm(m: Int, n: Int, k: Int,
                  a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int, transposedB: Bool,
                  c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, threaded: Bool = true) {
    let args = UncheckedSendable((a, b, c))
    parallelFor(m, minChunk: threaded ? max(1, 16_384 / max(n * k / 64, 1)) : m) { rows in
        let (a, b, c) = args.value
        for i in rows {
            let arow = a + i * lda, crow = c + i * ldc
            if !accumulate { crow.update(repeating: 0, count: n) }
            if transposedB {
                for j in 0..<n {
                    let brow = b + j * ldb
                    var s: Float = 0
                    for p in 0..<k { s += arow[p] * brow[p] }
                    crow[j] += s
                }
            } else {
                for p in 0..<k {
                    let av = arow[p], brow = b + p * ldb
                    for j in 0..<n { crow[j] += av * brow[j] }
                }
            }
        }
    }
}

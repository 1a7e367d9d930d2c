import FluxCore
import Foundation

extension CPUBackend {
    /// Exact softmax attention, one (batch, head, block of 64 queries) per work item: scores = q·kᵀ·scale (+ bias,
    /// causal mask), a numerically stable softmax per row (max subtracted), then scores·v.
    public func uncheckedAttention(q: Tensor, k: Tensor, v: Tensor, scale: Float, bias: Tensor?, causal: Bool) throws
        -> Tensor
    {
        let op = "attention"
        let (batch, sq, heads, dim, sk) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3], k.shape[1])
        let (out, y) = empty(q.shape)
        let block = 64, blocks = (sq + block - 1) / block
        let rowStride = heads * dim
        let shared = UncheckedSendable((try values(q, op), try values(k, op), try values(v, op),
                                        try bias.map { try values($0, op) }, y))
        parallelFor(batch * heads * blocks) { items in
            let (q, k, v, bias, y) = shared.value
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: block * sk)
            defer { scores.deallocate() }
            for item in items {
                let b = item / (heads * blocks), h = (item / blocks) % heads, q0 = (item % blocks) * block
                let rows = min(block, sq - q0)
                let qBase = q + (b * sq + q0) * rowStride + h * dim
                let kBase = k + b * sk * rowStride + h * dim, vBase = v + b * sk * rowStride + h * dim
                sgemm(m: rows, n: sk, k: dim, a: qBase, lda: rowStride, b: kBase, ldb: rowStride, transposedB: true,
                      c: scores, ldc: sk, accumulate: false, threaded: false)
                for r in 0..<rows {
                    let row = scores + r * sk, i = q0 + r
                    let biasRow = bias.map { $0 + (h * sq + i) * sk }
                    var maxScore = -Float.infinity
                    for j in 0..<sk {
                        var s = row[j] * scale
                        if let biasRow { s += biasRow[j] }
                        if causal && j > i { s = -.infinity }
                        row[j] = s
                        maxScore = max(maxScore, s)
                    }
                    var total: Float = 0
                    for j in 0..<sk { let e = exp(row[j] - maxScore); row[j] = e; total += e }
                    let inv = 1 / total
                    for j in 0..<sk { row[j] *= inv }
                }
                sgemm(m: rows, n: dim, k: sk, a: scores, lda: sk, b: vBase, ldb: rowStride, transposedB: false,
                      c: y + (b * sq + q0) * rowStride + h * dim, ldc: rowStride, accumulate: false, threaded: false)
            }
        }
        return out
    }
}

import FluxCore

extension CPUBackend {
    public func uncheckedLayerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor {
        let op = "layerNorm", dim = x.dim(-1)
        let w = try weight.map { try values($0, op) }, b = try bias.map { try values($0, op) }
        return try normalizeRows(x, op) { row, out in
            let (mean, invStd) = meanAndInvStd(row, dim, eps)
            for j in 0..<dim {
                var v = (row[j] - mean) * invStd
                if let w { v *= w[j] }
                if let b { v += b[j] }
                out[j] = v
            }
        }
    }

    public func uncheckedRmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor {
        let op = "rmsNorm", dim = x.dim(-1)
        let w = try weight.map { try values($0, op) }
        return try normalizeRows(x, op) { row, out in
            var squares: Float = 0
            for j in 0..<dim { squares += row[j] * row[j] }
            let inv = 1 / (squares / Float(dim) + eps).squareRoot()
            for j in 0..<dim { out[j] = row[j] * inv * (w?[j] ?? 1) }
        }
    }

    public func uncheckedModulatedLayerNorm(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws -> Tensor {
        let op = "modulatedLayerNorm"
        let (seq, dim) = (x.shape[1], x.shape[2])
        let sh = try values(shift, op), sc = try values(scale, op)
        return try normalizeRows(x, op) { row, out, index in
            let (mean, invStd) = meanAndInvStd(row, dim, eps)
            let shiftRow = sh + (index / seq) * dim, scaleRow = sc + (index / seq) * dim
            for j in 0..<dim { out[j] = (row[j] - mean) * invStd * (1 + scaleRow[j]) + shiftRow[j] }
        }
    }

    /// Applies `body(row, outRow)` to every row of the last axis, in parallel.
    private func normalizeRows(_ x: Tensor, _ op: String,
                               _ body: @escaping (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) throws
        -> Tensor
    {
        try normalizeRows(x, op) { row, out, _ in body(row, out) }
    }

    private func normalizeRows(
        _ x: Tensor, _ op: String,
        _ body: @escaping (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    ) throws -> Tensor {
        let dim = x.dim(-1), rows = x.count / max(dim, 1)
        let (out, y) = empty(x.shape)
        let shared = UncheckedSendable((try values(x, op), y))
        parallelFor(rows, minChunk: max(1, 8192 / max(dim, 1))) { range in
            let (x, y) = shared.value
            for r in range { body(x + r * dim, y + r * dim, r) }
        }
        return out
    }
}

/// Mean and 1/√(biased variance + eps) of `n` values, accumulated in f64 for a stable reference.
@inline(__always) func meanAndInvStd(_ row: UnsafePointer<Float>, _ n: Int, _ eps: Float) -> (Float, Float) {
    var sum = 0.0, squares = 0.0
    for j in 0..<n { sum += Double(row[j]) }
    let mean = sum / Double(n)
    for j in 0..<n { let d = Double(row[j]) - mean; squares += d * d }
    return (Float(mean), Float(1 / (squares / Double(n) + Double(eps)).squareRoot()))
}

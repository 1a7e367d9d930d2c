import FluxCore

extension CPUBackend {
    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation) throws -> Tensor {
        let op = "linear"
        try expect(weight.rank == 2, op, "weight", weight.shape, "(N, K)")
        let (n, k) = (weight.shape[0], weight.shape[1])
        try expect(x.rank >= 1 && x.dim(-1) == k, op, "x", x.shape, "(..., \(k))")
        if let bias { try expect(bias.shape == [n], op, "bias", bias.shape, "[\(n)]") }
        let m = x.count / max(k, 1)
        let (out, y) = empty(Array(x.shape.dropLast()) + [n])
        sgemm(m: m, n: n, k: k, a: try values(x, op), lda: k, b: try values(weight, op), ldb: k, transposedB: true,
              c: y, ldc: n, accumulate: false)
        let b = try bias.map { try values($0, op) }
        if b != nil || activation != .identity {
            let shared = UncheckedSendable((y, b))
            parallelFor(m, minChunk: max(1, 4096 / max(n, 1))) { rows in
                let (y, b) = shared.value
                for i in rows {
                    let row = y + i * n
                    if let b { for j in 0..<n { row[j] += b[j] } }
                    if activation != .identity { for j in 0..<n { row[j] = activate(row[j], activation) } }
                }
            }
        }
        return out
    }
}

extension CPUBackend {
    /// The concatenation, then one product.
    public func linear(concatenating parts: [Tensor], weight: Tensor, bias: Tensor?, activation: Activation) throws
        -> Tensor
    {
        _ = try FusedOpShapes.linearConcatenating(parts, weight: weight, bias: bias)
        return try linear(try concat(parts, axis: -1), weight: weight, bias: bias, activation: activation)
    }
}

import FluxCore

extension CPUBackend {
    public func uncheckedLinear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation) throws -> Tensor {
        let op = "linear"
        let (n, k) = (weight.shape[0], weight.shape[1])
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
    /// e4m3 values kept as f32.
    public func uncheckedQuantizeRows(_ x: Tensor) throws -> QuantizedRows {
        let k = x.dim(-1), leading = Array(x.shape.dropLast()), m = leading.reduce(1, *)
        let source = try values(x, "quantizeRows")
        let (quantized, q) = empty(leading + [k]), (scales, s) = empty([m])
        quantizeRows(source, rows: m, cols: k, values: q, scales: s)
        return QuantizedRows(values: quantized, scales: scales)
    }

    /// One f32 product of e4m3 values, then both scales, bias and activation.
    public func uncheckedLinear(_ x: QuantizedRows, weight: QuantizedWeight, bias: Tensor?, activation: Activation)
        throws -> Tensor
    {
        let op = "linear"
        let leading = Array(x.values.shape.dropLast())
        let (n, k) = (weight.shape[0], weight.shape[1]), m = leading.reduce(1, *)
        let (out, y) = empty(leading + [n])
        sgemm(m: m, n: n, k: k, a: try values(x.values, op), lda: k, b: try values(weight.values, op), ldb: k,
              transposedB: true, c: y, ldc: n, accumulate: false)
        let shared = UncheckedSendable((y, try values(x.scales, op), try values(weight.scales, op),
                                        try bias.map { try values($0, op) }))
        parallelFor(m, minChunk: max(1, 4096 / max(n, 1))) { rows in
            let (y, xScales, wScales, b) = shared.value
            for i in rows {
                let row = y + i * n
                for j in 0..<n {
                    let v = row[j] * xScales[i] * wScales[j] + (b?[j] ?? 0)
                    row[j] = activation == .identity ? v : activate(v, activation)
                }
            }
        }
        return out
    }
}

extension CPUBackend {
    /// `quantizeRowsToFloat8E4M3` on all cores, a block of rows each.
    func quantizeRows(_ source: UnsafePointer<Float>, rows: Int, cols: Int, values: UnsafeMutablePointer<Float>,
                      scales: UnsafeMutablePointer<Float>)
    {
        let shared = UncheckedSendable((source, values, scales))
        parallelFor(rows, minChunk: max(1, 16384 / max(cols, 1))) { block in
            let (source, values, scales) = shared.value
            let first = block.lowerBound
            quantizeRowsToFloat8E4M3(source + first * cols, rows: block.count, cols: cols,
                                     values: values + first * cols, scales: scales + first)
        }
    }
}

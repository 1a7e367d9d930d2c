import FluxCore

extension CPUBackend {
    public func rope(_ x: Tensor, cos: Tensor, sin: Tensor) throws -> Tensor {
        let op = "rope"
        try expect(x.rank == 4 && x.shape[3] % 2 == 0, op, "x", x.shape, "(B, S, H, D) with even D")
        let (batch, seq, heads, dim) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        try expect(cos.shape == [seq, dim / 2], op, "cos", cos.shape, "[\(seq), \(dim / 2)]")
        try expect(sin.shape == [seq, dim / 2], op, "sin", sin.shape, "[\(seq), \(dim / 2)]")
        let (out, y) = empty(x.shape)
        let shared = UncheckedSendable((try values(x, op), try values(cos, op), try values(sin, op), y))
        parallelFor(batch * seq, minChunk: 16) { tokens in
            let (x, c, s, y) = shared.value
            for token in tokens {
                let position = token % seq
                let cosRow = c + position * dim / 2, sinRow = s + position * dim / 2
                for h in 0..<heads {
                    let base = (token * heads + h) * dim
                    for i in 0..<dim / 2 {
                        let re = x[base + 2 * i], im = x[base + 2 * i + 1]
                        y[base + 2 * i] = re * cosRow[i] - im * sinRow[i]
                        y[base + 2 * i + 1] = im * cosRow[i] + re * sinRow[i]
                    }
                }
            }
        }
        return out
    }
}

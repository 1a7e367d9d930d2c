import FluxCore

extension CUDABackend {
    public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor {
        let op = "layerNorm"
        try expect(x.rank >= 1, op, "x", x.shape, "at least one axis")
        let dim = x.dim(-1)
        if let weight { try expect(weight.shape == [dim], op, "weight", weight.shape, "[\(dim)]") }
        if let bias { try expect(bias.shape == [dim], op, "bias", bias.shape, "[\(dim)]") }
        return try normalizeRows(x, op, mode: 0, eps: eps, weight: weight, bias: bias, shift: nil, scale: nil, seq: 0)
    }

    public func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor {
        let op = "rmsNorm"
        try expect(x.rank >= 1, op, "x", x.shape, "at least one axis")
        let dim = x.dim(-1)
        if let weight { try expect(weight.shape == [dim], op, "weight", weight.shape, "[\(dim)]") }
        return try normalizeRows(x, op, mode: 1, eps: eps, weight: weight, bias: nil, shift: nil, scale: nil, seq: 0)
    }

    public func modulatedLayerNorm(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws -> Tensor {
        let op = "modulatedLayerNorm"
        try expect(x.rank == 3, op, "x", x.shape, "(B, S, D)")
        let (batch, seq, dim) = (x.shape[0], x.shape[1], x.shape[2])
        try expect(shift.shape == [batch, dim], op, "shift", shift.shape, "[\(batch), \(dim)]")
        try expect(scale.shape == [batch, dim], op, "scale", scale.shape, "[\(batch), \(dim)]")
        return try normalizeRows(x, op, mode: 0, eps: eps, weight: nil, bias: nil, shift: shift, scale: scale,
                                 seq: seq)
    }

    /// `norm_rows_x8_bf16` (a block of 128 threads per row, 16-byte accesses, the row in registers) when D % 8 == 0
    /// and 512 ≤ D ≤ 4096; else `norm_rows_bf16` (one warp per row, 8 rows per block), which is faster on short rows.
    private func normalizeRows(_ x: Tensor, _ op: String, mode: Int, eps: Float, weight: Tensor?, bias: Tensor?,
                               shift: Tensor?, scale: Tensor?, seq: Int) throws -> Tensor
    {
        try locked {
            let dim = x.dim(-1), rows = x.count / max(dim, 1)
            let xp = try pointer(x, op)
            let args: [CUdeviceptr] = [try optionalPointer(weight, op), try optionalPointer(bias, op),
                                       try optionalPointer(shift, op), try optionalPointer(scale, op)]
            let (out, y) = try empty(x.shape, op)
            guard rows > 0, dim > 0 else { return out }
            let wide = dim % 8 == 0 && dim >= 512 && dim <= 4096
            try launch("normalization", wide ? "norm_rows_x8_bf16" : "norm_rows_bf16",
                       grid: (wide ? rows : (rows + 7) / 8, 1, 1), block: (wide ? 128 : 256, 1, 1),
                       [.pointer(xp), .pointer(y), .long(rows), .int(dim), .float(eps), .int(mode)]
                           + args.map { .pointer($0) } + [.int(seq)])
            return out
        }
    }
}

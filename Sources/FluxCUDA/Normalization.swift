import FluxCore

extension CUDABackend {
    public func uncheckedLayerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor {
        try normalizeRows(x, "layerNorm", mode: 0, eps: eps, weight: weight, bias: bias, shift: nil, scale: nil, seq: 0)
    }

    public func uncheckedRmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor {
        try normalizeRows(x, "rmsNorm", mode: 1, eps: eps, weight: weight, bias: nil, shift: nil, scale: nil, seq: 0)
    }

    public func uncheckedModulatedLayerNorm(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws -> Tensor {
        try normalizeRows(x, "modulatedLayerNorm", mode: 0, eps: eps, weight: nil, bias: nil, shift: shift,
                          scale: scale, seq: x.shape[1])
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

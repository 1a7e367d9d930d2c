import FluxCore

extension CUDABackend {
    public func rope(_ x: Tensor, cos: Tensor, sin: Tensor) throws -> Tensor {
        let op = "rope"
        try expect(x.rank == 4 && x.shape[3] % 2 == 0, op, "x", x.shape, "(B, S, H, D) with even D")
        let (seq, heads, dim) = (x.shape[1], x.shape[2], x.shape[3])
        try expect(cos.shape == [seq, dim / 2], op, "cos", cos.shape, "[\(seq), \(dim / 2)]")
        try expect(sin.shape == [seq, dim / 2], op, "sin", sin.shape, "[\(seq), \(dim / 2)]")
        return try locked {
            let xp = try pointer(x, op), cp = try pointer(cos, op), sp = try pointer(sin, op)
            let (out, y) = try empty(x.shape, op)
            let pairs = x.count / 2
            guard pairs > 0 else { return out }
            try launchElements("rope", "rope_bf16", count: pairs,
                               [.pointer(xp), .pointer(cp), .pointer(sp), .pointer(y), .long(pairs), .int(seq),
                                .int(heads), .int(dim / 2)])
            return out
        }
    }
}

import FluxCore

extension CPUBackend {
    public func concat(_ parts: [Tensor], axis: Int) throws -> Tensor {
        let op = "concat"
        guard let first = parts.first else { throw TensorError.backend("concat: no tensors") }
        let a = axis < 0 ? first.rank + axis : axis
        try expect(a >= 0 && a < first.rank, op, "axis", [axis], "an axis of \(first.shape)")
        for (i, p) in parts.enumerated() {
            var expected = first.shape
            if p.rank == first.rank { expected[a] = p.shape[a] }
            try expect(p.shape == expected, op, "parts[\(i)]", p.shape, "\(expected)")
        }
        let outer = first.shape[..<a].reduce(1, *), inner = first.shape[(a + 1)...].reduce(1, *)
        var shape = first.shape
        shape[a] = parts.reduce(0) { $0 + $1.shape[a] }
        let (out, y) = empty(shape)
        let rowOut = shape[a] * inner
        var offset = 0
        for p in parts {
            let x = try values(p, op), rowIn = p.shape[a] * inner
            for o in 0..<outer { (y + o * rowOut + offset).update(from: x + o * rowIn, count: rowIn) }
            offset += rowIn
        }
        return out
    }

    public func slice(_ x: Tensor, axis: Int, start: Int, count: Int) throws -> Tensor {
        let op = "slice", a = axis < 0 ? x.rank + axis : axis
        try expect(a >= 0 && a < x.rank, op, "axis", [axis], "an axis of \(x.shape)")
        try expect(start >= 0 && count >= 0 && start + count <= x.shape[a], op, "x", x.shape,
                   "axis \(a) to hold \(start)..<\(start + count)")
        let outer = x.shape[..<a].reduce(1, *), inner = x.shape[(a + 1)...].reduce(1, *)
        var shape = x.shape
        shape[a] = count
        let (out, y) = empty(shape)
        let src = try values(x, op)
        for o in 0..<outer {
            (y + o * count * inner).update(from: src + (o * x.shape[a] + start) * inner, count: count * inner)
        }
        return out
    }
}

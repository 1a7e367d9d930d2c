import FluxCore

extension CPUBackend {
    public func uncheckedConcat(_ parts: [Tensor], axis: Int) throws -> Tensor {
        let op = "concat"
        let split = OpShapes.AxisSplit(concatenating: parts, axis: axis)
        let (a, outer, inner, shape) = (split.axis, split.outer, split.inner, split.shape)
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

    public func uncheckedSlice(_ x: Tensor, axis: Int, start: Int, count: Int) throws -> Tensor {
        let op = "slice"
        let split = OpShapes.AxisSplit(slicing: x, axis: axis, count: count)
        let (a, outer, inner, shape) = (split.axis, split.outer, split.inner, split.shape)
        if let view = x.contiguousSlice(axis: a, start: start, count: count) { return view }
        let (out, y) = empty(shape)
        let src = try values(x, op)
        for o in 0..<outer {
            (y + o * count * inner).update(from: src + (o * x.shape[a] + start) * inner, count: count * inner)
        }
        return out
    }
}

extension CPUBackend {
    public func uncheckedPermute(_ x: Tensor, _ order: [Int]) throws -> Tensor {
        let op = "permute", rank = x.rank
        let shape = order.map { x.shape[$0] }
        var inStrides = [Int](repeating: 1, count: rank)
        for a in stride(from: rank - 2, through: 0, by: -1) { inStrides[a] = inStrides[a + 1] * x.shape[a + 1] }
        let strides = order.map { inStrides[$0] }  // input stride of each output axis
        let (out, y) = empty(shape)
        let src = try values(x, op)
        let inner = shape.last ?? 1, innerStride = strides.last ?? 1
        let rows = x.count / max(inner, 1)
        let shared = UncheckedSendable((src, y))
        parallelFor(rows, minChunk: max(1, 4096 / max(inner, 1))) { range in
            let (src, y) = shared.value
            for row in range {
                // Decompose the output row index into coordinates of all but the last output axis.
                var rest = row, offset = 0
                for a in stride(from: rank - 2, through: 0, by: -1) {
                    offset += (rest % shape[a]) * strides[a]
                    rest /= shape[a]
                }
                let dst = y + row * inner
                for j in 0..<inner { dst[j] = src[offset + j * innerStride] }
            }
        }
        return out
    }

    public func uncheckedEmbedding(_ table: Tensor, ids: [Int32], shape: [Int]) throws -> Tensor {
        let op = "embedding"
        let dim = table.shape[1]
        let (out, y) = empty(shape + [dim])
        let src = try values(table, op)
        for (i, id) in ids.enumerated() { (y + i * dim).update(from: src + Int(id) * dim, count: dim) }
        return out
    }
}

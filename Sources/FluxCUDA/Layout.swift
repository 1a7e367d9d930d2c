import FluxCore

extension CUDABackend {
    public func uncheckedConcat(_ parts: [Tensor], axis: Int) throws -> Tensor {
        let op = "concat"
        let split = OpShapes.AxisSplit(concatenating: parts, axis: axis)
        let (a, outer, inner, shape) = (split.axis, split.outer, split.inner, split.shape)
        return try locked {
            let sources = try parts.map { try pointer($0, op) }
            let (out, y) = try empty(shape, op)
            let rowOut = shape[a] * inner
            var offset = 0
            for (p, source) in zip(parts, sources) {
                let width = p.shape[a] * inner
                try launchElements("layout", "copy_rows_bf16", count: outer * width,
                                   [.pointer(source), .pointer(y), .long(outer), .long(width), .long(width), .long(0),
                                    .long(rowOut), .long(offset)])
                offset += width
            }
            return out
        }
    }

    public func uncheckedSlice(_ x: Tensor, axis: Int, start: Int, count: Int) throws -> Tensor {
        let op = "slice"
        let split = OpShapes.AxisSplit(slicing: x, axis: axis, count: count)
        let (a, outer, inner, shape) = (split.axis, split.outer, split.inner, split.shape)
        if let view = x.contiguousSlice(axis: a, start: start, count: count) { return view }
        return try locked {
            let source = try pointer(x, op)
            let (out, y) = try empty(shape, op)
            let width = count * inner
            try launchElements("layout", "copy_rows_bf16", count: outer * width,
                               [.pointer(source), .pointer(y), .long(outer), .long(width), .long(x.shape[a] * inner),
                                .long(start * inner), .long(width), .long(0)])
            return out
        }
    }
}

extension CUDABackend {
    public func uncheckedPermute(_ x: Tensor, _ order: [Int]) throws -> Tensor {
        let op = "permute", rank = x.rank
        try expect(rank <= 8, op, "x", x.shape, "rank ≤ 8 on \(name)")
        return try locked {
            let shape = order.map { x.shape[$0] }
            var inStrides = [Int](repeating: 1, count: rank)
            if rank >= 2 {
                for a in stride(from: rank - 2, through: 0, by: -1) { inStrides[a] = inStrides[a + 1] * x.shape[a + 1] }
            }
            let strides = order.map { inStrides[$0] }
            let source = try pointer(x, op)
            let (out, y) = try empty(shape, op)
            // struct PermuteShape { long long dims[8]; long long strides[8]; int rank; } (136 bytes with padding)
            var bytes = [UInt8](repeating: 0, count: 136)
            bytes.withUnsafeMutableBytes { raw in
                for a in 0..<8 {
                    raw.storeBytes(of: Int64(a < rank ? shape[a] : 1), toByteOffset: a * 8, as: Int64.self)
                    raw.storeBytes(of: Int64(a < rank ? strides[a] : 0), toByteOffset: 64 + a * 8, as: Int64.self)
                }
                raw.storeBytes(of: Int32(rank), toByteOffset: 128, as: Int32.self)
            }
            try launchElements("layout", "permute_bf16", count: x.count,
                               [.pointer(source), .pointer(y), .long(x.count), .bytes(bytes)])
            return out
        }
    }

    /// Gathers rows of `table`; the ids (checked on the host by `embedding`) are copied to the device.
    public func uncheckedEmbedding(_ table: Tensor, ids: [Int32], shape: [Int]) throws -> Tensor {
        let op = "embedding"
        let dim = table.shape[1]
        return try locked {
            let source = try pointer(table, op)
            let (out, y) = try empty(shape + [dim], op)
            guard !ids.isEmpty, dim > 0 else { return out }
            let deviceIds = try allocator.allocate(ids.count * 4)
            try ids.withUnsafeBytes { raw in
                try driver.check(driver.cuMemcpyHtoDAsync(deviceIds.pointer, raw.baseAddress, raw.count, stream),
                                 "cuMemcpyHtoDAsync(ids)")
            }
            try launchElements("layout", "embedding_bf16", count: ids.count * dim,
                               [.pointer(source), .pointer(deviceIds.pointer), .pointer(y), .long(ids.count),
                                .int(dim)])
            return out
        }
    }
}

import FluxCore

extension CUDABackend {
    public func uncheckedActivation(_ x: Tensor, _ kind: Activation) throws -> Tensor {
        try locked {
            let xp = try pointer(x, "activation")
            let (out, y) = try empty(x.shape, "activation")
            let act = Activation.allCases.firstIndex(of: kind) ?? 0
            try launchElements("elementwise", "activation_bf16", count: vectorCount(x.count),
                               [.pointer(xp), .pointer(y), .long(x.count), .int(act)])
            return out
        }
    }

    public func uncheckedAdd(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(a, b, "add", kernel: "add_bf16") }

    public func uncheckedMultiply(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try binary(a, b, "multiply", kernel: "multiply_bf16")
    }

    public func uncheckedGatedAdd(_ residual: Tensor, _ x: Tensor, gate: Tensor) throws -> Tensor {
        let op = "gatedAdd"
        let (seq, dim) = (residual.shape[1], residual.shape[2])
        return try locked {
            let rp = try pointer(residual, op), xp = try pointer(x, op), gp = try pointer(gate, op)
            let (out, y) = try empty(residual.shape, op)
            try launchElements("elementwise", "gated_add_bf16",
                               count: dim % 8 == 0 ? vectorCount(residual.count) : residual.count,
                               [.pointer(rp), .pointer(xp), .pointer(gp), .pointer(y), .long(residual.count),
                                .int(seq), .int(dim)])
            return out
        }
    }

    /// Threads a kernel of `elementwise.cu` needs for `n` elements: one per 8-element vector, and the tail.
    func vectorCount(_ n: Int) -> Int { (n + 7) / 8 }

    private func binary(_ a: Tensor, _ b: Tensor, _ op: String, kernel: String) throws -> Tensor {
        try locked {
            let ap = try pointer(a, op), bp = try pointer(b, op)
            let (out, y) = try empty(a.shape, op)
            try launchElements("elementwise", kernel, count: vectorCount(a.count),
                               [.pointer(ap), .pointer(bp), .pointer(y), .long(a.count)])
            return out
        }
    }
}

extension CUDABackend {
    public func uncheckedScaleShift(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor {
        try locked {
            let xp = try pointer(x, "scaleShift")
            let (out, y) = try empty(x.shape, "scaleShift")
            try launchElements("elementwise", "scale_shift_bf16", count: vectorCount(x.count),
                               [.pointer(xp), .pointer(y), .long(x.count), .float(scale), .float(shift)])
            return out
        }
    }

    public func uncheckedAddScaled(_ a: Tensor, _ b: Tensor, scale: Float) throws -> Tensor {
        let op = "addScaled"
        return try locked {
            let ap = try pointer(a, op), bp = try pointer(b, op)
            let (out, y) = try empty(a.shape, op)
            try launchElements("elementwise", "add_scaled_bf16", count: vectorCount(a.count),
                               [.pointer(ap), .pointer(bp), .pointer(y), .long(a.count), .float(scale)])
            return out
        }
    }

    /// Σ|x| in f64 on the device (`reduction.cu`), then one 8-byte copy back: this op waits for the stream.
    public func uncheckedAbsSum(_ x: Tensor) throws -> Float {
        try locked {
            let xp = try pointer(x, "absSum")
            guard x.count > 0 else { return 0 }
            let total = try allocator.allocate(8)
            try driver.check(driver.cuMemsetD8Async(total.pointer, 0, 8, stream), "cuMemsetD8Async")
            try launchElements("reduction", "abs_sum_bf16", count: x.count,
                               [.pointer(xp), .long(x.count), .pointer(total.pointer)])
            var result: Double = 0
            try driver.check(driver.cuMemcpyDtoHAsync(&result, total.pointer, 8, stream), "cuMemcpyDtoHAsync")
            try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
            return Float(result)
        }
    }
}

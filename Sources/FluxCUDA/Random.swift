import FluxCore

extension CUDABackend: RandomFill {
    /// `random.cu`: the draws of `RandomFill` computed on the device, one thread per Box–Muller pair.
    public func randomNormal(shape: [Int], seed: UInt64, chunkLength: Int, mean: Float, std: Float) throws -> Tensor {
        let op = "randomNormal"
        try expect(chunkLength > 0 && chunkLength % 2 == 0, op, "chunkLength", [chunkLength], "even and positive")
        return try locked {
            let (out, y) = try empty(shape, op)
            let n = out.count
            guard n > 0 else { return out }
            try launchElements("random", "random_normal_bf16", count: (n + 1) / 2,
                               [.pointer(y), .long(n), .int64(Int64(bitPattern: seed)), .long(chunkLength),
                                .float(mean), .float(std)])
            return out
        }
    }
}

import FluxCore
import Foundation

extension CUDABackend {
    /// Rows of the bf16 weight to e4m3 bytes and f32 scales (`quantize_rows_e4m3`), once at load.
    public func quantizeFP8(_ weight: Tensor) throws -> QuantizedWeight {
        let op = "quantizeFP8"
        try expect(weight.rank == 2, op, "weight", weight.shape, "(N, K)")
        let (n, k) = (weight.shape[0], weight.shape[1])
        return try locked {
            let wp = try pointer(weight, op)
            let (values, q) = try empty([n, k], op, dtype: .f8e4m3)
            let (scales, s) = try empty([n], op, dtype: .f32)
            try quantizeRows(wp, width: k, then: 0, width: 0, rows: n, into: q, scales: s)
            return QuantizedWeight(values: values, scales: scales)
        }
    }

    /// The input rows quantized by `quantize_rows_e4m3` (reading up to two parts in place, so linear2 of the single
    /// blocks never concatenates), then one cuBLASLt fp8 product with the weight's and the rows' scales as outer
    /// vectors and bias / GELU in its epilogue. Where cuBLASLt runs no fp8 product (before compute capability 8.9, or
    /// a shape it rejects), both operands are dequantized to bf16 and the dense `linear` runs: the same quantized
    /// numbers, the product in bf16.
    public func linear(concatenating parts: [Tensor], weight: QuantizedWeight, bias: Tensor?, activation: Activation)
        throws -> Tensor
    {
        let op = "linear"
        let (leading, widths) = try FusedOpShapes.quantizedLinear(parts, weight: weight, bias: bias)
        guard parts.count <= 2 else {
            let rest = try concat(Array(parts[1...]), axis: -1)
            return try linear(concatenating: [parts[0], rest], weight: weight, bias: bias, activation: activation)
        }
        let (n, k) = (weight.shape[0], weight.shape[1]), m = leading.reduce(1, *)
        let outcome = try locked { () -> QuantizedProduct in
            let wq = try pointer(weight.values, op, dtype: .f8e4m3), ws = try pointer(weight.scales, op, dtype: .f32)
            let bp = try optionalPointer(bias, op)
            let sources = try parts.map { try pointer($0, op) }
            let (out, y) = try empty(leading + [n], op)
            guard m > 0, n > 0 else { return .done(out) }
            if k == 0 { try zeroProduct(y, bias: bp, m: m, n: n, activation: activation); return .done(out) }
            let (xq, xs) = try (allocator.allocate(m * k), allocator.allocate(m * 4))
            try quantizeRows(sources[0], width: widths[0], then: sources.count > 1 ? sources[1] : 0,
                             width: widths.count > 1 ? widths[1] : 0, rows: m, into: xq.pointer, scales: xs.pointer)
            let scales = MatmulScales(a: ws, b: xs.pointer)
            if computeCapability >= (8, 9), let engine = matmul,
               let (plan, fused) = try fp8Plan(engine, n: n, m: m, k: k, bias: bias != nil, activation: activation)
            {
                if fused || plan.shape.outputF32 {
                    try runLinear(engine, plan, weight: wq, x: xq.pointer, bias: bp, y: y, m: m, n: n,
                                  activation: activation, scales: scales)
                } else {
                    try engine.run(plan, a: wq, b: xq.pointer, bias: nil, d: y, scales: scales, stream: stream)
                    try launchElements("elementwise", "bias_activation_bf16", count: m * n,
                                       [.pointer(y), .pointer(bp), .long(m * n), .int(n),
                                        .int(Activation.allCases.firstIndex(of: activation) ?? 0)])
                }
                return .done(out)
            }
            if !toldFP8Fallback {
                toldFP8Fallback = true
                let why = computeCapability >= (8, 9) ? "cuBLASLt has no fp8 product for \(n)x\(m)x\(k)"
                    : "fp8 products need compute capability 8.9 or later (this GPU: "
                        + "\(computeCapability.major).\(computeCapability.minor))"
                FileHandle.standardError.write(Data(("note: \(why); such products run dequantized to bf16, slower "
                                                     + "than without --quantize\n").utf8))
            }
            let (x, xp) = try empty(leading + [k], op), (w, wp) = try empty([n, k], op)
            try dequantizeRows(xq.pointer, scales: xs.pointer, rows: m, cols: k, into: xp)
            try dequantizeRows(wq, scales: ws, rows: n, cols: k, into: wp)
            return .dense(x: x, weight: w)
        }
        switch outcome {
        case let .done(out): return out
        case let .dense(x, w): return try linear(x, weight: w, bias: bias, activation: activation)
        }
    }

    /// The first fp8 plan cuBLASLt offers an algorithm for: bias / GELU fused in the epilogue, else the product alone
    /// (`fused` false: the caller adds bias and activation in one pass after); each with fast accumulation first
    /// when it is allowed. Refusals are remembered by the engine, so later calls go straight to the plan that works.
    private func fp8Plan(_ engine: MatmulEngine, n: Int, m: Int, k: Int, bias: Bool, activation: Activation) throws
        -> (CuBLASLt.Plan, fused: Bool)?
    {
        let (epilogue, inF32) = CuBLASLt.Epilogue.linear(bias: bias, activation: activation)
        let accumulations = engine.fp8FastAccumulation ? [true, false] : [false]
        for fused in [true, false] where fused || epilogue != .none {
            for fast in accumulations {
                let shape = CuBLASLt.Shape(m: n, n: m, k: k, transA: true, lda: k, ldb: k, ldd: n,
                                           epilogue: fused ? epilogue : .none, outputF32: inF32, fp8: true,
                                           fastAccumulation: fast)
                if let plan = try engine.plan(shape) { return (plan, fused) }
            }
        }
        return nil
    }

    private enum QuantizedProduct {
        case done(Tensor)
        /// Dequantized operands for the dense `linear` (run outside the lock, which it takes itself).
        case dense(x: Tensor, weight: Tensor)
    }

    /// `quantize_rows_e4m3` over rows of [a (width wa) | b (width wb)] (b = 0 and wb = 0 for one part).
    private func quantizeRows(_ a: CUdeviceptr, width wa: Int, then b: CUdeviceptr, width wb: Int, rows: Int,
                              into q: CUdeviceptr, scales: CUdeviceptr) throws
    {
        guard rows > 0 else { return }
        // 128 threads for rows up to 4096 values (more rows in flight per SM), 256 beyond (kernel comment).
        try launch("quantize", "quantize_rows_e4m3", grid: (rows, 1, 1), block: (wa + wb <= 4096 ? 128 : 256, 1, 1),
                   [.pointer(a), .int(wa), .pointer(b), .int(wb), .long(rows), .pointer(q), .pointer(scales)])
    }

    private func dequantizeRows(_ q: CUdeviceptr, scales: CUdeviceptr, rows: Int, cols: Int, into y: CUdeviceptr)
        throws
    {
        try launchElements("quantize", "dequantize_rows_e4m3", count: rows * cols,
                           [.pointer(q), .pointer(scales), .long(rows), .int(cols), .pointer(y)])
    }
}

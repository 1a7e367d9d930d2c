import FluxCore
import Foundation

extension CUDABackend {
    /// `quantize_rows_e4m3` on the rows of x.
    public func uncheckedQuantizeRows(_ x: Tensor) throws -> QuantizedRows {
        try uncheckedQuantizeRows(concatenating: [x])
    }

    /// Fused (overrides `FusedOps.quantizeRows(concatenating:)`): `quantize_rows_e4m3` over up to two parts read in
    /// place (so linear2 of the single blocks never concatenates; more parts: the rest joined first).
    public func uncheckedQuantizeRows(concatenating parts: [Tensor]) throws -> QuantizedRows {
        let op = "quantizeRows"
        guard parts.count <= 2 else {
            return try uncheckedQuantizeRows(concatenating: [parts[0], try concat(Array(parts[1...]), axis: -1)])
        }
        let leading = Array(parts[0].shape.dropLast()), widths = parts.map { $0.dim(-1) }
        let k = widths.reduce(0, +), m = leading.reduce(1, *)
        return try locked {
            let sources = try parts.map { try pointer($0, op) }
            let (values, q) = try empty(leading + [k], op, dtype: .f8e4m3)
            let (scales, s) = try empty([m], op, dtype: .f32)
            try quantizeRows(sources[0], width: widths[0], then: sources.count > 1 ? sources[1] : 0,
                             width: widths.count > 1 ? widths[1] : 0, rows: m, into: q, scales: s)
            return QuantizedRows(values: values, scales: scales)
        }
    }

    /// Fused (overrides `FusedOps.modulatedLayerNormFP8`): `norm_rows_x8_e4m3` (the modulated LayerNorm writing e4m3
    /// rows and their scales) where `normalizeRows` would take its wide-row kernel (D % 8 == 0, 512 ≤ D ≤ 4096:
    /// FLUX's 3072); else the composition (the norm, then `quantizeRows`).
    public func uncheckedModulatedLayerNormFP8(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws
        -> QuantizedRows
    {
        let op = "modulatedLayerNormFP8"
        let seq = x.shape[1], dim = x.dim(-1), rows = x.count / max(dim, 1)
        guard dim % 8 == 0, dim >= 512, dim <= 4096 else {
            return try FusedOps.modulatedLayerNormFP8(on: self, x, shift: shift, scale: scale, eps: eps)
        }
        return try locked {
            let xp = try pointer(x, op), shiftp = try pointer(shift, op), scalep = try pointer(scale, op)
            let (values, q) = try empty(x.shape, op, dtype: .f8e4m3)
            let (scales, s) = try empty([rows], op, dtype: .f32)
            if rows > 0 {
                try launch("normalization", "norm_rows_x8_e4m3", grid: (rows, 1, 1), block: (128, 1, 1),
                           [.pointer(xp), .pointer(q), .pointer(s), .long(rows), .int(dim), .float(eps), .int(0),
                            .pointer(0), .pointer(0), .pointer(shiftp), .pointer(scalep), .int(seq)])
            }
            return QuantizedRows(values: values, scales: scales)
        }
    }

    /// One cuBLASLt fp8 product with the weight's and the rows' scales as outer vectors and bias / GELU in its
    /// epilogue. Where cuBLASLt runs no fp8 product (before compute capability 8.9, or a shape it rejects), both
    /// operands are dequantized to bf16 and the dense `linear` runs: the same quantized numbers, the product in bf16.
    public func uncheckedLinear(_ x: QuantizedRows, weight: QuantizedWeight, bias: Tensor?, activation: Activation)
        throws -> Tensor
    {
        let op = "linear"
        let leading = Array(x.values.shape.dropLast())
        let (n, k) = (weight.shape[0], weight.shape[1]), m = leading.reduce(1, *)
        let outcome = try locked { () -> QuantizedProduct in
            let wq = try pointer(weight.values, op, dtype: .f8e4m3), ws = try pointer(weight.scales, op, dtype: .f32)
            let xq = try pointer(x.values, op, dtype: .f8e4m3), xs = try pointer(x.scales, op, dtype: .f32)
            let bp = try optionalPointer(bias, op)
            let (out, y) = try empty(leading + [n], op)
            guard m > 0, n > 0 else { return .done(out) }
            if k == 0 { try zeroProduct(y, bias: bp, m: m, n: n, activation: activation); return .done(out) }
            let scales = MatmulScales(a: ws, b: xs)
            if computeCapability >= (8, 9), let engine = matmul,
               let (plan, fused) = try fp8Plan(engine, n: n, m: m, k: k, bias: bias != nil, activation: activation)
            {
                if fused || plan.shape.outputF32 {
                    try runLinear(engine, plan, weight: wq, x: xq, bias: bp, y: y, m: m, n: n,
                                  activation: activation, scales: scales)
                } else {
                    try engine.run(plan, a: wq, b: xq, bias: nil, d: y, scales: scales, stream: stream)
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
            let (xd, xdp) = try empty(leading + [k], op), (w, wp) = try empty([n, k], op)
            try dequantizeRows(xq, scales: xs, rows: m, cols: k, into: xdp)
            try dequantizeRows(wq, scales: ws, rows: n, cols: k, into: wp)
            return .dense(x: xd, weight: w)
        }
        switch outcome {
        case let .done(out): return out
        case let .dense(x, w): return try uncheckedLinear(x, weight: w, bias: bias, activation: activation)
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

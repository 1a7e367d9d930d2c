/// Throws a shape error naming the op and operand unless `condition` holds: the words every backend uses.
@inline(__always) public func expect(_ condition: Bool, _ op: String, _ operand: String, _ shape: [Int],
                                     _ expected: @autoclosure () -> String) throws {
    if !condition { throw TensorError.shapeMismatch(op: op, operand: operand, shape: shape, expected: expected()) }
}

/// Operand checks of the ops every backend implements, shared so that a bad call fails the same way, with the same
/// words, on each (the fused ops' checks are `FusedOpShapes`). Each returns the geometry the implementation needs.
public enum OpShapes {
    public struct Convolution: Sendable, Equatable {
        public let batch: Int, channels: Int, height: Int, width: Int
        public let outChannels: Int, kernelHeight: Int, kernelWidth: Int
        public let outHeight: Int, outWidth: Int
    }

    /// conv2d: x (B, Cin, H, W), weight (Cout, Cin, kh, kw), bias (Cout), stride ≥ 1, padding ≥ 0, output ≥ 1×1.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding p: Padding2D) throws
        -> Convolution
    {
        let op = "conv2d"
        try expect(x.rank == 4, op, "x", x.shape, "(B, Cin, H, W)")
        let (batch, channels, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        try expect(weight.rank == 4 && weight.shape[1] == channels, op, "weight", weight.shape,
                   "(Cout, \(channels), kh, kw)")
        let (outChannels, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        if let bias { try expect(bias.shape == [outChannels], op, "bias", bias.shape, "[\(outChannels)]") }
        try expect(stride >= 1 && min(p.top, p.bottom, p.left, p.right) >= 0, op, "stride/padding", [stride],
                   "stride ≥ 1 and padding ≥ 0")
        let outHeight = (height + p.top + p.bottom - kh) / stride + 1
        let outWidth = (width + p.left + p.right - kw) / stride + 1
        try expect(outHeight > 0 && outWidth > 0, op, "x", x.shape, "an image at least as large as the kernel")
        return Convolution(batch: batch, channels: channels, height: height, width: width, outChannels: outChannels,
                           kernelHeight: kh, kernelWidth: kw, outHeight: outHeight, outWidth: outWidth)
    }

    /// The run of rows an axis splits a tensor into: `outer` blocks of `extent · inner` elements.
    public struct AxisSplit: Sendable, Equatable {
        public let axis: Int, outer: Int, inner: Int
        /// The result's shape.
        public let shape: [Int]
    }

    /// concat: at least one part, every part of the first's shape but along `axis` (negative counts from the end).
    public static func concat(_ parts: [Tensor], axis: Int) throws -> AxisSplit {
        let op = "concat"
        guard let first = parts.first else { throw TensorError.backend("concat: no tensors") }
        let a = axis < 0 ? first.rank + axis : axis
        try expect(a >= 0 && a < first.rank, op, "axis", [axis], "an axis of \(first.shape)")
        for (i, p) in parts.enumerated() {
            var expected = first.shape
            if p.rank == first.rank { expected[a] = p.shape[a] }
            try expect(p.shape == expected, op, "parts[\(i)]", p.shape, "\(expected)")
        }
        var shape = first.shape
        shape[a] = parts.reduce(0) { $0 + $1.shape[a] }
        return AxisSplit(axis: a, outer: first.shape[..<a].reduce(1, *), inner: first.shape[(a + 1)...].reduce(1, *),
                         shape: shape)
    }

    /// slice: `start ..< start + count` inside `axis` (negative counts from the end).
    public static func slice(_ x: Tensor, axis: Int, start: Int, count: Int) throws -> AxisSplit {
        let op = "slice", a = axis < 0 ? x.rank + axis : axis
        try expect(a >= 0 && a < x.rank, op, "axis", [axis], "an axis of \(x.shape)")
        try expect(start >= 0 && count >= 0 && start + count <= x.shape[a], op, "x", x.shape,
                   "axis \(a) to hold \(start)..<\(start + count)")
        var shape = x.shape
        shape[a] = count
        return AxisSplit(axis: a, outer: x.shape[..<a].reduce(1, *), inner: x.shape[(a + 1)...].reduce(1, *),
                         shape: shape)
    }

    /// attention: q (B, Sq, H, D), k and v (B, Sk, H, D), bias (H, Sq, Sk).
    public static func attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor?) throws
        -> (batch: Int, sq: Int, sk: Int, heads: Int, dim: Int)
    {
        let op = "attention"
        try expect(q.rank == 4, op, "q", q.shape, "(B, Sq, H, D)")
        let (batch, sq, heads, dim) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        try expect(k.rank == 4 && k.shape[0] == batch && k.shape[2] == heads && k.shape[3] == dim, op, "k", k.shape,
                   "(\(batch), Sk, \(heads), \(dim))")
        let sk = k.shape[1]
        try expect(v.shape == k.shape, op, "v", v.shape, "\(k.shape)")
        if let bias { try expect(bias.shape == [heads, sq, sk], op, "bias", bias.shape, "[\(heads), \(sq), \(sk)]") }
        return (batch, sq, sk, heads, dim)
    }

    /// layerNorm / rmsNorm over the last axis: x of rank ≥ 1, weight and bias (D). Returns D.
    public static func rowNorm(_ op: String, _ x: Tensor, weight: Tensor?, bias: Tensor?) throws -> Int {
        try expect(x.rank >= 1, op, "x", x.shape, "at least one axis")
        let dim = x.dim(-1)
        if let weight { try expect(weight.shape == [dim], op, "weight", weight.shape, "[\(dim)]") }
        if let bias { try expect(bias.shape == [dim], op, "bias", bias.shape, "[\(dim)]") }
        return dim
    }

    /// modulatedLayerNorm: x (B, S, D), shift and scale (B, D).
    public static func modulatedLayerNorm(_ x: Tensor, shift: Tensor, scale: Tensor) throws
        -> (batch: Int, seq: Int, dim: Int)
    {
        let op = "modulatedLayerNorm"
        try expect(x.rank == 3, op, "x", x.shape, "(B, S, D)")
        let (batch, seq, dim) = (x.shape[0], x.shape[1], x.shape[2])
        try expect(shift.shape == [batch, dim], op, "shift", shift.shape, "[\(batch), \(dim)]")
        try expect(scale.shape == [batch, dim], op, "scale", scale.shape, "[\(batch), \(dim)]")
        return (batch, seq, dim)
    }
}

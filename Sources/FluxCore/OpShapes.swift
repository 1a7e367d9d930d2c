/// Throws a shape error naming the op and operand unless `condition` holds.
@inline(__always) public func expect(_ condition: Bool, _ op: String, _ operand: String, _ shape: [Int],
                                     _ expected: @autoclosure () -> String) throws {
    if !condition { throw TensorError.shapeMismatch(op: op, operand: operand, shape: shape, expected: expected()) }
}

/// The operand rules of every `Backend` op, checked once by the op's public method (`CheckedOps.swift`) before the
/// backend's `unchecked…` requirement runs, so a bad call fails the same way, with the same words, on every backend.
/// Each throws `TensorError.shapeMismatch` naming the op and the operand; some return the geometry they derived.
/// The checks are comparisons of small shape arrays: they cost nothing next to a kernel launch.
public enum OpShapes {
    // MARK: Matrix products

    /// linear: weight (N, K), x (..., K), bias (N).
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws {
        let op = "linear"
        try expect(weight.rank == 2, op, "weight", weight.shape, "(N, K)")
        let (n, k) = (weight.shape[0], weight.shape[1])
        try expect(x.rank >= 1 && x.dim(-1) == k, op, "x", x.shape, "(..., \(k))")
        if let bias { try expect(bias.shape == [n], op, "bias", bias.shape, "[\(n)]") }
    }

    /// `linear(concatenating:)`: parts (..., Kᵢ) with one leading shape, weight (N, ΣKᵢ), bias (N).
    /// Returns the leading shape and each part's width.
    @discardableResult
    public static func linearConcatenating(_ parts: [Tensor], weight: Tensor, bias: Tensor?) throws
        -> (leading: [Int], widths: [Int])
    {
        let op = "linear"
        let (leading, widths) = try concatenatedRows(parts, op: op), k = widths.reduce(0, +)
        try expect(weight.rank == 2 && weight.shape[1] == k, op, "weight", weight.shape, "(N, \(k))")
        if let bias { try expect(bias.shape == [weight.shape[0]], op, "bias", bias.shape, "[\(weight.shape[0])]") }
        return (leading, widths)
    }

    /// Parts joined along the last axis (`linear(concatenating:)`, `quantizeRows(concatenating:)`): at least one,
    /// rank ≥ 1, one leading shape. Returns it and each part's width.
    @discardableResult
    public static func concatenatedRows(_ parts: [Tensor], op: String) throws -> (leading: [Int], widths: [Int]) {
        guard let first = parts.first, first.rank >= 1 else {
            throw TensorError.shapeMismatch(op: op, operand: "parts", shape: parts.first?.shape ?? [],
                                            expected: "at least one tensor of rank ≥ 1")
        }
        let leading = Array(first.shape.dropLast())
        for (i, p) in parts.enumerated() where p.rank != first.rank || Array(p.shape.dropLast()) != leading {
            throw TensorError.shapeMismatch(op: op, operand: "parts[\(i)]", shape: p.shape,
                                            expected: "(\(leading.map(String.init).joined(separator: ", ")), K)")
        }
        return (leading, parts.map { $0.dim(-1) })
    }

    /// quantizeRows: x of rank ≥ 1 (rows of its last axis).
    public static func quantizeRows(_ x: Tensor) throws {
        try expect(x.rank >= 1, "quantizeRows", "x", x.shape, "at least one axis")
    }

    /// The fp8 `linear`: x (..., K) with one scale per row, weight (N, K) with scales (N), bias (N).
    /// Returns x's leading shape.
    @discardableResult
    public static func quantizedLinear(_ x: QuantizedRows, weight: QuantizedWeight, bias: Tensor?) throws -> [Int] {
        guard x.values.rank >= 1, x.scales.shape == [x.values.count / max(x.values.dim(-1), 1)] else {
            throw TensorError.shapeMismatch(op: "linear", operand: "x scales", shape: x.scales.shape,
                                            expected: "one per row of \(x.values.shape)")
        }
        try quantizedLinear([x.values], weight: weight, bias: bias)
        return Array(x.values.shape.dropLast())
    }

    /// The fp8 `linear(concatenating:)`: as the dense form, plus the weight's scales (N).
    @discardableResult
    public static func quantizedLinear(_ parts: [Tensor], weight: QuantizedWeight, bias: Tensor?) throws
        -> (leading: [Int], widths: [Int])
    {
        let shapes = try linearConcatenating(parts, weight: weight.values, bias: bias)
        try expect(weight.scales.shape == [weight.values.shape[0]], "linear", "weight scales", weight.scales.shape,
                   "[\(weight.values.shape[0])]")
        return shapes
    }

    // MARK: Attention

    /// attention: q (B, Sq, H, D), k and v (B, Sk, H, D), bias (H, Sq, Sk).
    @discardableResult
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

    /// The geometry of `attentionInputs` (operands already checked by `attentionInputs(_:heads:cos:sin:)`).
    public struct AttentionInputs: Sendable, Equatable {
        public let batch: Int, headDim: Int
        /// Each stream's length.
        public let lengths: [Int]

        public init(_ streams: [QKVProjection], heads: Int) {
            batch = streams.first?.qkv.shape[0] ?? 0
            headDim = (streams.first?.qkv.shape[2] ?? 0) / (3 * max(heads, 1))
            lengths = streams.map { $0.qkv.shape[1] }
        }
    }

    /// `attentionInputs`: at least one stream, each qkv (B, Sᵢ, 3·H·D) with one B and an even D, scales (D),
    /// cos and sin (ΣSᵢ, D/2).
    @discardableResult
    public static func attentionInputs(_ streams: [QKVProjection], heads: Int, cos: Tensor, sin: Tensor) throws
        -> AttentionInputs
    {
        let op = "attentionInputs"
        guard let first = streams.first, heads > 0 else {
            throw TensorError.shapeMismatch(op: op, operand: "streams", shape: [streams.count, heads],
                                            expected: "at least one stream and one head")
        }
        try expect(first.qkv.rank == 3 && first.qkv.shape[2] % (6 * heads) == 0 && first.qkv.shape[2] > 0, op,
                   "streams[0].qkv", first.qkv.shape, "(B, S, 3·\(heads)·D) with D even")
        let batch = first.qkv.shape[0], headDim = first.qkv.shape[2] / (3 * heads)
        for (i, s) in streams.enumerated() {
            try expect(s.qkv.rank == 3 && s.qkv.shape[0] == batch && s.qkv.shape[2] == 3 * heads * headDim, op,
                       "streams[\(i)].qkv", s.qkv.shape, "(\(batch), S, \(3 * heads * headDim))")
            try expect(s.queryScale.shape == [headDim], op, "streams[\(i)].queryScale", s.queryScale.shape,
                       "[\(headDim)]")
            try expect(s.keyScale.shape == [headDim], op, "streams[\(i)].keyScale", s.keyScale.shape, "[\(headDim)]")
        }
        let total = streams.reduce(0) { $0 + $1.qkv.shape[1] }
        for (name, t) in [("cos", cos), ("sin", sin)] {
            try expect(t.shape == [total, headDim / 2], op, name, t.shape, "[\(total), \(headDim / 2)]")
        }
        return AttentionInputs(streams, heads: heads)
    }

    // MARK: Normalisation

    /// layerNorm / rmsNorm over the last axis: x of rank ≥ 1, weight and bias (D). Returns D.
    @discardableResult
    public static func rowNorm(_ op: String, _ x: Tensor, weight: Tensor?, bias: Tensor?) throws -> Int {
        try expect(x.rank >= 1, op, "x", x.shape, "at least one axis")
        let dim = x.dim(-1)
        if let weight { try expect(weight.shape == [dim], op, "weight", weight.shape, "[\(dim)]") }
        if let bias { try expect(bias.shape == [dim], op, "bias", bias.shape, "[\(dim)]") }
        return dim
    }

    /// modulatedLayerNorm (and its fp8 form, named by `op`): x (B, S, D), shift and scale (B, D).
    @discardableResult
    public static func modulatedLayerNorm(_ x: Tensor, shift: Tensor, scale: Tensor,
                                          op: String = "modulatedLayerNorm") throws -> (batch: Int, seq: Int, dim: Int)
    {
        try expect(x.rank == 3, op, "x", x.shape, "(B, S, D)")
        let (batch, seq, dim) = (x.shape[0], x.shape[1], x.shape[2])
        try expect(shift.shape == [batch, dim], op, "shift", shift.shape, "[\(batch), \(dim)]")
        try expect(scale.shape == [batch, dim], op, "scale", scale.shape, "[\(batch), \(dim)]")
        return (batch, seq, dim)
    }

    // MARK: Elementwise

    /// add, multiply, addScaled: b of a's shape.
    public static func sameShape(_ op: String, _ a: Tensor, _ b: Tensor) throws {
        try expect(a.shape == b.shape, op, "b", b.shape, "\(a.shape)")
    }

    /// gatedAdd: residual and x (B, S, D), gate (B, D).
    public static func gatedAdd(_ residual: Tensor, _ x: Tensor, gate: Tensor) throws {
        let op = "gatedAdd"
        try expect(residual.rank == 3, op, "residual", residual.shape, "(B, S, D)")
        try expect(x.shape == residual.shape, op, "x", x.shape, "\(residual.shape)")
        let (batch, dim) = (residual.shape[0], residual.shape[2])
        try expect(gate.shape == [batch, dim], op, "gate", gate.shape, "[\(batch), \(dim)]")
    }

    // MARK: Layout

    /// The run of rows an axis splits a tensor into: `outer` blocks of `extent · inner` elements.
    public struct AxisSplit: Sendable, Equatable {
        public let axis: Int, outer: Int, inner: Int
        /// The result's shape.
        public let shape: [Int]

        public init(axis: Int, outer: Int, inner: Int, shape: [Int]) {
            (self.axis, self.outer, self.inner, self.shape) = (axis, outer, inner, shape)
        }

        /// concat's geometry (operands already checked): `axis` resolved, the result's extent the parts' sum.
        public init(concatenating parts: [Tensor], axis: Int) {
            let first = parts[0], a = axis < 0 ? first.rank + axis : axis
            var shape = first.shape
            shape[a] = parts.reduce(0) { $0 + $1.shape[a] }
            self.init(axis: a, outer: first.shape[..<a].reduce(1, *), inner: first.shape[(a + 1)...].reduce(1, *),
                      shape: shape)
        }

        /// slice's geometry (operands already checked).
        public init(slicing x: Tensor, axis: Int, count: Int) {
            let a = axis < 0 ? x.rank + axis : axis
            var shape = x.shape
            shape[a] = count
            self.init(axis: a, outer: x.shape[..<a].reduce(1, *), inner: x.shape[(a + 1)...].reduce(1, *),
                      shape: shape)
        }
    }

    /// concat: at least one part, every part of the first's shape but along `axis` (negative counts from the end).
    @discardableResult
    public static func concat(_ parts: [Tensor], axis: Int) throws -> AxisSplit {
        let op = "concat"
        guard let first = parts.first else {
            throw TensorError.shapeMismatch(op: op, operand: "parts", shape: [], expected: "at least one tensor")
        }
        let a = axis < 0 ? first.rank + axis : axis
        try expect(a >= 0 && a < first.rank, op, "axis", [axis], "an axis of \(first.shape)")
        for (i, p) in parts.enumerated() {
            var expected = first.shape
            if p.rank == first.rank { expected[a] = p.shape[a] }
            try expect(p.shape == expected, op, "parts[\(i)]", p.shape, "\(expected)")
        }
        return AxisSplit(concatenating: parts, axis: axis)
    }

    /// slice: `start ..< start + count` inside `axis` (negative counts from the end).
    @discardableResult
    public static func slice(_ x: Tensor, axis: Int, start: Int, count: Int) throws -> AxisSplit {
        let op = "slice", a = axis < 0 ? x.rank + axis : axis
        try expect(a >= 0 && a < x.rank, op, "axis", [axis], "an axis of \(x.shape)")
        try expect(start >= 0 && count >= 0 && start + count <= x.shape[a], op, "x", x.shape,
                   "axis \(a) to hold \(start)..<\(start + count)")
        return AxisSplit(slicing: x, axis: axis, count: count)
    }

    /// permute: `order` a permutation of x's axes.
    public static func permute(_ x: Tensor, _ order: [Int]) throws {
        try expect(order.count == x.rank && Set(order) == Set(0..<x.rank), "permute", "order", order,
                   "a permutation of 0..<\(x.rank)")
    }

    /// embedding: table (V, D), as many ids as `shape` holds, each in 0..<V (an id outside is
    /// `TensorError.backend`: a value, not a shape, is wrong).
    public static func embedding(_ table: Tensor, ids: [Int32], shape: [Int]) throws {
        let op = "embedding"
        try expect(table.rank == 2, op, "table", table.shape, "(V, D)")
        try expect(elementCount(shape) == ids.count, op, "ids", [ids.count], "\(shape)")
        let vocabulary = table.shape[0]
        if let bad = ids.first(where: { $0 < 0 || Int($0) >= vocabulary }) {
            throw TensorError.backend("embedding: token id \(bad) outside the vocabulary of \(vocabulary)")
        }
    }

    // MARK: Images

    public struct Convolution: Sendable, Equatable {
        public let batch: Int, channels: Int, height: Int, width: Int
        public let outChannels: Int, kernelHeight: Int, kernelWidth: Int
        public let outHeight: Int, outWidth: Int

        public init(batch: Int, channels: Int, height: Int, width: Int, outChannels: Int, kernelHeight: Int,
                    kernelWidth: Int, outHeight: Int, outWidth: Int) {
            (self.batch, self.channels, self.height, self.width) = (batch, channels, height, width)
            (self.outChannels, self.kernelHeight, self.kernelWidth) = (outChannels, kernelHeight, kernelWidth)
            (self.outHeight, self.outWidth) = (outHeight, outWidth)
        }

        /// conv2d's geometry (operands already checked by `conv2d`).
        public init(_ x: Tensor, weight: Tensor, stride: Int, padding p: Padding2D) {
            let (kh, kw) = (weight.shape[2], weight.shape[3])
            self.init(batch: x.shape[0], channels: x.shape[1], height: x.shape[2], width: x.shape[3],
                      outChannels: weight.shape[0], kernelHeight: kh, kernelWidth: kw,
                      outHeight: (x.shape[2] + p.top + p.bottom - kh) / stride + 1,
                      outWidth: (x.shape[3] + p.left + p.right - kw) / stride + 1)
        }
    }

    /// conv2d: x (B, Cin, H, W), weight (Cout, Cin, kh, kw), bias (Cout), stride ≥ 1, padding ≥ 0, output ≥ 1×1.
    @discardableResult
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding p: Padding2D) throws
        -> Convolution
    {
        let op = "conv2d"
        try expect(x.rank == 4, op, "x", x.shape, "(B, Cin, H, W)")
        try expect(weight.rank == 4 && weight.shape[1] == x.shape[1], op, "weight", weight.shape,
                   "(Cout, \(x.shape[1]), kh, kw)")
        if let bias { try expect(bias.shape == [weight.shape[0]], op, "bias", bias.shape, "[\(weight.shape[0])]") }
        try expect(stride >= 1 && min(p.top, p.bottom, p.left, p.right) >= 0, op, "stride/padding", [stride],
                   "stride ≥ 1 and padding ≥ 0")
        let g = Convolution(x, weight: weight, stride: stride, padding: p)
        try expect(g.outHeight > 0 && g.outWidth > 0, op, "x", x.shape, "an image at least as large as the kernel")
        return g
    }

    /// groupNorm: x (B, C, ...) with C divisible by `groups`, weight and bias (C).
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor) throws {
        let op = "groupNorm"
        try expect(x.rank >= 2 && groups > 0 && x.shape[1] % groups == 0, op, "x", x.shape,
                   "(B, C, ...) with C divisible by \(groups) groups")
        let channels = x.shape[1]
        try expect(weight.shape == [channels], op, "weight", weight.shape, "[\(channels)]")
        try expect(bias.shape == [channels], op, "bias", bias.shape, "[\(channels)]")
    }

    /// upsampleNearest: x (B, C, H, W), factor ≥ 1.
    public static func upsampleNearest(_ x: Tensor, factor: Int) throws {
        try expect(x.rank == 4 && factor >= 1, "upsampleNearest", "x", x.shape, "(B, C, H, W) and factor ≥ 1")
    }
}

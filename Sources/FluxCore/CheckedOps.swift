/// The ops as callers see them: each checks its operands once (`OpShapes`), then calls the backend's `unchecked…`
/// requirement of the same name (see `Backend`'s header for the scheme). Helpers built on the ops (`chunk`, fp8
/// weights and products) follow.
extension Backend {
    // MARK: Matrix products

    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation = .identity) throws
        -> Tensor
    {
        try OpShapes.linear(x, weight: weight, bias: bias)
        return try uncheckedLinear(x, weight: weight, bias: bias, activation: activation)
    }

    /// Fused: `linear(concat(parts, axis: -1), ...)` (`Backend.uncheckedLinear(concatenating:...)`).
    public func linear(concatenating parts: [Tensor], weight: Tensor, bias: Tensor?,
                       activation: Activation = .identity) throws -> Tensor
    {
        try OpShapes.linearConcatenating(parts, weight: weight, bias: bias)
        return try uncheckedLinear(concatenating: parts, weight: weight, bias: bias, activation: activation)
    }

    public func quantizeRows(_ x: Tensor) throws -> QuantizedRows {
        try OpShapes.quantizeRows(x)
        return try uncheckedQuantizeRows(x)
    }

    /// Fused: `quantizeRows(concat(parts, axis: -1))`.
    public func quantizeRows(concatenating parts: [Tensor]) throws -> QuantizedRows {
        try OpShapes.concatenatedRows(parts, op: "quantizeRows")
        return try uncheckedQuantizeRows(concatenating: parts)
    }

    /// The fp8 product of rows quantized by `quantizeRows` (or `modulatedLayerNormFP8`) and a `quantizeFP8` weight.
    public func linear(_ x: QuantizedRows, weight: QuantizedWeight, bias: Tensor?,
                       activation: Activation = .identity) throws -> Tensor
    {
        try OpShapes.quantizedLinear(x, weight: weight, bias: bias)
        return try uncheckedLinear(x, weight: weight, bias: bias, activation: activation)
    }

    /// A linear weight (N, K) quantized row by row to f8 e4m3 (`QuantizedWeight`): its rows are quantized the way
    /// activation rows are (`quantizeRows`), once at load.
    public func quantizeFP8(_ weight: Tensor) throws -> QuantizedWeight {
        try expect(weight.rank == 2, "quantizeFP8", "weight", weight.shape, "(N, K)")
        let rows = try uncheckedQuantizeRows(weight)
        return QuantizedWeight(values: rows.values, scales: rows.scales)
    }

    /// `linear` with an fp8 weight: the input rows quantized (`quantizeRows`), then the fp8 product.
    public func linear(_ x: Tensor, weight: QuantizedWeight, bias: Tensor?, activation: Activation = .identity)
        throws -> Tensor
    {
        try linear(concatenating: [x], weight: weight, bias: bias, activation: activation)
    }

    /// `linear(concatenating:)` with an fp8 weight: the concatenation's rows quantized, then the fp8 product.
    public func linear(concatenating parts: [Tensor], weight: QuantizedWeight, bias: Tensor?,
                       activation: Activation = .identity) throws -> Tensor
    {
        try OpShapes.quantizedLinear(parts, weight: weight, bias: bias)
        return try uncheckedLinear(try uncheckedQuantizeRows(concatenating: parts), weight: weight, bias: bias,
                                   activation: activation)
    }

    // MARK: Attention

    public func attention(q: Tensor, k: Tensor, v: Tensor, scale: Float, bias: Tensor? = nil, causal: Bool = false)
        throws -> Tensor
    {
        try OpShapes.attention(q: q, k: k, v: v, bias: bias)
        return try uncheckedAttention(q: q, k: k, v: v, scale: scale, bias: bias, causal: causal)
    }

    /// Fused: per-stream split, QKNorm and RoPE, streams joined (`Backend.uncheckedAttentionInputs`).
    public func attentionInputs(_ streams: [QKVProjection], heads: Int, eps: Float, cos: Tensor, sin: Tensor) throws
        -> AttentionHeads
    {
        try OpShapes.attentionInputs(streams, heads: heads, cos: cos, sin: sin)
        return try uncheckedAttentionInputs(streams, heads: heads, eps: eps, cos: cos, sin: sin)
    }

    // MARK: Normalisation

    public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor {
        try OpShapes.rowNorm("layerNorm", x, weight: weight, bias: bias)
        return try uncheckedLayerNorm(x, weight: weight, bias: bias, eps: eps)
    }

    public func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor {
        try OpShapes.rowNorm("rmsNorm", x, weight: weight, bias: nil)
        return try uncheckedRmsNorm(x, weight: weight, eps: eps)
    }

    public func modulatedLayerNorm(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws -> Tensor {
        try OpShapes.modulatedLayerNorm(x, shift: shift, scale: scale)
        return try uncheckedModulatedLayerNorm(x, shift: shift, scale: scale, eps: eps)
    }

    /// Fused: `quantizeRows(modulatedLayerNorm(x, ...))`.
    public func modulatedLayerNormFP8(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws -> QuantizedRows {
        try OpShapes.modulatedLayerNorm(x, shift: shift, scale: scale, op: "modulatedLayerNormFP8")
        return try uncheckedModulatedLayerNormFP8(x, shift: shift, scale: scale, eps: eps)
    }

    // MARK: Elementwise

    public func activation(_ x: Tensor, _ kind: Activation) throws -> Tensor { try uncheckedActivation(x, kind) }

    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try OpShapes.sameShape("add", a, b)
        return try uncheckedAdd(a, b)
    }

    public func multiply(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try OpShapes.sameShape("multiply", a, b)
        return try uncheckedMultiply(a, b)
    }

    public func gatedAdd(_ residual: Tensor, _ x: Tensor, gate: Tensor) throws -> Tensor {
        try OpShapes.gatedAdd(residual, x, gate: gate)
        return try uncheckedGatedAdd(residual, x, gate: gate)
    }

    // MARK: Layout

    public func concat(_ parts: [Tensor], axis: Int) throws -> Tensor {
        try OpShapes.concat(parts, axis: axis)
        return try uncheckedConcat(parts, axis: axis)
    }

    public func slice(_ x: Tensor, axis: Int, start: Int, count: Int) throws -> Tensor {
        try OpShapes.slice(x, axis: axis, start: start, count: count)
        return try uncheckedSlice(x, axis: axis, start: start, count: count)
    }

    /// Splits `x` along `axis` into `parts` equal chunks, as `torch.chunk`.
    public func chunk(_ x: Tensor, _ parts: Int, axis: Int) throws -> [Tensor] {
        let a = axis < 0 ? x.rank + axis : axis
        try expect(a >= 0 && a < x.rank && parts > 0 && x.shape[a] % parts == 0, "chunk", "x", x.shape,
                   "axis \(axis) divisible by \(parts)")
        let size = x.shape[a] / parts
        return try (0..<parts).map { try uncheckedSlice(x, axis: a, start: $0 * size, count: size) }
    }

    public func permute(_ x: Tensor, _ order: [Int]) throws -> Tensor {
        try OpShapes.permute(x, order)
        return try uncheckedPermute(x, order)
    }

    public func embedding(_ table: Tensor, ids: [Int32], shape: [Int]) throws -> Tensor {
        try OpShapes.embedding(table, ids: ids, shape: shape)
        return try uncheckedEmbedding(table, ids: ids, shape: shape)
    }

    // MARK: Scalars and reductions

    public func scaleShift(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor {
        try uncheckedScaleShift(x, scale: scale, shift: shift)
    }

    public func addScaled(_ a: Tensor, _ b: Tensor, scale: Float) throws -> Tensor {
        try OpShapes.sameShape("addScaled", a, b)
        return try uncheckedAddScaled(a, b, scale: scale)
    }

    public func absSum(_ x: Tensor) throws -> Float { try uncheckedAbsSum(x) }

    // MARK: Images

    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Padding2D) throws -> Tensor {
        try OpShapes.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
        return try uncheckedConv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }

    public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float,
                          activation: Activation) throws -> Tensor {
        try OpShapes.groupNorm(x, groups: groups, weight: weight, bias: bias)
        return try uncheckedGroupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, activation: activation)
    }

    public func upsampleNearest(_ x: Tensor, factor: Int) throws -> Tensor {
        try OpShapes.upsampleNearest(x, factor: factor)
        return try uncheckedUpsampleNearest(x, factor: factor)
    }

    // MARK: Host values

    /// Uploads f32 values.
    public func tensor(_ values: [Float], shape: [Int]) throws -> Tensor {
        guard elementCount(shape) == values.count else {
            throw TensorError.shapeMismatch(op: "tensor", operand: "values", shape: [values.count],
                                            expected: "\(shape)")
        }
        return try upload(HostTensor(values, shape: shape))
    }

    /// Downloads as f32 values in row-major order.
    public func floats(_ tensor: Tensor) throws -> [Float] { try download(tensor).floats() }
}

/// Activation functions, applied alone or fused into a `linear` epilogue.
public enum Activation: String, Sendable, CaseIterable {
    case identity
    /// x · σ(x)
    case silu
    /// GELU, tanh approximation: 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))) — FLUX MLPs, T5 gated-GELU.
    case geluTanh
    /// GELU, exact: 0.5x(1 + erf(x/√2)).
    case gelu
    /// x · σ(1.702x) — CLIP.
    case quickGelu
}

/// The op set every model is written against. One implementation per device (`CPUBackend`, `CUDABackend`).
///
/// Conventions: tensors are dense row-major; "last axis" ops treat the tensor as rows of its last dimension; float
/// ops compute in f32 whatever the storage dtype. Every op checks its operand shapes and throws
/// `TensorError.shapeMismatch` naming the operand, so a wrong checkpoint is an error, never a crash.
public protocol Backend: AnyObject, Sendable {
    /// Short name for messages: `cpu`, `cuda:0`.
    var name: String { get }

    // MARK: Memory

    /// Copies a host tensor into backend memory, converting to the backend's compute dtype (f32 on CPU, bf16 on GPU).
    func upload(_ host: HostTensor) throws -> Tensor
    /// Copies a tensor back to the host as f32.
    func download(_ tensor: Tensor) throws -> HostTensor

    // MARK: Matrix products

    /// `x (..., K) · weightᵀ + bias`, then `activation`. weight (N, K) as stored by PyTorch `Linear`, bias (N).
    /// Result (..., N).
    func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation) throws -> Tensor
    /// `linear(concat(parts, axis: -1), weight:, bias:, activation:)` without materialising the concatenation:
    /// parts (..., Kᵢ) of equal leading shape, weight (N, ΣKᵢ), bias (N) → (..., N). FLUX's single block runs
    /// `linear2` over [attention; gelu(mlp)] this way. A backend may sum the parts' products in storage precision
    /// (the GPU accumulates bf16 partial sums when `activation` is identity: one more rounding of a partial).
    func linear(concatenating parts: [Tensor], weight: Tensor, bias: Tensor?, activation: Activation) throws -> Tensor

    /// The rows of the concatenation of `parts` (along the last axis, equal leading shapes) quantized the same way:
    /// the input side of an fp8 product.
    func quantizeRows(_ parts: [Tensor]) throws -> QuantizedRows
    /// `quantizeRows([modulatedLayerNorm(x, shift:, scale:, eps:)])`, in one pass where the backend can (the
    /// quantization then reads the f32 normalised values).
    func modulatedLayerNormFP8(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws -> QuantizedRows
    /// The fp8 product: `y[m, n] = act(Σₖ q(x)[m, k] · q(w)[n, k] · scale_x[m] · scale_w[n] + bias[n])`, e4m3 products
    /// accumulated in f32. x (..., K) quantized, weight (N, K) → (..., N).
    func linear(_ x: QuantizedRows, weight: QuantizedWeight, bias: Tensor?, activation: Activation) throws -> Tensor

    /// Scaled dot-product attention per head. q (B, Sq, H, D), k and v (B, Sk, H, D) → (B, Sq, H, D).
    /// `softmax(q·kᵀ·scale + bias (+ causal mask)) · v`; bias (H, Sq, Sk) is shared over the batch (T5's relative
    /// position bias); `causal` masks key j > query i (CLIP).
    func attention(q: Tensor, k: Tensor, v: Tensor, scale: Float, bias: Tensor?, causal: Bool) throws -> Tensor

    // MARK: Normalisation (over the last axis)

    /// `(x − mean) / √(var + eps) · weight + bias`; weight and bias (D) optional (FLUX uses neither).
    func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor
    /// `x / √(mean(x²) + eps) · weight`; weight (D) optional. On (B, S, H, D) this is FLUX's per-head q/k norm.
    func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor
    /// AdaLN: `layerNorm(x)·(1 + scale) + shift`, x (B, S, D), shift and scale (B, D) broadcast over S.
    func modulatedLayerNorm(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws -> Tensor

    // MARK: Elementwise

    func activation(_ x: Tensor, _ kind: Activation) throws -> Tensor
    /// `a + b`, same shapes.
    func add(_ a: Tensor, _ b: Tensor) throws -> Tensor
    /// `a · b`, same shapes.
    func multiply(_ a: Tensor, _ b: Tensor) throws -> Tensor
    /// `residual + gate[:, None, :] · x`; residual and x (B, S, D), gate (B, D).
    func gatedAdd(_ residual: Tensor, _ x: Tensor, gate: Tensor) throws -> Tensor

    // MARK: Layout

    /// Joins tensors of equal shape except along `axis`.
    func concat(_ parts: [Tensor], axis: Int) throws -> Tensor
    /// `x[..., start ..< start + count, ...]` along `axis`, copied.
    func slice(_ x: Tensor, axis: Int, start: Int, count: Int) throws -> Tensor

    /// `x[..., i, ...]` rearranged so output axis k is input axis `order[k]` (as `torch.permute`), copied.
    func permute(_ x: Tensor, _ order: [Int]) throws -> Tensor
    /// Rows of `table` (V, D) picked by `ids` (any shape, values in 0..<V) → (ids shape..., D). Token embeddings.
    func embedding(_ table: Tensor, ids: [Int32], shape: [Int]) throws -> Tensor

    // MARK: Scalars and reductions

    /// `x · scale + shift` with scalar scale and shift (latent scaling, image range changes).
    func scaleShift(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor
    /// `a + scale · b`, same shapes (the Euler step `x + (σₙ₊₁ − σₙ)·v`, differences of residuals).
    func addScaled(_ a: Tensor, _ b: Tensor, scale: Float) throws -> Tensor
    /// `Σ |x|` over every element, returned to the host (First Block Cache's relative L1 change).
    func absSum(_ x: Tensor) throws -> Float

    // MARK: Images (NCHW, as PyTorch)

    /// 2-D cross-correlation as `torch.nn.Conv2d`: x (B, Cin, H, W), weight (Cout, Cin, kh, kw), bias (Cout),
    /// zero padding per side, equal stride on both axes → (B, Cout, Ho, Wo), Ho = (H + top + bottom − kh) / stride + 1.
    func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Padding2D) throws -> Tensor
    /// `torch.nn.GroupNorm` then `activation`: x (B, C, ...) normalised over each group of C/groups channels and
    /// all positions; weight and bias (C).
    func groupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float, activation: Activation) throws
        -> Tensor
    /// Nearest-neighbour upsampling by an integer factor: (B, C, H, W) → (B, C, H·factor, W·factor).
    func upsampleNearest(_ x: Tensor, factor: Int) throws -> Tensor

    // MARK: Position

    /// FLUX attention inputs from fused projections, in one pass per stream (BFL `SelfAttention`'s
    /// `rearrange(qkv, "B L (K H D) -> K B H L D")`, `QKNorm`, then `apply_rope`, with the streams concatenated).
    /// Stream i: `qkv` (B, Sᵢ, 3·H·D) holds q, k and v as consecutive blocks of H·D channels, head h at h·D in each.
    /// q and k get the per-head RMSNorm `x / √(mean(x²) + eps) · scale` (queryScale, keyScale (D)), then the rotary
    /// embedding of `rope` at their joint position; v is copied. Streams are joined along the sequence in order
    /// (FLUX: text, then image), so stream i lands at positions S₀ + … + Sᵢ₋₁. cos and sin (ΣSᵢ, D/2); D even.
    /// Returns q, k, v, each (B, ΣSᵢ, H, D).
    func attentionInputs(_ streams: [QKVProjection], heads: Int, eps: Float, cos: Tensor, sin: Tensor) throws
        -> AttentionHeads

    /// Rotary embedding on interleaved pairs (FLUX/diffusers `use_real_unbind_dim=-1`): for pair i of each head,
    /// `(x₂ᵢ, x₂ᵢ₊₁) ← (x₂ᵢ cosᵢ − x₂ᵢ₊₁ sinᵢ, x₂ᵢ₊₁ cosᵢ + x₂ᵢ sinᵢ)`. x (B, S, H, D), cos and sin (S, D/2).
    func rope(_ x: Tensor, cos: Tensor, sin: Tensor) throws -> Tensor
}

/// One stream's input to `Backend.attentionInputs`: its fused q/k/v projection (B, S, 3·H·D) and the RMSNorm
/// scales (D) of its queries and keys.
public struct QKVProjection: Sendable {
    public var qkv: Tensor
    public var queryScale: Tensor
    public var keyScale: Tensor

    public init(qkv: Tensor, queryScale: Tensor, keyScale: Tensor) {
        (self.qkv, self.queryScale, self.keyScale) = (qkv, queryScale, keyScale)
    }
}

/// Query, key and value heads for `Backend.attention`, each (B, S, H, D).
public struct AttentionHeads: Sendable {
    public var q: Tensor
    public var k: Tensor
    public var v: Tensor

    public init(q: Tensor, k: Tensor, v: Tensor) { (self.q, self.k, self.v) = (q, k, v) }
}

/// Zero padding on each side of an image, in pixels.
public struct Padding2D: Sendable, Equatable {
    public var top: Int, bottom: Int, left: Int, right: Int

    public init(top: Int, bottom: Int, left: Int, right: Int) {
        (self.top, self.bottom, self.left, self.right) = (top, bottom, left, right)
    }

    /// The same padding on every side (`Conv2d(padding=p)`).
    public static func all(_ p: Int) -> Padding2D { Padding2D(top: p, bottom: p, left: p, right: p) }
}

extension Backend {
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

    /// A linear weight (N, K) quantized row by row to f8 e4m3 (`QuantizedWeight`): its rows are quantized the way
    /// activation rows are (`quantizeRows`), once at load.
    public func quantizeFP8(_ weight: Tensor) throws -> QuantizedWeight {
        try expect(weight.rank == 2, "quantizeFP8", "weight", weight.shape, "(N, K)")
        let rows = try quantizeRows([weight])
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
        _ = try FusedOpShapes.quantizedLinear(parts, weight: weight, bias: bias)
        return try linear(try quantizeRows(parts), weight: weight, bias: bias, activation: activation)
    }

    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor {
        try linear(x, weight: weight, bias: bias, activation: .identity)
    }

    public func attention(q: Tensor, k: Tensor, v: Tensor, scale: Float) throws -> Tensor {
        try attention(q: q, k: k, v: v, scale: scale, bias: nil, causal: false)
    }

    /// Splits `x` along `axis` into `parts` equal chunks, as `torch.chunk`.
    public func chunk(_ x: Tensor, _ parts: Int, axis: Int) throws -> [Tensor] {
        let a = axis < 0 ? x.rank + axis : axis
        guard parts > 0, x.shape[a] % parts == 0 else {
            throw TensorError.shapeMismatch(op: "chunk", operand: "x", shape: x.shape,
                                            expected: "axis \(a) divisible by \(parts)")
        }
        let size = x.shape[a] / parts
        return try (0..<parts).map { try slice(x, axis: a, start: $0 * size, count: size) }
    }
}

/// Operand checks of the fused ops, shared by every backend so that a bad call fails with the same words everywhere.
public enum FusedOpShapes {
    /// `linear(concatenating:)`: parts (..., Kᵢ) with one leading shape, weight (N, ΣKᵢ), bias (N).
    /// Returns the leading shape and each part's width.
    public static func linearConcatenating(_ parts: [Tensor], weight: Tensor, bias: Tensor?) throws
        -> (leading: [Int], widths: [Int])
    {
        let op = "linear"
        let (leading, widths) = try concatenatedRows(parts, op: op), k = widths.reduce(0, +)
        guard weight.rank == 2, weight.shape[1] == k else {
            throw TensorError.shapeMismatch(op: op, operand: "weight", shape: weight.shape, expected: "(N, \(k))")
        }
        if let bias, bias.shape != [weight.shape[0]] {
            throw TensorError.shapeMismatch(op: op, operand: "bias", shape: bias.shape,
                                            expected: "[\(weight.shape[0])]")
        }
        return (leading, widths)
    }

    /// Parts joined along the last axis (`linear(concatenating:)`, `quantizeRows`): at least one, rank ≥ 1, one leading
    /// shape. Returns it and each part's width.
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

    /// `attentionInputs`: returns batch, head dim and each stream's length.
    public static func attentionInputs(_ streams: [QKVProjection], heads: Int, cos: Tensor, sin: Tensor) throws
        -> (batch: Int, headDim: Int, lengths: [Int])
    {
        let op = "attentionInputs"
        guard let first = streams.first, heads > 0 else {
            throw TensorError.shapeMismatch(op: op, operand: "streams", shape: [streams.count, heads],
                                            expected: "at least one stream and one head")
        }
        guard first.qkv.rank == 3, first.qkv.shape[2] % (6 * heads) == 0, first.qkv.shape[2] > 0 else {
            throw TensorError.shapeMismatch(op: op, operand: "streams[0].qkv", shape: first.qkv.shape,
                                            expected: "(B, S, 3·\(heads)·D) with D even")
        }
        let batch = first.qkv.shape[0], headDim = first.qkv.shape[2] / (3 * heads)
        for (i, s) in streams.enumerated() {
            guard s.qkv.rank == 3, s.qkv.shape[0] == batch, s.qkv.shape[2] == 3 * heads * headDim else {
                throw TensorError.shapeMismatch(op: op, operand: "streams[\(i)].qkv", shape: s.qkv.shape,
                                                expected: "(\(batch), S, \(3 * heads * headDim))")
            }
            guard s.queryScale.shape == [headDim] else {
                throw TensorError.shapeMismatch(op: op, operand: "streams[\(i)].queryScale", shape: s.queryScale.shape,
                                                expected: "[\(headDim)]")
            }
            guard s.keyScale.shape == [headDim] else {
                throw TensorError.shapeMismatch(op: op, operand: "streams[\(i)].keyScale", shape: s.keyScale.shape,
                                                expected: "[\(headDim)]")
            }
        }
        let lengths = streams.map { $0.qkv.shape[1] }, total = lengths.reduce(0, +)
        for (name, t) in [("cos", cos), ("sin", sin)] where t.shape != [total, headDim / 2] {
            throw TensorError.shapeMismatch(op: op, operand: name, shape: t.shape, expected: "[\(total), \(headDim / 2)]")
        }
        return (batch, headDim, lengths)
    }
}

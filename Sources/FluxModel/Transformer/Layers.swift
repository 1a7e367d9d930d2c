import FluxCore
import Foundation

/// `y = x·Wᵀ + b`, PyTorch `nn.Linear`. weight (out, in), bias (out).
public struct Linear: Sendable {
    /// How the layer keeps its weight.
    public enum Weight: Sendable {
        /// The checkpoint's numbers in the backend's compute dtype.
        case dense(Tensor)
        /// f8 e4m3 with one scale per output row (`LinearQuantization.fp8`).
        case fp8(QuantizedWeight)
    }

    public let weight: Weight
    public let bias: Tensor?
    /// The current request's LoRA (`LowRankSlot`), when the model was built for LoRAs that change per request.
    public let lowRank: LowRankSlot?

    /// The weight the product uses: a LoRA-merged copy while the slot holds one, else the layer's own.
    var product: Weight { lowRank?.merged ?? weight }

    public init(weight: Tensor, bias: Tensor?, lowRank: LowRankSlot? = nil) {
        (self.weight, self.bias, self.lowRank) = (.dense(weight), bias, lowRank)
    }

    public init(weight: Weight, bias: Tensor?, lowRank: LowRankSlot? = nil) {
        (self.weight, self.bias, self.lowRank) = (weight, bias, lowRank)
    }

    public func callAsFunction(_ x: Tensor, on backend: any Backend, activation: Activation = .identity) throws
        -> Tensor
    {
        try self(concatenating: [x], on: backend, activation: activation)
    }

    /// The layer over the concatenation of `parts` along the last axis, which the backend need not materialise.
    public func callAsFunction(concatenating parts: [Tensor], on backend: any Backend,
                               activation: Activation = .identity) throws -> Tensor
    {
        guard let pair = lowRank?.pair else { return try base(parts, on: backend, activation: activation) }
        // W·x + b + up·(down·x), then the activation the base product would have fused.
        let down = parts.count == 1 ? try backend.linear(parts[0], weight: pair.down, bias: nil)
            : try backend.linear(concatenating: parts, weight: pair.down, bias: nil)
        let y = try backend.add(try base(parts, on: backend, activation: .identity),
                                try backend.linear(down, weight: pair.up, bias: nil))
        return activation == .identity ? y : try backend.activation(y, activation)
    }

    /// The layer's own product over the concatenation of `parts`.
    private func base(_ parts: [Tensor], on backend: any Backend, activation: Activation) throws -> Tensor {
        switch product {
        case let .dense(w) where parts.count == 1:
            try backend.linear(parts[0], weight: w, bias: bias, activation: activation)
        case let .dense(w):
            try backend.linear(concatenating: parts, weight: w, bias: bias, activation: activation)
        case let .fp8(w):
            try backend.linear(concatenating: parts, weight: w, bias: bias, activation: activation)
        }
    }

    /// What a layer reads: a tensor, or rows already quantized for fp8 weights.
    public enum Input: Sendable {
        case dense(Tensor)
        case quantized(QuantizedRows)
    }

    /// The layer on `input`. Quantized rows go to fp8 weights only (`modulatedLayerNorm(_:_:eps:for:on:)` makes them
    /// only for those).
    public func callAsFunction(_ input: Input, on backend: any Backend, activation: Activation = .identity) throws
        -> Tensor
    {
        switch (input, product) {
        case let (.dense(x), _):
            return try self(x, on: backend, activation: activation)
        case let (.quantized(x), .fp8(w)) where lowRank?.pair == nil:
            return try backend.linear(x, weight: w, bias: bias, activation: activation)
        case (.quantized, .fp8):
            throw TensorError.unsupportedDType(op: "linear (quantized rows beside a LoRA)", dtype: .f8e4m3)
        case (.quantized, .dense):
            throw TensorError.unsupportedDType(op: "linear (dense weight)", dtype: .f8e4m3)
        }
    }

    /// AdaLN `modulatedLayerNorm(x)` in the form `layers` read it: when all of them keep fp8 weights, rows quantized
    /// in the norm's own pass (`modulatedLayerNormFP8`) and shared by all; else the tensor.
    static func modulatedLayerNorm(_ x: Tensor, _ mod: ModulationOut, eps: Float, for layers: [Linear],
                                   on b: any Backend) throws -> Input
    {
        // A LoRA beside a layer reads the rows unquantized (the fp8 product then quantizes its own copy).
        let fp8 = layers.allSatisfy { if case .fp8 = $0.product, $0.lowRank?.pair == nil { true } else { false } }
        return fp8 ? .quantized(try b.modulatedLayerNormFP8(x, shift: mod.shift, scale: mod.scale, eps: eps))
            : .dense(try b.modulatedLayerNorm(x, shift: mod.shift, scale: mod.scale, eps: eps))
    }

    /// The layer with its weight quantized as `quantization` says. Stays dense for `.none`, and when either
    /// dimension is not a multiple of 16 (fp8 tensor cores take only those; such layers are small in any model).
    public func quantized(_ quantization: LinearQuantization, on backend: any Backend) throws -> Linear {
        guard quantization == .fp8, case let .dense(w) = weight, w.rank == 2, w.shape[0] % 16 == 0,
              w.shape[1] % 16 == 0 else { return self }
        return Linear(weight: .fp8(try backend.quantizeFP8(w)), bias: bias, lowRank: lowRank)
    }
}

/// BFL `MLPEmbedder`: `out_layer(silu(in_layer(x)))`. Embeds the timestep, the guidance and the pooled text vector.
struct MLPEmbedder: Sendable {
    let inLayer: Linear
    let outLayer: Linear

    init(_ w: ModuleWeights, inDim: Int, hiddenDim: Int) throws {
        inLayer = try w.linear("in_layer", in: inDim, out: hiddenDim)
        outLayer = try w.linear("out_layer", in: hiddenDim, out: hiddenDim)
    }

    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        try outLayer(try inLayer(x, on: b, activation: .silu), on: b)
    }
}

/// BFL `QKNorm`: RMSNorm over each head's channels for queries and keys, with learned scales (head dim).
struct QKNorm: Sendable {
    let queryNorm: Tensor
    let keyNorm: Tensor

    init(_ w: ModuleWeights, headDim: Int) throws {
        queryNorm = try w.scope("query_norm").tensor("scale", shape: [headDim])
        keyNorm = try w.scope("key_norm").tensor("scale", shape: [headDim])
    }
}

/// The (shift, scale, gate) triple of one AdaLN-Zero modulation, each (B, D).
struct ModulationOut: Sendable {
    let shift: Tensor
    let scale: Tensor
    let gate: Tensor
}

/// BFL `Modulation`: `lin(silu(vec))` chunked into one (double = false) or two (double = true) triples.
struct Modulation: Sendable {
    let lin: Linear
    let double: Bool

    /// Never quantized: one product per image (`FluxTransformer.conditioning`), and every block's scale, shift and
    /// gate come from it.
    init(_ w: ModuleWeights, dim: Int, double: Bool) throws {
        self.double = double
        lin = try w.quantizing(.none).linear("lin", in: dim, out: (double ? 6 : 3) * dim)
    }

    /// `lin(silu(vec))` (B, 3·D or 6·D) split into one triple (single blocks) or two (double blocks: attention,
    /// then MLP). The product itself runs in `FluxTransformer.modulationProducts`, for all blocks at once.
    static func split(_ product: Tensor, triples: Int, on b: any Backend) throws -> [ModulationOut] {
        let parts = try b.chunk(product, 3 * triples, axis: 1)
        return stride(from: 0, to: parts.count, by: 3).map {
            ModulationOut(shift: parts[$0], scale: parts[$0 + 1], gate: parts[$0 + 2])
        }
    }
}

/// Sinusoidal embedding of `t · timeFactor` (BFL `timestep_embedding`, diffusers `Timesteps(flip_sin_to_cos=True,
/// downscale_freq_shift=0)`): `[cos(t·fᵢ), sin(t·fᵢ)]` with `fᵢ = exp(−ln(10000)·i/half)`, i < half = dim/2. Computed
/// in f32 as the references do. Result (B, dim).
func timestepEmbedding(_ t: [Float], dim: Int = 256, timeFactor: Float = 1000) -> HostTensor {
    let half = dim / 2
    var out = [Float](repeating: 0, count: t.count * dim)
    for (row, value) in t.enumerated() {
        let scaled = value * timeFactor
        for i in 0..<half {
            let frequency = exp(Float(-log(10_000.0)) * Float(i) / Float(half))
            let argument = scaled * frequency
            out[row * dim + i] = Float(cos(Double(argument)))
            out[row * dim + half + i] = Float(sin(Double(argument)))
        }
    }
    return HostTensor(out, shape: [t.count, dim])
}

/// BFL `EmbedND`: rotary angles for positions with several axes (FLUX: (index, row, column)). Axis a of dim dₐ uses
/// frequencies θ^(−2j/dₐ), j < dₐ/2; the angles of all axes are concatenated. Computed in f64 as diffusers does.
/// Returns cos and sin, each (S, headDim/2).
func ropeAngles(ids: [[Double]], axesDims: [Int], theta: Double) -> (cos: HostTensor, sin: HostTensor) {
    let half = axesDims.reduce(0, +) / 2
    var cosValues = [Float](repeating: 0, count: ids.count * half)
    var sinValues = cosValues
    for (s, position) in ids.enumerated() {
        var column = 0
        for (axis, dim) in axesDims.enumerated() {
            for j in 0..<dim / 2 {
                let frequency = 1 / pow(theta, Double(2 * j) / Double(dim))
                let angle = position[axis] * frequency
                cosValues[s * half + column] = Float(cos(angle))
                sinValues[s * half + column] = Float(sin(angle))
                column += 1
            }
        }
    }
    return (HostTensor(cosValues, shape: [ids.count, half]), HostTensor(sinValues, shape: [ids.count, half]))
}

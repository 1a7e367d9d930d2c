import FluxCore

/// transformers `T5LayerNorm`: RMS over the last axis (no mean, no bias), times a weight (D).
struct T5LayerNorm: Sendable {
    let weight: Tensor
    let eps: Float

    init(_ w: ModuleWeights, dim: Int, eps: Float) throws {
        weight = try w.tensor("weight", shape: [dim])
        self.eps = eps
    }

    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        try b.rmsNorm(x, weight: weight, eps: eps)
    }
}

/// transformers `T5Attention` (encoder self-attention): q, k, v, o without bias and without the 1/√d scale; the
/// relative position bias is added to the scores instead.
struct T5Attention: Sendable {
    let q: Linear
    let k: Linear
    let v: Linear
    let o: Linear
    /// (num_buckets, heads); only layer 0 has one, and its bias serves every layer.
    let relativeAttentionBias: Tensor?
    let heads: Int

    init(_ w: ModuleWeights, config: T5Config, hasRelativeAttentionBias: Bool) throws {
        let (dim, inner) = (config.dModel, config.innerDim)
        q = try w.linear("q", in: dim, out: inner, bias: false)
        k = try w.linear("k", in: dim, out: inner, bias: false)
        v = try w.linear("v", in: dim, out: inner, bias: false)
        o = try w.linear("o", in: inner, out: dim, bias: false)
        relativeAttentionBias = hasRelativeAttentionBias
            ? try w.scope("relative_attention_bias").tensor(
                "weight", shape: [config.relativeAttentionNumBuckets, config.numHeads])
            : nil
        heads = config.numHeads
    }

    /// x (B, L, d_model), bias (H, L, L) → (B, L, d_model). No mask: every token, padding included, attends to all.
    func callAsFunction(_ x: Tensor, positionBias: Tensor, on b: any Backend) throws -> Tensor {
        let (batch, length) = (x.shape[0], x.shape[1])
        func heads(_ t: Tensor) throws -> Tensor { try t.reshaped([batch, length, self.heads, -1]) }
        let out = try b.attention(q: try heads(try q(x, on: b)), k: try heads(try k(x, on: b)),
                                  v: try heads(try v(x, on: b)), scale: 1, bias: positionBias, causal: false)
        return try o(try out.reshaped([batch, length, -1]), on: b)
    }
}

/// transformers `T5DenseGatedActDense` (`wo(act(wi_0 x) · wi_1 x)`) or `T5DenseActDense` (`wo(act(wi x))`), stored
/// as `DenseReluDense` whatever the activation.
struct T5DenseReluDense: Sendable {
    /// `wi_0` when gated, `wi` otherwise.
    let wi: Linear
    let wi1: Linear?
    let wo: Linear
    let activation: HiddenActivation

    init(_ w: ModuleWeights, config: T5Config, activation: HiddenActivation) throws {
        let (dim, ff) = (config.dModel, config.dFf)
        if config.isGatedAct {
            wi = try w.linear("wi_0", in: dim, out: ff, bias: false)
            wi1 = try w.linear("wi_1", in: dim, out: ff, bias: false)
        } else {
            wi = try w.linear("wi", in: dim, out: ff, bias: false)
            wi1 = nil
        }
        wo = try w.linear("wo", in: ff, out: dim, bias: false)
        self.activation = activation
    }

    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        var h = try activation.linear(x, wi, on: b)
        if let wi1 { h = try b.multiply(h, try wi1(x, on: b)) }
        return try wo(h, on: b)
    }
}

/// transformers `T5Block` of an encoder: `layer.0` (norm → self-attention → residual), `layer.1` (norm →
/// feed-forward → residual).
struct T5Block: Sendable {
    let attentionNorm: T5LayerNorm
    let selfAttention: T5Attention
    let feedForwardNorm: T5LayerNorm
    let denseReluDense: T5DenseReluDense

    init(_ w: ModuleWeights, config: T5Config, index: Int, activation: HiddenActivation) throws {
        let (dim, eps) = (config.dModel, config.layerNormEpsilon)
        attentionNorm = try T5LayerNorm(w.scope("layer.0.layer_norm"), dim: dim, eps: eps)
        selfAttention = try T5Attention(w.scope("layer.0.SelfAttention"), config: config,
                                        hasRelativeAttentionBias: index == 0)
        feedForwardNorm = try T5LayerNorm(w.scope("layer.1.layer_norm"), dim: dim, eps: eps)
        denseReluDense = try T5DenseReluDense(w.scope("layer.1.DenseReluDense"), config: config,
                                              activation: activation)
    }

    func callAsFunction(_ x: Tensor, positionBias: Tensor, on b: any Backend) throws -> Tensor {
        let h = try b.add(x, try selfAttention(try attentionNorm(x, on: b), positionBias: positionBias, on: b))
        return try b.add(h, try denseReluDense(try feedForwardNorm(h, on: b), on: b))
    }
}

/// transformers `T5EncoderModel`, for any `T5Config`: the token embedding (`shared`), the encoder blocks, the final
/// RMS norm. Weights are addressed by the transformers names; `T5Checkpoint` reads `shared.weight` from
/// `encoder.embed_tokens.weight` when only that is stored.
public final class T5Encoder: Sendable {
    public let config: T5Config
    public let backend: any Backend
    let shared: Tensor
    let blocks: [T5Block]
    let finalLayerNorm: T5LayerNorm

    public init(config: T5Config, weights w: ModuleWeights) throws {
        try config.validate(source: w.description)
        guard let activation = HiddenActivation(transformersName: config.denseActFn) else {
            throw ModelError.invalidConfig(source: w.description, reason: "activation \(config.denseActFn)")
        }
        self.config = config
        backend = w.backend
        shared = try w.scope("shared").tensor("weight", shape: [config.vocabSize, config.dModel])
        blocks = try (0..<config.numLayers).map {
            try T5Block(w.scope("encoder.block.\($0)"), config: config, index: $0, activation: activation)
        }
        finalLayerNorm = try T5LayerNorm(w.scope("encoder.final_layer_norm"), dim: config.dModel,
                                         eps: config.layerNormEpsilon)
    }

    /// Every weight (reference name, shape) this config reads, as the constructor asks for them.
    public static func expectedWeights(for config: T5Config) throws -> [ExpectedWeight] {
        try WeightRecorder.expectedWeights { _ = try T5Encoder(config: config, weights: $0) }
    }

    /// `T5EncoderModel.forward(input_ids)` as FluxPipeline calls it: no attention mask. Result `last_hidden_state`
    /// (B, L, d_model).
    public func callAsFunction(_ ids: TokenIds) throws -> Tensor {
        let b = backend
        try ids.checkVocabulary(config.vocabSize)
        var h = try b.embedding(shared, ids: ids.values, shape: ids.shape)
        guard let table = blocks.first?.selfAttention.relativeAttentionBias else {
            return try finalLayerNorm(h, on: b)  // no layers: the embedding, normalised
        }
        let positionBias = try T5RelativePosition.bias(table: table, length: ids.length,
                                                       maxDistance: config.relativeAttentionMaxDistance, on: b)
        for block in blocks { h = try block(h, positionBias: positionBias, on: b) }
        return try finalLayerNorm(h, on: b)
    }
}

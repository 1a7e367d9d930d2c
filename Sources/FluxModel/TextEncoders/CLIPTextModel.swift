import FluxCore

/// `nn.LayerNorm` with its affine weight and bias (D).
struct AffineLayerNorm: Sendable {
    let weight: Tensor
    let bias: Tensor
    let eps: Float

    init(_ w: ModuleWeights, dim: Int, eps: Float) throws {
        weight = try w.tensor("weight", shape: [dim])
        bias = try w.tensor("bias", shape: [dim])
        self.eps = eps
    }

    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        try b.layerNorm(x, weight: weight, bias: bias, eps: eps)
    }
}

/// transformers `CLIPAttention` for text: q/k/v/out projections with bias, softmax scale head_dim^-½, causal.
struct CLIPAttention: Sendable {
    let qProj: Linear
    let kProj: Linear
    let vProj: Linear
    let outProj: Linear
    let heads: Int

    init(_ w: ModuleWeights, config: CLIPConfig) throws {
        let dim = config.hiddenSize
        qProj = try w.linear("q_proj", in: dim, out: dim)
        kProj = try w.linear("k_proj", in: dim, out: dim)
        vProj = try w.linear("v_proj", in: dim, out: dim)
        outProj = try w.linear("out_proj", in: dim, out: dim)
        heads = config.numAttentionHeads
    }

    /// x (B, L, D) → (B, L, D). Token i sees tokens 0...i only (the text model's causal mask).
    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        let (batch, length) = (x.shape[0], x.shape[1])
        func heads(_ t: Tensor) throws -> Tensor { try t.reshaped([batch, length, self.heads, -1]) }
        let q = try heads(try qProj(x, on: b)), k = try heads(try kProj(x, on: b)), v = try heads(try vProj(x, on: b))
        let scale = 1 / Float(q.shape[3]).squareRoot()
        let out = try b.attention(q: q, k: k, v: v, scale: scale, bias: nil, causal: true)
        return try outProj(try out.reshaped([batch, length, -1]), on: b)
    }
}

/// transformers `CLIPMLP`: `fc2(act(fc1(x)))`.
struct CLIPMLP: Sendable {
    let fc1: Linear
    let fc2: Linear
    let activation: HiddenActivation

    init(_ w: ModuleWeights, config: CLIPConfig, activation: HiddenActivation) throws {
        fc1 = try w.linear("fc1", in: config.hiddenSize, out: config.intermediateSize)
        fc2 = try w.linear("fc2", in: config.intermediateSize, out: config.hiddenSize)
        self.activation = activation
    }

    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        try fc2(try activation.linear(x, fc1, on: b), on: b)
    }
}

/// transformers `CLIPEncoderLayer`: pre-LayerNorm attention and MLP, each added to the residual stream.
struct CLIPEncoderLayer: Sendable {
    let layerNorm1: AffineLayerNorm
    let selfAttn: CLIPAttention
    let layerNorm2: AffineLayerNorm
    let mlp: CLIPMLP

    init(_ w: ModuleWeights, config: CLIPConfig, activation: HiddenActivation) throws {
        let (dim, eps) = (config.hiddenSize, config.layerNormEps)
        layerNorm1 = try AffineLayerNorm(w.scope("layer_norm1"), dim: dim, eps: eps)
        selfAttn = try CLIPAttention(w.scope("self_attn"), config: config)
        layerNorm2 = try AffineLayerNorm(w.scope("layer_norm2"), dim: dim, eps: eps)
        mlp = try CLIPMLP(w.scope("mlp"), config: config, activation: activation)
    }

    func callAsFunction(_ x: Tensor, on b: any Backend) throws -> Tensor {
        let h = try b.add(x, try selfAttn(try layerNorm1(x, on: b), on: b))
        return try b.add(h, try mlp(try layerNorm2(h, on: b), on: b))
    }
}

/// What `CLIPTextModel` returns.
public struct CLIPTextOutput: Sendable {
    /// Final-LayerNormed states (B, L, hidden).
    public let lastHiddenState: Tensor
    /// `lastHiddenState` at each row's end-of-text position (B, hidden): FLUX's `pooled_projections`.
    public let poolerOutput: Tensor
}

/// transformers `CLIPTextModel` (the text tower without projection), for any `CLIPConfig`.
///
/// Weights are addressed by transformers 5 names (`embeddings.token_embedding.weight`, `encoder.layers.N...`,
/// `final_layer_norm`); `CLIPCheckpoint` maps the older `text_model.`-prefixed layout onto them.
public final class CLIPTextModel: Sendable {
    public let config: CLIPConfig
    public let backend: any Backend
    let tokenEmbedding: Tensor
    let positionEmbedding: Tensor
    let layers: [CLIPEncoderLayer]
    let finalLayerNorm: AffineLayerNorm

    public init(config: CLIPConfig, weights w: ModuleWeights) throws {
        try config.validate(source: w.description)
        guard let activation = HiddenActivation(transformersName: config.hiddenAct) else {
            throw ModelError.invalidConfig(source: w.description, reason: "hidden_act \(config.hiddenAct)")
        }
        self.config = config
        backend = w.backend
        let dim = config.hiddenSize
        let embeddings = w.scope("embeddings")
        tokenEmbedding = try embeddings.scope("token_embedding").tensor("weight", shape: [config.vocabSize, dim])
        positionEmbedding = try embeddings.scope("position_embedding").tensor(
            "weight", shape: [config.maxPositionEmbeddings, dim])
        layers = try (0..<config.numHiddenLayers).map {
            try CLIPEncoderLayer(w.scope("encoder.layers.\($0)"), config: config, activation: activation)
        }
        finalLayerNorm = try AffineLayerNorm(w.scope("final_layer_norm"), dim: dim, eps: config.layerNormEps)
    }

    /// Every weight (reference name, shape) this config reads, as the constructor asks for them.
    public static func expectedWeights(for config: CLIPConfig) throws -> [ExpectedWeight] {
        try WeightRecorder.expectedWeights { _ = try CLIPTextModel(config: config, weights: $0) }
    }

    /// `CLIPTextModel.forward(input_ids)` as FluxPipeline calls it: no attention mask, only the causal one.
    public func callAsFunction(_ ids: TokenIds) throws -> CLIPTextOutput {
        let b = backend
        guard ids.length <= config.maxPositionEmbeddings else {
            throw ModelError.inputShape(name: "input_ids", shape: ids.shape,
                                        expected: "(B, L ≤ max_position_embeddings \(config.maxPositionEmbeddings))")
        }
        try ids.checkVocabulary(config.vocabSize)
        let (batch, length) = (ids.batch, ids.length)
        let positions = (0..<batch).flatMap { _ in (0..<Int32(length)).map { $0 } }
        var h = try b.add(try b.embedding(tokenEmbedding, ids: ids.values, shape: ids.shape),
                          try b.embedding(positionEmbedding, ids: positions, shape: ids.shape))
        for layer in layers { h = try layer(h, on: b) }
        h = try finalLayerNorm(h, on: b)
        // Gather row b's state at its pooled position: rows of (B·L, D), index b·L + position.
        let picks = (0..<batch).map { Int32($0 * length + pooledPosition(ids.row($0))) }
        let pooled = try b.embedding(try h.reshaped([batch * length, -1]), ids: picks, shape: [batch])
        return CLIPTextOutput(lastHiddenState: h, poolerOutput: pooled)
    }

    /// The position `CLIPTextModel` pools (transformers 5.24): with the legacy `eos_token_id` 2, the first position of
    /// the row's largest id (CLIP's end token is the last vocabulary entry); otherwise the first position holding
    /// `eos_token_id`, or 0 when the row has none (`argmax` of an all-false row).
    public func pooledPosition(_ row: ArraySlice<Int32>) -> Int {
        let start = row.startIndex
        if config.eosTokenId == CLIPConfig.legacyEosTokenId {
            guard let largest = row.max() else { return 0 }
            return (row.firstIndex(of: largest) ?? start) - start
        }
        guard let eos = config.eosTokenId, let found = row.firstIndex(where: { Int($0) == eos }) else { return 0 }
        return found - start
    }
}

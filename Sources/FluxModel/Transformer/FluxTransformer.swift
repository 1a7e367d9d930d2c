import FluxCore

/// The FLUX.1 rectified-flow transformer (BFL `Flux`, diffusers `FluxTransformer2DModel`), for any `FluxConfig`.
///
/// Weights are addressed by the BFL names; `FluxCheckpoint` maps diffusers checkpoints onto them.
public final class FluxTransformer: Sendable {
    public let config: FluxConfig
    public let backend: any Backend
    let imgIn: Linear
    let timeIn: MLPEmbedder
    let vectorIn: MLPEmbedder
    let guidanceIn: MLPEmbedder?
    let txtIn: Linear
    let doubleBlocks: [DoubleStreamBlock]
    let singleBlocks: [SingleStreamBlock]
    let finalLayer: LastLayer

    /// Width of the sinusoidal timestep and guidance embeddings.
    static let timestepEmbeddingDim = 256

    /// `quantization` applies to the linear layers inside the double and single blocks (all but a sliver of a step's
    /// matrix FLOPs); the embedders, modulations and final layer stay in the compute dtype.
    public init(config: FluxConfig, weights w: ModuleWeights, quantization: LinearQuantization = .none) throws {
        try config.validate(source: w.description)
        self.config = config
        backend = w.backend
        let dim = config.hiddenSize
        imgIn = try w.linear("img_in", in: config.inChannels, out: dim)
        timeIn = try MLPEmbedder(w.scope("time_in"), inDim: Self.timestepEmbeddingDim, hiddenDim: dim)
        vectorIn = try MLPEmbedder(w.scope("vector_in"), inDim: config.pooledProjectionDim, hiddenDim: dim)
        guidanceIn = config.guidanceEmbeds
            ? try MLPEmbedder(w.scope("guidance_in"), inDim: Self.timestepEmbeddingDim, hiddenDim: dim) : nil
        txtIn = try w.linear("txt_in", in: config.jointAttentionDim, out: dim)
        doubleBlocks = try (0..<config.numLayers).map {
            try DoubleStreamBlock(w.scope("double_blocks.\($0)").quantizing(quantization), config: config)
        }
        singleBlocks = try (0..<config.numSingleLayers).map {
            try SingleStreamBlock(w.scope("single_blocks.\($0)").quantizing(quantization), config: config)
        }
        finalLayer = try LastLayer(w.scope("final_layer"), dim: dim, outChannels: config.outputChannels)
    }

    /// Every weight (reference name, shape) a transformer of `config` asks for, in the order it asks.
    public static func expectedWeights(for config: FluxConfig) throws -> [ExpectedWeight] {
        try WeightRecorder.expectedWeights { _ = try FluxTransformer(config: config, weights: $0) }
    }

    /// Rotary embedding for `txtIds` then `imgIds` (each row a position with one value per RoPE axis).
    public func positionEmbedding(txtIds: [[Double]], imgIds: [[Double]]) throws -> PositionEmbedding {
        let angles = ropeAngles(ids: txtIds + imgIds, axesDims: config.axesDimsRope, theta: FluxConfig.ropeTheta)
        return PositionEmbedding(cos: try backend.upload(angles.cos), sin: try backend.upload(angles.sin))
    }

    /// One denoising prediction (BFL `Flux.forward`).
    /// - img: packed latents (B, S_img, in_channels); txt: T5 states (B, S_txt, joint_attention_dim);
    ///   y: CLIP pooled (B, pooled_projection_dim); timesteps and guidance: B values on the 0…1 scale (×1000 inside).
    /// - Returns: the velocity (B, S_img, out_channels).
    ///   cache: First Block Cache state of this generation, or nil to run every block.
    ///   conditioning, step: the schedule's modulations made ahead (`conditioning(y:timesteps:guidance:)`) and which
    ///   step this is; its timesteps and guidance must be the ones passed here. Without it they are made now.
    public func callAsFunction(img: Tensor, txt: Tensor, y: Tensor, timesteps: [Float], guidance: [Float]?,
                               pe: PositionEmbedding, cache: FirstBlockCache? = nil,
                               conditioning: ScheduleConditioning? = nil, step: Int = 0) throws -> Tensor {
        let b = backend
        try validate(img: img, txt: txt, y: y, timesteps: timesteps, pe: pe)
        let batch = img.shape[0]
        let mods: StepModulations
        if let conditioning {
            guard conditioning.timesteps.indices.contains(step), conditioning.timesteps[step] == timesteps,
                  guidanceIn == nil || conditioning.guidance?[step] == guidance
            else {
                throw ModelError.missingInput(name: "conditioning",
                                              expected: "step \(step) made for timesteps \(timesteps)")
            }
            mods = try conditioning.products.rows(step * batch, batch, on: b)
        } else {
            let siluVec = try conditioningVector(y: y, timesteps: timesteps, guidance: guidance)
            mods = try modulationProducts(siluVec).rows(0, batch, on: b)
        }

        var img = try imgIn(img, on: b)
        var txt = try txtIn(txt, on: b)
        if let cache, cache.threshold > 0, let head = doubleBlocks.first {
            // First Block Cache: the head block always runs; the rest only when its residual moved enough.
            let (headImg, headTxt) = try head(img: img, txt: txt, mods: mods.double[0], pe: pe, on: b)
            let residual = try b.addScaled(headImg, img, scale: -1)
            if try cache.shouldCompute(residual: residual, on: b) {
                cache.headResidual = residual
                (img, txt) = try blocks(img: headImg, txt: headTxt, from: 1, mods: mods, pe: pe)
                cache.tailResidual = (try b.addScaled(img, headImg, scale: -1), try b.addScaled(txt, headTxt, scale: -1))
            } else if let tail = cache.tailResidual {
                img = try b.add(headImg, tail.img)
            }
        } else {
            (img, txt) = try blocks(img: img, txt: txt, from: 0, mods: mods, pe: pe)
        }
        return try finalLayer(img, shift: mods.final.shift, scale: mods.final.scale, on: b)
    }

    /// Double blocks from index `first` on, then every single block over the joint sequence (text first).
    private func blocks(img: Tensor, txt: Tensor, from first: Int, mods: StepModulations, pe: PositionEmbedding)
        throws -> (img: Tensor, txt: Tensor)
    {
        let b = backend
        var (img, txt) = (img, txt)
        for (block, mod) in zip(doubleBlocks[first...], mods.double[first...]) {
            (img, txt) = try block(img: img, txt: txt, mods: mod, pe: pe, on: b)
        }
        let txtLength = txt.shape[1]
        var joint = try b.concat([txt, img], axis: 1)
        for (block, mod) in zip(singleBlocks, mods.single) {
            joint = try block(joint, mod: mod, pe: pe, on: b)
        }
        return (try b.slice(joint, axis: 1, start: txtLength, count: joint.shape[1] - txtLength),
                try b.slice(joint, axis: 1, start: 0, count: txtLength))
    }

    /// Checks input shapes against the config before any work, naming the diffusers argument on a mismatch.
    func validate(img: Tensor, txt: Tensor, y: Tensor, timesteps: [Float], pe: PositionEmbedding) throws {
        let batch = img.rank == 3 ? img.shape[0] : -1
        guard img.rank == 3, img.shape[2] == config.inChannels, batch > 0 else {
            throw ModelError.inputShape(name: "hidden_states", shape: img.shape,
                                        expected: "(B, S_img, \(config.inChannels))")
        }
        guard txt.rank == 3, txt.shape[0] == batch, txt.shape[2] == config.jointAttentionDim else {
            throw ModelError.inputShape(name: "encoder_hidden_states", shape: txt.shape,
                                        expected: "(\(batch), S_txt, \(config.jointAttentionDim))")
        }
        guard y.shape == [batch, config.pooledProjectionDim] else {
            throw ModelError.inputShape(name: "pooled_projections", shape: y.shape,
                                        expected: "(\(batch), \(config.pooledProjectionDim))")
        }
        guard timesteps.count == batch else {
            throw ModelError.inputShape(name: "timestep", shape: [timesteps.count], expected: "(\(batch))")
        }
        let tokens = txt.shape[1] + img.shape[1]
        guard pe.cos.shape == [tokens, config.attentionHeadDim / 2] else {
            throw ModelError.inputShape(name: "txt_ids + img_ids", shape: [pe.cos.shape[0]],
                                        expected: "\(tokens) positions (S_txt + S_img)")
        }
    }
}

import FluxCore
import FluxTokenizers
import Foundation

/// What to generate. Sizes in pixels; `guidanceScale` only matters for guidance-distilled models (dev).
public struct GenerationRequest: Sendable {
    public var prompts: [String]
    public var width: Int
    public var height: Int
    public var steps: Int
    public var guidanceScale: Float
    public var seed: UInt64
    public var imagesPerPrompt: Int
    /// First Block Cache threshold; 0 runs every block at every step.
    public var cacheThreshold: Float
    public var maxSequenceLength: Int

    public init(prompts: [String], width: Int, height: Int, steps: Int, guidanceScale: Float, seed: UInt64,
                imagesPerPrompt: Int = 1, cacheThreshold: Float = 0, maxSequenceLength: Int) {
        (self.prompts, self.width, self.height, self.steps, self.guidanceScale, self.seed) =
            (prompts, width, height, steps, guidanceScale, seed)
        (self.imagesPerPrompt, self.cacheThreshold, self.maxSequenceLength) =
            (imagesPerPrompt, cacheThreshold, maxSequenceLength)
    }

    /// Images in the batch: prompts × images per prompt.
    public var batch: Int { prompts.count * imagesPerPrompt }
}

/// Progress of one generation, reported after every denoising step.
public struct StepProgress: Sendable {
    public let step: Int
    public let total: Int
    public let elapsed: Double
    /// Whether First Block Cache skipped this step's remaining blocks.
    public let skipped: Bool
    /// The packed latents after this step, (B, tokens, 4·latent channels), for previews; valid during the callback.
    public let latents: Tensor?
}

/// What one generation produced.
public struct GenerationResult: Sendable {
    /// (B, 3, H, W) in 0…1, f32: what diffusers' FluxPipeline returns with `output_type="pt"`.
    public let images: HostTensor
    /// Denoising steps whose remaining blocks First Block Cache skipped.
    public let skippedSteps: [Int]
    /// Seconds per stage: `encode`, `denoise`, `decode`.
    public let timings: [String: Double]

    /// Image `index` as 8-bit RGB, rows top to bottom (rounded as PIL's `to_pil_image` does: ×255, round).
    public func rgb(_ index: Int) -> [UInt8] {
        let (height, width) = (images.shape[2], images.shape[3]), plane = height * width
        let values = images.floats(), base = index * 3 * plane
        var out = [UInt8](repeating: 0, count: 3 * plane)
        for p in 0..<plane {
            for c in 0..<3 { out[p * 3 + c] = UInt8((min(max(values[base + c * plane + p], 0), 1) * 255).rounded()) }
        }
        return out
    }
}

/// Text → image with FLUX.1 (diffusers `FluxPipeline`): CLIP pooled and T5 token embeddings, seeded noise, flow-match
/// Euler denoising with the guidance embedding, unpacking, VAE decode.
public final class FluxPipeline: @unchecked Sendable {
    public let components: PipelineComponents
    public let backend: any Backend
    public let transformer: FluxTransformer
    public let clip: CLIPTextModel
    public let t5: T5Encoder
    public let vae: AutoencoderKL
    public let clipTokenizer: CLIPTokenizer
    public let t5Tokenizer: T5Tokenizer
    public let scheduler: SchedulerConfig

    /// Loads every component onto `backend`; `quantization` applies to the transformer's blocks.
    public init(_ components: PipelineComponents, backend: any Backend, quantization: LinearQuantization = .none)
        throws
    {
        self.components = components
        self.backend = backend
        clipTokenizer = try CLIPTokenizer(directory: components.tokenizer)
        t5Tokenizer = try T5Tokenizer(directory: components.tokenizer2)
        clip = try CLIPCheckpoint.open(components.textEncoder).load(on: backend)
        t5 = try T5Checkpoint.open(components.textEncoder2).load(on: backend)
        transformer = try components.transformer.load(on: backend, quantization: quantization)
        vae = try components.vae.load(on: backend, parts: .decoder)
        scheduler = components.scheduler
        guard transformer.config.pooledProjectionDim == clip.config.hiddenSize else {
            throw ModelError.invalidConfig(source: components.path, reason:
                "transformer pooled_projection_dim \(transformer.config.pooledProjectionDim) ≠ CLIP hidden size \(clip.config.hiddenSize)")
        }
        guard transformer.config.jointAttentionDim == t5.config.dModel else {
            throw ModelError.invalidConfig(source: components.path, reason:
                "transformer joint_attention_dim \(transformer.config.jointAttentionDim) ≠ T5 d_model \(t5.config.dModel)")
        }
        guard transformer.config.inChannels == 4 * vae.config.latentChannels else {
            throw ModelError.invalidConfig(source: components.path, reason:
                "transformer in_channels \(transformer.config.inChannels) ≠ 4 × VAE latent channels \(vae.config.latentChannels)")
        }
    }

    /// The latent layout for an image size, or a clear error for a size the model cannot make.
    public func geometry(width: Int, height: Int) throws -> LatentGeometry {
        try LatentGeometry(height: height, width: width, vaeScaleFactor: vae.config.downsamplingFactor,
                           latentChannels: vae.config.latentChannels)
    }

    /// Prompt embeddings as FluxPipeline's `encode_prompt`: T5 states (B, L, d_model) and CLIP pooled (B, hidden),
    /// each prompt repeated `imagesPerPrompt` times in a row.
    public func encodePrompts(_ prompts: [String], imagesPerPrompt: Int, maxSequenceLength: Int) throws
        -> (promptEmbeds: Tensor, pooled: Tensor)
    {
        let repeated = prompts.flatMap { Array(repeating: $0, count: imagesPerPrompt) }
        let clipIds = try TokenIds(rows: repeated.map {
            clipTokenizer.encode($0, maxLength: CLIPTokenizer.defaultMaxLength).inputIds
        })
        let t5Ids = try TokenIds(rows: repeated.map { t5Tokenizer.encode($0, maxLength: maxSequenceLength).inputIds })
        return (try t5(t5Ids), try clip(clipIds).poolerOutput)
    }

    /// Seeded initial noise, packed: image i of the batch uses seed + i, so any image can be made again alone.
    public func initialLatents(_ geometry: LatentGeometry, batch: Int, seed: UInt64) throws -> Tensor {
        try initialLatents(geometry, seeds: (0..<batch).map { seed &+ UInt64($0) })
    }

    /// Seeded initial noise, packed, one seed per image: a batch made of several requests (the server's batching)
    /// gives each image the noise it would have alone.
    public func initialLatents(_ geometry: LatentGeometry, seeds: [UInt64]) throws -> Tensor {
        let perImage = geometry.latentChannels * geometry.latentHeight * geometry.latentWidth
        let values = seeds.flatMap { seed in
            var noise = GaussianNoise(seed: seed)
            return noise.sample(perImage)
        }
        let latents = try backend.tensor(values, shape: [seeds.count, geometry.latentChannels, geometry.latentHeight,
                                                         geometry.latentWidth])
        return try geometry.pack(latents, on: backend)
    }

    /// Runs the whole pipeline. `latents` (B, tokens, 4·latent channels) replaces the seeded noise when given.
    /// An error thrown by `progress` stops the run after that step and is rethrown (how a caller cancels).
    public func generate(_ request: GenerationRequest, latents given: Tensor? = nil,
                         progress: ((StepProgress) throws -> Void)? = nil) throws -> GenerationResult {
        try validate(request)
        let geometry = try self.geometry(width: request.width, height: request.height)
        let batch = request.batch
        let clock = ContinuousClock(), start = clock.now
        func seconds(since t: ContinuousClock.Instant) -> Double {
            let d = clock.now - t
            return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        let (promptEmbeds, pooled) = try encodePrompts(request.prompts, imagesPerPrompt: request.imagesPerPrompt,
                                                       maxSequenceLength: request.maxSequenceLength)
        let encodeTime = seconds(since: start)

        var latents = try given ?? initialLatents(geometry, batch: batch, seed: request.seed)
        guard latents.shape == [batch, geometry.imageTokens, geometry.packedChannels] else {
            throw ModelError.inputShape(name: "latents", shape: latents.shape,
                                        expected: "(\(batch), \(geometry.imageTokens), \(geometry.packedChannels))")
        }
        let schedule = try scheduler.schedule(steps: request.steps, imageSeqLen: geometry.imageTokens)
        let guidance = transformer.config.guidanceEmbeds ? Array(repeating: request.guidanceScale, count: batch) : nil
        let pe = try transformer.positionEmbedding(
            txtIds: LatentGeometry.textIds(count: promptEmbeds.shape[1], axes: transformer.config.axesDimsRope.count),
            imgIds: geometry.imageIds.map { Array($0.prefix(transformer.config.axesDimsRope.count)) })
        let cache = request.cacheThreshold > 0 ? FirstBlockCache(threshold: request.cacheThreshold) : nil
        let denoiseStart = clock.now
        let timesteps = (0..<schedule.steps).map { Array(repeating: schedule.modelTimestep($0), count: batch) }
        // Every step's modulations in one product per layer, when they are few enough rows to hold.
        let conditioning = schedule.steps * batch <= FluxTransformer.scheduleConditioningRowLimit
            ? try transformer.conditioning(y: pooled, timesteps: timesteps,
                                           guidance: guidance.map { Array(repeating: $0, count: schedule.steps) })
            : nil
        for i in 0..<schedule.steps {
            let velocity = try transformer(img: latents, txt: promptEmbeds, y: pooled, timesteps: timesteps[i],
                                           guidance: guidance, pe: pe, cache: cache, conditioning: conditioning,
                                           step: i)
            latents = try schedule.step(i, sample: latents, velocity: velocity, on: backend)
            try progress?(StepProgress(step: i + 1, total: schedule.steps, elapsed: seconds(since: denoiseStart),
                                       skipped: cache?.skippedSteps.last == i, latents: latents))
        }
        let denoiseTime = seconds(since: denoiseStart)

        let decodeStart = clock.now
        let decoded = try vae.decode(try vae.unscaleLatents(try geometry.unpack(latents, on: backend)))
        let images = try backend.download(try backend.scaleShift(decoded, scale: 0.5, shift: 0.5))
        let clamped = HostTensor(images.floats().map { min(max($0, 0), 1) }, shape: images.shape)
        return GenerationResult(images: clamped, skippedSteps: cache?.skippedSteps ?? [],
                                timings: ["encode": encodeTime, "denoise": denoiseTime,
                                          "decode": seconds(since: decodeStart)])
    }

    /// Refuses requests the pipeline cannot run, before any work.
    public func validate(_ r: GenerationRequest) throws {
        func bad(_ reason: String) -> ModelError { .invalidConfig(source: "request", reason: reason) }
        guard !r.prompts.isEmpty else { throw bad("no prompt") }
        // The value rules every front end shares (GenerationRules), then what this pipeline adds: at most 64 images
        // and 1000 steps a call, 4096 pixels a side, T5's 512 positions, and the VAE's geometry.
        try GenerationRules(sides: 16...4096).check(r)
        guard r.batch <= 64 else { throw bad("1…64 images per call, asked for \(r.batch)") }
        guard r.steps <= 1000 else { throw bad("steps must be 1…1000, got \(r.steps)") }
        guard (1...512).contains(r.maxSequenceLength) else {
            throw bad("max sequence length must be 1…512, got \(r.maxSequenceLength)")
        }
        _ = try geometry(width: r.width, height: r.height)
    }
}

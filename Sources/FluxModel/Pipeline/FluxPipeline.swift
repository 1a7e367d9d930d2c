import FluxCore
import FluxTokenizers
import Foundation

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
    /// What the model does with an input image (`mode(for:)`).
    public let variant: ModelVariant
    /// The LoRAs in effect: merged into the weights, or run beside them (`setLoRAs`).
    public private(set) var loras: LoRAStack
    /// What LoRAs may adapt in this pipeline.
    public let loraTargets: LoRATargets
    /// Per component, the layers' LoRA slots when LoRAs run beside the weights; empty when they are merged.
    private let slots: [LoRAComponent: LowRankSlots]

    /// How LoRAs reach the weights.
    public enum LoRAApplication: Sendable {
        /// Added into the weights once, as they load: no cost per step or memory; a change needs a reload.
        case merge
        /// Changed per request (`setLoRAs`) without touching the loaded weights, as `mode` says.
        case runtime(LowRankSlots.Mode)
    }

    /// Replaces the LoRAs (a pipeline built with `lora: .runtime`), between generations on the thread that runs
    /// them. Every key is matched first: a refused stack leaves the current one in place; a failure while applying
    /// (out of memory) leaves no LoRA at all, and says so by rethrowing.
    public func setLoRAs(_ stack: LoRAStack) throws {
        guard !slots.isEmpty else {
            throw ModelError.inapplicableOption(option: "LoRA change", reason:
                "this pipeline merged its LoRAs into the weights; build it with lora: .runtime")
        }
        let deltas = try stack.deltas(for: loraTargets)
        do {
            for (component, componentSlots) in slots {
                try componentSlots.apply(deltas[component] ?? [:], on: backend)
            }
        } catch {
            for componentSlots in slots.values { try? componentSlots.apply([:], on: backend) }
            loras = LoRAStack()
            throw error
        }
        loras = stack
    }

    /// Loads every component onto `backend`; `quantization` applies to the transformer's blocks. `loras` are merged
    /// into the weights they adapt as those load (every key matched first, or nothing loads); with `lora: .runtime`
    /// they run beside the weights instead, and `setLoRAs` changes them between generations.
    public init(_ components: PipelineComponents, backend: any Backend, quantization: LinearQuantization = .none,
                loras: LoRAStack = LoRAStack(), lora application: LoRAApplication = .merge) throws
    {
        self.components = components
        self.backend = backend
        self.loras = loras
        clipTokenizer = try CLIPTokenizer(directory: components.tokenizer)
        t5Tokenizer = try T5Tokenizer(directory: components.tokenizer2)
        let clipCheckpoint = try CLIPCheckpoint.open(components.textEncoder)
        let t5Checkpoint = try T5Checkpoint.open(components.textEncoder2)
        loraTargets = try LoRATargets(transformer: components.transformer.config, clip: clipCheckpoint.config,
                                      t5: t5Checkpoint.config)
        let deltas = try loras.deltas(for: loraTargets)
        var merged: [LoRAComponent: LowRankDeltas] = [:]
        switch application {
        case .merge:
            (merged, slots) = (deltas, [:])
        case let .runtime(mode):
            slots = Dictionary(uniqueKeysWithValues: LoRAComponent.allCases.map { ($0, LowRankSlots(mode)) })
        }
        clip = try clipCheckpoint.load(on: backend, lowRank: merged[.clip] ?? [:], slots: slots[.clip])
        t5 = try t5Checkpoint.load(on: backend, lowRank: merged[.t5] ?? [:], slots: slots[.t5])
        transformer = try components.transformer.load(on: backend, quantization: quantization,
                                                      lowRank: merged[.transformer] ?? [:],
                                                      slots: slots[.transformer])
        for (component, componentSlots) in slots { try componentSlots.apply(deltas[component] ?? [:], on: backend) }
        vae = try components.vae.load(on: backend, parts: .all)
        scheduler = components.scheduler
        variant = components.variant
        guard transformer.config.pooledProjectionDim == clip.config.hiddenSize else {
            throw ModelError.invalidConfig(source: components.path, reason:
                "transformer pooled_projection_dim \(transformer.config.pooledProjectionDim) ≠ CLIP hidden size \(clip.config.hiddenSize)")
        }
        guard transformer.config.jointAttentionDim == t5.config.dModel else {
            throw ModelError.invalidConfig(source: components.path, reason:
                "transformer joint_attention_dim \(transformer.config.jointAttentionDim) ≠ T5 d_model \(t5.config.dModel)")
        }
        // Packed latents carry 4C channels; Fill's input adds the masked image's 4C and the f×f pixel mask per 2×2
        // patch (4f²): 64 + 64 + 256 = 384 for FLUX.1 Fill.
        let packed = 4 * vae.config.latentChannels, f = vae.config.downsamplingFactor
        let input = variant == .fill ? 2 * packed + 4 * f * f : packed
        guard transformer.config.inChannels == input, transformer.config.outputChannels == packed else {
            let expected = variant == .fill ? "2 × 4 × latent channels + 4 × \(f)² = \(input)" : "4 × latent channels = \(input)"
            throw ModelError.invalidConfig(source: components.path, reason:
                "a \(variant.pipelineClass) transformer needs in_channels \(expected) and out_channels \(packed) for "
                + "this VAE (\(vae.config.latentChannels) latent channels), got \(transformer.config.inChannels) and "
                + "\(transformer.config.outputChannels)")
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

    /// Runs the whole pipeline: text-to-image, or an edit of `request.image` (`mode(for:)`). `latents`
    /// (B, tokens, 4·latent channels), the packed Gaussian noise, replaces the seeded noise when given. An error thrown
    /// by `progress` stops the run after that step and is rethrown (how a caller cancels).
    public func generate(_ request: GenerationRequest, latents given: Tensor? = nil,
                         progress: ((StepProgress) throws -> Void)? = nil) throws -> GenerationResult {
        let mode = try validate(request)
        let geometry = try self.geometry(width: request.width, height: request.height)
        let batch = request.batch
        let clock = ContinuousClock(), start = clock.now
        func seconds(since t: ContinuousClock.Instant) -> Double {
            let d = clock.now - t
            return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        let positive = try encodePrompts(request.prompts, imagesPerPrompt: request.imagesPerPrompt,
                                         maxSequenceLength: request.maxSequenceLength)
        let negative = request.usesTrueCFG
            ? try encodePrompts(negativePrompts(request), imagesPerPrompt: request.imagesPerPrompt,
                                maxSequenceLength: request.maxSequenceLength) : nil

        let noise = try given ?? initialLatents(geometry, batch: batch, seed: request.seed)
        guard noise.shape == [batch, geometry.imageTokens, geometry.packedChannels] else {
            throw ModelError.inputShape(name: "latents", shape: noise.shape,
                                        expected: "(\(batch), \(geometry.imageTokens), \(geometry.packedChannels))")
        }
        let full = try scheduler.schedule(steps: request.steps, imageSeqLen: geometry.imageTokens)
        let schedule = mode.usesStrength ? try full.trimmed(strength: request.strength ?? mode.defaultStrength) : full
        let edit = try EditConditioning(mode: mode, request: request, geometry: geometry, schedule: schedule,
                                        pipeline: self)
        var latents = try edit.start(noise: noise, schedule: schedule, on: backend)
        let encodeTime = seconds(since: start)

        let guidance = transformer.config.guidanceEmbeds ? Array(repeating: request.guidanceScale, count: batch) : nil
        let imageIds = geometry.imageIds + (edit.reference?.ids ?? [])
        let pe = try transformer.positionEmbedding(
            txtIds: LatentGeometry.textIds(count: positive.promptEmbeds.shape[1],
                                           axes: transformer.config.axesDimsRope.count),
            imgIds: imageIds.map { Array($0.prefix(transformer.config.axesDimsRope.count)) })
        let timesteps = (0..<schedule.steps).map { Array(repeating: schedule.modelTimestep($0), count: batch) }
        // One prediction per prompt set, each with its own First Block Cache (diffusers' "cond" and "uncond" cache
        // contexts) and every step's modulations in one product per layer when they are few enough rows to hold.
        let branches = try [positive, negative].compactMap { $0 }.map { embeds in
            (embeds: embeds, cache: request.cacheThreshold > 0 ? FirstBlockCache(threshold: request.cacheThreshold) : nil,
             conditioning: schedule.steps * batch <= FluxTransformer.scheduleConditioningRowLimit
                ? try transformer.conditioning(y: embeds.pooled, timesteps: timesteps,
                                               guidance: guidance.map { Array(repeating: $0, count: schedule.steps) })
                : nil)
        }
        let denoiseStart = clock.now
        for i in 0..<schedule.steps {
            let input = try edit.modelInput(latents, on: backend)
            let predictions = try branches.map { branch in
                try edit.generated(try transformer(img: input, txt: branch.embeds.promptEmbeds, y: branch.embeds.pooled,
                                                   timesteps: timesteps[i], guidance: guidance, pe: pe,
                                                   cache: branch.cache, conditioning: branch.conditioning, step: i),
                                   tokens: geometry.imageTokens, on: backend)
            }
            var velocity = predictions[0]
            if predictions.count == 2 {
                // negative + scale · (positive − negative)
                let difference = try backend.addScaled(predictions[0], predictions[1], scale: -1)
                velocity = try backend.addScaled(predictions[1], difference, scale: request.trueCFGScale)
            }
            latents = try schedule.step(i, sample: latents, velocity: velocity, on: backend)
            latents = try edit.afterStep(i, latents: latents, noise: noise, schedule: schedule, on: backend)
            let cache = branches[0].cache
            try progress?(StepProgress(step: i + 1, total: schedule.steps, elapsed: seconds(since: denoiseStart),
                                       skipped: cache?.skippedSteps.last == i, latents: latents))
        }
        let denoiseTime = seconds(since: denoiseStart)

        let decodeStart = clock.now
        let decoded = try vae.decode(try vae.unscaleLatents(try geometry.unpack(latents, on: backend)))
        let images = try backend.download(try backend.scaleShift(decoded, scale: 0.5, shift: 0.5))
        let clamped = HostTensor(images.floats().map { min(max($0, 0), 1) }, shape: images.shape)
        return GenerationResult(images: clamped, skippedSteps: branches[0].cache?.skippedSteps ?? [],
                                timings: ["encode": encodeTime, "denoise": denoiseTime,
                                          "decode": seconds(since: decodeStart)])
    }

    /// The pipeline a request runs on this model (`GenerationMode.of`).
    public func mode(for r: GenerationRequest) throws -> GenerationMode {
        try GenerationMode.of(variant: variant, image: r.image != nil, mask: r.mask != nil)
    }

    /// Refuses requests the pipeline cannot run, before any work; returns the pipeline the request runs.
    @discardableResult
    public func validate(_ r: GenerationRequest) throws -> GenerationMode {
        func bad(_ reason: String) -> ModelError { .invalidConfig(source: "request", reason: reason) }
        guard !r.prompts.isEmpty else { throw bad("no prompt") }
        // The value rules every front end shares (GenerationRules), then what this pipeline adds: at most 64 images
        // and 1000 steps a call, 4096 pixels a side on whole latent patches of this VAE, T5's 512 positions.
        try GenerationRules(sides: 16...4096, sideMultiple: 2 * vae.config.downsamplingFactor).check(r)
        guard r.batch <= 64 else { throw bad("1…64 images per call, asked for \(r.batch)") }
        guard r.steps <= 1000 else { throw bad("steps must be 1…1000, got \(r.steps)") }
        guard (1...512).contains(r.maxSequenceLength) else {
            throw bad("max sequence length must be 1…512, got \(r.maxSequenceLength)")
        }
        guard [0, 1, r.prompts.count].contains(r.negativePrompts.count) else {
            throw bad("give one negative prompt, or one per prompt (\(r.prompts.count)), not \(r.negativePrompts.count)")
        }
        _ = try geometry(width: r.width, height: r.height)
        let mode = try mode(for: r)
        if let image = r.image { try checkImage(image, mode: mode, request: r) }
        if let mask = r.mask, let image = r.image {
            guard mask.shape.count == 4, mask.shape[0] == image.shape[0], mask.shape[1] == 1,
                  Array(mask.shape[2...]) == Array(image.shape[2...]) else {
                throw ModelError.inputShape(name: "mask_image", shape: mask.shape, expected:
                    "(\(image.shape[0]), 1, \(image.shape[2]), \(image.shape[3])): one plane per image, at its size")
            }
        }
        return mode
    }

    /// An input image: (N, 3, H, W) with N = 1 or the batch; at the output size except for Kontext, whose reference
    /// may have any size on whole latent patches.
    private func checkImage(_ image: HostTensor, mode: GenerationMode, request r: GenerationRequest) throws {
        let shape = image.shape
        guard shape.count == 4, shape[0] == 1 || shape[0] == r.batch, shape[1] == vae.config.inChannels else {
            throw ModelError.inputShape(name: "image", shape: shape, expected:
                "(1 or \(r.batch), \(vae.config.inChannels), H, W): one image for all, or one per image made")
        }
        if mode == .kontext {
            _ = try geometry(width: shape[3], height: shape[2])
        } else if shape[2] != r.height || shape[3] != r.width {
            throw ModelError.inputShape(name: "image", shape: shape, expected:
                "\(r.width)×\(r.height) pixels, the output size (resize the image first)")
        }
    }

    /// The negative prompt of each prompt (one given for all is repeated).
    private func negativePrompts(_ r: GenerationRequest) -> [String] {
        r.negativePrompts.count == 1 ? Array(repeating: r.negativePrompts[0], count: r.prompts.count) : r.negativePrompts
    }

    /// An image's packed latents for the loop (diffusers `_encode_vae_image` with the posterior mean, then
    /// `_pack_latents`): `pixels` (N, 3, H, W) already in −1…1 → (batch, tokens, 4C), N = 1 repeated.
    func encodeImage(_ pixels: HostTensor, shape: [Int], geometry g: LatentGeometry, batch: Int) throws -> Tensor {
        let latents = try vae.scaleLatents(try vae.encode(try backend.upload(pixels)))
        guard latents.shape == [shape[0], g.latentChannels, g.latentHeight, g.latentWidth] else {
            throw ModelError.inputShape(name: "image latents", shape: latents.shape, expected:
                "(\(shape[0]), \(g.latentChannels), \(g.latentHeight), \(g.latentWidth))")
        }
        return try repeatBatch(try g.pack(latents, on: backend), to: batch)
    }

    /// `x` (1 or batch, …) as `batch` rows: one row is repeated (`torch.cat([x] * batch)`).
    func repeatBatch(_ x: Tensor, to batch: Int) throws -> Tensor {
        x.shape[0] == batch ? x : try backend.concat(Array(repeating: x, count: batch), axis: 0)
    }
}

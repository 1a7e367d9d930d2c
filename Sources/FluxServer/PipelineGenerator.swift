import FluxCore
import FluxModel
import Foundation

/// The real model: a `FluxPipeline` on a backend made on the worker thread.
public final class PipelineGenerator: ImageGenerator, @unchecked Sendable {
    public let modelName: String
    public let defaults: ModelDefaults
    public var variant: ModelVariant { components.variant }
    private let components: PipelineComponents
    public let maxSequenceLength: Int
    public let quantization: LinearQuantization
    public let modelHash: String
    /// Built with a LoRA slot beside every linear layer (`serve --lora-dir`), so `setLoRAs` switches adapters
    /// between batches without reloading a weight.
    /// How per-request LoRAs reach the model; nil: the service takes none (no `--lora-dir`).
    public let loraMode: LowRankSlots.Mode?
    private let makeBackend: @Sendable () throws -> any Backend
    private let memoryProbe: @Sendable (any Backend) -> (used: Int, total: Int)?
    /// Set by `load`; touched only on the worker thread.
    private var pipeline: FluxPipeline?
    /// The tokenizers alone (immutable, any thread), for `truncations`.
    private let tokenCounter: PromptTokenCounter

    /// `makeBackend` runs on the worker thread (a CUDA context is current on the thread that creates it).
    /// `defaults` replaces the checkpoint's (`PipelineDefaults`) for requests that name no size or steps, and sets
    /// the warm-up's size (a small one keeps a tiny test model's start in milliseconds).
    public init(modelName: String, components: PipelineComponents, quantization: LinearQuantization = .none,
                loraMode: LowRankSlots.Mode? = nil, defaults: ModelDefaults? = nil, makeBackend: @escaping @Sendable () throws -> any Backend,
                memoryProbe: @escaping @Sendable (any Backend) -> (used: Int, total: Int)? = { _ in nil }) throws {
        let settings = try PipelineDefaults.of(components)
        self.modelName = modelName
        self.components = components
        self.quantization = quantization
        self.loraMode = loraMode
        self.modelHash = try components.transformer.fingerprint()
        self.defaults = defaults ?? ModelDefaults(width: settings.width, height: settings.height,
                                                  steps: settings.steps, guidance: settings.guidance)
        self.maxSequenceLength = settings.maxSequenceLength
        self.tokenCounter = try PromptTokenCounter(components)
        self.makeBackend = makeBackend
        self.memoryProbe = memoryProbe
    }

    /// Loads every component, then runs one step at the default size so kernels are compiled and buffers sized
    /// before the first request.
    public func load() throws {
        let pipeline = try FluxPipeline(components, backend: try makeBackend(), quantization: quantization,
                                        lora: loraMode.map { .runtime($0) } ?? .merge)
        let warm = GenerationRequest(prompts: ["warm-up"], width: defaults.width, height: defaults.height, steps: 1,
                                     guidanceScale: defaults.guidance, seed: 0, maxSequenceLength: maxSequenceLength)
        _ = try pipeline.generate(warm)
        self.pipeline = pipeline
    }

    public func generate(_ batch: ImageBatch, onStep: (BatchStep) throws -> Void) throws -> BatchOutput {
        guard let pipeline else { throw GeneratorError.notLoaded }
        _ = try setLoRAs(batch.loras)  // the worker switched already; this only makes sure
        let request = GenerationRequest(
            prompts: batch.prompts, width: batch.width, height: batch.height, steps: batch.steps,
            guidanceScale: batch.guidance, seed: batch.seeds.first ?? 0, imagesPerPrompt: 1,
            cacheThreshold: batch.cacheThreshold, maxSequenceLength: maxSequenceLength,
            negativePrompts: batch.negativePrompt.map { [$0] } ?? [], trueCFGScale: batch.trueCFGScale,
            strength: batch.strength, image: batch.image, mask: batch.mask)
        let mode = try pipeline.validate(request)
        guard mode == batch.mode else {  // the service chose the mode at submission (`EditInput.mode`)
            throw ModelError.invalidConfig(source: "request", reason: "the batch is \(batch.mode.rawValue) but the "
                                           + "pipeline would run \(mode.rawValue)")
        }
        let geometry = try pipeline.geometry(width: batch.width, height: batch.height)
        let noise = try pipeline.initialLatents(geometry, seeds: batch.seeds)
        let backend = pipeline.backend
        // The pipeline's progress closure is optional, hence escaping; it is only called during `generate`.
        let result = try withoutActuallyEscaping(onStep) { onStep in
            try pipeline.generate(request, latents: noise) { progress in
                try onStep(BatchStep(step: progress.step, total: progress.total, elapsed: progress.elapsed) { index in
                    guard let latents = progress.latents else { return nil }
                    return try LatentPreview.rgb(try backend.download(latents), index: index, geometry: geometry)
                })
            }
        }
        return BatchOutput(images: (0..<batch.prompts.count).map { result.rgb($0) }, timings: result.timings)
    }

    public func loraTargets() throws -> LoRATargets? { try components.loraTargets() }

    /// Uploads the adapters of `stack` into the pipeline's LoRA slots when they differ from those in effect (names,
    /// SHA-256, scales, order); no weight of the model is touched.
    public func setLoRAs(_ stack: LoRAStack) throws -> Bool {
        guard let pipeline else { throw GeneratorError.notLoaded }
        guard !stack.isSameSet(as: pipeline.loras) else { return false }
        guard loraMode != nil else { throw GeneratorError.lorasUnsupported(modelName) }
        try pipeline.setLoRAs(stack)
        return true
    }

    public func truncations(of prompt: String) -> [PromptTruncation] {
        tokenCounter.truncations(of: prompt, maxSequenceLength: maxSequenceLength)
    }

    public func memoryInUse() -> (used: Int, total: Int)? {
        guard let pipeline else { return nil }
        return memoryProbe(pipeline.backend)
    }
}

public enum GeneratorError: Error, CustomStringConvertible {
    case notLoaded
    case lorasUnsupported(String)

    public var description: String {
        switch self {
        case .notLoaded: "the model is not loaded"
        case .lorasUnsupported(let model): "model \(model) was not loaded for LoRAs (serve --lora-dir builds it so)"
        }
    }
}

/// A preview from packed latents without running the VAE: three groups of latent channels mapped to R, G and B,
/// each stretched to 0…255 over the image. It shows composition emerging, not the final colours.
enum LatentPreview {
    /// `latents`: (B, tokens, 4·C) packed as `LatentGeometry.pack` does. Returns (h, w) RGB at latent resolution.
    static func rgb(_ latents: HostTensor, index: Int, geometry: LatentGeometry) throws
        -> (rgb: [UInt8], width: Int, height: Int)?
    {
        let (h, w, c) = (geometry.latentHeight, geometry.latentWidth, geometry.latentChannels)
        let tokens = geometry.imageTokens, packed = geometry.packedChannels
        guard latents.shape == [latents.shape.first ?? 0, tokens, packed], index < latents.shape[0], c >= 3 else {
            return nil
        }
        let values = latents.floats(), base = index * tokens * packed
        var planes = [[Float]](repeating: [Float](repeating: 0, count: h * w), count: 3)
        for y in 0..<h {
            for x in 0..<w {
                let token = (y / 2) * (w / 2) + x / 2
                for channel in 0..<c {
                    // Packed channel order within a token: c, then row and column inside the 2×2 patch.
                    let value = values[base + token * packed + channel * 4 + (y % 2) * 2 + x % 2]
                    planes[channel * 3 / c][y * w + x] += value
                }
            }
        }
        var rgb = [UInt8](repeating: 0, count: h * w * 3)
        for (p, plane) in planes.enumerated() {
            let low = plane.min() ?? 0, high = plane.max() ?? 1
            let scale = high > low ? 255 / (high - low) : 0
            for i in 0..<(h * w) { rgb[i * 3 + p] = UInt8(max(0, min(255, (plane[i] - low) * scale))) }
        }
        return (rgb, w, h)
    }
}

import FluxCore
import FluxModel
import Foundation

/// One run of the model: one image per prompt/seed pair, all at one size and schedule, one pipeline (`mode`) and
/// one true CFG setting (`JobParameters.BatchKey`).
public struct ImageBatch: Sendable {
    /// One entry per image.
    public var prompts: [String]
    /// One entry per image.
    public var seeds: [UInt64]
    public var width: Int
    public var height: Int
    public var steps: Int
    public var guidance: Float
    public var cacheThreshold: Float
    public var mode: GenerationMode = .textToImage
    /// nil = the pipeline's default for `mode`.
    public var strength: Double? = nil
    /// True CFG: nil and 1 = off.
    public var negativePrompt: String? = nil
    public var trueCFGScale: Float = 1
    /// Edits: the input image per image of the batch, (batch, 3, H, W) in 0…1, and where to repaint,
    /// (batch, 1, height, width) in 0…1 (`EditImages.Prepared`, one row per image); nil for text-to-image.
    public var image: HostTensor? = nil
    public var mask: HostTensor? = nil
    /// The LoRAs every image of the batch runs with (the catalog's cached files at the jobs' scales); empty = none.
    public var loras = LoRAStack()
}

/// Progress after one denoising step of a batch.
public struct BatchStep {
    public let step: Int
    public let total: Int
    /// Seconds since denoising began.
    public let elapsed: Double
    /// A small RGB preview of image `index` at this step (rough, from the latents), if the generator can make one.
    public let preview: (_ index: Int) throws -> (rgb: [UInt8], width: Int, height: Int)?
}

/// What a batch made: 8-bit RGB per image, rows top to bottom, and seconds per stage.
public struct BatchOutput: Sendable {
    public var images: [[UInt8]]
    public var timings: [String: Double]

    public init(images: [[UInt8]], timings: [String: Double]) {
        (self.images, self.timings) = (images, timings)
    }
}

/// The model behind the server. Every call comes from the one worker thread, in order: `load` once, then
/// `generate` for each batch, so an implementation needs no locking and may keep thread-bound state (a CUDA context).
public protocol ImageGenerator: AnyObject, Sendable {
    /// Shown in `/readyz` and PNG metadata.
    var modelName: String { get }
    var defaults: ModelDefaults { get }
    /// What the model does with an input image (base: img2img and inpainting; Fill; Kontext), for `/v1/images/edits`.
    var variant: ModelVariant { get }
    /// For PNG metadata: the transformer's fingerprint (`TransformerCheckpoint.fingerprint()`), the quantization, and
    /// the T5 length prompts are encoded with.
    var modelHash: String { get }
    var quantization: LinearQuantization { get }
    var maxSequenceLength: Int { get }
    /// Loads the weights and warms the kernels; `/readyz` answers 200 after it returns.
    func load() throws
    /// Runs `batch`; an error thrown by `onStep` stops the run after that step and is rethrown.
    func generate(_ batch: ImageBatch, onStep: (BatchStep) throws -> Void) throws -> BatchOutput
    /// GPU memory in use and in total, in bytes, where there is a GPU.
    func memoryInUse() -> (used: Int, total: Int)?
    /// The text encoders that will cut `prompt`, and where. Called from request handlers (any thread, before
    /// `load` too), so it must not touch the worker's state.
    func truncations(of prompt: String) -> [PromptTruncation]
    /// What LoRAs may adapt in this model (from configs, before `load`, any thread): the catalog checks each file
    /// of `--lora-dir` against it. nil: the generator cannot tell, and files are checked for form only.
    func loraTargets() throws -> LoRATargets?
    /// Makes `stack` the LoRAs the next `generate` runs with, on the worker thread before each batch; returns
    /// whether anything changed (false when `stack` is already in effect). A refused stack leaves the current one.
    func setLoRAs(_ stack: LoRAStack) throws -> Bool
}

extension ImageGenerator {
    public var variant: ModelVariant { .base }
    public var modelHash: String { "none" }
    public var quantization: LinearQuantization { .none }
    public var maxSequenceLength: Int { 512 }

    /// A generator without tokenizers cuts nothing it can tell.
    public func truncations(of prompt: String) -> [PromptTruncation] { [] }

    public func loraTargets() throws -> LoRATargets? { nil }

    /// A generator without LoRA support runs none, and says so rather than ignoring them.
    public func setLoRAs(_ stack: LoRAStack) throws -> Bool {
        guard stack.isEmpty else { throw GeneratorError.lorasUnsupported(modelName) }
        return false
    }
}

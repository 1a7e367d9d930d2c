import FluxCore

/// What to generate. Sizes in pixels; `guidanceScale` only matters for guidance-distilled models (dev).
///
/// With `image` the pipeline edits: img2img (diffusers `FluxImg2ImgPipeline`), inpainting with `mask`
/// (`FluxInpaintPipeline`), FLUX.1 Fill (`FluxFillPipeline`) or FLUX.1 Kontext (`FluxKontextPipeline`), chosen by the
/// inputs and the model (`FluxPipeline.mode(for:)`). A negative prompt with `trueCFGScale` > 1 adds true
/// classifier-free guidance to any of them.
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
    /// Negative prompts for true CFG: one for every prompt, or one per prompt. Empty = no true CFG.
    public var negativePrompts: [String]
    /// True CFG scale: each step predicts with the prompt and the negative prompt and takes
    /// `negative + scale · (positive − negative)`. 1 = off; above 1 needs `negativePrompts`.
    public var trueCFGScale: Float
    /// img2img, inpainting and Fill: the fraction of the schedule run, starting from the image noised to that level
    /// (1 = from pure noise). nil = the pipeline's default (0.6 for img2img and inpainting, 1 for Fill, as diffusers).
    /// A Double, as Python's float: the steps it keeps are counted as diffusers counts them.
    public var strength: Double?
    /// The input image (N, 3, H, W) in 0…1, N = 1 (shared by every image made) or `batch` (one per image).
    public var image: HostTensor?
    /// Where to repaint, (N, 1, H, W) in 0…1 at the image's size: values ≥ 0.5 repaint, the rest is kept.
    public var mask: HostTensor?

    public init(prompts: [String], width: Int, height: Int, steps: Int, guidanceScale: Float, seed: UInt64,
                imagesPerPrompt: Int = 1, cacheThreshold: Float = 0, maxSequenceLength: Int,
                negativePrompts: [String] = [], trueCFGScale: Float = 1, strength: Double? = nil,
                image: HostTensor? = nil, mask: HostTensor? = nil) {
        (self.prompts, self.width, self.height, self.steps, self.guidanceScale, self.seed) =
            (prompts, width, height, steps, guidanceScale, seed)
        (self.imagesPerPrompt, self.cacheThreshold, self.maxSequenceLength) =
            (imagesPerPrompt, cacheThreshold, maxSequenceLength)
        (self.negativePrompts, self.trueCFGScale, self.strength, self.image, self.mask) =
            (negativePrompts, trueCFGScale, strength, image, mask)
    }

    /// Images in the batch: prompts × images per prompt.
    public var batch: Int { prompts.count * imagesPerPrompt }

    /// Whether each step also predicts with the negative prompt.
    public var usesTrueCFG: Bool { trueCFGScale > 1 && !negativePrompts.isEmpty }
}

/// Which pipeline a request runs, from its inputs and the model (`FluxPipeline.mode(for:)`).
public enum GenerationMode: String, Sendable, CaseIterable {
    /// Prompt → image (`FluxPipeline`; also a Kontext model without an image).
    case textToImage = "text-to-image"
    /// Image + prompt → image, the image noised to `strength` (`FluxImg2ImgPipeline`).
    case imageToImage = "img2img"
    /// img2img that keeps the unmasked latents at every step (`FluxInpaintPipeline`).
    case inpainting
    /// FLUX.1 Fill: the masked image and the mask as extra input channels (`FluxFillPipeline`).
    case fill
    /// FLUX.1 Kontext: the image's latent tokens appended to the sequence (`FluxKontextPipeline`).
    case kontext

    /// The pipeline for these inputs on a model of `variant`: an image makes it img2img (Kontext on a Kontext model),
    /// an image and a mask inpainting (Fill on a Fill model). Judged before any weight is loaded.
    public static func of(variant: ModelVariant, image: Bool, mask: Bool) throws(EditModeError) -> GenerationMode {
        switch (variant, image, mask) {
        case (_, false, true): throw EditModeError(.maskWithoutImage, "a mask needs an image to apply to")
        case (.fill, true, true): return .fill
        case (.fill, _, false):
            throw EditModeError(.maskRequired, "this is a FLUX.1 Fill model: it repaints where a mask says, so it "
                                + "needs an image and a mask")
        case (.kontext, true, true):
            throw EditModeError(.maskNotSupported, "this is a FLUX.1 Kontext model: it edits by instruction and "
                                + "takes no mask; use a Fill or base model to inpaint")
        case (.kontext, true, false): return .kontext
        case (.base, true, true): return .inpainting
        case (.base, true, false): return .imageToImage
        case (_, false, false): return .textToImage
        }
    }

    /// diffusers' default `strength` for the pipelines that take one.
    public var defaultStrength: Double { self == .fill ? 1 : 0.6 }

    /// Whether `strength` trims the schedule.
    public var usesStrength: Bool { self == .imageToImage || self == .inpainting || self == .fill }
}

/// Inputs a model cannot use (`GenerationMode.of`): which rule, and why, in words a user can act on.
public struct EditModeError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable { case maskWithoutImage, maskRequired, maskNotSupported }
    public let kind: Kind
    public let reason: String

    public init(_ kind: Kind, _ reason: String) { (self.kind, self.reason) = (kind, reason) }

    public var description: String { reason }
}

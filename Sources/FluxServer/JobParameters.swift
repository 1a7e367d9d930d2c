import FluxImages
import FluxModel
import Foundation

/// The model's settings when a request leaves a field out.
public struct ModelDefaults: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var steps: Int
    public var guidance: Float

    public init(width: Int, height: Int, steps: Int, guidance: Float) {
        (self.width, self.height, self.steps, self.guidance) = (width, height, steps, guidance)
    }
}

extension ModelDefaults {
    /// The defaults moved inside the server's limits (a request that names nothing must be valid): steps capped,
    /// each side brought within the size bounds on a multiple of 16.
    func within(_ limits: GenerationLimits) -> ModelDefaults {
        func side(_ value: Int) -> Int {
            let low = (limits.minSide + 15) / 16 * 16, high = max(low, limits.maxSide / 16 * 16)
            return min(max(value, low), high)
        }
        return ModelDefaults(width: side(width), height: side(height), steps: min(max(steps, 1), limits.maxSteps),
                             guidance: min(max(guidance, 0), limits.maxGuidance))
    }
}

/// A job's settings once defaults are filled in and every field checked: what is stored and what the worker runs.
/// The seed is always concrete (drawn at submission when the client gave none), so a re-run after a crash makes
/// the same images.
public struct JobParameters: Codable, Sendable, Equatable {
    public var prompt: String
    public var n: Int
    public var width: Int
    public var height: Int
    public var steps: Int
    public var guidance: Float
    /// Image i uses seed + i.
    public var seed: UInt64
    public var cacheThreshold: Float
    // The fields below are kept in the job row's own columns (`JobStore`, migration v3), not in the `parameters`
    // JSON, which keeps the form it always had.
    /// True CFG (`GenerationRequest.negativePrompts`, `trueCFGScale`): nil and 1 = off.
    public var negativePrompt: String? = nil
    public var trueCFGScale: Float = 1
    /// Edits that take it (img2img, inpainting, Fill); nil = the pipeline's default.
    public var strength: Double? = nil
    /// Set for an edit job: its pipeline, mask rule, input digests and reference size.
    public var edit: EditInput? = nil
    /// The LoRAs from the server's catalog, in the order given (column `loras`, migration v4).
    public var loras: [LoRAChoice] = []

    enum CodingKeys: String, CodingKey {
        case prompt, n, width, height, steps, guidance, seed, cacheThreshold = "cache_threshold"
    }

    /// The pipeline the job runs.
    public var mode: GenerationMode { edit?.mode ?? .textToImage }

    /// Jobs with equal keys can share one batch: the pipeline runs one size, one schedule (steps, strength), one
    /// guidance value, one true CFG setting and one First Block Cache decision per batch, and one pipeline (so a
    /// text-to-image job never joins an edit). Edit inputs themselves are per image (`GenerationRequest.image` with N
    /// = batch), but the reference images of a batch are one tensor, so their size must match too. The pipeline
    /// holds one LoRA set at a time (`FluxPipeline.setLoRAs`), so the LoRAs must be equal too (names, scales, files
    /// and order).
    struct BatchKey: Hashable {
        let width: Int, height: Int, steps: Int, guidance: Float, cacheThreshold: Float
        let mode: GenerationMode, strength: Double?, negativePrompt: String?, trueCFGScale: Float
        let referenceWidth: Int?, referenceHeight: Int?
        let loras: [LoRAChoice]
    }

    var batchKey: BatchKey {
        BatchKey(width: width, height: height, steps: steps, guidance: guidance, cacheThreshold: cacheThreshold,
                 mode: mode, strength: strength, negativePrompt: negativePrompt, trueCFGScale: trueCFGScale,
                 referenceWidth: edit?.referenceWidth, referenceHeight: edit?.referenceHeight, loras: loras)
    }

    /// Checks the fields a request gave and fills in the rest. Values of the right type but outside the limits are
    /// 422 `invalid_value` naming the field: first the rules every generation obeys (`GenerationRules`, shared with
    /// the command line), then this service's own limits (prompt length, steps and images per request).
    /// `guidance` and `cacheThreshold` arrive as doubles, so that 1e300 is "out of range" rather than undecodable.
    /// With `edit`, the images are decoded and prepared once (`EditUpload.check`, on a model of `variant`, within
    /// `imageLimits`); an absent or "auto" `size` is then the image's. `loras` name entries of `catalog`
    /// (`LoRAChoice.resolve`; without a catalog, any LoRA is refused).
    static func resolve(prompt: String, n: Int?, size: String?, steps: Int?, guidance: Double?, seed: UInt64?,
                        cacheThreshold: Double?, negativePrompt: String? = nil, trueCFGScale: Double? = nil,
                        strength: Double? = nil, edit: EditUpload? = nil, variant: ModelVariant = .base,
                        loras: [LoRAChoice.Requested]? = nil, catalog: LoRACatalog? = nil,
                        imageLimits: ImageLimits = ImageLimits(), defaults: ModelDefaults,
                        limits: GenerationLimits) throws -> JobParameters
    {
        let defaults = defaults.within(limits)
        let rules = limits.rules
        let n = n ?? 1
        let asked = try parseSize(size)
        var (width, height) = asked ?? (defaults.width, defaults.height)
        let steps = steps ?? defaults.steps
        let guidance = guidance ?? Double(defaults.guidance)
        let threshold = cacheThreshold ?? 0
        // Seeds below 2^53 stay exact in JavaScript clients.
        let seed = seed ?? UInt64.random(in: 0..<(1 << 53))
        do throws(GenerationRuleError) {
            try rules.checkPrompt(prompt)
            try rules.checkImageCount(n)
            if edit == nil || asked != nil { try rules.checkSize(width: width, height: height) }
            try rules.checkSteps(steps)
            try rules.checkGuidance(guidance)
            try rules.checkCacheThreshold(threshold)
            try rules.checkSeed(seed, imageCount: n)
            if let strength { try rules.checkStrength(strength) }
            try rules.checkTrueCFG(scale: trueCFGScale ?? 1, negativePrompts: negativePrompt == nil ? 0 : 1)
        } catch {
            throw APIError.invalidValue(error)
        }
        guard prompt.count <= limits.maxPromptCharacters else {
            throw APIError.invalidValue("prompt", "prompt is \(prompt.count) characters; at most "
                                        + "\(limits.maxPromptCharacters)")
        }
        guard n <= limits.maxImages else {
            throw APIError.invalidValue("n", "n must be 1…\(limits.maxImages), got \(n)")
        }
        guard steps <= limits.maxSteps else {
            throw APIError.invalidValue("steps", "steps must be 1…\(limits.maxSteps), got \(steps)")
        }
        if let negativePrompt, negativePrompt.count > limits.maxPromptCharacters {
            throw APIError.invalidValue("negative_prompt", "negative_prompt is \(negativePrompt.count) characters; at "
                                        + "most \(limits.maxPromptCharacters)")
        }
        let chosen = try LoRAChoice.resolve(loras, catalog: catalog)
        var edited: EditInput?
        if let edit {
            let checked = try edit.check(variant: variant, size: asked, limits: imageLimits)
            (width, height, edited) = (checked.width, checked.height, checked.input)
            if asked == nil {  // the size the image gave must obey the same rules
                do throws(GenerationRuleError) { try rules.checkSize(width: width, height: height) } catch {
                    throw APIError.invalidValue("size", "the image's size \(width)x\(height) (size \"auto\"): "
                                                + "\(error.parameter.rawValue) \(error.reason)")
                }
            }
        }
        try EditInput.checkStrength(strength, mode: edited?.mode ?? .textToImage)
        return JobParameters(prompt: prompt, n: n, width: width, height: height, steps: steps,
                             guidance: Float(guidance), seed: seed, cacheThreshold: Float(threshold),
                             negativePrompt: negativePrompt, trueCFGScale: Float(trueCFGScale ?? 1), strength: strength,
                             edit: edited, loras: chosen)
    }

    /// "WxH" (OpenAI's form, e.g. "1024x1024"); nil for "auto"/absent (the model's default size, or an edit's image
    /// size). Only the form is checked here; multiples of 16 and the size limits are `GenerationRules`.
    static func parseSize(_ size: String?) throws -> (Int, Int)? {
        guard let size, size != "auto" else { return nil }
        let parts = size.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.count <= 6 && $0.allSatisfy(\.isASCIIDigit) }),
              let width = Int(parts[0]), let height = Int(parts[1])
        else {
            throw APIError.invalidValue("size", "size must be \"WIDTHxHEIGHT\" (e.g. \"1024x1024\") or \"auto\", got "
                                        + "\"\(size.prefix(40))\"")
        }
        return (width, height)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

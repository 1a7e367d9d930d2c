import Foundation

/// A generation setting that a rule refused: which one, and why. Each caller names the parameter its own way
/// (`--cache-threshold` on the command line, `cache_threshold` in JSON) and puts `reason` after it.
public struct GenerationRuleError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Parameter: String, Sendable, CaseIterable {
        case prompt, width, height, steps, guidance, seed, cacheThreshold, imageCount, strength, trueCFGScale
        case negativePrompt
    }

    public let parameter: Parameter
    /// What was wrong, without the parameter's name: "must be in 0…1, got 5".
    public let reason: String

    public init(_ parameter: Parameter, _ reason: String) {
        (self.parameter, self.reason) = (parameter, reason)
    }

    public var description: String { "\(parameter.rawValue) \(reason)" }
}

/// The value rules of one generation, the same whoever asks (`fluxserve generate`, the HTTP service): a prompt that
/// is not blank, a size on whole 2×2 latent patches within `sides`, at least one step and one image, a finite
/// guidance in `guidance`, a First Block Cache threshold in [0, 1], and seeds that fit in 64 bits for every image.
/// Limits that belong to one front end (the service's longest prompt, most steps or images per request) stay there.
///
/// Each check throws `GenerationRuleError` naming the parameter. `check(_:)` runs them all on a
/// `GenerationRequest`; the single checks are for callers that hold values before they build one (the service
/// checks a guidance given as a JSON double before it becomes a `Float`).
public struct GenerationRules: Sendable, Equatable {
    /// Width and height in pixels.
    public var sides: ClosedRange<Int>
    /// Sides are multiples of this: VAE downsampling (8) × the 2×2 patch.
    public var sideMultiple: Int
    public var guidance: ClosedRange<Double>

    /// First Block Cache threshold: a relative L1 change, 0 = never skip.
    public static let cacheThresholds: ClosedRange<Double> = 0...1
    /// Every UInt64; the command line's `-1` ("random") is that front end's spelling, resolved before these rules.
    public static let seeds: ClosedRange<UInt64> = 0...UInt64.max
    /// True classifier-free guidance scale; 1 turns it off.
    public static let trueCFGScales: ClosedRange<Double> = 1...100

    public init(sides: ClosedRange<Int> = 16...8192, sideMultiple: Int = 16, guidance: ClosedRange<Double> = 0...100) {
        (self.sides, self.sideMultiple, self.guidance) = (sides, sideMultiple, guidance)
    }

    /// Every rule, on a request as the pipeline will run it (each prompt, the size, steps, guidance, images per
    /// prompt, cache threshold, and the seeds seed…seed + images − 1).
    public func check(_ request: GenerationRequest) throws(GenerationRuleError) {
        for prompt in request.prompts { try checkPrompt(prompt) }
        try checkSize(width: request.width, height: request.height)
        try checkSteps(request.steps)
        try checkGuidance(Double(request.guidanceScale))
        try checkCacheThreshold(Double(request.cacheThreshold))
        try checkImageCount(request.imagesPerPrompt)
        try checkSeed(request.seed, imageCount: request.batch)
        if let strength = request.strength { try checkStrength(strength) }
        try checkTrueCFG(scale: Double(request.trueCFGScale), negativePrompts: request.negativePrompts.count)
    }

    /// img2img / inpainting / Fill strength: the fraction of the schedule run, in (0, 1].
    public func checkStrength(_ value: Double) throws(GenerationRuleError) {
        guard value.isFinite, value > 0, value <= 1 else {
            throw GenerationRuleError(.strength, "must be a number in (0, 1], got \(Self.format(value))")
        }
    }

    /// True CFG: a scale in 1…`trueCFGScales` upper bound (1 = off), and a negative prompt exactly when it is on.
    /// diffusers ignores either one without the other, with a warning; a request here is refused instead, so that
    /// nobody waits for an image that silently lacks what they asked for.
    public func checkTrueCFG(scale: Double, negativePrompts: Int) throws(GenerationRuleError) {
        let range = Self.trueCFGScales
        guard scale.isFinite, range.contains(scale) else {
            throw GenerationRuleError(.trueCFGScale, "must be a finite number in \(Self.format(range.lowerBound))…"
                                      + "\(Self.format(range.upperBound)) (1 = off), got \(Self.format(scale))")
        }
        if scale > 1 && negativePrompts == 0 {
            throw GenerationRuleError(.trueCFGScale, "\(Self.format(scale)) needs a negative prompt (an empty one "
                                      + "gives plain classifier-free guidance)")
        }
        if scale <= 1 && negativePrompts > 0 {
            throw GenerationRuleError(.negativePrompt, "has no effect unless the true CFG scale is above 1")
        }
    }

    public func checkPrompt(_ prompt: String) throws(GenerationRuleError) {
        guard !prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw GenerationRuleError(.prompt, "must not be empty or only white space")
        }
    }

    public func checkSize(width: Int, height: Int) throws(GenerationRuleError) {
        for (parameter, side) in [(GenerationRuleError.Parameter.width, width), (.height, height)] {
            guard side % sideMultiple == 0 else {
                throw GenerationRuleError(parameter, "must be a multiple of \(sideMultiple), got \(side)")
            }
            guard sides.contains(side) else {
                throw GenerationRuleError(parameter, "must be in \(sides.lowerBound)…\(sides.upperBound), got \(side)")
            }
        }
    }

    public func checkSteps(_ steps: Int) throws(GenerationRuleError) {
        guard steps >= 1 else { throw GenerationRuleError(.steps, "must be at least 1, got \(steps)") }
    }

    public func checkImageCount(_ count: Int) throws(GenerationRuleError) {
        guard count >= 1 else { throw GenerationRuleError(.imageCount, "must be at least 1, got \(count)") }
    }

    public func checkGuidance(_ value: Double) throws(GenerationRuleError) {
        guard value.isFinite, guidance.contains(value) else {
            throw GenerationRuleError(.guidance, "must be a finite number in \(Self.format(guidance.lowerBound))…"
                                      + "\(Self.format(guidance.upperBound)), got \(Self.format(value))")
        }
    }

    public func checkCacheThreshold(_ value: Double) throws(GenerationRuleError) {
        let range = Self.cacheThresholds
        guard value.isFinite, range.contains(value) else {
            throw GenerationRuleError(.cacheThreshold, "must be a finite number in \(Self.format(range.lowerBound))…"
                                      + "\(Self.format(range.upperBound)), got \(Self.format(value))")
        }
    }

    /// Image i of a request uses seed + i, so the last of `imageCount` seeds must still fit in 64 bits.
    public func checkSeed(_ seed: UInt64, imageCount: Int) throws(GenerationRuleError) {
        guard imageCount <= 1 || seed <= UInt64.max - UInt64(imageCount - 1) else {
            throw GenerationRuleError(.seed, "+ \(imageCount - 1) (one seed per image) must be at most "
                                      + "\(UInt64.max), got seed \(seed)")
        }
    }

    /// A seed written in decimal (a command-line argument): an integer in 0…2^64 − 1.
    public static func seed(parsing text: String) throws(GenerationRuleError) -> UInt64 {
        guard let seed = UInt64(text.trimmingCharacters(in: .whitespaces)) else {
            throw GenerationRuleError(.seed, seedRangeReason(got: "\"\(text.prefix(40))\""))
        }
        return seed
    }

    /// "must be an integer in 0…18446744073709551615, got …": the seed rule's words, for a front end that meets a
    /// value no UInt64 can hold (a negative or fractional JSON number).
    public static func seedRangeReason(got value: String) -> String {
        "must be an integer in \(seeds.lowerBound)…\(seeds.upperBound), got \(value)"
    }

    /// 3.5 as "3.5", 30 as "30", infinity as "inf".
    static func format(_ value: Double) -> String { String(format: "%g", value) }
}

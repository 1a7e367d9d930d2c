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

    enum CodingKeys: String, CodingKey {
        case prompt, n, width, height, steps, guidance, seed, cacheThreshold = "cache_threshold"
    }

    /// Jobs with equal keys can share one batch: the pipeline runs one size, one schedule, one guidance value and one
    /// First Block Cache decision per batch.
    struct BatchKey: Hashable {
        let width: Int, height: Int, steps: Int, guidance: Float, cacheThreshold: Float
    }

    var batchKey: BatchKey {
        BatchKey(width: width, height: height, steps: steps, guidance: guidance, cacheThreshold: cacheThreshold)
    }

    /// Checks the fields a request gave and fills in the rest. Values of the right type but outside the limits are
    /// 422 `invalid_value` naming the field: first the rules every generation obeys (`GenerationRules`, shared with
    /// the command line), then this service's own limits (prompt length, steps and images per request).
    /// `guidance` and `cacheThreshold` arrive as doubles, so that 1e300 is "out of range" rather than undecodable.
    static func resolve(prompt: String, n: Int?, size: String?, steps: Int?, guidance: Double?, seed: UInt64?,
                        cacheThreshold: Double?, defaults: ModelDefaults, limits: GenerationLimits) throws -> JobParameters
    {
        let defaults = defaults.within(limits)
        let rules = limits.rules
        let n = n ?? 1
        let (width, height) = try parseSize(size, defaults: defaults)
        let steps = steps ?? defaults.steps
        let guidance = guidance ?? Double(defaults.guidance)
        let threshold = cacheThreshold ?? 0
        // Seeds below 2^53 stay exact in JavaScript clients.
        let seed = seed ?? UInt64.random(in: 0..<(1 << 53))
        do throws(GenerationRuleError) {
            try rules.checkPrompt(prompt)
            try rules.checkImageCount(n)
            try rules.checkSize(width: width, height: height)
            try rules.checkSteps(steps)
            try rules.checkGuidance(guidance)
            try rules.checkCacheThreshold(threshold)
            try rules.checkSeed(seed, imageCount: n)
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
        return JobParameters(prompt: prompt, n: n, width: width, height: height, steps: steps,
                             guidance: Float(guidance), seed: seed, cacheThreshold: Float(threshold))
    }

    /// "WxH" (OpenAI's form, e.g. "1024x1024"), or "auto"/absent for the model's default size. Only the form is
    /// checked here; multiples of 16 and the size limits are `GenerationRules`.
    static func parseSize(_ size: String?, defaults: ModelDefaults) throws -> (Int, Int) {
        guard let size, size != "auto" else { return (defaults.width, defaults.height) }
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

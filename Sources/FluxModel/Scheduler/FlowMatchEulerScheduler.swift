import FluxCore
import Foundation

/// diffusers `FlowMatchEulerDiscreteScheduler` as `FluxPipeline` drives it, from the pipeline's
/// `scheduler/scheduler_config.json` (same field names).
///
/// σ starts as linspace(1, 1/N, N); FLUX.1-dev shifts it by the image size (`use_dynamic_shifting`: μ linear in the
/// image token count from (256 → 0.5) to (4096 → 1.15), σ' = e^μ / (e^μ + (1/σ − 1))); schnell uses a fixed shift of 1.
/// The arithmetic is f32, in the reference's order, so that the schedules agree to the last bit or so.
public struct SchedulerConfig: Codable, Equatable, Sendable {
    public var numTrainTimesteps = 1000
    public var shift: Double = 1.0
    public var useDynamicShifting = false
    public var baseShift: Double = 0.5
    public var maxShift: Double = 1.15
    public var baseImageSeqLen = 256
    public var maxImageSeqLen = 4096
    public var timeShiftType = "exponential"
    public var shiftTerminal: Double?
    public var useKarrasSigmas = false
    public var useExponentialSigmas = false
    public var useBetaSigmas = false
    public var invertSigmas = false
    public var stochasticSampling = false

    public init() {}

    /// FLUX.1-dev's scheduler_config.json.
    public static let dev: SchedulerConfig = {
        var c = SchedulerConfig()
        c.shift = 3.0
        c.useDynamicShifting = true
        return c
    }()

    /// FLUX.1-schnell's scheduler_config.json.
    public static let schnell = SchedulerConfig()

    enum CodingKeys: String, CodingKey {
        case numTrainTimesteps = "num_train_timesteps", shift, useDynamicShifting = "use_dynamic_shifting"
        case baseShift = "base_shift", maxShift = "max_shift", baseImageSeqLen = "base_image_seq_len"
        case maxImageSeqLen = "max_image_seq_len", timeShiftType = "time_shift_type", shiftTerminal = "shift_terminal"
        case useKarrasSigmas = "use_karras_sigmas", useExponentialSigmas = "use_exponential_sigmas"
        case useBetaSigmas = "use_beta_sigmas", invertSigmas = "invert_sigmas"
        case stochasticSampling = "stochastic_sampling"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SchedulerConfig()
        numTrainTimesteps = try c.decodeIfPresent(Int.self, forKey: .numTrainTimesteps) ?? d.numTrainTimesteps
        shift = try c.decodeIfPresent(Double.self, forKey: .shift) ?? d.shift
        useDynamicShifting = try c.decodeIfPresent(Bool.self, forKey: .useDynamicShifting) ?? d.useDynamicShifting
        baseShift = try c.decodeIfPresent(Double.self, forKey: .baseShift) ?? d.baseShift
        maxShift = try c.decodeIfPresent(Double.self, forKey: .maxShift) ?? d.maxShift
        baseImageSeqLen = try c.decodeIfPresent(Int.self, forKey: .baseImageSeqLen) ?? d.baseImageSeqLen
        maxImageSeqLen = try c.decodeIfPresent(Int.self, forKey: .maxImageSeqLen) ?? d.maxImageSeqLen
        timeShiftType = try c.decodeIfPresent(String.self, forKey: .timeShiftType) ?? d.timeShiftType
        shiftTerminal = try c.decodeIfPresent(Double.self, forKey: .shiftTerminal)
        useKarrasSigmas = try c.decodeIfPresent(Bool.self, forKey: .useKarrasSigmas) ?? false
        useExponentialSigmas = try c.decodeIfPresent(Bool.self, forKey: .useExponentialSigmas) ?? false
        useBetaSigmas = try c.decodeIfPresent(Bool.self, forKey: .useBetaSigmas) ?? false
        invertSigmas = try c.decodeIfPresent(Bool.self, forKey: .invertSigmas) ?? false
        stochasticSampling = try c.decodeIfPresent(Bool.self, forKey: .stochasticSampling) ?? false
    }

    /// Reads `scheduler_config.json`, refusing options this scheduler does not implement.
    public static func load(contentsOf path: String) throws -> SchedulerConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.missingFile(path: path, expected: "scheduler_config.json")
        }
        let config: SchedulerConfig
        do { config = try JSONDecoder().decode(SchedulerConfig.self, from: data) } catch {
            throw ModelError.invalidConfig(source: path, reason: "not a FlowMatchEulerDiscreteScheduler config: \(error)")
        }
        try config.validate(source: path)
        return config
    }

    public func validate(source: String) throws {
        func unsupported(_ what: String) -> ModelError {
            ModelError.invalidConfig(source: source, reason: "\(what) is not supported")
        }
        if useKarrasSigmas || useExponentialSigmas || useBetaSigmas { throw unsupported("karras/exponential/beta sigmas") }
        if invertSigmas { throw unsupported("invert_sigmas") }
        if stochasticSampling { throw unsupported("stochastic_sampling") }
        guard ["exponential", "linear"].contains(timeShiftType) else { throw unsupported("time_shift_type \(timeShiftType)") }
        guard numTrainTimesteps > 0, shift > 0, maxImageSeqLen != baseImageSeqLen else {
            throw ModelError.invalidConfig(source: source, reason: "num_train_timesteps, shift or sequence lengths out of range")
        }
    }
}

/// The noise levels of one generation: σ₀ … σ_N (σ_N = 0) and the timesteps σ·1000 the pipeline iterates over.
public struct FlowMatchSchedule: Sendable, Equatable {
    /// N + 1 values, descending, ending in 0.
    public let sigmas: [Float]
    /// N values, `sigmas[i] · num_train_timesteps`.
    public let timesteps: [Float]
    /// μ of the dynamic shift (FluxPipeline computes it whatever the config says).
    public let mu: Double
    let numTrainTimesteps: Float

    public var steps: Int { timesteps.count }

    /// The `timestep` the transformer receives at step `i`: `t / 1000` in f32, as FluxPipeline divides.
    public func modelTimestep(_ i: Int) -> Float { timesteps[i] / 1000 }

    /// The Euler update `x + (σᵢ₊₁ − σᵢ) · v`.
    public func step(_ i: Int, sample: Tensor, velocity: Tensor, on backend: any Backend) throws -> Tensor {
        try backend.addScaled(sample, velocity, scale: sigmas[i + 1] - sigmas[i])
    }

    /// The forward process at σᵢ (diffusers `scale_noise`): `σᵢ · noise + (1 − σᵢ) · sample`, in that order, in f32.
    public func scaleNoise(_ sample: Tensor, noise: Tensor, at i: Int, on backend: any Backend) throws -> Tensor {
        let sigma = sigmas[i]
        return try backend.add(try backend.scaleShift(noise, scale: sigma, shift: 0),
                               try backend.scaleShift(sample, scale: 1 - sigma, shift: 0))
    }

    /// The tail an image-to-image pipeline runs (diffusers `get_timesteps`): `strength` of the N steps, rounded as
    /// `t_start = int(max(N − N·strength, 0))` in f64, so that step 0 of the result is step `t_start` of this one.
    /// (`strength` is a Double as Python's float: 5 × Float(0.6) would start a step earlier than 5 × 0.6.)
    public func trimmed(strength: Double) throws -> FlowMatchSchedule {
        guard strength.isFinite, strength > 0, strength <= 1 else {
            throw ModelError.invalidConfig(source: "request", reason: "strength must be in (0, 1], got \(strength)")
        }
        let n = Double(steps), start = Int(max(n - min(n * strength, n), 0))
        guard start < steps else {
            throw ModelError.invalidConfig(source: "request", reason:
                "strength \(strength) leaves no step of \(steps); raise the strength or the steps")
        }
        return FlowMatchSchedule(sigmas: Array(sigmas[start...]), timesteps: Array(timesteps[start...]), mu: mu,
                                 numTrainTimesteps: numTrainTimesteps)
    }
}

extension SchedulerConfig {
    /// μ for an image of `imageSeqLen` packed tokens (FluxPipeline's `calculate_shift`).
    public func mu(imageSeqLen: Int) -> Double {
        let m = (maxShift - baseShift) / Double(maxImageSeqLen - baseImageSeqLen)
        return Double(imageSeqLen) * m + (baseShift - m * Double(baseImageSeqLen))
    }

    /// The schedule FluxPipeline sets for `steps` steps on an image of `imageSeqLen` tokens.
    public func schedule(steps: Int, imageSeqLen: Int) throws -> FlowMatchSchedule {
        guard steps >= 1 && steps <= 10_000 else {
            throw ModelError.invalidConfig(source: "scheduler", reason: "steps must be 1…10000, got \(steps)")
        }
        if shiftTerminal != nil && steps == 1 {
            throw ModelError.invalidConfig(source: "scheduler", reason: "shift_terminal needs at least 2 steps")
        }
        let mu = mu(imageSeqLen: imageSeqLen)
        // np.linspace(1, 1/N, N) in f64, then f32.
        var sigmas: [Float] = (0..<steps).map { i in
            steps == 1 ? 1 : Float(1 + Double(i) * (1 / Double(steps) - 1) / Double(steps - 1))
        }
        if useDynamicShifting {
            let scale = Float(timeShiftType == "exponential" ? exp(mu) : mu)
            sigmas = sigmas.map { scale / (scale + (1 / $0 - 1)) }
        } else {
            let s = Float(shift)
            sigmas = sigmas.map { s * $0 / (1 + (s - 1) * $0) }
        }
        if let shiftTerminal, let last = sigmas.last {
            let scaleFactor = (1 - last) / Float(1 - shiftTerminal)
            sigmas = sigmas.map { 1 - (1 - $0) / scaleFactor }
        }
        let train = Float(numTrainTimesteps)
        return FlowMatchSchedule(sigmas: sigmas + [0], timesteps: sigmas.map { $0 * train }, mu: mu,
                                 numTrainTimesteps: train)
    }
}

import FluxModel
import Foundation
import HTTPTypes

/// A job as the jobs API shows it.
struct JobView: Encodable {
    struct Parameters: Encodable {
        let prompt: String
        let n: Int
        let size: String
        let steps: Int
        let guidance: Float
        let seed: UInt64
        let cacheThreshold: Float
        /// The pipeline: text-to-image, img2img, inpainting, fill or kontext.
        let mode: String
        let strength: Double?
        let negativePrompt: String?
        let trueCFGScale: Float
        /// Edits: SHA-256 of the uploaded image and mask.
        let imageSHA256: String?
        let maskSHA256: String?
        /// `[{name, scale, sha256}]`, empty without LoRAs.
        let loras: [LoRAChoice]

        enum CodingKeys: String, CodingKey {
            case prompt, n, size, steps, guidance, seed, cacheThreshold = "cache_threshold", mode, strength
            case negativePrompt = "negative_prompt", trueCFGScale = "true_cfg_scale"
            case imageSHA256 = "image_sha256", maskSHA256 = "mask_sha256", loras
        }
    }

    struct Progress: Encodable {
        let step: Int
        let total: Int
    }

    struct Image: Encodable {
        let url: String
        let seed: UInt64
    }

    struct Result: Encodable {
        let data: [Image]
    }

    struct Failure: Encodable {
        let code: String
        let message: String
    }

    struct Timings: Encodable {
        let queueSeconds: Double?
        let runSeconds: Double?
        let encodeSeconds: Double?
        let denoiseSeconds: Double?
        let decodeSeconds: Double?

        enum CodingKeys: String, CodingKey {
            case queueSeconds = "queue_seconds", runSeconds = "run_seconds", encodeSeconds = "encode_seconds"
            case denoiseSeconds = "denoise_seconds", decodeSeconds = "decode_seconds"
        }
    }

    let id: String
    let object = "job"
    let status: JobStatus
    let created: Int
    let parameters: Parameters
    let progress: Progress
    /// Jobs ahead of this one while it waits.
    let queuePosition: Int?
    let attempts: Int
    let result: Result?
    let timings: Timings
    let error: Failure?
    /// The text encoders that cut the prompt (empty when both read all of it): `[{encoder, tokens, limit}]`.
    let promptTruncated: [PromptTruncation]

    enum CodingKeys: String, CodingKey {
        case id, object, status, created, parameters, progress, queuePosition = "queue_position", attempts, result
        case timings, error, promptTruncated = "prompt_truncated"
    }

    init(_ job: JobRecord, runtime: ServerRuntime, baseURL: String, queuePosition: Int? = nil) {
        let p = job.parameters
        id = job.id
        promptTruncated = runtime.generator.truncations(of: p.prompt)
        status = job.status
        created = Int(job.createdAt.timeIntervalSince1970)
        parameters = Parameters(prompt: p.prompt, n: p.n, size: "\(p.width)x\(p.height)", steps: p.steps,
                                guidance: p.guidance, seed: p.seed, cacheThreshold: p.cacheThreshold,
                                mode: p.mode.rawValue, strength: p.strength, negativePrompt: p.negativePrompt,
                                trueCFGScale: p.trueCFGScale, imageSHA256: p.edit?.imageSHA256,
                                maskSHA256: p.edit?.maskSHA256, loras: p.loras)
        let step: Int
        switch job.status {
        case .succeeded: step = p.steps
        case .queued: step = 0
        default: step = runtime.events.progress(job.id)?.step ?? 0
        }
        progress = Progress(step: step, total: p.steps)
        self.queuePosition = job.status == .queued ? queuePosition : nil
        attempts = job.attempts
        result = job.status == .succeeded
            ? Result(data: job.images.map { Image(url: "\(baseURL)/v1/files/\($0.file).png", seed: $0.seed) }) : nil
        let queued = job.startedAt.map { $0.timeIntervalSince(job.createdAt) }
        let ran = job.startedAt.flatMap { start in job.finishedAt.map { $0.timeIntervalSince(start) } }
        timings = Timings(queueSeconds: queued, runSeconds: ran, encodeSeconds: job.timings["encode"],
                          denoiseSeconds: job.timings["denoise"], decodeSeconds: job.timings["decode"])
        error = job.status == .failed || job.status == .cancelled
            ? Failure(code: job.errorCode ?? job.status.rawValue, message: job.errorMessage ?? job.status.rawValue) : nil
    }
}

extension HTTPField.Name {
    /// On a submission whose prompt a text encoder will cut: `clip 93>77; t5 600>512` (encoder, the prompt's tokens,
    /// what the encoder reads). The job's `prompt_truncated` says the same.
    static let promptTruncated = HTTPField.Name("X-Prompt-Truncated")!
}

extension HTTPFields {
    /// Adds `X-Prompt-Truncated` when `prompt` is cut.
    mutating func notePromptTruncation(_ prompt: String, generator: any ImageGenerator) {
        let cuts = generator.truncations(of: prompt)
        if !cuts.isEmpty { self[.promptTruncated] = PromptTruncation.summary(cuts) }
    }
}

import Foundation
import HTTPTypes
import Hummingbird

/// The body of `POST /v1/images/generations`: OpenAI's fields (those we cannot honour are accepted with the only
/// value that fits, or ignored where they don't change the image: `model`, `quality`, `style`, `user`, …) plus ours.
struct ImageGenerationRequest: StrictDecodable, Codable {
    let prompt: String
    let model: String?
    let n: Int?
    let size: String?
    let responseFormat: String?
    let outputFormat: String?
    let quality: String?
    let style: String?
    let user: String?
    let background: String?
    let moderation: String?
    let outputCompression: Int?
    // Ours.
    let seed: UInt64?
    let steps: Int?
    let guidance: Double?
    let cacheThreshold: Double?
    let negativePrompt: String?
    let trueCFGScale: Double?
    let loras: [LoRAChoice.Requested]?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case prompt, model, n, size, responseFormat = "response_format", outputFormat = "output_format", quality
        case style, user, background, moderation, outputCompression = "output_compression", seed, steps, guidance
        case cacheThreshold = "cache_threshold", negativePrompt = "negative_prompt", trueCFGScale = "true_cfg_scale"
        case loras
    }

    static let fields: [String: JSONField] = [
        "prompt": .string, "model": .string, "n": .integer, "size": .string, "response_format": .string,
        "output_format": .string, "quality": .string, "style": .string, "user": .string, "background": .string,
        "moderation": .string, "output_compression": .integer, "seed": .seed, "steps": .integer,
        "guidance": .number, "cache_threshold": .number, "negative_prompt": .string, "true_cfg_scale": .number,
        "loras": .loras,
    ]

    func parameters(_ runtime: ServerRuntime) throws -> JobParameters {
        try ResponseFormat.checkOutputFormat(outputFormat)
        return try JobParameters.resolve(prompt: prompt, n: n, size: size, steps: steps, guidance: guidance,
                                         seed: seed, cacheThreshold: cacheThreshold, negativePrompt: negativePrompt,
                                         trueCFGScale: trueCFGScale, loras: loras, catalog: runtime.loras,
                                         defaults: runtime.generator.defaults, limits: runtime.config.limits)
    }
}

/// OpenAI's `response_format`, shared by generations and edits.
enum ResponseFormat: String {
    case b64JSON = "b64_json", url

    init(_ value: String?) throws {
        guard let value else { self = .url; return }
        guard let format = ResponseFormat(rawValue: value) else {
            throw APIError.invalidValue("response_format", "response_format must be \"b64_json\" or \"url\"")
        }
        self = format
    }

    /// OpenAI's `output_format`: accepted when it is what we make.
    static func checkOutputFormat(_ value: String?) throws {
        if let value, value != "png" { throw APIError.invalidValue("output_format", "only \"png\" is produced") }
    }
}

/// OpenAI's answer: `{"created": …, "data": [{"b64_json": …} | {"url": …}]}`.
struct ImagesResponse: Encodable {
    struct Image: Encodable {
        let b64JSON: String?
        let url: String?

        enum CodingKeys: String, CodingKey {
            case b64JSON = "b64_json", url
        }
    }

    let created: Int
    let data: [Image]
}

/// `POST /v1/images/generations` (OpenAI Images API): the request waits for its images. It goes through the same
/// queue as jobs (so it batches with them and counts against the queue bound).
struct ImagesAPI {
    let runtime: ServerRuntime

    static let jobIDHeader = HTTPField.Name("X-Job-Id")!

    func register(authenticated: RouterGroup<FluxRequestContext>, routes: RouteTable) {
        let runtime = self.runtime
        routes.add(authenticated, .post, "/v1/images/generations", isPublic: false) { request, context in
            let body = try await JSONBody.read(request, limit: runtime.config.maxBodyBytes)
            let submitted = try JSONBody.decode(ImageGenerationRequest.self, from: body)
            let format = try ResponseFormat(submitted.responseFormat)
            let parameters = try submitted.parameters(runtime)
            return try await respond(parameters, format: format, fingerprint: try JobStore.json(submitted),
                                     request: request, context: context)
        }
    }

    /// Runs `parameters` (with an edit's `upload`) as a synchronous job and answers with its images in `format`.
    func respond(_ parameters: JobParameters, upload: EditUpload? = nil, format: ResponseFormat, fingerprint: String,
                 request: Request, context: FluxRequestContext) async throws -> Response {
        let owner = try context.requireIdentity()
        let job = try await generate(parameters, upload: upload, owner: owner,
                                     idempotencyKey: try JobsAPI.idempotencyKey(request), fingerprint: fingerprint)
        let base = baseURL(request, config: runtime.config)
        var images: [ImagesResponse.Image] = []
        for image in job.images {
            switch format {
            case .url:
                images.append(.init(b64JSON: nil, url: "\(base)/v1/files/\(image.file).png"))
            case .b64JSON:
                guard let data = FileManager.default.contents(atPath: runtime.store.fileURL(image.file).path) else {
                    throw APIError(.internalServerError, "result_missing", "a result file is missing")
                }
                images.append(.init(b64JSON: data.base64EncodedString(), url: nil))
            }
        }
        var headers: HTTPFields = [Self.jobIDHeader: job.id]
        headers.notePromptTruncation(job.parameters.prompt, generator: runtime.generator)
        return try jsonResponse(ImagesResponse(created: Int(Date().timeIntervalSince1970), data: images),
                                headers: headers)
    }

    /// Queues a synchronous job and waits for it: the finished job, or an error (503 at shutdown, 504 past
    /// `syncTimeout`, 500 if generation failed).
    private func generate(_ parameters: JobParameters, upload: EditUpload?, owner: APIKeyIdentity,
                          idempotencyKey: String?, fingerprint: String) async throws -> JobRecord
    {
        let id = JobRecord.newID()
        // Listen before the job exists, so its end cannot be missed.
        var events = runtime.events.subscribe(id, untilFinished: true)
        var job: JobRecord
        let submission: ServerRuntime.Submission
        do {
            submission = try await runtime.submit(parameters, kind: .sync, owner: owner,
                                                  idempotencyKey: idempotencyKey, fingerprint: fingerprint,
                                                  upload: upload, id: id)
        } catch {
            runtime.events.discard(id)
            throw error
        }
        switch submission {
        case .accepted(let accepted):
            job = accepted
        case .existing(let existing):
            runtime.events.discard(id)
            events = runtime.events.subscribe(existing.id, untilFinished: true)
            job = try await runtime.store.job(existing.id) ?? existing
        }
        if !job.status.isTerminal {
            let runtime = self.runtime, jobID = job.id, timeout = runtime.config.syncTimeout
            let finished: JobRecord?
            do {
                finished = try await wait(for: jobID, events: events, timeout: timeout)
            } catch let error as APIError where error.code == "timeout" {
                _ = try? await runtime.cancel(jobID)
                throw error
            }
            guard let finished else { throw APIError.shuttingDown }
            job = finished
        }
        switch job.status {
        case .succeeded:
            return job
        case .cancelled:
            throw APIError(.conflict, "cancelled", "the request's job \(job.id) was cancelled")
        case .failed where job.errorCode == "shutting_down" || job.errorCode == "interrupted":
            throw APIError.shuttingDown
        case .failed:
            throw APIError(.internalServerError, job.errorCode ?? "generation_failed",
                           "generation failed: \(job.errorMessage ?? "unknown error")")
        case .queued, .running:
            throw APIError.shuttingDown
        }
    }

    /// The job once finished; nil if the server began shutting down first. Throws 504 after `timeout` seconds.
    private func wait(for jobID: String, events: AsyncStream<JobEvent>, timeout: Double) async throws -> JobRecord? {
        let store = runtime.store
        return try await withThrowingTaskGroup(of: JobRecord?.self) { group in
            group.addTask {
                for await event in events {
                    if case .finished(let done) = event { return done }
                    if case .shutdown = event { return nil }
                }
                return try await store.job(jobID)
            }
            group.addTask {
                try await Task.sleep(for: .seconds(timeout))
                throw APIError(.gatewayTimeout, "timeout", "no result within \(Int(timeout)) s; the job was cancelled")
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }
}

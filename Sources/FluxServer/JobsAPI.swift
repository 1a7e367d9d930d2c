import FluxImages
import Foundation
import HTTPTypes
import Hummingbird

/// The body of `POST /v1/jobs`: JSON, or multipart/form-data with the same fields as text parts and `image` /
/// `mask` as file parts. In JSON, `image` and `mask` are base64 (optionally a `data:` URL). `mask_rule` says how
/// the mask marks the region to repaint: "white" (the default, as the command line) or "transparent" (OpenAI's).
struct JobRequest: StrictDecodable, Codable {
    let prompt: String
    let n: Int?
    let size: String?
    let steps: Int?
    let guidance: Double?
    let seed: UInt64?
    let cacheThreshold: Double?
    let image: String?
    let mask: String?
    let maskRule: String?
    let strength: Double?
    let negativePrompt: String?
    let trueCFGScale: Double?
    /// In multipart, one text part holding the JSON array.
    let loras: [LoRAChoice.Requested]?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case prompt, n, size, steps, guidance, seed, cacheThreshold = "cache_threshold", image, mask
        case maskRule = "mask_rule", strength, negativePrompt = "negative_prompt", trueCFGScale = "true_cfg_scale"
        case loras
    }

    static let fields: [String: JSONField] = [
        "prompt": .string, "n": .integer, "size": .string, "steps": .integer, "guidance": .number, "seed": .seed,
        "cache_threshold": .number, "image": .string, "mask": .string, "mask_rule": .string, "strength": .number,
        "negative_prompt": .string, "true_cfg_scale": .number, "loras": .loras,
    ]

    /// The upload: the JSON's base64 `image`/`mask`, or `form`'s file parts; nil without an image.
    func upload(form: MultipartForm?) throws -> EditUpload? {
        let rule = try maskRuleValue()
        if let form {
            let hasImage = !form.files(named: ["image", "image[]"]).isEmpty
            if !hasImage, form.files(named: ["mask"]).isEmpty == false {
                throw APIError(.badRequest, "missing_field", "a mask needs an image to apply to", param: "image")
            }
            return hasImage ? try EditFiles.upload(form, maskRule: rule) : nil
        }
        guard let image else {
            if mask != nil {
                throw APIError(.badRequest, "missing_field", "a mask needs an image to apply to", param: "image")
            }
            return nil
        }
        return EditUpload(image: try Self.base64(image, field: "image"), mask: try mask.map { try Self.base64($0, field: "mask") },
                          maskRule: rule)
    }

    func maskRuleValue() throws -> DecodedImage.MaskRule {
        guard let maskRule else { return .whiteRepaints }
        guard let rule = EditInput.maskRule(named: maskRule) else {
            throw APIError.invalidValue("mask_rule", "mask_rule must be \"white\" or \"transparent\"")
        }
        return rule
    }

    /// Base64 (standard alphabet, padding optional), or a `data:…;base64,` URL.
    static func base64(_ text: String, field: String) throws -> [UInt8] {
        var payload = Substring(text)
        if payload.hasPrefix("data:") {
            guard let comma = payload.firstIndex(of: ","), payload[..<comma].hasSuffix(";base64") else {
                throw APIError(.badRequest, "invalid_image", "\(field): a data: URL must be base64 (data:…;base64,…)",
                               param: field)
            }
            payload = payload[payload.index(after: comma)...]
        }
        var padded = String(payload)
        if padded.count % 4 != 0 { padded += String(repeating: "=", count: 4 - padded.count % 4) }
        guard let data = Data(base64Encoded: padded) else {
            throw APIError(.badRequest, "invalid_image", "\(field) is not valid base64", param: field)
        }
        return Array(data)
    }

    func parameters(_ runtime: ServerRuntime, upload: EditUpload?) throws -> JobParameters {
        try JobParameters.resolve(prompt: prompt, n: n, size: size, steps: steps, guidance: guidance, seed: seed,
                                  cacheThreshold: cacheThreshold, negativePrompt: negativePrompt,
                                  trueCFGScale: trueCFGScale, strength: strength, edit: upload,
                                  variant: runtime.generator.variant, loras: loras, catalog: runtime.loras,
                                  imageLimits: runtime.config.imageLimits,
                                  defaults: runtime.generator.defaults, limits: runtime.config.limits)
    }

    /// What tells a retry from a different request: the fields, with the files as digests (not megabytes of base64).
    func fingerprint(_ upload: EditUpload?) throws -> String {
        guard let upload else { return try JobStore.json(self) }
        let fields = JobRequest(prompt: prompt, n: n, size: size, steps: steps, guidance: guidance, seed: seed,
                                cacheThreshold: cacheThreshold, image: nil, mask: nil, maskRule: maskRule,
                                strength: strength, negativePrompt: negativePrompt, trueCFGScale: trueCFGScale,
                                loras: loras)
        return try EditFiles.fingerprint(fields, upload)
    }

    /// The body of `request`, JSON or multipart. JSON bodies are held to `maxBodyBytes` unless they carry an
    /// `image` (then `maxUploadBytes`, as multipart ones).
    static func read(_ request: Request, config: ServerConfig) async throws -> (JobRequest, EditUpload?) {
        let upload = max(config.maxUploadBytes, config.maxBodyBytes)
        if MultipartForm.isMultipart(request) {
            let form = try await MultipartForm.read(request, limit: upload)
            let fields = try form.jsonObject(fields: Self.fields, fileFields: EditFiles.names)
            let submitted = try JSONBody.decode(JobRequest.self, from: fields)
            guard submitted.image == nil, submitted.mask == nil else {
                throw APIError(.badRequest, "invalid_multipart", "in multipart/form-data, image and mask are file parts",
                               param: submitted.image != nil ? "image" : "mask")
            }
            return (submitted, try submitted.upload(form: form))
        }
        let body = try await JSONBody.read(request, limit: upload)
        if body.count > config.maxBodyBytes && !JSONBody.hasTopLevelField("image", in: body) {
            throw JSONBody.tooLarge(config.maxBodyBytes)
        }
        let submitted = try JSONBody.decode(JobRequest.self, from: body)
        return (submitted, try submitted.upload(form: nil))
    }
}

/// `GET /v1/jobs` query: `limit` (1…100, default 20) and `after` (a job id: the page starts below it).
struct JobListQuery {
    static let defaultLimit = 20, maxLimit = 100
    let limit: Int
    let after: String?

    init(_ query: Parameters) throws {
        if let text = query.get("limit") {
            guard let value = Int(text) else {
                throw APIError(.badRequest, "invalid_type", "limit must be an integer, got \"\(text.prefix(20))\"",
                               param: "limit")
            }
            guard (1...Self.maxLimit).contains(value) else {
                throw APIError.invalidValue("limit", "limit must be 1…\(Self.maxLimit), got \(value)")
            }
            limit = value
        } else {
            limit = Self.defaultLimit
        }
        if let after = query.get("after") {
            guard after.count <= 64, JobRecord.isValidFileID(Substring(after)) else {
                throw APIError.invalidValue("after", "after must be a job id")
            }
            self.after = after
        } else {
            after = nil
        }
    }
}

/// A page of `GET /v1/jobs`, in OpenAI's list form: newest first; `first_id`/`last_id` null when empty.
struct JobList: Encodable {
    let data: [JobView]
    let hasMore: Bool

    enum CodingKeys: String, CodingKey {
        case object, data, hasMore = "has_more", firstID = "first_id", lastID = "last_id"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode("list", forKey: .object)
        try container.encode(data, forKey: .data)
        try container.encode(hasMore, forKey: .hasMore)
        try container.encode(data.first?.id, forKey: .firstID)
        try container.encode(data.last?.id, forKey: .lastID)
    }
}

/// Asynchronous jobs: `GET /v1/jobs` (the caller's jobs, newest first, paginated), `POST /v1/jobs` (202, queued), `GET /v1/jobs/{id}`, `DELETE /v1/jobs/{id}` (cancel),
/// `GET /v1/jobs/{id}/events` (server-sent events).
struct JobsAPI {
    let runtime: ServerRuntime

    static let idempotencyHeader = HTTPField.Name("Idempotency-Key")!

    func register(authenticated: RouterGroup<FluxRequestContext>, routes: RouteTable) {
        let runtime = self.runtime
        routes.add(authenticated, .post, "/v1/jobs", isPublic: false) { request, context in
            let (submitted, upload) = try await JobRequest.read(request, config: runtime.config)
            let parameters = try submitted.parameters(runtime, upload: upload)
            let key = try Self.idempotencyKey(request)
            let owner = try context.requireIdentity()
            switch try await runtime.submit(parameters, kind: .async, owner: owner, idempotencyKey: key,
                                            fingerprint: try submitted.fingerprint(upload), upload: upload) {
            case .accepted(let job):
                let view = JobView(job, runtime: runtime, baseURL: baseURL(request, config: runtime.config),
                                   queuePosition: await runtime.queue.position(of: job.id))
                var headers: HTTPFields = [.location: "/v1/jobs/\(job.id)"]
                headers.notePromptTruncation(parameters.prompt, generator: runtime.generator)
                return try jsonResponse(view, status: .accepted, headers: headers)
            case .existing(let job):
                return try jsonResponse(try await view(job, request), status: .ok,
                                        headers: [.location: "/v1/jobs/\(job.id)"])
            }
        }
        routes.add(authenticated, .get, "/v1/jobs", isPublic: false) { request, context in
            let page = try JobListQuery(request.uri.queryParameters)
            // With keys, a key sees the jobs it created; without, every job (the identity has no digest).
            let owner = try context.requireIdentity().keyDigest
            guard let found = try await runtime.store.jobs(ownerKeyDigest: owner, after: page.after, limit: page.limit)
            else {
                throw APIError.invalidValue("after", "after names no job of this caller (expired or never existed)")
            }
            var views: [JobView] = []
            for job in found.jobs { views.append(try await view(job, request)) }
            return try jsonResponse(JobList(data: views, hasMore: found.hasMore))
        }
        routes.add(authenticated, .get, "/v1/jobs/{id}", isPublic: false) { request, context in
            try jsonResponse(try await view(try await job(context), request))
        }
        routes.add(authenticated, .delete, "/v1/jobs/{id}", isPublic: false) { request, context in
            let id = try await job(context).id
            return try jsonResponse(try await view(try await runtime.cancel(id), request))
        }
        routes.add(authenticated, .get, "/v1/jobs/{id}/events", isPublic: false) { request, context in
            try await JobEventStream(runtime: runtime).response(for: try await job(context), request: request)
        }
    }

    /// The job named in the path, or 404. Jobs are visible to every key (ids are unguessable).
    private func job(_ context: FluxRequestContext) async throws -> JobRecord {
        guard let id = context.parameters.get("id"), id.count <= 64, let job = try await runtime.store.job(id) else {
            throw APIError.notFound("job")
        }
        return job
    }

    private func view(_ job: JobRecord, _ request: Request) async throws -> JobView {
        JobView(job, runtime: runtime, baseURL: baseURL(request, config: runtime.config),
                queuePosition: job.status == .queued ? await runtime.queue.position(of: job.id) : nil)
    }

    /// `Idempotency-Key`: 1…255 visible ASCII characters.
    static func idempotencyKey(_ request: Request) throws -> String? {
        guard let key = request.headers[idempotencyHeader] else { return nil }
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
            throw APIError(.badRequest, "invalid_idempotency_key",
                           "Idempotency-Key must be 1…255 visible ASCII characters", param: "Idempotency-Key")
        }
        return key
    }
}

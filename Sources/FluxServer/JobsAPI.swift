import Foundation
import HTTPTypes
import Hummingbird

/// The body of `POST /v1/jobs`.
struct JobRequest: StrictDecodable, Codable {
    let prompt: String
    let n: Int?
    let size: String?
    let steps: Int?
    let guidance: Double?
    let seed: UInt64?
    let cacheThreshold: Double?

    enum CodingKeys: String, CodingKey {
        case prompt, n, size, steps, guidance, seed, cacheThreshold = "cache_threshold"
    }

    static let fields: Set<String> = ["prompt", "n", "size", "steps", "guidance", "seed", "cache_threshold"]

    func parameters(_ runtime: ServerRuntime) throws -> JobParameters {
        try JobParameters.resolve(prompt: prompt, n: n, size: size, steps: steps, guidance: guidance, seed: seed,
                                  cacheThreshold: cacheThreshold, defaults: runtime.generator.defaults,
                                  limits: runtime.config.limits)
    }
}

/// Asynchronous jobs: `POST /v1/jobs` (202, queued), `GET /v1/jobs/{id}`, `DELETE /v1/jobs/{id}` (cancel),
/// `GET /v1/jobs/{id}/events` (server-sent events).
struct JobsAPI {
    let runtime: ServerRuntime

    static let idempotencyHeader = HTTPField.Name("Idempotency-Key")!

    func register(authenticated: RouterGroup<FluxRequestContext>, routes: RouteTable) {
        let runtime = self.runtime
        routes.add(authenticated, .post, "/v1/jobs", isPublic: false) { request, context in
            let body = try await JSONBody.read(request, limit: runtime.config.maxBodyBytes)
            let submitted = try JSONBody.decode(JobRequest.self, from: body)
            let parameters = try submitted.parameters(runtime)
            let key = try Self.idempotencyKey(request)
            let owner = try context.requireIdentity().name
            switch try await runtime.submit(parameters, kind: .async, owner: owner, idempotencyKey: key,
                                            fingerprint: try JobStore.json(submitted)) {
            case .accepted(let job):
                let view = JobView(job, runtime: runtime, baseURL: baseURL(request, config: runtime.config),
                                   queuePosition: await runtime.queue.position(of: job.id))
                return try jsonResponse(view, status: .accepted, headers: [.location: "/v1/jobs/\(job.id)"])
            case .existing(let job):
                return try jsonResponse(try await view(job, request), status: .ok,
                                        headers: [.location: "/v1/jobs/\(job.id)"])
            }
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

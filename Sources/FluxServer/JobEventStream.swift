import Foundation
import HTTPTypes
import Hummingbird

/// `GET /v1/jobs/{id}/events`: server-sent events for one job. First `status` (the job now), then `queued`
/// (position), `running`, `step` (each denoising step), `preview` (with `?previews=true`: a small PNG per step),
/// and last `succeeded`, `failed` or `cancelled` with the job, after which the stream ends. `shutdown` ends it when
/// the server stops (the job is kept; reconnect to the next replica). A comment every `keepAliveInterval` seconds
/// keeps proxies from closing an idle stream.
struct JobEventStream {
    let runtime: ServerRuntime

    private enum Item: Sendable {
        case event(JobEvent)
        case keepAlive
    }

    struct Position: Encodable {
        let position: Int
    }

    struct Running: Encodable {
        let attempt: Int
    }

    struct Step: Encodable {
        let step: Int
        let total: Int
        let elapsedSeconds: Double

        enum CodingKeys: String, CodingKey {
            case step, total, elapsedSeconds = "elapsed_seconds"
        }
    }

    struct Preview: Encodable {
        let step: Int
        let index: Int
        let b64Png: String

        enum CodingKeys: String, CodingKey {
            case step, index, b64Png = "b64_png"
        }
    }

    struct Notice: Encodable {
        let message: String
    }

    func response(for job: JobRecord, request: Request) async throws -> Response {
        let runtime = self.runtime
        let previews = ["1", "true"].contains(request.uri.queryParameters.get("previews") ?? "")
        // Subscribe before reading the job again, so that nothing between the two is missed.
        let events = runtime.events.subscribe(job.id, previews: previews)
        let current = try await runtime.store.job(job.id) ?? job
        let base = baseURL(request, config: runtime.config)
        let position = current.status == .queued ? await runtime.queue.position(of: current.id) : nil
        let keepAlive = runtime.config.keepAliveInterval
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache",
                                   HTTPField.Name("X-Accel-Buffering")!: "no"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var sequence = 0
            func send(_ name: String, _ payload: some Encodable) async throws {
                sequence += 1
                let data = String(decoding: try responseEncoder.encode(payload), as: UTF8.self)
                try await writer.write(ByteBuffer(string: "id: \(sequence)\nevent: \(name)\ndata: \(data)\n\n"))
            }
            func view(_ job: JobRecord) -> JobView { JobView(job, runtime: runtime, baseURL: base) }

            try await writer.write(ByteBuffer(string: "retry: 3000\n\n"))
            try await send("status", JobView(current, runtime: runtime, baseURL: base, queuePosition: position))
            if current.status.isTerminal {
                runtime.events.discard(current.id)  // nothing more will be published for it
                try await send(current.status.rawValue, view(current))
                try await writer.finish(nil)
                return
            }
            // Events and keep-alive ticks merged into one sequence, consumed by this task alone.
            let (items, continuation) = AsyncStream.makeStream(of: Item.self, bufferingPolicy: .bufferingNewest(512))
            let forward = Task {
                for await event in events { continuation.yield(.event(event)) }
                continuation.finish()
            }
            let ticker = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(keepAlive))
                    continuation.yield(.keepAlive)
                }
            }
            defer {
                forward.cancel()
                ticker.cancel()
            }
            loop: for await item in items {
                switch item {
                case .keepAlive:
                    try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                case .event(.queued(let position)):
                    try await send("queued", Position(position: position))
                case .event(.running(let attempt)):
                    try await send("running", Running(attempt: attempt))
                case .event(.step(let step, let total, let elapsed)):
                    try await send("step", Step(step: step, total: total, elapsedSeconds: elapsed))
                case .event(.preview(let step, let index, let png)):
                    try await send("preview", Preview(step: step, index: index, b64Png: Data(png).base64EncodedString()))
                case .event(.finished(let job)):
                    try await send(job.status.rawValue, view(job))
                    break loop
                case .event(.shutdown):
                    try await send("shutdown", Notice(message: "the server is shutting down; the job is kept"))
                    break loop
                }
            }
            try await writer.finish(nil)
        })
    }
}

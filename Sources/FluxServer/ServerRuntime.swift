import Foundation
import HTTPTypes
import Logging

/// The parts of a running server that the request handlers, the worker and the services share, and the operations
/// on jobs that more than one API uses (submit, cancel, drain).
public final class ServerRuntime: Sendable {
    public let config: ServerConfig
    public let store: JobStore
    public let metrics: ServerMetrics
    let queue: JobQueue
    let events = JobEvents()
    let generator: any ImageGenerator
    /// The LoRAs of `config.loraDirectory`, read at start-up; nil without one.
    let loras: LoRACatalog?
    let logger: Logger
    let status = Locked(Status())
    /// When this process built the runtime: `/v1/models` reports it as the model's `created`.
    let startedAt = Date()
    /// Control of the running batch, by job id.
    let running = Locked<[String: BatchControl]>([:])
    private let lock: DataDirectoryLock

    struct Status {
        var phase: Phase = .loading
        var drainStarted: Date?
        /// Recent seconds per image (exponential average), for `Retry-After`.
        var secondsPerImage: Double?
        /// The worker takes no more batches: its loop ended (queue closed) or it never got to run one.
        var workerIdle = false
    }

    enum Phase: String {
        case loading, ready, failed, draining
    }

    /// Reads the LoRA directory, opens (and locks) the store, re-queues what a previous process left, and fills the
    /// queue from it.
    public init(config: ServerConfig, generator: any ImageGenerator, logger: Logger) async throws {
        self.config = config
        self.generator = generator
        self.logger = logger
        loras = try config.loraDirectory.map { directory in
            try LoRACatalog(directory: directory, targets: try generator.loraTargets(), logger: logger)
        }
        metrics = ServerMetrics()
        lock = try DataDirectoryLock(directory: config.dataDirectory)
        store = try JobStore(directory: config.dataDirectory)
        store.removeTemporaryFiles()
        queue = JobQueue(capacity: config.maxQueue, maxBatch: config.maxBatch)
        let recovery = try await store.recover(maxAttempts: config.maxAttempts, at: Date())
        for id in recovery.failed { store.removeInputs(of: id) }  // failed for good: their uploads go
        for job in recovery.queued { await queue.enqueue(QueuedJob(job), reserved: false) }
        metrics.queueDepth.set(Double(recovery.queued.count))
        logger.info("job store opened", metadata: [
            "path": "\(store.databasePath)", "queued": "\(recovery.queued.count)",
            "requeued": "\(recovery.requeued.count)", "failed_on_recovery": "\(recovery.failed.count)",
        ])
    }

    var phase: Phase { status.current.phase }

    // MARK: Submitting

    enum Submission {
        case accepted(JobRecord)
        /// The idempotency key named an earlier job.
        case existing(JobRecord)
    }

    /// Stores a new job and queues it, or returns the job an idempotency key already names. 429 when the queue is
    /// full, 503 while draining, 422 when an idempotency key is reused for a different request.
    /// An edit's `upload` is written under `inputs/<id>/` before the row that names it, and removed again when no
    /// job is created.
    func submit(_ parameters: JobParameters, kind: JobKind, owner: APIKeyIdentity, idempotencyKey: String?,
                fingerprint: String, upload: EditUpload? = nil, id: String = JobRecord.newID()) async throws
        -> Submission
    {
        func check(_ existing: JobRecord) throws -> Submission {
            guard existing.requestFingerprint == fingerprint else {
                throw APIError(.unprocessableContent, "idempotency_key_reused",
                               "Idempotency-Key was used for a different request", param: "Idempotency-Key")
            }
            return .existing(existing)
        }
        if let key = idempotencyKey, let existing = try await store.job(owner: owner.name, idempotencyKey: key) {
            return try check(existing)
        }
        guard phase != .draining else { throw APIError.shuttingDown }
        guard await queue.reserve() else {
            let seconds = String(retryAfterSeconds(depth: await queue.depth))
            throw APIError(.tooManyRequests, "queue_full", "the queue is full (\(config.maxQueue) jobs); retry later",
                           headers: [.retryAfter: seconds])
        }
        var parameters = parameters
        if let upload, parameters.edit != nil {
            do {
                let files = try store.writeInputs(of: id, image: upload.image, mask: upload.mask)
                parameters.edit?.imageFile = files.image
                parameters.edit?.maskFile = files.mask
            } catch {
                store.removeInputs(of: id)
                await queue.release()
                throw error
            }
        }
        let record = JobRecord(id: id, kind: kind, status: .queued, parameters: parameters, owner: owner.name,
                               ownerKeyDigest: owner.keyDigest, idempotencyKey: idempotencyKey, requestFingerprint: fingerprint, createdAt: Date(),
                               attempts: 0, images: [], timings: [:])
        let outcome: JobStore.InsertOutcome
        do {
            outcome = try await store.insert(record)
        } catch {
            store.removeInputs(of: id)
            await queue.release()
            throw error
        }
        switch outcome {
        case .existing(let existing):
            store.removeInputs(of: id)
            await queue.release()
            return try check(existing)
        case .inserted(let job):
            await queue.enqueue(QueuedJob(job), reserved: true)
            metrics.queueDepth.set(Double(await queue.depth))
            return .accepted(job)
        }
    }

    /// Seconds until the queue has room, from the recent time per image; 1…300.
    func retryAfterSeconds(depth: Int) -> Int {
        let perImage = status.current.secondsPerImage ?? 1
        let estimate = perImage * Double(max(depth, 1)) / Double(max(config.maxBatch, 1))
        return Int(min(300, max(1, estimate.rounded(.up))))
    }

    // MARK: Cancelling

    /// Cancels a queued or running job (a running one stops at its next step). 404 unknown, 409 already finished.
    func cancel(_ id: String) async throws -> JobRecord {
        switch try await store.cancel(id, at: Date()) {
        case .notFound:
            throw APIError.notFound("job \(id)")
        case .alreadyFinished(let job):
            throw APIError(.conflict, "already_finished", "job \(id) already \(job.status.rawValue)")
        case .cancelled(let job, let wasRunning):
            if wasRunning {
                running.withLock { $0[id] }?.cancel(id)
            } else {
                _ = await queue.remove(id)
                metrics.queueDepth.set(Double(await queue.depth))
            }
            if !wasRunning { store.removeInputs(of: id) }  // never runs again (a running batch has read them)
            metrics.jobsFinished(.cancelled).increment()
            events.publish(id, .finished(job))
            logger.info("job cancelled", metadata: ["job": "\(id)", "was_running": "\(wasRunning)"])
            return job
        }
    }

    // MARK: Draining

    /// The first step of a graceful shutdown, before the HTTP server stops: answer new work with 503, end event
    /// streams, hand out no more batches, and fail waiting synchronous requests (their callers get 503 now rather
    /// than a dropped connection). Queued jobs stay in the store for the next start.
    func drain() async {
        status.withLock {
            $0.phase = .draining
            $0.drainStarted = Date()
        }
        metrics.ready.set(to: 0)
        events.closeAll()
        await queue.close()
        for job in await queue.removeAll(of: .sync) {
            if let failed = try? await store.fail(job.id, code: "shutting_down", message: "the server is shutting down",
                                                  at: Date(), from: [.queued]) {
                store.removeInputs(of: job.id)
                metrics.jobsFinished(.failed).increment()
                events.publish(job.id, .finished(failed))
            }
        }
        let kept = await queue.depth
        logger.info("draining", metadata: ["queued_jobs_kept": "\(kept)"])
    }

    /// Returns once the worker has finished (or, past the grace, stopped and re-queued) its batch and takes no more,
    /// or when the task is cancelled. The HTTP server keeps answering meanwhile: status reads, files, `/readyz`
    /// (503), and 503 for new work.
    func waitUntilWorkerIdle() async {
        while !status.current.workerIdle && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Whether a running batch must stop now: the shutdown grace has run out.
    var graceExpired: Bool {
        guard let started = status.current.drainStarted else { return false }
        return Date().timeIntervalSince(started) > config.shutdownGrace
    }
}

/// Cancellation flags of one running batch, set by request handlers and read by the worker thread at each step.
final class BatchControl: Sendable {
    let jobIDs: [String]
    private let cancelled = Locked<Set<String>>([])

    init(jobIDs: [String]) { self.jobIDs = jobIDs }

    func cancel(_ id: String) { cancelled.withLock { _ = $0.insert(id) } }
    func isCancelled(_ id: String) -> Bool { cancelled.withLock { $0.contains(id) } }
    var allCancelled: Bool { cancelled.withLock { $0.count } >= Set(jobIDs).count }
}

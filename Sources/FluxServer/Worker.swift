import FluxCore
import Foundation
import Logging
import ServiceLifecycle

/// The one owner of the model: loads it, then runs batches from the queue on the generation thread until shutdown.
/// Results are written (PNGs, then the store) before anyone is told, so a job reported as succeeded has its files.
struct Worker: Service {
    let runtime: ServerRuntime

    /// Why a batch stopped early.
    enum Stop: Error {
        case cancelled
        case shutdown
    }

    func run() async throws {
        let thread = GenerationThread(name: "fluxserve-worker")
        defer { thread.stop() }
        let generator = runtime.generator, logger = runtime.logger
        logger.info("loading model", metadata: ["model": "\(generator.modelName)"])
        let clock = ContinuousClock(), start = clock.now
        do {
            try await thread.run { try generator.load() }
        } catch is CancellationError {
            return  // the group is going down (another service failed)
        } catch {
            runtime.status.withLock { $0.phase = .failed }
            logger.error("model failed to load", metadata: ["error": "\(error)"])
            throw error
        }
        runtime.status.withLock { if $0.phase == .loading { $0.phase = .ready } }
        runtime.metrics.ready.set(to: runtime.phase == .ready ? 1 : 0)
        runtime.metrics.recordGPUMemory(try? await thread.run { generator.memoryInUse().map { ($0.used, $0.total) } })
        logger.info("model ready", metadata: ["model": "\(generator.modelName)",
                                              "load_seconds": "\(seconds(clock.now - start))"])
        let queue = runtime.queue
        // Cancellation too (another service failed, e.g. the port is taken): the queue's wait ignores it otherwise.
        await withTaskCancellationOrGracefulShutdownHandler {
            while let batch = await queue.nextBatch() {
                await publishPositions()
                await runBatch(batch, on: thread)
            }
        } onCancelOrGracefulShutdown: {
            Task { await queue.close() }
        }
        // The queue closes when draining begins; stay until this service's own turn to stop, as a service that
        // returns early would end the group without a graceful shutdown.
        try? await gracefulShutdown()
    }

    /// Tells every waiting job with a listener where it stands.
    private func publishPositions() async {
        runtime.metrics.queueDepth.set(Double(await runtime.queue.depth))
        for (id, position) in await runtime.queue.positions() where runtime.events.hasSubscribers(id) {
            runtime.events.publish(id, .queued(position: position))
        }
    }

    private func runBatch(_ batch: [QueuedJob], on thread: GenerationThread) async {
        let runtime = self.runtime, logger = runtime.logger, metrics = runtime.metrics
        let control = BatchControl(jobIDs: batch.map(\.id))
        runtime.running.withLock { running in for job in batch { running[job.id] = control } }
        defer { runtime.running.withLock { running in for job in batch { running[job.id] = nil } } }

        let jobs: [JobRecord]
        do {
            jobs = try await runtime.store.markRunning(batch.map(\.id), at: Date())
        } catch {
            logger.error("store: cannot mark jobs running", metadata: ["error": "\(error)"])
            return
        }
        guard let first = jobs.first else { return }
        let now = Date()
        for job in jobs {
            runtime.events.publish(job.id, .running(attempt: job.attempts))
            metrics.jobQueueSeconds.record(Duration.seconds(max(0, now.timeIntervalSince(job.createdAt))))
        }
        // Image ranges of each job within the batch, and the batch itself.
        var imageRanges: [Range<Int>] = [], prompts: [String] = [], seeds: [UInt64] = []
        for job in jobs {
            let p = job.parameters
            imageRanges.append(prompts.count..<(prompts.count + p.n))
            prompts += Array(repeating: p.prompt, count: p.n)
            seeds += (0..<p.n).map { p.seed &+ UInt64($0) }
        }
        let ranges = imageRanges
        let p = first.parameters
        let imageBatch = ImageBatch(prompts: prompts, seeds: seeds, width: p.width, height: p.height, steps: p.steps,
                                    guidance: p.guidance, cacheThreshold: p.cacheThreshold)
        metrics.runningJobs.set(Double(jobs.count))
        metrics.batchSize.record(Double(prompts.count))
        logger.info("batch started", metadata: [
            "jobs": "\(jobs.map(\.id).joined(separator: ","))", "images": "\(prompts.count)",
            "size": "\(p.width)x\(p.height)", "steps": "\(p.steps)",
        ])
        let clock = ContinuousClock(), start = clock.now
        let generator = runtime.generator, events = runtime.events, store = runtime.store
        let modelName = generator.modelName, version = runtime.config.version
        do {
            let (files, timings) = try await thread.run { () throws -> ([String: [JobImage]], [String: Double]) in
                var lastStep = clock.now
                let output = try generator.generate(imageBatch) { step in
                    if control.allCancelled { throw Stop.cancelled }
                    if runtime.graceExpired { throw Stop.shutdown }
                    let now = clock.now
                    metrics.stepSeconds.record(now - lastStep)
                    lastStep = now
                    for (job, range) in zip(jobs, ranges) where !control.isCancelled(job.id) {
                        events.publish(job.id, .step(step: step.step, total: step.total, elapsed: step.elapsed))
                        guard events.wantsPreviews(job.id) else { continue }
                        for index in range {
                            if let preview = try step.preview(index) {
                                let png = try PNG.encode(rgb: preview.rgb, width: preview.width, height: preview.height)
                                events.publish(job.id, .preview(step: step.step, index: index - range.lowerBound,
                                                                png: png))
                            }
                        }
                    }
                }
                // PNGs are written here, off the event loops, before the store says "succeeded".
                var files: [String: [JobImage]] = [:]
                for (job, range) in zip(jobs, ranges) where !control.isCancelled(job.id) {
                    var images: [JobImage] = []
                    for (k, index) in range.enumerated() {
                        let seed = job.parameters.seed &+ UInt64(k)
                        let file = JobRecord.fileID(job: job.id, index: k)
                        let png = try PNG.encode(rgb: output.images[index], width: imageBatch.width,
                                                 height: imageBatch.height,
                                                 text: Self.metadata(job.parameters, seed: seed, model: modelName,
                                                                     version: version))
                        try store.writeFile(file, bytes: png)
                        images.append(JobImage(file: file, seed: seed))
                    }
                    files[job.id] = images
                }
                return (files, output.timings)
            }
            let elapsed = clock.now - start
            runtime.status.withLock { status in
                let perImage = seconds(elapsed) / Double(max(1, prompts.count))
                status.secondsPerImage = status.secondsPerImage.map { 0.7 * $0 + 0.3 * perImage } ?? perImage
            }
            for job in jobs {
                guard let images = files[job.id] else { continue }
                if let done = try await store.complete(job.id, images: images, timings: timings, at: Date()) {
                    metrics.jobsFinished(.succeeded).increment()
                    metrics.imagesGenerated.increment(by: Int64(images.count))
                    metrics.jobRunSeconds.record(elapsed)
                    events.publish(job.id, .finished(done))
                } else {
                    // Cancelled after its last step: its files go.
                    var cancelled = job
                    cancelled.images = images
                    store.removeFiles(of: cancelled)
                }
            }
            logger.info("batch finished", metadata: ["images": "\(prompts.count)", "seconds": "\(seconds(elapsed))"])
        } catch Stop.cancelled {
            logger.info("batch stopped: every job in it was cancelled")
        } catch Stop.shutdown {
            await stopForShutdown(jobs, control: control)
        } catch {
            logger.error("batch failed", metadata: ["error": "\(error)"])
            for job in jobs where !control.isCancelled(job.id) {
                if let failed = try? await store.fail(job.id, code: "generation_failed", message: "\(error)", at: Date(),
                                                      from: [.running]) {
                    metrics.jobsFinished(.failed).increment()
                    events.publish(job.id, .finished(failed))
                }
            }
        }
        runtime.events.clearProgress(jobs.map(\.id))
        metrics.runningJobs.set(to: 0)
        metrics.recordGPUMemory(try? await thread.run { generator.memoryInUse().map { ($0.used, $0.total) } })
    }

    /// The grace after SIGTERM ran out mid-batch: jobs go back to the queue in the store (they run after the
    /// restart); synchronous ones fail, as their callers are about to lose the connection.
    private func stopForShutdown(_ jobs: [JobRecord], control: BatchControl) async {
        let store = runtime.store
        let live = jobs.filter { !control.isCancelled($0.id) }
        do {
            try await store.requeue(live.filter { $0.kind == .async }.map(\.id))
        } catch {
            runtime.logger.error("store: cannot re-queue", metadata: ["error": "\(error)"])
        }
        for job in live {
            if job.kind == .sync, let failed = try? await store.fail(
                job.id, code: "interrupted", message: "the server is shutting down", at: Date(), from: [.running]) {
                runtime.events.publish(job.id, .finished(failed))
            } else {
                runtime.events.publish(job.id, .shutdown)
            }
        }
        runtime.logger.warning("batch stopped by shutdown; re-queued", metadata: [
            "jobs": "\(live.filter { $0.kind == .async }.map(\.id).joined(separator: ","))"])
    }

    /// PNG text chunks: ours plus the "parameters" line image viewers and web UIs read.
    static func metadata(_ p: JobParameters, seed: UInt64, model: String, version: String)
        -> [(key: String, value: String)]
    {
        let guidance = String(format: "%g", p.guidance)
        return [
            ("prompt", p.prompt), ("seed", "\(seed)"), ("steps", "\(p.steps)"), ("guidance", guidance),
            ("width", "\(p.width)"), ("height", "\(p.height)"), ("model", model),
            ("cache_threshold", String(format: "%g", p.cacheThreshold)), ("Software", "fluxserve \(version)"),
            ("parameters", "\(p.prompt)\nSteps: \(p.steps), Sampler: Euler (flow match), Guidance: \(guidance), "
                + "Seed: \(seed), Size: \(p.width)x\(p.height), Model: \(model), Version: fluxserve \(version)"),
        ]
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}

import FluxCore
import FluxModel
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
        // However it ends, the drain waiting on it must not wait for ever.
        defer { runtime.status.withLock { $0.workerIdle = true } }
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
        runtime.status.withLock { $0.workerIdle = true }
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

    /// One batch, in steps: claim its jobs in the store, prepare the model's request, generate (publishing progress),
    /// write the PNGs, then finish each job, or fail them / hand them back at shutdown.
    private func runBatch(_ batch: [QueuedJob], on thread: GenerationThread) async {
        let control = BatchControl(jobIDs: batch.map(\.id))
        runtime.running.withLock { running in for job in batch { running[job.id] = control } }
        defer { runtime.running.withLock { running in for job in batch { running[job.id] = nil } } }

        guard let jobs = await claim(batch) else { return }
        let prepared = PreparedBatch(jobs)
        runtime.metrics.runningJobs.set(Double(jobs.count))
        runtime.metrics.batchSize.record(Double(prepared.images.prompts.count))
        runtime.logger.info("batch started", metadata: [
            "jobs": "\(jobs.map(\.id).joined(separator: ","))", "images": "\(prepared.images.prompts.count)",
            "size": "\(prepared.images.width)x\(prepared.images.height)", "steps": "\(prepared.images.steps)",
        ])
        let clock = ContinuousClock(), start = clock.now
        do {
            let results = try await generateAndStore(prepared, control: control, on: thread)
            try await finish(prepared, results: results, elapsed: clock.now - start)
        } catch Stop.cancelled {
            runtime.logger.info("batch stopped: every job in it was cancelled")
        } catch Stop.shutdown {
            await stopForShutdown(jobs, control: control)
        } catch {
            await fail(jobs, error: error, control: control)
        }
        runtime.events.clearProgress(jobs.map(\.id))
        runtime.metrics.runningJobs.set(to: 0)
        let generator = runtime.generator
        runtime.metrics.recordGPUMemory(try? await thread.run { generator.memoryInUse().map { ($0.used, $0.total) } })
    }

    /// The jobs of one batch and the model's request for all their images: job i's images are
    /// `imageRanges[i]` of `images` (its prompt n times, seeds seed…seed + n − 1).
    struct PreparedBatch: Sendable {
        let jobs: [JobRecord]
        let imageRanges: [Range<Int>]
        let images: ImageBatch

        /// Every job of a batch shares the first one's size, steps, guidance, cache threshold, mode, strength,
        /// true CFG and LoRAs (`BatchKey`); edit inputs are attached on the generation thread (`withInputs`).
        init(_ jobs: [JobRecord]) {
            var ranges: [Range<Int>] = [], prompts: [String] = [], seeds: [UInt64] = []
            for job in jobs {
                let p = job.parameters
                ranges.append(prompts.count..<(prompts.count + p.n))
                prompts += Array(repeating: p.prompt, count: p.n)
                seeds += (0..<p.n).map { p.seed &+ UInt64($0) }
            }
            let p = jobs[0].parameters
            self.jobs = jobs
            imageRanges = ranges
            images = ImageBatch(prompts: prompts, seeds: seeds, width: p.width, height: p.height, steps: p.steps,
                                guidance: p.guidance, cacheThreshold: p.cacheThreshold, mode: p.mode,
                                strength: p.strength, negativePrompt: p.negativePrompt, trueCFGScale: p.trueCFGScale)
        }
    }

    /// What a batch made: each job's stored images (jobs cancelled meanwhile left out), and seconds per stage.
    struct BatchResults: Sendable {
        let images: [String: [JobImage]]
        let timings: [String: Double]
    }

    /// Moves the batch's jobs to running in the store and tells their listeners; nil when none is left to run (all
    /// cancelled while queued, or the store failed).
    private func claim(_ batch: [QueuedJob]) async -> [JobRecord]? {
        let jobs: [JobRecord]
        do {
            jobs = try await runtime.store.markRunning(batch.map(\.id), at: Date())
        } catch {
            runtime.logger.error("store: cannot mark jobs running", metadata: ["error": "\(error)"])
            return nil
        }
        guard !jobs.isEmpty else { return nil }
        let now = Date()
        for job in jobs {
            runtime.events.publish(job.id, .running(attempt: job.attempts))
            runtime.metrics.jobQueueSeconds.record(Duration.seconds(max(0, now.timeIntervalSince(job.createdAt))))
        }
        return jobs
    }

    /// Runs the model on the generation thread, publishing each step, then writes the PNGs there too (off the event
    /// loops), before the store says "succeeded". Throws `Stop` when every job was cancelled or the grace ran out.
    private func generateAndStore(_ prepared: PreparedBatch, control: BatchControl, on thread: GenerationThread)
        async throws -> BatchResults
    {
        let runtime = self.runtime, generator = runtime.generator
        return try await thread.run { () throws -> BatchResults in
            var batch = try prepared.withInputs(store: runtime.store, variant: generator.variant,
                                                limits: runtime.config.imageLimits)
            batch.loras = try Self.switchLoRAs(prepared.jobs[0].parameters.loras, runtime: runtime)
            var lastStep = ContinuousClock.now
            let output = try generator.generate(batch) { step in
                if control.allCancelled { throw Stop.cancelled }
                if runtime.graceExpired { throw Stop.shutdown }
                let now = ContinuousClock.now
                runtime.metrics.stepSeconds.record(now - lastStep)
                lastStep = now
                try Self.publishProgress(step, of: prepared, control: control, events: runtime.events)
            }
            let images = try Self.storeImages(output, of: prepared, control: control, runtime: runtime)
            return BatchResults(images: images, timings: output.timings)
        }
    }

    /// Puts the batch's LoRAs (equal for all its jobs: `BatchKey`) in effect before it runs, and returns them. A
    /// change uploads adapter matrices only; it is logged with its duration and counted. Throws when a job's LoRA is
    /// no longer in the catalog, or changed (`LoRACatalog.stack`), or the generator refuses it.
    private static func switchLoRAs(_ choices: [LoRAChoice], runtime: ServerRuntime) throws -> LoRAStack {
        var stack = LoRAStack()
        if !choices.isEmpty {
            guard let catalog = runtime.loras else {
                throw LoRACatalogError.unavailable(name: choices[0].name, reason: "the server runs without --lora-dir")
            }
            stack = try catalog.stack(for: choices)
        }
        let start = ContinuousClock.now
        if try runtime.generator.setLoRAs(stack) {
            let took = ContinuousClock.now - start
            runtime.metrics.loraSwitches.increment()
            runtime.metrics.loraSwitchSeconds.record(took)
            runtime.logger.info("loras switched", metadata: [
                "loras": "\(stack.summary)", "ms": "\((seconds(took) * 1e5).rounded() / 100)",
            ])
        }
        return stack
    }

    /// A `step` event for each live job of the batch, and `preview` events for those that asked.
    private static func publishProgress(_ step: BatchStep, of prepared: PreparedBatch, control: BatchControl,
                                        events: JobEvents) throws {
        for (job, range) in zip(prepared.jobs, prepared.imageRanges) where !control.isCancelled(job.id) {
            events.publish(job.id, .step(step: step.step, total: step.total, elapsed: step.elapsed))
            guard events.wantsPreviews(job.id) else { continue }
            for index in range {
                if let preview = try step.preview(index) {
                    let png = try PNG.encode(rgb: preview.rgb, width: preview.width, height: preview.height)
                    events.publish(job.id, .preview(step: step.step, index: index - range.lowerBound, png: png))
                }
            }
        }
    }

    /// Writes each live job's images as PNGs with their metadata; the images by job id.
    private static func storeImages(_ output: BatchOutput, of prepared: PreparedBatch, control: BatchControl,
                                    runtime: ServerRuntime) throws -> [String: [JobImage]] {
        let generator = runtime.generator, version = runtime.config.version
        var stored: [String: [JobImage]] = [:]
        for (job, range) in zip(prepared.jobs, prepared.imageRanges) where !control.isCancelled(job.id) {
            var images: [JobImage] = []
            for (k, index) in range.enumerated() {
                let seed = job.parameters.seed &+ UInt64(k)
                let file = JobRecord.fileID(job: job.id, index: k)
                let png = try PNG.encode(rgb: output.images[index], width: prepared.images.width,
                                         height: prepared.images.height,
                                         text: metadata(job.parameters, seed: seed, generator: generator,
                                                       version: version))
                try runtime.store.writeFile(file, bytes: png)
                images.append(JobImage(file: file, seed: seed))
            }
            stored[job.id] = images
        }
        return stored
    }

    /// Records each job's result (a job cancelled after its last step loses its files instead) and the time per
    /// image that `Retry-After` estimates from. A store error fails the batch's remaining jobs (see `fail`).
    private func finish(_ prepared: PreparedBatch, results: BatchResults, elapsed: Duration) async throws {
        let store = runtime.store, metrics = runtime.metrics, imageCount = prepared.images.prompts.count
        runtime.status.withLock { status in
            let perImage = seconds(elapsed) / Double(max(1, imageCount))
            status.secondsPerImage = status.secondsPerImage.map { 0.7 * $0 + 0.3 * perImage } ?? perImage
        }
        for job in prepared.jobs {
            guard let images = results.images[job.id] else { continue }
            if let done = try await store.complete(job.id, images: images, timings: results.timings, at: Date()) {
                metrics.jobsFinished(.succeeded).increment()
                metrics.imagesGenerated.increment(by: Int64(images.count))
                metrics.jobRunSeconds.record(elapsed)
                runtime.events.publish(job.id, .finished(done))
            } else {
                // Cancelled after its last step: its files go.
                var cancelled = job
                cancelled.images = images
                store.removeFiles(of: cancelled)
            }
        }
        runtime.logger.info("batch finished", metadata: ["images": "\(imageCount)", "seconds": "\(seconds(elapsed))"])
    }

    /// Generation threw: every live job of the batch fails with the error.
    private func fail(_ jobs: [JobRecord], error: any Error, control: BatchControl) async {
        runtime.logger.error("batch failed", metadata: ["error": "\(error)"])
        for job in jobs where !control.isCancelled(job.id) {
            if let failed = try? await runtime.store.fail(job.id, code: "generation_failed", message: "\(error)",
                                                          at: Date(), from: [.running]) {
                runtime.store.removeInputs(of: job.id)  // failed for good: its uploads go
                runtime.metrics.jobsFinished(.failed).increment()
                runtime.events.publish(job.id, .finished(failed))
            }
        }
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
                store.removeInputs(of: job.id)
                runtime.events.publish(job.id, .finished(failed))
            } else {
                runtime.events.publish(job.id, .shutdown)
            }
        }
        runtime.logger.warning("batch stopped by shutdown; re-queued", metadata: [
            "jobs": "\(live.filter { $0.kind == .async }.map(\.id).joined(separator: ","))"])
    }

    /// PNG text chunks: ours plus the "parameters" line image viewers and web UIs read.
    /// Edits add the pipeline, strength, mask rule and the SHA-256 of the uploaded image and mask (the bytes as
    /// received); true CFG adds the negative prompt and scale. The same values close the `parameters` line.
    static func metadata(_ p: JobParameters, seed: UInt64, generator: any ImageGenerator, version: String)
        -> [(key: String, value: String)]
    {
        let request = GenerationRequest(
            prompts: [p.prompt], width: p.width, height: p.height, steps: p.steps, guidanceScale: p.guidance,
            seed: seed, cacheThreshold: p.cacheThreshold, maxSequenceLength: generator.maxSequenceLength,
            negativePrompts: p.negativePrompt.map { [$0] } ?? [], trueCFGScale: p.trueCFGScale, strength: p.strength)
        let edit = p.edit.map { edit in
            ImageMetadata.EditRecord(mode: edit.mode, imageSHA256: edit.imageSHA256, maskSHA256: edit.maskSHA256,
                                     maskRule: EditInput.name(of: edit.maskRule))
        }
        return ImageMetadata(prompt: p.prompt, request: request, model: generator.modelName,
                             modelHash: generator.modelHash, quantization: generator.quantization,
                             truncations: generator.truncations(of: p.prompt), software: "fluxserve \(version)",
                             edit: edit, loras: p.loras.map {
                                 ImageMetadata.LoRARecord(name: $0.name, sha256: $0.sha256, scale: $0.scale)
                             }).textChunks(seed: seed)
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}

import Foundation

/// What happens to a job, as told to its server-sent-event streams and to synchronous requests waiting on it.
enum JobEvent: Sendable {
    /// Waiting, with `position` jobs ahead.
    case queued(position: Int)
    case running(attempt: Int)
    case step(step: Int, total: Int, elapsed: Double)
    /// A small PNG of image `index` at `step`, from the latents (a rough colour map, not the decoded image).
    case preview(step: Int, index: Int, png: [UInt8])
    /// Succeeded, failed or cancelled: the last event of a job.
    case finished(JobRecord)
    /// The server is stopping; the job stays queued in the store and runs after the restart.
    case shutdown
}

/// Fan-out of job events to subscribers, plus the progress of running jobs (kept in memory: a step is not worth a
/// database write).
final class JobEvents: Sendable {
    private struct Subscriber {
        let continuation: AsyncStream<JobEvent>.Continuation
        let previews: Bool
        /// Kept open through a shutdown (a synchronous request waiting for its running job).
        let untilFinished: Bool
    }

    private struct State {
        var subscribers: [String: [UUID: Subscriber]] = [:]
        var progress: [String: (step: Int, total: Int)] = [:]
        var closed = false
    }

    private let state = Locked(State())

    /// A stream of `id`'s events from now on. It ends after `.finished` or `.shutdown`; `closeAll()` ends it too
    /// unless `untilFinished`.
    func subscribe(_ id: String, previews: Bool = false, untilFinished: Bool = false) -> AsyncStream<JobEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: JobEvent.self, bufferingPolicy: .bufferingNewest(512))
        let token = UUID()
        let closed = state.withLock { state -> Bool in
            guard !state.closed || untilFinished else { return true }
            state.subscribers[id, default: [:]][token] = Subscriber(continuation: continuation, previews: previews,
                                                                    untilFinished: untilFinished)
            return false
        }
        if closed {
            continuation.yield(.shutdown)
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { state in
                state.subscribers[id]?[token] = nil
                if state.subscribers[id]?.isEmpty == true { state.subscribers[id] = nil }
            }
        }
        return stream
    }

    func publish(_ id: String, _ event: JobEvent) {
        let targets: [Subscriber] = state.withLock { state in
            switch event {
            case .step(let step, let total, _): state.progress[id] = (step, total)
            case .finished, .shutdown: state.progress[id] = nil
            default: break
            }
            let targets = state.subscribers[id].map { Array($0.values) } ?? []
            if case .preview = event { return targets.filter(\.previews) }
            return targets
        }
        for subscriber in targets {
            subscriber.continuation.yield(event)
            switch event {
            case .finished, .shutdown: subscriber.continuation.finish()
            default: break
            }
        }
    }

    /// Ends and drops every stream of `id`: for a job that will publish nothing more (already finished, or never
    /// stored), whose subscribers would otherwise wait forever.
    func discard(_ id: String) {
        let targets: [Subscriber] = state.withLock { state in
            defer { state.subscribers[id] = nil }
            return state.subscribers[id].map { Array($0.values) } ?? []
        }
        for subscriber in targets { subscriber.continuation.finish() }
    }

    /// Forgets the progress of jobs whose batch ended (a step may race a cancellation).
    func clearProgress(_ ids: [String]) {
        state.withLock { state in for id in ids { state.progress[id] = nil } }
    }

    func wantsPreviews(_ id: String) -> Bool {
        state.withLock { $0.subscribers[id]?.values.contains(where: \.previews) ?? false }
    }

    func hasSubscribers(_ id: String) -> Bool { state.withLock { $0.subscribers[id] != nil } }

    /// Open streams over all jobs.
    var subscriberCount: Int { state.withLock { $0.subscribers.values.reduce(0) { $0 + $1.count } } }

    func progress(_ id: String) -> (step: Int, total: Int)? { state.withLock { $0.progress[id] } }

    /// Ends every event stream with `.shutdown` and refuses new ones (a draining server must not be held open by
    /// them); waiters `untilFinished` stay.
    func closeAll() {
        let all: [Subscriber] = state.withLock { state in
            state.closed = true
            var closing: [Subscriber] = []
            for (id, subscribers) in state.subscribers {
                for (token, subscriber) in subscribers where !subscriber.untilFinished {
                    closing.append(subscriber)
                    state.subscribers[id]?[token] = nil
                }
                if state.subscribers[id]?.isEmpty == true { state.subscribers[id] = nil }
            }
            return closing
        }
        for subscriber in all {
            subscriber.continuation.yield(.shutdown)
            subscriber.continuation.finish()
        }
    }
}

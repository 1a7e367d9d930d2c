import Foundation

/// A queued job as the scheduler sees it.
struct QueuedJob: Sendable {
    let id: String
    let kind: JobKind
    let parameters: JobParameters

    init(_ record: JobRecord) {
        (id, kind, parameters) = (record.id, record.kind, record.parameters)
    }
}

/// The jobs waiting to run, in submission order, bounded by `capacity`. The worker takes batches from the front:
/// the oldest job plus later ones that can share its batch (same `BatchKey`), up to `maxBatch` images, so no job
/// waits behind one it could have run with, and the oldest always goes first.
actor JobQueue {
    let capacity: Int
    let maxBatch: Int
    private var pending: [QueuedJob] = []
    /// Places taken by submissions between their check and their commit to the store.
    private var reserved = 0
    private var waiter: CheckedContinuation<Void, Never>?
    private var closed = false

    init(capacity: Int, maxBatch: Int) {
        (self.capacity, self.maxBatch) = (capacity, maxBatch)
    }

    var depth: Int { pending.count }

    /// Takes a place for a job about to be stored; false when the queue is full.
    func reserve() -> Bool {
        guard !closed, pending.count + reserved < capacity else { return false }
        reserved += 1
        return true
    }

    func release() { reserved = max(0, reserved - 1) }

    /// Adds a stored job; `reserved` says whether it holds a place from `reserve()` (recovered jobs don't).
    func enqueue(_ job: QueuedJob, reserved wasReserved: Bool) {
        if wasReserved { release() }
        pending.append(job)
        waiter?.resume()
        waiter = nil
    }

    /// Removes a waiting job (cancelled); false if it is not waiting.
    func remove(_ id: String) -> Bool {
        guard let index = pending.firstIndex(where: { $0.id == id }) else { return false }
        pending.remove(at: index)
        return true
    }

    /// Jobs ahead of `id`, or nil if it is not waiting.
    func position(of id: String) -> Int? { pending.firstIndex(where: { $0.id == id }) }

    /// Every waiting job's id with its position.
    func positions() -> [(id: String, position: Int)] { pending.enumerated().map { ($0.element.id, $0.offset) } }

    /// The next batch, waiting while the queue is empty; nil once closed.
    func nextBatch() async -> [QueuedJob]? {
        while pending.isEmpty {
            if closed { return nil }
            await withCheckedContinuation { waiter = $0 }
        }
        if closed { return nil }
        let head = pending[0]
        var batch = [head], images = head.parameters.n
        var index = 1
        while index < pending.count && images < maxBatch {
            let candidate = pending[index]
            if candidate.parameters.batchKey == head.parameters.batchKey && images + candidate.parameters.n <= maxBatch {
                batch.append(candidate)
                images += candidate.parameters.n
                pending.remove(at: index)
            } else {
                index += 1
            }
        }
        pending.removeFirst()
        return batch
    }

    /// Stops handing out batches and accepting submissions (shutdown); the jobs stay in the store.
    func close() {
        closed = true
        waiter?.resume()
        waiter = nil
    }

    /// Removes and returns the waiting jobs of `kind` (synchronous jobs at shutdown).
    func removeAll(of kind: JobKind) -> [QueuedJob] {
        let removed = pending.filter { $0.kind == kind }
        pending.removeAll { $0.kind == kind }
        return removed
    }
}

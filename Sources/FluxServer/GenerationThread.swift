import Foundation

/// One long-lived OS thread that runs the model. Generation is seconds of blocking compute: it must not run on a NIO
/// event loop or Swift's cooperative pool, and a GPU context belongs to the thread that made it, so every call to
/// the generator goes through here, in order.
final class GenerationThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var work: [@Sendable () -> Void] = []
    private var stopping = false

    init(name: String) {
        let thread = Thread { self.loop() }  // holds self until stop() lets the loop end
        thread.name = name
        thread.stackSize = 64 << 20
        thread.start()
    }

    /// Runs `body` on the thread and returns its result. If the calling task is cancelled (the service group is
    /// going down, e.g. the port was taken), this returns `CancellationError` at once and `body` finishes unobserved:
    /// a model load or a batch cannot be interrupted, and the process is about to end.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let pending = Locked<CheckedContinuation<T, any Error>?>(nil)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                pending.withLock { $0 = continuation }
                if Task.isCancelled {
                    pending.withLock { $0.take() }?.resume(throwing: CancellationError())
                    return
                }
                submit {
                    let result = Result { try body() }
                    pending.withLock { $0.take() }?.resume(with: result)
                }
            }
        } onCancel: {
            pending.withLock { $0.take() }?.resume(throwing: CancellationError())
        }
    }

    private func submit(_ item: @escaping @Sendable () -> Void) {
        condition.lock()
        work.append(item)
        condition.signal()
        condition.unlock()
    }

    /// Lets the thread end once its work is done.
    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while work.isEmpty && !stopping { condition.wait() }
            if work.isEmpty && stopping {
                condition.unlock()
                return
            }
            let item = work.removeFirst()
            condition.unlock()
            item()
        }
    }
}

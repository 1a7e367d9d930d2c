import Dispatch
import Foundation

/// Runs `body` over `0..<count` split into contiguous ranges, one per worker thread.
///
/// Work is split into at most `cpuThreadCount` ranges (`CPUBackend.Options.threads`); ranges smaller than
/// `minChunk` items are not split further, so tiny ops stay on the calling thread.
public func parallelFor(_ count: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let workers = min(cpuThreadCount, max(1, count / max(minChunk, 1)))
    if workers <= 1 { body(0..<count); return }
    let step = (count + workers - 1) / workers
    withoutActuallyEscaping(body) { body in
        let shared = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let lo = w * step, hi = min(count, lo + step)
            if lo < hi { shared.value(lo..<hi) }
        }
    }
}

/// Threads the CPU backend uses: `CPUBackend.Options.threads` of the process (`--threads`; every active core unless
/// the command line set it).
public var cpuThreadCount: Int { CPUSettings.shared.threads }

/// Carries a value the compiler cannot prove `Sendable` into worker threads. Used only where the workers touch
/// disjoint memory (each writes its own output rows).
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

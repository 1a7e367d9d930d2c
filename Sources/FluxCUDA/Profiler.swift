import FluxCore
import Foundation

/// Device time per op, for finding what limits a stage: while profiling is on, every kernel launch, cuBLASLt product,
/// cuDNN attention and convolution is bracketed by two CUDA events on the backend's stream; `stopProfiling` waits,
/// reads each pair's elapsed time and sums them by name.
///
/// Events cost the host about a microsecond each, so a profiled run's wall time is not the unprofiled one: compare the
/// summed device time with an unprofiled run's wall time to see how much of it is launch gaps.
final class OpProfiler: @unchecked Sendable {
    private struct Span {
        let name: String
        let start: CUhandle
        let end: CUhandle
        let flops: Double
        let bytes: Double
    }

    private let driver: CUDADriver
    private var spans: [Span] = []
    private var spare: [CUhandle] = []
    private(set) var active = false

    init(driver: CUDADriver) { self.driver = driver }

    deinit {
        for span in spans { _ = driver.cuEventDestroy(span.start); _ = driver.cuEventDestroy(span.end) }
        for event in spare { _ = driver.cuEventDestroy(event) }
    }

    func start() { active = true }

    /// Runs `body` between two events on `stream` when active; `flops`/`bytes` let the report give rates.
    func measure<T>(_ name: @autoclosure () -> String, flops: Double = 0, bytes: Double = 0, stream: CUhandle,
                    _ body: () throws -> T) throws -> T
    {
        guard active else { return try body() }
        let start = try event(), end = try event()
        try driver.check(driver.cuEventRecord(start, stream), "cuEventRecord")
        let result = try body()
        try driver.check(driver.cuEventRecord(end, stream), "cuEventRecord")
        spans.append(Span(name: name(), start: start, end: end, flops: flops, bytes: bytes))
        return result
    }

    /// Stops, waits for the last span and returns the totals by name, largest first.
    func stop() throws -> [ProfileEntry] {
        active = false
        defer {
            for span in spans { spare.append(span.start); spare.append(span.end) }
            spans.removeAll()
        }
        if let last = spans.last { try driver.check(driver.cuEventSynchronize(last.end), "cuEventSynchronize") }
        var totals: [String: ProfileEntry] = [:]
        for span in spans {
            var ms: Float = 0
            try driver.check(driver.cuEventElapsedTime(&ms, span.start, span.end), "cuEventElapsedTime")
            var entry = totals[span.name] ?? ProfileEntry(name: span.name, calls: 0, milliseconds: 0, flops: 0, bytes: 0)
            entry.calls += 1
            entry.milliseconds += Double(ms)
            entry.flops += span.flops
            entry.bytes += span.bytes
            totals[span.name] = entry
        }
        return totals.values.sorted { $0.milliseconds > $1.milliseconds }
    }

    private func event() throws -> CUhandle {
        if let event = spare.popLast() { return event }
        var event: CUhandle?
        try driver.check(driver.cuEventCreate(&event, 0), "cuEventCreate")
        guard let event else { throw TensorError.backend("cuda: cuEventCreate returned no event") }
        return event
    }
}

/// One line of a profile: the device time of every call of one op (a kernel by name, or a product by shape).
public struct ProfileEntry: Sendable, Codable {
    public var name: String
    public var calls: Int
    public var milliseconds: Double
    /// Arithmetic of the calls (products and attention), for TFLOP/s; 0 for other ops.
    public var flops: Double
    /// Bytes the calls must move at least (products: operands and result), for GB/s; 0 when not counted.
    public var bytes: Double

    public init(name: String, calls: Int, milliseconds: Double, flops: Double, bytes: Double) {
        (self.name, self.calls, self.milliseconds, self.flops, self.bytes) = (name, calls, milliseconds, flops, bytes)
    }
}

extension CUDABackend {
    /// Starts timing every op on the device (see `OpProfiler`).
    public func startProfiling() throws { try locked { profiler.start() } }

    /// Stops timing, waits for the device and returns the device time per op, largest first.
    public func stopProfiling() throws -> [ProfileEntry] { try locked { try profiler.stop() } }
}

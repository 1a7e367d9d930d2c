/// A backend that can say how much device memory it holds, for benchmarks and metrics.
public protocol MemoryReporting {
    /// Bytes allocated now and the most allocated at once since start (or the last reset).
    func memoryUsage() throws -> (current: Int, peak: Int)
}

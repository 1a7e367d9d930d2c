import FluxCore

extension CUDABackend: MemoryReporting {
    /// Device bytes held by live tensors plus the allocator's free lists, and the high-water mark of that sum.
    public func memoryUsage() throws -> (current: Int, peak: Int) {
        (allocator.liveBytes + allocator.cachedBytes, allocator.peakBytes)
    }
}

import FluxCore
import Foundation

/// A caching device allocator: freed blocks go to a free list per size class and are handed out again, so a
/// steady-state step makes no `cuMemAlloc` calls.
///
/// Size classes: powers of two from 512 B up to 1 MiB, then multiples of 1 MiB (so a large weight wastes under
/// 1 MiB). All work runs on the backend's one stream, so a block freed on the host while kernels that read it are
/// still queued is safe to reuse: whatever writes it next is queued behind them. When `cuMemAlloc` runs out of memory
/// the free lists are returned to the driver and the allocation tried once more.
final class DeviceAllocator: @unchecked Sendable {
    let driver: CUDADriver
    let context: CUhandle
    let backendName: String
    private var freeBlocks: [Int: [CUdeviceptr]] = [:]
    private let lock = NSLock()
    /// Bytes held by live tensors, bytes parked in free lists, and the high-water mark of both together.
    private(set) var liveBytes = 0
    private(set) var cachedBytes = 0
    private(set) var peakBytes = 0
    private(set) var driverAllocations = 0

    init(driver: CUDADriver, context: CUhandle, backendName: String) {
        self.driver = driver
        self.context = context
        self.backendName = backendName
    }

    static func sizeClass(_ bytes: Int) -> Int {
        let mib = 1 << 20
        if bytes <= 512 { return 512 }
        if bytes <= mib { return 1 << (Int.bitWidth - (bytes - 1).leadingZeroBitCount) }
        return (bytes + mib - 1) / mib * mib
    }

    /// A block of at least `bytes`, 256-byte aligned (the driver aligns every allocation at least that much). The
    /// caller holds the context current.
    func allocate(_ bytes: Int) throws -> CUDAStorage {
        let size = DeviceAllocator.sizeClass(bytes)
        lock.lock()
        if var list = freeBlocks[size], let pointer = list.popLast() {
            freeBlocks[size] = list
            cachedBytes -= size
            liveBytes += size
            lock.unlock()
            return CUDAStorage(pointer: pointer, byteCount: bytes, sizeClass: size, allocator: self)
        }
        lock.unlock()
        var pointer: CUdeviceptr = 0
        var status = driver.cuMemAlloc(&pointer, size)
        if status == CUDADriver.errorOutOfMemory {
            try releaseCached()
            status = driver.cuMemAlloc(&pointer, size)
        }
        if status == CUDADriver.errorOutOfMemory { throw TensorError.outOfMemory(backend: backendName, bytes: size) }
        try driver.check(status, "cuMemAlloc(\(size))")
        lock.lock()
        liveBytes += size
        driverAllocations += 1
        peakBytes = max(peakBytes, liveBytes + cachedBytes)
        lock.unlock()
        return CUDAStorage(pointer: pointer, byteCount: bytes, sizeClass: size, allocator: self)
    }

    /// Called by `CUDAStorage.deinit` on whatever thread drops the last reference: no driver call, only bookkeeping.
    fileprivate func release(_ pointer: CUdeviceptr, sizeClass: Int) {
        lock.lock()
        freeBlocks[sizeClass, default: []].append(pointer)
        liveBytes -= sizeClass
        cachedBytes += sizeClass
        lock.unlock()
    }

    /// Returns every cached block to the driver (after the stream's work is done, since queued kernels may still
    /// touch a block freed on the host).
    func releaseCached() throws {
        lock.lock()
        let blocks = freeBlocks
        freeBlocks = [:]
        cachedBytes = 0
        lock.unlock()
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        try driver.check(driver.cuCtxSynchronize(), "cuCtxSynchronize")
        for (_, list) in blocks { for p in list { _ = driver.cuMemFree(p) } }
    }
}

/// Device memory behind a CUDA tensor: a bf16 array of `byteCount / 2` elements.
public final class CUDAStorage: TensorStorage, @unchecked Sendable {
    let pointer: CUdeviceptr
    public let byteCount: Int
    let sizeClass: Int
    let allocator: DeviceAllocator

    fileprivate init(pointer: CUdeviceptr, byteCount: Int, sizeClass: Int, allocator: DeviceAllocator) {
        self.pointer = pointer
        self.byteCount = byteCount
        self.sizeClass = sizeClass
        self.allocator = allocator
    }

    deinit { allocator.release(pointer, sizeClass: sizeClass) }
}

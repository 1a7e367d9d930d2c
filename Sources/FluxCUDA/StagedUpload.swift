import FluxCore
import Foundation

// Host → device uploads through pinned staging buffers.
//
// `cuMemcpyHtoDAsync` from pageable memory makes the driver copy through its own small pinned buffers, synchronously,
// one tensor at a time. Here each upload is cut into parts that each fit one of a few large page-locked buffers used in
// a ring; a part is written into its buffer by several threads (bf16 copied as is, other dtypes converted — and the
// first touch of an mmapped checkpoint's pages is taken by those threads in parallel), then copied to the device
// asynchronously, with an event recorded behind the copy. A buffer is written again only after its event has
// completed, so the host fills one buffer while the copy engine drains the one before. Small tensors are packed one
// after another into the current buffer.
//
// Every copy goes to the backend's one stream, so kernels queued after an upload read the uploaded values (stream
// order); the host needs no wait. Copies queued from pinned memory would be recorded, not run, by a CUDA graph
// capture (the pageable copies they replace are refused by one): uploads are not capture-safe.

/// Where the next part of an upload goes in a ring of equal staging buffers. It only plans; `PinnedStaging` does
/// the copies.
///
/// Parts are bf16 (2 bytes an element). One that fits the free rest of the current buffer goes there (at the next
/// multiple of `alignment`); a larger one takes that rest when it is at least `minimumTailBytes` and goes on in the
/// next buffer; anything larger than a buffer is cut into buffer-sized parts. A slot that `entersBuffer` starts the
/// buffer over: its user must first wait until every copy out of that buffer has finished.
struct StagingRing: Sendable, Equatable {
    struct Slot: Sendable, Equatable {
        var buffer: Int
        var offset: Int
        var byteCount: Int
        /// The ring moved to `buffer` for this slot: earlier copies out of it must be complete before it is written.
        var entersBuffer: Bool
    }

    static let elementBytes = 2

    let bufferBytes: Int
    private(set) var bufferCount: Int
    let alignment: Int
    let minimumTailBytes: Int
    /// The buffer being filled and the bytes of it handed out so far.
    private(set) var current = 0
    private(set) var used = 0

    init(bufferBytes: Int, bufferCount: Int, alignment: Int = 256, minimumTailBytes: Int = 1 << 20) {
        precondition(alignment > 0 && alignment % Self.elementBytes == 0, "StagingRing: alignment \(alignment)")
        precondition(bufferBytes >= alignment && bufferBytes % alignment == 0, "StagingRing: buffer \(bufferBytes)")
        precondition(bufferCount > 0, "StagingRing: \(bufferCount) buffers")
        (self.bufferBytes, self.bufferCount, self.alignment, self.minimumTailBytes) =
            (bufferBytes, bufferCount, alignment, max(minimumTailBytes, Self.elementBytes))
    }

    /// Space for the next part of an upload with `remaining` bytes (> 0, even) still to stage. The slot holds
    /// `min(remaining, what fits)` bytes, a whole number of elements.
    mutating func reserve(_ remaining: Int) -> Slot {
        precondition(remaining > 0 && remaining % Self.elementBytes == 0, "StagingRing: reserve \(remaining)")
        let start = (used + alignment - 1) / alignment * alignment
        let free = max(0, bufferBytes - start) / Self.elementBytes * Self.elementBytes
        if remaining <= free || free >= minimumTailBytes {
            let bytes = min(remaining, free)
            used = start + bytes
            return Slot(buffer: current, offset: start, byteCount: bytes, entersBuffer: false)
        }
        current = (current + 1) % bufferCount
        used = min(remaining, bufferBytes)
        return Slot(buffer: current, offset: 0, byteCount: used, entersBuffer: true)
    }

    /// From now on only buffers `0..<count` are used; the next slot enters buffer 0.
    mutating func limitBuffers(to count: Int) {
        precondition(count > 0 && count <= bufferCount, "StagingRing: limit to \(count) of \(bufferCount)")
        bufferCount = count
        current = count - 1
        used = bufferBytes
    }
}

/// The ring's page-locked buffers, each with an event recorded behind the last copy out of it. Buffers are
/// allocated when the ring first reaches them (a few small uploads take one), and freed with the backend.
///
/// Not thread-safe: the backend calls it holding its lock, with its context current. The worker threads that fill a
/// buffer write disjoint slices of it and are done before the copy is queued.
final class PinnedStaging: @unchecked Sendable {
    static let defaultBufferBytes = 64 << 20
    static let defaultBufferCount = 4
    /// A part of at least this many bytes is filled by several threads, in slices of at least this size.
    static let parallelSliceBytes = 1 << 20

    private struct Buffer {
        let host: UnsafeMutableRawPointer
        let event: CUhandle
    }

    private let driver: CUDADriver
    private let context: CUhandle
    private var ring: StagingRing
    private var buffers: [Buffer] = []
    private let threads: Int
    /// Why uploads take the pageable path: the first pinned allocation failed (nil while staging works).
    private(set) var unavailableReason: String?
    /// Bytes copied to the device through staging (bf16, as stored there).
    private(set) var stagedBytes = 0

    init(driver: CUDADriver, context: CUhandle, bufferBytes: Int = PinnedStaging.defaultBufferBytes,
         bufferCount: Int = PinnedStaging.defaultBufferCount,
         threads: Int = min(16, max(1, ProcessInfo.processInfo.activeProcessorCount)))
    {
        self.driver = driver
        self.context = context
        ring = StagingRing(bufferBytes: bufferBytes, bufferCount: bufferCount)
        self.threads = threads
    }

    deinit {
        guard !buffers.isEmpty else { return }
        _ = driver.cuCtxSetCurrent(context)
        for buffer in buffers {
            // A copy out of the buffer may still be queued: let it finish before the memory goes.
            _ = driver.cuEventSynchronize(buffer.event)
            _ = driver.cuEventDestroy(buffer.event)
            _ = driver.cuMemFreeHost(buffer.host)
        }
    }

    /// e.g. "pinned staging, 2 of 4 × 64 MiB allocated, 3.2 GB staged" or "pageable (pinned staging failed: ...)".
    var description: String {
        if let unavailableReason { return "pageable (pinned staging failed: \(unavailableReason))" }
        return "pinned staging, \(buffers.count) of \(ring.bufferCount) × \(ring.bufferBytes >> 20) MiB allocated, "
            + String(format: "%.2f GB staged", Double(stagedBytes) / 1e9)
    }

    /// Queues the copy of `count` elements of `dtype`, read from `pieces` one after another, to `destination` as bf16
    /// (`count × 2` bytes of device memory), on `stream`. Returns once every byte of `pieces` has been read, so they
    /// may be freed; the copies are still queued, in stream order before anything queued later.
    ///
    /// Returns false, having queued nothing, when no pinned memory can be had (the caller takes the pageable path).
    /// `pieces` must hold `count` elements in all, each piece a whole number of them.
    func upload(_ pieces: [UnsafeRawBufferPointer], dtype: DType, count: Int, to destination: CUdeviceptr,
                stream: CUhandle) throws -> Bool
    {
        guard unavailableReason == nil else { return false }
        var done = 0
        while done < count {
            // Only the first slot of all can find no buffer, so nothing has been queued when this returns false.
            guard let slot = reserve((count - done) * StagingRing.elementBytes) else { return false }
            let buffer = buffers[slot.buffer]
            if slot.entersBuffer {
                try driver.check(driver.cuEventSynchronize(buffer.event), "cuEventSynchronize(staging \(slot.buffer))")
            }
            let elements = slot.byteCount / StagingRing.elementBytes
            writeBF16(pieces, dtype: dtype, elements: done..<(done + elements), to: buffer.host + slot.offset,
                      threads: threads, minimumSliceBytes: Self.parallelSliceBytes)
            let target = destination + CUdeviceptr(done * StagingRing.elementBytes)
            try driver.check(driver.cuMemcpyHtoDAsync(target, buffer.host + slot.offset, slot.byteCount, stream),
                             "cuMemcpyHtoDAsync(\(slot.byteCount) bytes from pinned staging)")
            try driver.check(driver.cuEventRecord(buffer.event, stream), "cuEventRecord(staging \(slot.buffer))")
            done += elements
            stagedBytes += slot.byteCount
        }
        return true
    }

    /// The next slot, allocating its buffer when the ring first reaches it. nil only when not even one buffer can be
    /// allocated; when a later one cannot, the ring goes on with those it has.
    private func reserve(_ remaining: Int) -> StagingRing.Slot? {
        let slot = ring.reserve(remaining)
        guard slot.buffer == buffers.count else { return slot }
        do {
            buffers.append(try allocateBuffer())
            return slot
        } catch {
            if buffers.isEmpty {
                unavailableReason = "\(error)"
                return nil
            }
            ring.limitBuffers(to: buffers.count)
            return ring.reserve(remaining)
        }
    }

    private func allocateBuffer() throws -> Buffer {
        var host: UnsafeMutableRawPointer?
        try driver.check(driver.cuMemHostAlloc(&host, ring.bufferBytes, 0), "cuMemHostAlloc(\(ring.bufferBytes))")
        guard let host else { throw TensorError.backend("cuda: cuMemHostAlloc returned no memory") }
        var event: CUhandle?
        do {
            try driver.check(driver.cuEventCreate(&event, CUDADriver.eventDisableTiming), "cuEventCreate")
            guard let event else { throw TensorError.backend("cuda: cuEventCreate returned no event") }
            return Buffer(host: host, event: event)
        } catch {
            _ = driver.cuMemFreeHost(host)
            throw error
        }
    }
}

// MARK: Writing bf16

/// Writes elements `elements` of the concatenation of `pieces` (each a whole number of `dtype` elements) as bf16 at
/// `destination`: bf16 is copied as is; any other dtype is widened to f32 as `HostTensor.floats()` does and rounded
/// to nearest even (`floatToBfloat16`). Sources may be unaligned (safetensors data need not be). Ranges of at least
/// `2 × minimumSliceBytes` output bytes are split into slices written by up to `threads` threads at once.
func writeBF16(_ pieces: [UnsafeRawBufferPointer], dtype: DType, elements: Range<Int>,
               to destination: UnsafeMutableRawPointer, threads: Int = 1, minimumSliceBytes: Int = 1 << 20)
{
    let joined = JoinedPieces(pieces, elementSize: dtype.byteSize)
    forEachSlice(of: elements, minimumSlice: minimumSliceBytes / StagingRing.elementBytes, threads: threads) { slice in
        joined.forEachPart(in: slice) { source, first, count in
            convertToBF16(source, dtype: dtype, count: count,
                          to: destination + (first - elements.lowerBound) * StagingRing.elementBytes)
        }
    }
}

private func convertToBF16(_ source: UnsafeRawPointer, dtype: DType, count: Int, to out: UnsafeMutableRawPointer) {
    switch dtype {
    case .bf16:
        out.copyMemory(from: source, byteCount: count * 2)
    case .f32:
        for i in 0..<count {
            let value = Float(bitPattern: source.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
            out.storeBytes(of: floatToBfloat16(value), toByteOffset: i * 2, as: UInt16.self)
        }
    case .f16:
        for i in 0..<count {
            let value = Float(Float16(bitPattern: source.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
            out.storeBytes(of: floatToBfloat16(value), toByteOffset: i * 2, as: UInt16.self)
        }
    default:
        // f64, f8 and integers: rare, small; through f32 in blocks.
        let block = 1024, size = dtype.byteSize
        withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { values in
            var i = 0
            while i < count {
                let n = min(block, count - i)
                let part = UnsafeMutableBufferPointer(rebasing: values[..<n])
                convertToFloat(UnsafeRawBufferPointer(start: source + i * size, count: n * size), dtype: dtype,
                               into: part)
                for j in 0..<n { out.storeBytes(of: floatToBfloat16(part[j]), toByteOffset: (i + j) * 2, as: UInt16.self) }
                i += n
            }
        }
    }
}

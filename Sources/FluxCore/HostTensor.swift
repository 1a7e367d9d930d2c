/// A tensor in host memory, in any `DType`: a checkpoint tensor seen through an mmap, or values built on the host.
///
/// `bytes` stays valid as long as the `HostTensor` (its `owner` keeps the mapping or array alive). Backends upload
/// from it, converting to their compute dtype once.
public struct HostTensor: @unchecked Sendable {
    public let shape: [Int]
    public let dtype: DType
    public let bytes: UnsafeRawBufferPointer
    private let owner: AnyObject?

    /// Wraps memory owned by `owner`. `bytes.count` must equal `elementCount(shape) * dtype.byteSize`.
    public init(shape: [Int], dtype: DType, bytes: UnsafeRawBufferPointer, owner: AnyObject?) {
        precondition(elementCount(shape).map { $0 * dtype.byteSize } == bytes.count, "HostTensor: byte span mismatch")
        self.shape = shape
        self.dtype = dtype
        self.bytes = bytes
        self.owner = owner
    }

    /// f32 values in row-major order.
    public init(_ values: [Float], shape: [Int]) {
        precondition(elementCount(shape) == values.count, "HostTensor: \(values.count) values for shape \(shape)")
        let box = HostBuffer(byteCount: values.count * 4)
        values.withUnsafeBytes { box.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        self.init(shape: shape, dtype: .f32, bytes: UnsafeRawBufferPointer(start: box.pointer, count: box.byteCount),
                  owner: box)
    }

    /// Raw bytes of `dtype`, copied.
    public init(copying raw: UnsafeRawBufferPointer, shape: [Int], dtype: DType) {
        let box = HostBuffer(byteCount: raw.count)
        if raw.count > 0 { box.pointer.copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
        self.init(shape: shape, dtype: dtype, bytes: UnsafeRawBufferPointer(start: box.pointer, count: raw.count),
                  owner: box)
    }

    public var count: Int { bytes.count / dtype.byteSize }

    /// The values converted to f32 (integers and bools converted by value).
    public func floats() -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            convertToFloat(bytes, dtype: dtype, into: buffer)
            initialized = count
        }
    }

    /// A new host tensor of the same values with another shape of the same element count.
    public func reshaped(_ newShape: [Int]) throws -> HostTensor {
        guard elementCount(newShape) == count else {
            throw TensorError.shapeMismatch(op: "reshape", operand: "tensor", shape: shape,
                                            expected: "\(count) elements for \(newShape)")
        }
        return HostTensor(shape: newShape, dtype: dtype, bytes: bytes, owner: owner)
    }
}

/// Heap memory that frees itself: the owner behind host tensors built in memory.
public final class HostBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int

    public init(byteCount: Int) {
        self.byteCount = byteCount
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
    }

    deinit { pointer.deallocate() }
}

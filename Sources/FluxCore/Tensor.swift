/// Backend-owned memory behind a `Tensor` (host memory for the CPU backend, device memory for CUDA).
public protocol TensorStorage: AnyObject, Sendable {
    /// Size of the allocation in bytes.
    var byteCount: Int { get }
}

/// A dense, row-major tensor living in one backend's memory.
///
/// A `Tensor` is a shape and dtype over a storage handle; reshaping shares the storage. Ops never write into their
/// inputs, so sharing is safe. Only the backend that made a tensor can read it.
public struct Tensor: Sendable {
    public let shape: [Int]
    public let dtype: DType
    public let storage: any TensorStorage

    public init(shape: [Int], dtype: DType, storage: any TensorStorage) {
        self.shape = shape
        self.dtype = dtype
        self.storage = storage
    }

    public var rank: Int { shape.count }
    public var count: Int { shape.reduce(1, *) }

    /// Size of axis `axis`; negative axes count from the end.
    public func dim(_ axis: Int) -> Int { shape[axis < 0 ? shape.count + axis : axis] }

    /// The same storage seen with another shape of equal element count. One dimension may be -1 (inferred).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var resolved = newShape
        if let hole = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != hole }.reduce(1) { $0 * $1.element }
            if known > 0, count % known == 0 { resolved[hole] = count / known }
        }
        guard elementCount(resolved) == count else {
            throw TensorError.shapeMismatch(op: "reshape", operand: "tensor", shape: shape,
                                            expected: "\(count) elements to fit \(newShape)")
        }
        return Tensor(shape: resolved, dtype: dtype, storage: storage)
    }
}

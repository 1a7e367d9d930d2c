/// Backend-owned memory behind a `Tensor` (host memory for the CPU backend, device memory for CUDA).
public protocol TensorStorage: AnyObject, Sendable {
    /// Size of the allocation in bytes.
    var byteCount: Int { get }
}

/// A dense, row-major tensor living in one backend's memory.
///
/// A `Tensor` is a shape and dtype over a storage handle, starting `offset` elements in; reshaping and contiguous
/// slices share the storage. Ops never write into their inputs, so sharing is safe. Only the backend that made a
/// tensor can read it.
public struct Tensor: Sendable {
    public let shape: [Int]
    public let dtype: DType
    public let storage: any TensorStorage
    /// Elements of `dtype` in `storage` before this tensor's first (0 unless it is a view made by `contiguousSlice`).
    public let offset: Int

    public init(shape: [Int], dtype: DType, storage: any TensorStorage, offset: Int = 0) {
        self.shape = shape
        self.dtype = dtype
        self.storage = storage
        self.offset = offset
    }

    /// Views start a multiple of this many elements into their storage (256 bytes at bf16), so that every pointer a
    /// backend hands to a vectorised kernel or a product keeps the allocator's alignment.
    public static let viewAlignment = 128

    /// `x[…, start ..< start + count, …]` along axis `a` as a view of the same storage, when those elements are one
    /// contiguous run (every axis before `a` has size 1) starting at a multiple of `viewAlignment`; else nil, and
    /// the caller copies. Bounds are the caller's to check.
    public func contiguousSlice(axis a: Int, start: Int, count: Int) -> Tensor? {
        guard a >= 0, a < rank, shape[..<a].allSatisfy({ $0 == 1 }) else { return nil }
        let first = offset + start * shape[(a + 1)...].reduce(1, *)
        guard first % Tensor.viewAlignment == 0 else { return nil }
        var sliced = shape
        sliced[a] = count
        return Tensor(shape: sliced, dtype: dtype, storage: storage, offset: first)
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
        return Tensor(shape: resolved, dtype: dtype, storage: storage, offset: offset)
    }
}

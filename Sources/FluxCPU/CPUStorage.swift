import FluxCore

/// f32 host memory behind a CPU tensor, 64-byte aligned.
public final class CPUStorage: TensorStorage, @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    public var byteCount: Int { count * 4 }

    init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}

extension CPUBackend {
    /// A fresh uninitialised f32 tensor.
    func empty(_ shape: [Int]) -> (Tensor, UnsafeMutablePointer<Float>) {
        let storage = CPUStorage(count: shape.reduce(1, *))
        return (Tensor(shape: shape, dtype: .f32, storage: storage), storage.pointer)
    }

    /// The f32 values of a tensor this backend made.
    func values(_ t: Tensor, _ op: String) throws -> UnsafeMutablePointer<Float> {
        guard let storage = t.storage as? CPUStorage else { throw TensorError.foreignStorage(op: op, backend: name) }
        guard t.offset >= 0, t.offset + t.count <= storage.count else {
            throw TensorError.backend("\(op): tensor of shape \(t.shape) at \(t.offset) over \(storage.count) values")
        }
        return storage.pointer + t.offset
    }
}

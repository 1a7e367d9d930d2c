import FluxCore

/// The CPU backend: every op in plain Swift over f32, threaded over rows. It is the reference that the GPU backend
/// is tested against, so each op is written for clarity first; only the matrix product is tuned (`Gemm.swift`).
public final class CPUBackend: Backend {
    public let name = "cpu"

    public init() {}

    public func upload(_ host: HostTensor) throws -> Tensor {
        let (t, out) = empty(host.shape)
        convertToFloat(host.bytes, dtype: host.dtype, into: UnsafeMutableBufferPointer(start: out, count: t.count))
        return t
    }

    public func download(_ tensor: Tensor) throws -> HostTensor {
        let x = try values(tensor, "download")
        return HostTensor(copying: UnsafeRawBufferPointer(start: x, count: tensor.count * 4),
                          shape: tensor.shape, dtype: .f32)
    }

    /// Ops run to completion when called: nothing to wait for.
    public func synchronize() throws {}
}

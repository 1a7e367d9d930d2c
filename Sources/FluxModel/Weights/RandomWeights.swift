import Dispatch
import FluxCore
import Foundation

/// Seeded random weights of any shape a module asks for, for benchmarking full-size architectures without a download
/// (`fluxserve bench --model random-dev`). Deterministic per (seed, weight name): matrices N(0, 1/fan_in), norm scales
/// 1 + N(0, 0.01), other vectors N(0, 0.02²); stored as bf16 like the published checkpoints. Generated on all cores,
/// or on the device when the backend can (`RandomFill`, the same numbers).
public struct RandomWeights: Sendable {
    public let seed: UInt64
    public let description: String

    public init(seed: UInt64, description: String) {
        self.seed = seed
        self.description = description
    }

    /// Values per independently seeded stream (so the host draws on all cores and a device draws in parallel).
    public static let chunkLength = 1 << 20

    /// How `name`'s values are drawn: the stream seed and the normal distribution.
    public func recipe(_ name: String, shape: [Int]) -> (seed: UInt64, mean: Float, std: Float) {
        let isNormScale = shape.count == 1 && (name.hasSuffix(".scale") || name.contains("norm"))
            && !name.hasSuffix(".bias")
        let std: Float = shape.count >= 2 ? 1 / Float(max(shape.dropFirst().reduce(1, *), 1)).squareRoot()
            : isNormScale ? 0.1 : 0.02
        var nameHash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a of the name
        for byte in name.utf8 { nameHash = (nameHash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        return (seed ^ nameHash, isNormScale ? 1 : 0, std)
    }

    /// `name`'s weights in `backend`'s memory: drawn there when it is a `RandomFill` (the same numbers), else on the
    /// host and uploaded.
    public func tensor(_ name: String, shape: [Int], on backend: any Backend) throws -> Tensor {
        guard let fill = backend as? any RandomFill else { return try backend.upload(tensor(name, shape: shape)) }
        let r = recipe(name, shape: shape)
        return try fill.randomNormal(shape: shape, seed: r.seed, chunkLength: Self.chunkLength, mean: r.mean, std: r.std)
    }

    public func tensor(_ name: String, shape: [Int]) -> HostTensor {
        let count = shape.reduce(1, *)
        let (base, mean, std) = recipe(name, shape: shape)
        let buffer = HostBuffer(byteCount: count * 2)
        let out = buffer.pointer.bindMemory(to: UInt16.self, capacity: count)
        let chunk = Self.chunkLength, chunks = (count + chunk - 1) / chunk
        let target = UncheckedPointer(out)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * chunk, hi = min(count, lo + chunk)
            var noise = GaussianNoise(seed: base &+ UInt64(c) &* 0x9E37_79B9_7F4A_7C15)
            let values = noise.sample(hi - lo)
            for i in lo..<hi { target.pointer[i] = floatToBfloat16(mean + std * values[i - lo]) }
        }
        return HostTensor(shape: shape, dtype: .bf16, bytes: UnsafeRawBufferPointer(start: buffer.pointer,
                                                                                   count: count * 2), owner: buffer)
    }
}

/// A pointer handed to worker threads that write disjoint ranges.
private struct UncheckedPointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt16>
    init(_ pointer: UnsafeMutablePointer<UInt16>) { self.pointer = pointer }
}

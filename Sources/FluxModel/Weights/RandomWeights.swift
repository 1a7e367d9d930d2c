import Dispatch
import FluxCore
import Foundation

/// Seeded random weights of any shape a module asks for, for benchmarking full-size architectures without a download
/// (`fluxserve bench --model random-dev`). Deterministic per (seed, weight name): matrices N(0, 1/fan_in), norm scales
/// 1 + N(0, 0.01), other vectors N(0, 0.02²); stored as bf16 like the published checkpoints. Generated on all cores.
public struct RandomWeights: Sendable {
    public let seed: UInt64
    public let description: String

    public init(seed: UInt64, description: String) {
        self.seed = seed
        self.description = description
    }

    public func tensor(_ name: String, shape: [Int]) -> HostTensor {
        let count = shape.reduce(1, *)
        let isNormScale = shape.count == 1 && (name.hasSuffix(".scale") || name.contains("norm"))
            && !name.hasSuffix(".bias")
        let std: Float = shape.count >= 2 ? 1 / Float(max(shape.dropFirst().reduce(1, *), 1)).squareRoot()
            : isNormScale ? 0.1 : 0.02
        let mean: Float = isNormScale ? 1 : 0
        let buffer = HostBuffer(byteCount: count * 2)
        let out = buffer.pointer.bindMemory(to: UInt16.self, capacity: count)
        let chunk = 1 << 20, chunks = (count + chunk - 1) / chunk
        var nameHash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a of the name
        for byte in name.utf8 { nameHash = (nameHash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        let base = seed ^ nameHash, target = UncheckedPointer(out)
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

import FluxCore
import Foundation

extension CPUBackend: RandomFill {
    /// The draws of `RandomFill` (SplitMix64 → Box–Muller in f64, chunk by chunk), rounded to bf16 values and stored
    /// as f32; chunks in parallel.
    public func randomNormal(shape: [Int], seed: UInt64, chunkLength: Int, mean: Float, std: Float) throws -> Tensor {
        try expect(chunkLength > 0 && chunkLength % 2 == 0, "randomNormal", "chunkLength", [chunkLength],
                   "even and positive")
        let (out, y) = empty(shape)
        let count = out.count, chunks = (count + chunkLength - 1) / chunkLength
        let shared = UncheckedSendable(y)
        parallelFor(chunks) { range in
            for c in range {
                var state = seed &+ UInt64(c) &* 0x9E37_79B9_7F4A_7C15
                func uniform() -> Double {
                    state &+= 0x9E37_79B9_7F4A_7C15
                    var z = state
                    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                    return (Double((z ^ (z >> 31)) >> 11) + 1) / 9_007_199_254_740_992
                }
                let lo = c * chunkLength, hi = min(count, lo + chunkLength)
                for i in stride(from: lo, to: hi, by: 2) {
                    let radius = (-2 * log(uniform())).squareRoot(), angle = 2 * Double.pi * uniform()
                    shared.value[i] = roundedToBF16(mean + std * Float(radius * cos(angle)))
                    if i + 1 < hi { shared.value[i + 1] = roundedToBF16(mean + std * Float(radius * sin(angle))) }
                }
            }
        }
        return out
    }
}

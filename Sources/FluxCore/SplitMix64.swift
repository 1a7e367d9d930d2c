/// SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit seeded generator whose stream is the same on every machine and
/// in every language that implements it — the one source of reproducible randomness here: seeded noise
/// (`GaussianNoise`), random weights, conformance and fuzz inputs. Not for secrets.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The state after the draws so far; a generator made with `SplitMix64(seed: state)` continues the stream.
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

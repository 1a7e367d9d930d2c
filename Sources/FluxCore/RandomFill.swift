/// A backend that draws seeded normal random tensors in its own memory, so that benchmark weights (`random-dev`) need
/// not be drawn on the host and uploaded. Optional: callers check `backend as? any RandomFill` and otherwise draw on
/// the host.
///
/// The numbers are those of FluxModel's `GaussianNoise` run chunk by chunk, as `RandomWeights` draws on the host:
/// element i belongs to chunk c = i / chunkLength, whose SplitMix64 stream starts at `seed + c · 0x9E3779B97F4A7C15`
/// (wrapping); within the chunk, element k takes Box–Muller pair k / 2 (draws 2·(k/2) + 1 and + 2 of the stream, as
/// uniforms in (0, 1] from the top 53 bits, in f64), the cosine for even k and the sine for odd k; then
/// `bf16(mean + std · Float(z))`, rounded to nearest even.
public protocol RandomFill {
    /// A bf16 tensor of `shape` filled as above. chunkLength is even and positive.
    func randomNormal(shape: [Int], seed: UInt64, chunkLength: Int, mean: Float, std: Float) throws -> Tensor
}

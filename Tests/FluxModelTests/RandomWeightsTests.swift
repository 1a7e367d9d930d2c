import FluxCPU
import FluxCore
import Testing

@testable import FluxModel

/// `random-dev` weights are the same numbers whether drawn on the host and uploaded or drawn by a `RandomFill`
/// backend (the CUDA backend's conformance case ties its draws to the CPU backend's).
@Suite struct RandomWeightsTests {
    @Test func backendDrawsEqualHostDraws() throws {
        let cpu = CPUBackend(), random = RandomWeights(seed: 2024, description: "test")
        // Past one chunk, with an odd tail in the last one; a matrix and a norm scale.
        for (name, shape) in [("blocks.0.linear.weight", [3, 349_526]), ("blocks.0.norm.scale", [7])] {
            let host = try cpu.floats(try cpu.upload(random.tensor(name, shape: shape)))
            let drawn = try cpu.floats(try random.tensor(name, shape: shape, on: cpu))
            #expect(host.count == drawn.count)
            #expect(host == drawn, "\(name)")
        }
        let scale = try cpu.floats(try random.tensor("blocks.0.norm.scale", shape: [7], on: cpu))
        #expect(scale.allSatisfy { abs($0 - 1) < 0.6 })
    }
}

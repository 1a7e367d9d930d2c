import FluxCPU
import FluxCore
import Testing

@testable import FluxModel

/// The schedule's modulations made ahead in one product per layer give the per-step forward's velocities, with and
/// without the guidance embedding, for one and two images; a conditioning made for other timesteps is refused.
@Suite struct ScheduleConditioningTests {
    let cpu = CPUBackend()

    func tinyTransformer(guidance: Bool) throws -> FluxTransformer {
        var config = FluxConfig()
        (config.numLayers, config.numSingleLayers, config.attentionHeadDim, config.numAttentionHeads) = (2, 2, 16, 2)
        (config.inChannels, config.jointAttentionDim, config.pooledProjectionDim) = (8, 24, 12)
        config.axesDimsRope = [4, 6, 6]
        config.guidanceEmbeds = guidance
        return try FluxTransformer(config: config,
                                   weights: ModuleWeights(backend: cpu, random: RandomWeights(seed: 7, description: "t")))
    }

    @Test(arguments: [(true, 1), (true, 2), (false, 2)])
    func aheadEqualsPerStep(guidance: Bool, batch: Int) throws {
        let t = try tinyTransformer(guidance: guidance)
        var noise = GaussianNoise(seed: 3)
        let (imageTokens, textTokens) = (6, 5)
        let img = try cpu.tensor(noise.sample(batch * imageTokens * 8), shape: [batch, imageTokens, 8])
        let txt = try cpu.tensor(noise.sample(batch * textTokens * 24), shape: [batch, textTokens, 24])
        let y = try cpu.tensor(noise.sample(batch * 12), shape: [batch, 12])
        let pe = try t.positionEmbedding(txtIds: (0..<textTokens).map { _ in [0, 0, 0] },
                                         imgIds: (0..<imageTokens).map { [0, Double($0 / 3), Double($0 % 3)] })
        let timesteps: [[Float]] = [[1.0, 0.9], [0.63, 0.5], [0.21, 0.2]].map { Array($0.prefix(batch)) }
        let guidance: [[Float]]? = guidance ? timesteps.map { _ in Array(repeating: 3.5, count: batch) } : nil
        let ahead = try t.conditioning(y: y, timesteps: timesteps, guidance: guidance)
        for (i, ts) in timesteps.enumerated() {
            let perStep = try cpu.floats(t(img: img, txt: txt, y: y, timesteps: ts, guidance: guidance?[i], pe: pe))
            let made = try cpu.floats(t(img: img, txt: txt, y: y, timesteps: ts, guidance: guidance?[i], pe: pe,
                                        conditioning: ahead, step: i))
            let scale = perStep.map(abs).max() ?? 1
            let worst = zip(perStep, made).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-5 * scale, "step \(i): \(worst)")
        }
        #expect(throws: ModelError.self) {
            _ = try t(img: img, txt: txt, y: y, timesteps: timesteps[1], guidance: guidance?[1], pe: pe,
                      conditioning: ahead, step: 0)
        }
        #expect(throws: ModelError.self) {
            _ = try t(img: img, txt: txt, y: y, timesteps: timesteps[0], guidance: guidance?[0], pe: pe,
                      conditioning: ahead, step: 3)
        }
    }
}

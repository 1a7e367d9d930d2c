import FluxCPU
import FluxCore
import FluxModel
import Foundation
import Testing

/// The flow-match Euler schedule against diffusers' `FlowMatchEulerDiscreteScheduler` driven as `FluxPipeline` drives it
/// (`tools/reference/make_scheduler_fixtures.py`): dev and schnell configs, many step counts and image sizes.
@Suite struct SchedulerTests {
    struct Case: Decodable {
        let name: String
        let config: SchedulerConfig
        let steps: Int
        let height: Int
        let width: Int
        let image_seq_len: Int
        let mu: Double
        let sigmas: [Float]
        let timesteps: [Float]
        let model_timesteps: [Float]
        let step_sample: [Float]
        let step_velocity: [Float]
        let step_result: [Float]
    }

    static let cases: [Case] = {
        guard let data = FileManager.default.contents(atPath: fixturePath("scheduler", "cases.json")) else { return [] }
        return (try? JSONDecoder().decode([Case].self, from: data)) ?? []
    }()

    @Test func fixturesArePresent() { #expect(Self.cases.count >= 20) }

    @Test(arguments: cases.indices) func scheduleMatchesDiffusers(_ index: Int) throws {
        let c = Self.cases[index]
        let schedule = try c.config.schedule(steps: c.steps, imageSeqLen: c.image_seq_len)
        #expect(abs(schedule.mu - c.mu) < 1e-12, "\(c.name) mu")
        #expect(maxRelativeError(schedule.sigmas, c.sigmas) <= 1e-6, "\(c.name) \(c.steps) steps: sigmas")
        #expect(maxRelativeError(schedule.timesteps, c.timesteps) <= 1e-6, "\(c.name) \(c.steps) steps: timesteps")
        #expect(maxRelativeError((0..<c.steps).map(schedule.modelTimestep), c.model_timesteps) <= 1e-6)

        let cpu = CPUBackend()
        let stepped = try schedule.step(0, sample: try cpu.tensor(c.step_sample, shape: [1, 4, 3]),
                                        velocity: try cpu.tensor(c.step_velocity, shape: [1, 4, 3]), on: cpu)
        #expect(maxRelativeError(try cpu.floats(stepped), c.step_result) <= 1e-6)
    }

    @Test func unsupportedOptionsAreRefused() throws {
        var config = SchedulerConfig.dev
        config.useKarrasSigmas = true
        #expect(throws: ModelError.self) { try config.validate(source: "test") }
        #expect(throws: ModelError.self) { try SchedulerConfig.dev.schedule(steps: 0, imageSeqLen: 4096) }
    }
}

import FluxCPU
import FluxCore
import FluxModel
import Foundation
import Testing

/// `generate`'s library path on the built-in demo model: reproducible seeds, per-image seeds in a batch, requests
/// refused before any work, and images that come out as PNGs.
@Suite struct GenerationTests {
    static let pipeline: FluxPipeline? = try? FluxPipeline(
        try PipelineComponents.resolve(demoModelPath), backend: CPUBackend())

    func request(seed: UInt64, images: Int = 1, steps: Int = 3) -> GenerationRequest {
        GenerationRequest(prompts: ["a red circle"], width: 64, height: 48, steps: steps, guidanceScale: 3.5, seed: seed,
                          imagesPerPrompt: images, maxSequenceLength: 16)
    }

    @Test func demoModelLoads() throws {
        let components = try PipelineComponents.resolve(demoModelPath)
        #expect(try PipelineDefaults.of(components).width == 128)
        #expect(Self.pipeline != nil)
    }

    @Test func sameSeedSameImageAndBatchImagesFollowTheirSeeds() throws {
        let pipeline = try #require(Self.pipeline)
        let a = try pipeline.generate(request(seed: 7))
        let b = try pipeline.generate(request(seed: 7))
        #expect(a.images.floats() == b.images.floats())
        let c = try pipeline.generate(request(seed: 8))
        #expect(a.images.floats() != c.images.floats())
        // Image 2 of a batch seeded 7 is image 1 of a run seeded 8.
        let batch = try pipeline.generate(request(seed: 7, images: 2))
        #expect(batch.images.shape == [2, 3, 48, 64])
        #expect(maxRelativeError(Array(batch.images.floats()[(3 * 48 * 64)...]), c.images.floats()) < 1e-5)
        let values = a.images.floats()
        #expect(values.allSatisfy { $0 >= 0 && $0 <= 1 })
        let png = try PNG.encode(rgb: a.rgb(0), width: 64, height: 48, text: [("prompt", "a red circle")])
        #expect(try PNG.chunks(png).map(\.type).contains("IDAT"))
    }

    @Test func badRequestsAreRefusedBeforeWork() throws {
        let pipeline = try #require(Self.pipeline)
        // The shared rules name the parameter; the pipeline's own limits are ModelErrors.
        func refused(_ parameter: GenerationRuleError.Parameter, _ change: (inout GenerationRequest) -> Void) {
            var r = request(seed: 1)
            change(&r)
            #expect(throws: GenerationRuleError.self) { try pipeline.validate(r) }
            do { try pipeline.validate(r) } catch let error as GenerationRuleError {
                #expect(error.parameter == parameter)
            } catch { Issue.record("\(error)") }
        }
        refused(.width) { $0.width = 100 }
        refused(.steps) { $0.steps = 0 }
        refused(.guidance) { $0.guidanceScale = .nan }
        refused(.height) { $0.height = 1 << 20 }
        refused(.cacheThreshold) { $0.cacheThreshold = 5 }
        refused(.prompt) { $0.prompts = ["  \n"] }
        var r = request(seed: 1)
        r.maxSequenceLength = 1000
        #expect(throws: ModelError.self) { try pipeline.validate(r) }
        r = request(seed: 1, steps: 1001)
        #expect(throws: ModelError.self) { try pipeline.validate(r) }
    }

    @Test func hubIdsResolveInTheLocalCacheOnly() throws {
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("hf-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: cache) }
        let snapshot = cache.appendingPathComponent("models--org--tiny/snapshots/abc123")
        try FileManager.default.createDirectory(at: snapshot.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: demoModelPath, toPath: snapshot.path)
        try FileManager.default.createDirectory(at: cache.appendingPathComponent("models--org--tiny/refs"),
                                                withIntermediateDirectories: true)
        try Data("abc123".utf8).write(to: cache.appendingPathComponent("models--org--tiny/refs/main"))
        let hub = HubCache(root: cache.path)
        #expect(try hub.snapshot("org/tiny") == snapshot.path)
        #expect(try PipelineComponents.resolve(try hub.snapshot("org/tiny")).path == snapshot.path)
        #expect(throws: ModelError.self) { try hub.snapshot("org/missing") }
        #expect(HubCache.looksLikeId("org/name") && !HubCache.looksLikeId("/abs/path") && !HubCache.looksLikeId("a/b/c")
                && !HubCache.looksLikeId("../x"))
    }

    @Test func optionsForSingleFilesAreRefusedForPipelineFolders() throws {
        for overrides in [PipelineComponents.Overrides(textEncoders: demoModelPath),
                          PipelineComponents.Overrides(vae: demoModelPath + "/vae")] {
            #expect(throws: ModelError.self) { try PipelineComponents.resolve(demoModelPath, overrides: overrides) }
        }
        #expect(throws: ModelError.self) { try PipelineComponents.resolve(demoModelPath + "/no-such-folder") }
    }
}

import Dispatch
import FluxModel
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
@testable import FluxServer

/// A stand-in model: instant or slow steps, solid-colour images from the seed, and a record of every batch.
final class FakeGenerator: ImageGenerator, @unchecked Sendable {
    let modelName = "fake"
    let defaults = ModelDefaults(width: 64, height: 64, steps: 4, guidance: 3.5)
    /// Seconds per step.
    let stepDelay: Double
    let batches = Locked<[ImageBatch]>([])
    /// The last step each batch reached, in order.
    let lastSteps = Locked<[Int]>([])
    /// Batches that returned or threw.
    let finished = Locked(0)
    let failPrompt: String?
    /// With `holdFirstBatch`, the first batch waits here before its first step until `release()` (at most 30 s), so
    /// a test can queue, cancel or drain around a running job however slow the machine is.
    private let gate = DispatchSemaphore(value: 0)
    let holdFirstBatch: Bool
    /// What the fake says it is, for the edit rules (`/v1/images/edits` on Fill or Kontext).
    let variant: ModelVariant
    /// What LoRAs may adapt (a real model's, e.g. the tiny pipeline's), for the catalog's check; nil: form only.
    let targets: LoRATargets?
    /// The LoRA set in effect, and each set switched to, as `name:scale,…` ("none" for none).
    let loras = Locked(LoRAStack())
    let loraSwitches = Locked<[String]>([])

    init(stepDelay: Double = 0, failPrompt: String? = nil, holdFirstBatch: Bool = false, variant: ModelVariant = .base,
         loraTargets: LoRATargets? = nil) {
        self.stepDelay = stepDelay
        self.failPrompt = failPrompt
        self.holdFirstBatch = holdFirstBatch
        self.variant = variant
        self.targets = loraTargets
    }

    func loraTargets() throws -> LoRATargets? { targets }

    func setLoRAs(_ stack: LoRAStack) throws -> Bool {
        guard !stack.isSameSet(as: loras.current) else { return false }
        loras.withLock { $0 = stack }
        loraSwitches.withLock { $0.append(stack.summary) }
        return true
    }

    func release() { gate.signal() }

    func load() throws {}

    func generate(_ batch: ImageBatch, onStep: (BatchStep) throws -> Void) throws -> BatchOutput {
        let first = batches.withLock { batches in
            batches.append(batch)
            return batches.count == 1
        }
        lastSteps.withLock { $0.append(0) }
        defer { finished.withLock { $0 += 1 } }
        if holdFirstBatch && first { _ = gate.wait(timeout: .now() + 30) }
        if let failPrompt, batch.prompts.contains(failPrompt) { throw FakeError.failed }
        for step in 1...batch.steps {
            if stepDelay > 0 { Thread.sleep(forTimeInterval: stepDelay) }
            lastSteps.withLock { $0[$0.count - 1] = step }
            try onStep(BatchStep(step: step, total: batch.steps, elapsed: Double(step) * stepDelay) { _ in
                ([UInt8](repeating: 128, count: 2 * 2 * 3), 2, 2)
            })
        }
        let images = batch.seeds.map { seed in
            [UInt8](repeating: UInt8(truncatingIfNeeded: seed), count: batch.width * batch.height * 3)
        }
        return BatchOutput(images: images, timings: ["encode": 0.001, "denoise": 0.002, "decode": 0.003])
    }

    func memoryInUse() -> (used: Int, total: Int)? { nil }

    enum FakeError: Error { case failed }
}

func temporaryDirectory() throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("fluxserve-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}

func testConfig(_ directory: String) -> ServerConfig {
    var config = ServerConfig(dataDirectory: directory)
    config.port = 0
    config.limits.minSide = 32
    config.limits.maxSide = 256
    config.limits.maxSteps = 1000
    config.limits.maxPromptCharacters = 100
    config.maxBodyBytes = 16 * 1024
    config.syncTimeout = 30
    return config
}

let testLogger: Logger = {
    var logger = Logger(label: "fluxserve-test")
    logger.logLevel = ProcessInfo.processInfo.environment["FLUXSERVE_TEST_LOG"] == nil ? .critical : .debug
    return logger
}()

/// Builds a server on a fresh data directory (or `directory`), runs `body` against it through Hummingbird's router
/// test client once the model is ready, and removes the directory afterwards.
func withServer(generator: any ImageGenerator = FakeGenerator(), directory: String? = nil,
                configure: (inout ServerConfig) -> Void = { _ in },
                _ body: @Sendable (any TestClientProtocol, FluxServerApp) async throws -> Void) async throws {
    let dir = try directory ?? temporaryDirectory()
    defer { if directory == nil { try? FileManager.default.removeItem(atPath: dir) } }
    var config = testConfig(dir)
    configure(&config)
    let readinessHeaders: HTTPFields = config.apiKeys.first.map { [.authorization: "Bearer \($0)"] } ?? [:]
    let app = try await buildApplication(config: config, generator: generator, logger: testLogger)
    try await app.application.test(.router) { client in
        try await waitUntilReady(client, headers: readinessHeaders)
        try await body(client, app)
    }
    try app.runtime.store.close()
}

func waitUntilReady(_ client: any TestClientProtocol, headers: HTTPFields = [:]) async throws {
    for _ in 0..<500 {
        let response = try await client.execute(uri: "/readyz", method: .get, headers: headers)
        if response.status == .ok { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("server did not become ready")
}

extension TestResponse {
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
    }
    var text: String { String(decoding: body.readableBytesView, as: UTF8.self) }
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
}

func jsonBody(_ object: [String: Any]) -> ByteBuffer {
    ByteBuffer(bytes: (try? JSONSerialization.data(withJSONObject: object)) ?? Data())
}

let jsonHeaders: HTTPFields = [.contentType: "application/json"]

/// Polls a job until `done` says so (bounded: ~10 s).
@discardableResult
func waitForJob(_ client: any TestClientProtocol, _ id: String, headers: HTTPFields = [:],
                until done: ([String: Any]) -> Bool = { ["succeeded", "failed", "cancelled"].contains($0["status"] as? String ?? "") })
    async throws -> [String: Any]
{
    var job: [String: Any] = [:]
    for _ in 0..<1000 {
        job = try await client.execute(uri: "/v1/jobs/\(id)", method: .get, headers: headers).json
        if done(job) { return job }
        if ["succeeded", "failed", "cancelled"].contains(job["status"] as? String ?? "") { break }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("job \(id) never reached the expected state; last: \(job)")
    return job
}

/// Waits (up to 10 s) until `condition` holds.
func eventually(_ condition: () -> Bool) async throws {
    for _ in 0..<1000 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
}

/// Width and height from a PNG's IHDR chunk.
func pngSize(_ bytes: [UInt8]) -> (Int, Int)? {
    guard bytes.count > 24, bytes[0] == 0x89, bytes[1] == 0x50 else { return nil }
    func be(_ i: Int) -> Int { Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3]) }
    return (be(16), be(20))
}

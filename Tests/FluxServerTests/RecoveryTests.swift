import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import FluxServer

@Suite struct RecoveryTests {
    func record(_ kind: JobKind, prompt: String) -> JobRecord {
        let parameters = JobParameters(prompt: prompt, n: 1, width: 64, height: 64, steps: 4, guidance: 3.5, seed: 1,
                                       cacheThreshold: 0)
        return JobRecord(id: JobRecord.newID(), kind: kind, status: .queued, parameters: parameters, owner: "anonymous",
                         requestFingerprint: "{}", createdAt: Date(), attempts: 0, images: [], timings: [:])
    }

    /// What a killed process leaves: a running job, queued jobs, a running synchronous request, a job that already
    /// crashed the server three times. A new server re-runs the first two kinds once each and fails the others.
    @Test func restartRequeuesWhatWasRunning() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let running = record(.async, prompt: "was running"), queued = record(.async, prompt: "was queued")
        let sync = record(.sync, prompt: "sync"), poison = record(.async, prompt: "poison")
        do {
            let store = try JobStore(directory: dir)
            for job in [running, queued, sync, poison] { _ = try await store.insert(job) }
            _ = try await store.markRunning([running.id, sync.id, poison.id], at: Date())
            for _ in 0..<2 {
                try await store.requeue([poison.id])
                _ = try await store.markRunning([poison.id], at: Date())
            }
            // A half-written PNG from the killed process.
            try Data([1, 2, 3]).write(to: store.filesDirectory.appendingPathComponent(".x.123.tmp"))
            try store.close()
        }
        let generator = FakeGenerator()
        try await withServer(generator: generator, directory: dir) { client, app in
            let first = try await waitForJob(client, running.id)
            #expect(first["status"] as? String == "succeeded")
            #expect(first["attempts"] as? Int == 2)
            let second = try await waitForJob(client, queued.id)
            #expect(second["status"] as? String == "succeeded")
            #expect(second["attempts"] as? Int == 1)
            let interrupted = try await waitForJob(client, sync.id)
            #expect((interrupted["error"] as? [String: Any])?["code"] as? String == "interrupted")
            let failed = try await waitForJob(client, poison.id)
            #expect((failed["error"] as? [String: Any])?["code"] as? String == "too_many_attempts")
            // Each re-queued job ran exactly once, in submission order.
            #expect(generator.batches.current.flatMap(\.prompts) == ["was running", "was queued"])
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: app.runtime.store.filesDirectory.path)
            #expect(!leftovers.contains(".x.123.tmp"))
        }
    }

    @Test func aSecondServerOnTheSameDataIsRefused() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lock = try DataDirectoryLock(directory: dir)
        await #expect(throws: StoreError.self) {
            _ = try await buildApplication(config: testConfig(dir), generator: FakeGenerator(), logger: testLogger)
        }
        _ = lock
    }

    @Test func expiredResultsAreDeleted() async throws {
        try await withServer(configure: { $0.resultTTL = 0.05 }) { client, app in
            let submitted = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                     body: jsonBody(["prompt": "short-lived"]))
            let id = try #require(submitted.json["id"] as? String)
            try await waitForJob(client, id)
            let file = app.runtime.store.fileURL(JobRecord.fileID(job: id, index: 0))
            #expect(FileManager.default.fileExists(atPath: file.path))
            try await Task.sleep(for: .milliseconds(100))
            await Sweeper(runtime: app.runtime).sweep()
            #expect(try await client.execute(uri: "/v1/jobs/\(id)", method: .get).status == .notFound)
            #expect(!FileManager.default.fileExists(atPath: file.path))
        }
    }
}

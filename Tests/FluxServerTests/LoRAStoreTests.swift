import FluxCore
import FluxModel
import Foundation
import GRDB
import Logging
import Testing
@testable import FluxServer

/// LoRA choices in the store (migration v4), across a reopen and a restart's recovery; the queue batching only
/// equal LoRA sets; the catalog refusing a job whose file is gone or changed.
@Suite struct LoRAStoreTests {
    static let kohya = LoRAChoice(name: "kohya", scale: 0.7, sha256: String(repeating: "a", count: 64))
    static let xlabs = LoRAChoice(name: "xlabs", scale: -1, sha256: String(repeating: "b", count: 64))

    static func record(_ loras: [LoRAChoice], prompt: String = "p") -> JobRecord {
        var parameters = JobParameters(prompt: prompt, n: 1, width: 64, height: 64, steps: 4, guidance: 3.5, seed: 1,
                                       cacheThreshold: 0)
        parameters.loras = loras
        return JobRecord(id: JobRecord.newID(), kind: .async, status: .queued, parameters: parameters, owner: "o",
                         requestFingerprint: "{}", createdAt: Date(), attempts: 0, images: [], timings: [:])
    }

    @Test func loRAsSurviveAReopenAndARestartsRecovery() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let stacked = Self.record([Self.kohya, Self.xlabs]), plain = Self.record([])
        do {
            let store = try JobStore(directory: dir)
            for job in [stacked, plain] { _ = try await store.insert(job) }
            _ = try await store.markRunning([stacked.id], at: Date())
            try store.close()
        }
        let store = try JobStore(directory: dir)
        defer { try? store.close() }
        #expect(try await store.job(stacked.id)?.parameters.loras == [Self.kohya, Self.xlabs])
        #expect(try await store.job(plain.id)?.parameters.loras == [])
        let recovery = try await store.recover(maxAttempts: 3, at: Date())
        #expect(recovery.requeued == [stacked.id])
        #expect(recovery.queued.map(\.parameters.loras) == [[Self.kohya, Self.xlabs], []])
        // Stored in a column of its own, as JSON; the `parameters` JSON keeps its old form.
        let row = try store.database.read { db in
            try Row.fetchOne(db, sql: "SELECT loras, parameters FROM job WHERE id = ?", arguments: [stacked.id])
        }
        let loras: String = row?["loras"] ?? "", parameters: String = row?["parameters"] ?? ""
        #expect(loras.hasPrefix(#"[{"name":"kohya","scale":0.7,"sha256":"#), "\(loras)")
        #expect(!parameters.contains("kohya") && !parameters.contains("loras"), "\(parameters)")
    }

    /// Jobs batch only with an equal LoRA set: same names, scales and order.
    @Test func onlyEqualLoRASetsShareABatch() async throws {
        let queue = JobQueue(capacity: 16, maxBatch: 8)
        let reordered = [Self.xlabs, Self.kohya]
        var rescaled = Self.kohya
        rescaled.scale = 0.5
        let jobs = [Self.record([Self.kohya]), Self.record([]), Self.record([Self.kohya]), Self.record([rescaled]),
                    Self.record([Self.kohya, Self.xlabs]), Self.record(reordered), Self.record([]),
                    Self.record([Self.kohya, Self.xlabs])]
        for job in jobs { await queue.enqueue(QueuedJob(job), reserved: false) }
        var batches: [[String]] = []
        for _ in 0..<5 { batches.append((await queue.nextBatch() ?? []).map(\.id)) }
        let id = jobs.map(\.id)
        #expect(batches == [[id[0], id[2]], [id[1], id[6]], [id[3]], [id[4], id[7]], [id[5]]])
        #expect(await queue.depth == 0)
        #expect(Self.record([Self.kohya]).parameters.batchKey != Self.record([]).parameters.batchKey)
    }

    /// At run time the catalog gives the cached file for each choice, and refuses one that is gone or whose file
    /// changed since submission (a re-queued job after a restart with another folder).
    @Test func theCatalogRefusesAGoneOrChangedFile() throws {
        let dir = try LoRATestFiles.directory(withUnusable: false)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try LoRACatalog(directory: dir, targets: try LoRATestFiles.tinyTargets(), logger: testLogger)
        let sha = try #require(catalog.entry("kohya")?.sha256)
        let stack = try catalog.stack(for: [LoRAChoice(name: "kohya", scale: 0.25, sha256: sha)])
        #expect(stack.entries.map(\.file.name) == ["kohya"] && stack.entries.map(\.scale) == [0.25])
        #expect(stack.entries.first?.file.path == catalog.entry("kohya")?.file?.path)
        #expect(throws: LoRACatalogError.self) { try catalog.stack(for: [Self.kohya]) }  // another SHA-256
        #expect(throws: LoRACatalogError.self) {
            try catalog.stack(for: [LoRAChoice(name: "gone", scale: 1, sha256: sha)])
        }
        #expect(throws: LoRACatalogError.self) {
            try LoRACatalog(directory: dir + "/missing", targets: nil, logger: testLogger)
        }
    }

    @Test func plainNames() {
        for name in ["kohya", "my-style_v2", "a.b", "Ünïcode name"] {
            #expect(LoRACatalog.isPlainName(name), "\(name)")
        }
        let refused = ["", ".hidden", "..", "../x", "a/b", "a\\b", "a..b", "x\u{0}y", String(repeating: "n", count: 201)]
        for name in refused {
            #expect(!LoRACatalog.isPlainName(name), "\(name)")
        }
    }
}

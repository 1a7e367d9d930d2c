import FluxCore
import FluxModel
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import FluxServer

/// Issue 12, items 4 and 5: `GET /v1/jobs` (the caller's jobs, newest first, paginated) and `GET /v1/models`.
@Suite struct JobListAndModelsTests {
    static let keyA = "sk-list-a-0123456789abcdef", keyB = "sk-list-b-0123456789abcdef"
    static func bearer(_ key: String) -> HTTPFields { [.authorization: "Bearer \(key)", .contentType: "application/json"] }

    func submit(_ client: any TestClientProtocol, _ prompt: String, headers: HTTPFields = jsonHeaders) async throws
        -> String
    {
        let response = try await client.execute(uri: "/v1/jobs", method: .post, headers: headers,
                                                body: jsonBody(["prompt": prompt]))
        #expect(response.status == .accepted, "\(response.text)")
        return try #require(response.json["id"] as? String)
    }

    func ids(_ response: TestResponse) -> [String] {
        (response.json["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
    }

    @Test func listsNewestFirstInPages() async throws {
        try await withServer { client, _ in
            var submitted: [String] = []
            for i in 0..<5 { submitted.append(try await submit(client, "job \(i)")) }
            let newestFirst = Array(submitted.reversed())

            let all = try await client.execute(uri: "/v1/jobs", method: .get)
            #expect(all.status == .ok)
            #expect(all.json["object"] as? String == "list")
            #expect(ids(all) == newestFirst)
            #expect(all.json["has_more"] as? Bool == false)
            #expect(all.json["first_id"] as? String == newestFirst.first)
            #expect(all.json["last_id"] as? String == newestFirst.last)
            #expect((all.json["data"] as? [[String: Any]])?.first?["object"] as? String == "job")

            let first = try await client.execute(uri: "/v1/jobs?limit=2", method: .get)
            #expect(ids(first) == Array(newestFirst[0..<2]))
            #expect(first.json["has_more"] as? Bool == true)
            let cursor = try #require(first.json["last_id"] as? String)
            let second = try await client.execute(uri: "/v1/jobs?limit=2&after=\(cursor)", method: .get)
            #expect(ids(second) == Array(newestFirst[2..<4]))
            #expect(second.json["has_more"] as? Bool == true)
            let third = try await client.execute(uri: "/v1/jobs?limit=2&after=\(newestFirst[3])", method: .get)
            #expect(ids(third) == [newestFirst[4]])
            #expect(third.json["has_more"] as? Bool == false)
            let empty = try await client.execute(uri: "/v1/jobs?after=\(newestFirst[4])", method: .get)
            #expect(ids(empty).isEmpty)
            #expect(empty.json["first_id"] is NSNull && empty.json["last_id"] is NSNull)

            for (query, status, param) in [("limit=0", 422, "limit"), ("limit=101", 422, "limit"),
                                           ("limit=ten", 400, "limit"), ("after=job_000000000000000000000000", 422, "after")] {
                let bad = try await client.execute(uri: "/v1/jobs?\(query)", method: .get)
                #expect(bad.status.code == status, "\(query): \(bad.text)")
                #expect((bad.json["error"] as? [String: Any])?["param"] as? String == param, "\(query)")
            }
        }
    }

    @Test func withKeysEachKeySeesItsOwnJobs() async throws {
        try await withServer(configure: { $0.apiKeys = [Self.keyA, Self.keyB] }) { client, app in
            let a1 = try await submit(client, "a1", headers: Self.bearer(Self.keyA))
            let b1 = try await submit(client, "b1", headers: Self.bearer(Self.keyB))
            let a2 = try await submit(client, "a2", headers: Self.bearer(Self.keyA))
            let listA = try await client.execute(uri: "/v1/jobs", method: .get, headers: Self.bearer(Self.keyA))
            #expect(ids(listA) == [a2, a1])
            let listB = try await client.execute(uri: "/v1/jobs", method: .get, headers: Self.bearer(Self.keyB))
            #expect(ids(listB) == [b1])
            // Another key's job is no cursor for this one.
            let foreign = try await client.execute(uri: "/v1/jobs?after=\(a2)", method: .get,
                                                   headers: Self.bearer(Self.keyB))
            #expect(foreign.status == .unprocessableContent)
            #expect(try await client.execute(uri: "/v1/jobs", method: .get).status == .unauthorized)
            // The store holds the key's SHA-256, never the key.
            let stored = try #require(try await app.runtime.store.job(a1))
            #expect(stored.ownerKeyDigest == SHA256.hex(Self.keyA))
            let raw = try String(contentsOfFile: app.runtime.store.databasePath, encoding: .isoLatin1)
                + ((try? String(contentsOfFile: app.runtime.store.databasePath + "-wal", encoding: .isoLatin1)) ?? "")
            #expect(!raw.contains(Self.keyA))
        }
    }

    /// A database made before the key column opens, keeps its jobs, and gains the column (NULL for old rows).
    @Test func anOldDatabaseMigrates() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            // The v1 schema, as JobStore's first migration made it, with one job in it.
            let queue = try DatabaseQueue(path: dir + "/jobs.sqlite")
            try JobStore.migrator.migrate(queue, upTo: "v1")
            try await queue.write { db in
                try db.execute(sql: """
                    INSERT INTO job (id, kind, status, parameters, owner, request_fingerprint, created_at)
                    VALUES ('job_old', 'async', 'succeeded', ?, 'anonymous', '{}', 1)
                    """, arguments: [try JobStore.json(JobParameters(prompt: "old", n: 1, width: 64, height: 64,
                                                                     steps: 4, guidance: 3.5, seed: 1, cacheThreshold: 0))])
            }
            try queue.close()
        }
        let store = try JobStore(directory: dir)
        let old = try #require(try await store.job("job_old"))
        #expect(old.parameters.prompt == "old" && old.ownerKeyDigest == nil)
        #expect(try await store.jobs(ownerKeyDigest: nil, after: nil, limit: 10)?.jobs.map(\.id) == ["job_old"])
        #expect(try await store.jobs(ownerKeyDigest: "abc", after: nil, limit: 10)?.jobs.isEmpty == true)
        try store.close()
    }

    @Test func modelsAnswerAsOpenAIDoes() async throws {
        try await withServer { client, _ in
            let list = try await client.execute(uri: "/v1/models", method: .get)
            #expect(list.status == .ok)
            #expect(list.json["object"] as? String == "list")
            let models = try #require(list.json["data"] as? [[String: Any]])
            #expect(models.count == 1)
            #expect(models.first?["id"] as? String == "fake")
            #expect(models.first?["object"] as? String == "model")
            #expect(models.first?["owned_by"] as? String == "fluxserve")
            let created = try #require(models.first?["created"] as? Int)
            #expect(abs(created - Int(Date().timeIntervalSince1970)) < 3600)
            let one = try await client.execute(uri: "/v1/models/fake", method: .get)
            #expect(one.status == .ok)
            #expect(one.json["id"] as? String == "fake" && one.json["created"] as? Int == created)
            let other = try await client.execute(uri: "/v1/models/dall-e-3", method: .get)
            ErrorShapeTests.expectShape(other, status: .notFound, code: "model_not_found", param: "model", "other model")
        }
        try await withServer(configure: { $0.apiKeys = [Self.keyA] }) { client, _ in
            let anonymousList = try await client.execute(uri: "/v1/models", method: .get)
            let anonymousOne = try await client.execute(uri: "/v1/models/fake", method: .get)
            let withKey = try await client.execute(uri: "/v1/models", method: .get, headers: Self.bearer(Self.keyA))
            #expect(anonymousList.status == .unauthorized && anonymousOne.status == .unauthorized)
            #expect(withKey.status == .ok)
        }
    }
}

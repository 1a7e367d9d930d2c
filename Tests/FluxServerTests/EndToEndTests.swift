import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// The real `fluxserve serve --model demo` on a loopback port, driven over HTTP. One server at a time (they share
/// two CPU cores with the rest of the tests); every wait is bounded and every process is stopped.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct EndToEndTests {
    func withDataDirectory(_ body: (String) async throws -> Void) async throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try await body(root + "/data")
    }

    @Test func syncAsyncEventsCancelIdempotencyAndBadInput() async throws {
        try await withDataDirectory { data in
            let server = try ServeProcess(dataDirectory: data)
            defer { server.stop() }
            let http = HTTP(base: server.base)
            try await http.waitUntilReady()
            #expect(try await http.send("GET", "/healthz").status == 200)

            // OpenAI, both response formats.
            let b64 = try await http.send("POST", "/v1/images/generations",
                                          json: ["prompt": "a red circle", "size": "64x64", "steps": 4, "n": 2,
                                                 "response_format": "b64_json", "seed": 3])
            #expect(b64.status == 200, "\(b64.text)")
            let images = (b64.json["data"] as? [[String: Any]]) ?? []
            #expect(images.count == 2)
            for image in images {
                let png = Data(base64Encoded: image["b64_json"] as? String ?? "") ?? Data()
                #expect(pngSize(Array(png)).map { [$0.0, $0.1] } == [64, 64])
            }
            let url = try await http.send("POST", "/v1/images/generations", json: ["prompt": "a blue square"])
            #expect(url.status == 200, "\(url.text)")
            let link = ((url.json["data"] as? [[String: Any]])?.first?["url"] as? String) ?? ""
            #expect(link.hasPrefix(server.base + "/v1/files/"))
            let file = try await HTTP(base: "").send("GET", link)
            #expect(file.status == 200 && file.header("Content-Type") == "image/png")
            #expect(pngSize(Array(file.body)).map { [$0.0, $0.1] } == [128, 128])  // the demo's default size

            // A job, with its events.
            let job = try await http.send("POST", "/v1/jobs", json: ["prompt": "a green triangle", "steps": 8])
            #expect(job.status == 202)
            let id = job.json["id"] as? String ?? ""
            let events = try await http.send("GET", "/v1/jobs/\(id)/events")
            let names = events.text.split(separator: "\n").filter { $0.hasPrefix("event: ") }.map { $0.dropFirst(7) }
            #expect(names.first == "status" && names.last == "succeeded", "\(events.text)")
            let done = try await http.waitForJob(id)
            #expect(done["status"] as? String == "succeeded")
            #expect((done["progress"] as? [String: Any])?["step"] as? Int == 8)

            // Cancel a long job while it runs: it stops at its next step and the worker moves on.
            let long = try await http.send("POST", "/v1/jobs", json: ["prompt": "long", "steps": 1000,
                                                                      "size": "64x64"])
            let longID = long.json["id"] as? String ?? ""
            try await http.waitForJob(longID) { ($0["progress"] as? [String: Any])?["step"] as? Int ?? 0 >= 1 }
            let cancelled = try await http.send("DELETE", "/v1/jobs/\(longID)")
            #expect(cancelled.status == 200 && cancelled.json["status"] as? String == "cancelled")
            let next = try await http.send("POST", "/v1/jobs", json: ["prompt": "after", "steps": 2, "size": "64x64"])
            let nextJob = try await http.waitForJob(next.json["id"] as? String ?? "", timeout: 60)
            #expect(nextJob["status"] as? String == "succeeded")
            #expect(try await http.waitForJob(longID)["status"] as? String == "cancelled")

            // Idempotency.
            let key = ["Idempotency-Key": "e2e-\(UUID().uuidString)"]
            let once = try await http.send("POST", "/v1/jobs", json: ["prompt": "once", "steps": 2], headers: key)
            let twice = try await http.send("POST", "/v1/jobs", json: ["prompt": "once", "steps": 2], headers: key)
            #expect(once.status == 202 && twice.status == 200)
            #expect(once.json["id"] as? String == twice.json["id"] as? String)

            // Bad input, with a job in flight that must not notice.
            let inFlight = try await http.send("POST", "/v1/jobs", json: ["prompt": "in flight", "steps": 60,
                                                                          "size": "64x64"])
            let table: [(Data, Int, String)] = [
                (Data("{".utf8), 400, "invalid_json"),
                (Data([0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x7D]), 400, "invalid_utf8"),
                (Data(#"{"prompt": "x", "colour": "red"}"#.utf8), 400, "unknown_field"),
                (Data(#"{"prompt": ["x"]}"#.utf8), 400, "invalid_type"),
                (Data(#"{"prompt": "x", "size": "100x100"}"#.utf8), 422, "invalid_value"),
                (Data(#"{"prompt": "x", "steps": 100000}"#.utf8), 422, "invalid_value"),
                (Data(#"{"prompt": "x", "n": 99}"#.utf8), 422, "invalid_value"),
                (Data(#"{"prompt": "x", "guidance": -3}"#.utf8), 422, "invalid_value"),
                (Data(repeating: 0x20, count: 2 << 20), 413, "body_too_large"),
            ]
            for (body, status, code) in table {
                for path in ["/v1/images/generations", "/v1/jobs"] {
                    let reply = try await http.send("POST", path, body: body)
                    #expect(reply.status == status && reply.errorCode == code, "\(path): \(reply.status) \(reply.text)")
                }
            }
            #expect(try await http.send("GET", "/v1/jobs/job_missing").status == 404)
            #expect(try await http.send("GET", "/nowhere").errorCode == "route_not_found")
            let survivor = try await http.waitForJob(inFlight.json["id"] as? String ?? "")
            #expect(survivor["status"] as? String == "succeeded")

            let metrics = try await http.send("GET", "/metrics")
            #expect(metrics.status == 200)  // no keys configured: open
            #expect(metrics.text.contains("fluxserve_images_generated_total"))
            #expect(server.signal(SIGTERM) == 0)
        }
    }

    @Test func burstPastTheQueueLimitAndAuth() async throws {
        try await withDataDirectory { data in
            let key = "sk-e2e-0123456789abcdef"
            let server = try ServeProcess(dataDirectory: data, arguments: ["--max-queue", "3"],
                                          environment: ["FLUXSERVE_API_KEYS": key])
            defer { server.stop() }
            let anonymous = HTTP(base: server.base)
            try await anonymous.waitUntilReady()
            #expect(try await anonymous.send("POST", "/v1/jobs", json: ["prompt": "x"]).status == 401)
            #expect(try await anonymous.send("GET", "/metrics").status == 401)
            let http = HTTP(base: server.base, headers: ["Authorization": "Bearer \(key)"])
            let head = try await http.send("POST", "/v1/jobs", json: ["prompt": "head", "steps": 1000, "size": "64x64"])
            let headID = head.json["id"] as? String ?? ""
            try await http.waitForJob(headID) { $0["status"] as? String == "running" }
            let replies = try await withThrowingTaskGroup(of: HTTP.Reply.self) { group in
                for i in 0..<8 {
                    group.addTask {
                        try await http.send("POST", "/v1/jobs", json: ["prompt": "burst \(i)", "steps": 1000,
                                                                       "size": "64x64"])
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(replies.filter { $0.status == 202 }.count == 3)
            let refused = replies.filter { $0.status == 429 }
            #expect(refused.count == 5)
            #expect(refused.allSatisfy { $0.errorCode == "queue_full" && Int($0.header("Retry-After") ?? "") != nil })
            for reply in replies + [head] {
                if let id = reply.json["id"] as? String { _ = try await http.send("DELETE", "/v1/jobs/\(id)") }
            }
            #expect(server.signal(SIGTERM) == 0)
        }
    }

    /// A second server on a taken port exits 1 at once with one line naming the port, rather than hanging or
    /// printing NIO's error.
    @Test func portInUseExitsWithAnError() async throws {
        try await withDataDirectory { data in
            let first = try ServeProcess(dataDirectory: data)
            defer { first.stop() }
            let second = Process()
            second.executableURL = try ServeProcess.executable()
            second.arguments = ["serve", "--model", "demo", "--host", "127.0.0.1", "--port", "\(first.port)",
                                "--data-dir", data + "-second"]
            let log = data + "-second.log", errors = data + "-second.err"
            for path in [log, errors] { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            second.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            second.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
            try second.run()
            let deadline = Date().addingTimeInterval(60)
            while second.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
            if second.isRunning {
                kill(second.processIdentifier, SIGKILL)
                second.waitUntilExit()
                Issue.record("the second server did not exit")
            }
            #expect(second.terminationStatus == 1)
            let text = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
            // The start-up `config:` line, then exactly one error line.
            #expect(text.split(separator: "\n").filter { !$0.hasPrefix("config: ") }
                        == ["error: port \(first.port) on 127.0.0.1 is already in use; choose another with --port"],
                    "stderr: \(text)\nstdout: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            #expect(first.signal(SIGTERM) == 0)
        }
    }

    /// SIGTERM while a job runs: the listener stays up through the drain. `/readyz` is 503, new work 503 with
    /// `Retry-After`, status reads, files and `/healthz` still answer; the process waits for the running batch (here
    /// ended by a cancel, so that the test does not depend on how fast the machine runs the demo) and exits 0.
    @Test func sigtermKeepsListeningWhileTheBatchRuns() async throws {
        try await withDataDirectory { data in
            let server = try ServeProcess(dataDirectory: data, arguments: ["--shutdown-grace", "600"])
            defer { server.stop() }
            let http = HTTP(base: server.base)
            try await http.waitUntilReady()
            let earlier = try await http.send("POST", "/v1/jobs", json: ["prompt": "before", "steps": 2,
                                                                         "size": "64x64"])
            let done = try await http.waitForJob(earlier.json["id"] as? String ?? "")
            let file = (((done["result"] as? [String: Any])?["data"] as? [[String: Any]])?.first?["url"] as? String)
                .map { String($0.dropFirst(server.base.count)) } ?? ""
            let long = try await http.send("POST", "/v1/jobs", json: ["prompt": "long", "steps": 1000, "size": "64x64"])
            let longID = long.json["id"] as? String ?? ""
            try await http.waitForJob(longID) { ($0["progress"] as? [String: Any])?["step"] as? Int ?? 0 >= 1 }

            kill(server.process.processIdentifier, SIGTERM)
            // /readyz turns 503 once the drain has begun (bounded wait).
            var ready = try await http.send("GET", "/readyz")
            for _ in 0..<400 where ready.status != 503 {
                try await Task.sleep(for: .milliseconds(25))
                ready = try await http.send("GET", "/readyz")
            }
            #expect(ready.status == 503 && ready.json["status"] as? String == "draining", "\(ready.text)")
            for path in ["/v1/jobs", "/v1/images/generations"] {
                let refused = try await http.send("POST", path, json: ["prompt": "late"])
                #expect(refused.status == 503 && refused.errorCode == "shutting_down", "\(path): \(refused.text)")
                #expect(Int(refused.header("Retry-After") ?? "") != nil)
            }
            let status = try await http.send("GET", "/v1/jobs/\(longID)")
            #expect(status.status == 200 && status.json["status"] as? String == "running", "\(status.text)")
            #expect(try await http.send("GET", "/healthz").status == 200)
            #expect(try await http.send("GET", file).status == 200, "\(file)")
            #expect(try await http.send("GET", "/v1/jobs").status == 200)
            #expect(server.process.isRunning, "the process must wait for its running batch")

            // The batch ends (cancelled at its next step); then the server stops listening and exits 0.
            let cancelled = try await http.send("DELETE", "/v1/jobs/\(longID)")
            #expect(cancelled.status == 200, "\(cancelled.text)")
            #expect(server.waitForExit(timeout: 60) == 0, "\(server.logTail())")
            #expect(server.logTail(200).contains("drained"))
        }
    }

    /// kill -9 with jobs queued and one running; after a restart every accepted job has exactly one result.
    @Test func killNineAndRestartLosesNothing() async throws {
        try await withDataDirectory { data in
            var server = try ServeProcess(dataDirectory: data, arguments: ["--max-batch", "1"])
            defer { server.stop() }
            var http = HTTP(base: server.base)
            try await http.waitUntilReady()
            let before = try await http.send("POST", "/v1/jobs", json: ["prompt": "done before", "steps": 2])
            let beforeID = before.json["id"] as? String ?? ""
            try await http.waitForJob(beforeID)
            var ids: [String] = []
            for i in 0..<4 {
                // The first is long enough to be mid-run at the kill, however slow the machine.
                let reply = try await http.send("POST", "/v1/jobs", json: ["prompt": "job \(i)", "steps": i == 0 ? 1000 : 20,
                                                                           "size": "64x64", "seed": i])
                #expect(reply.status == 202)
                ids.append(reply.json["id"] as? String ?? "")
            }
            try await http.waitForJob(ids[0]) { ($0["progress"] as? [String: Any])?["step"] as? Int ?? 0 >= 1 }
            server.signal(SIGKILL)
            let firstLog = server.logTail(30)

            server = try ServeProcess(dataDirectory: data, arguments: ["--max-batch", "1"])
            http = HTTP(base: server.base)
            try await http.waitUntilReady()
            var files = Set<String>(), attempts: [Int] = [], jobs: [[String: Any]] = []
            for id in ids {
                let job = try await http.waitForJob(id)
                jobs.append(job)
                #expect(job["status"] as? String == "succeeded", "\(job)")
                attempts.append(job["attempts"] as? Int ?? 0)
                let urls = ((job["result"] as? [String: Any])?["data"] as? [[String: Any]])?.compactMap { $0["url"] as? String } ?? []
                #expect(urls.count == 1)
                files.formUnion(urls)
            }
            // The job that was running when the process died ran again; the others ran once.
            #expect(attempts == [2, 1, 1, 1], "\(jobs)\nfirst run:\n\(firstLog)")
            let first = try await http.send("GET", "/v1/jobs/\(beforeID)")
            #expect(first.json["status"] as? String == "succeeded" && first.json["attempts"] as? Int == 1)
            // One PNG per image: nothing ran twice to a second result.
            let pngs = try FileManager.default.contentsOfDirectory(atPath: data + "/files").filter { $0.hasSuffix(".png") }
            #expect(pngs.count == 5, "\(pngs)")
            #expect(files.count == 4)
            #expect(server.signal(SIGTERM) == 0)
        }
    }

    /// SIGTERM: stops accepting, lets the running job finish (or, past the grace, re-queues it), keeps queued jobs,
    /// exits 0; the next start runs what was left.
    @Test func sigtermDrainsAndExitsZero() async throws {
        try await withDataDirectory { data in
            var server = try ServeProcess(dataDirectory: data, arguments: ["--shutdown-grace", "0.5"])
            defer { server.stop() }
            var http = HTTP(base: server.base)
            try await http.waitUntilReady()
            let long = try await http.send("POST", "/v1/jobs", json: ["prompt": "too long for the grace",
                                                                      "steps": 1000, "size": "64x64"])
            let queued = try await http.send("POST", "/v1/jobs", json: ["prompt": "queued", "steps": 2,
                                                                        "size": "128x128"])
            let longID = long.json["id"] as? String ?? "", queuedID = queued.json["id"] as? String ?? ""
            try await http.waitForJob(longID) { ($0["progress"] as? [String: Any])?["step"] as? Int ?? 0 >= 1 }
            let started = Date()
            #expect(server.signal(SIGTERM, timeout: 60) == 0, "\(server.logTail())")
            #expect(Date().timeIntervalSince(started) < 30)
            #expect(server.logTail(200).contains("re-queued"))

            server = try ServeProcess(dataDirectory: data)
            http = HTTP(base: server.base)
            try await http.waitUntilReady()
            // The re-queued job is first in line again; cancel it so the queued one runs now.
            let requeued = try await http.send("GET", "/v1/jobs/\(longID)")
            #expect(["queued", "running"].contains(requeued.json["status"] as? String ?? ""), "\(requeued.text)")
            _ = try await http.send("DELETE", "/v1/jobs/\(longID)")
            let queuedJob = try await http.waitForJob(queuedID)
            #expect(queuedJob["status"] as? String == "succeeded")
            #expect(server.signal(SIGTERM) == 0)
        }
    }

    /// A prompt longer than CLIP's 77 tokens is taken, and said so: a response header on the submission and a
    /// field of the job (both encoders' counts and limits), never a silent cut.
    @Test func aCutPromptIsReported() async throws {
        try await withDataDirectory { data in
            let server = try ServeProcess(dataDirectory: data)
            defer { server.stop() }
            let http = HTTP(base: server.base)
            try await http.waitUntilReady()
            let long = Array(repeating: "a red circle on a blue background", count: 20).joined(separator: ", ")
            let job = try await http.send("POST", "/v1/jobs", json: ["prompt": long, "steps": 1])
            #expect(job.status == 202)
            #expect(job.header("X-Prompt-Truncated")?.hasPrefix("clip ") == true, "\(job.headers)")
            let cuts = try #require(job.json["prompt_truncated"] as? [[String: Any]])
            #expect(cuts.first?["encoder"] as? String == "clip" && cuts.first?["limit"] as? Int == 77)
            let short = try await http.send("POST", "/v1/jobs", json: ["prompt": "a red circle", "steps": 1])
            #expect(short.header("X-Prompt-Truncated") == nil)
            #expect((short.json["prompt_truncated"] as? [Any])?.isEmpty == true)
        }
    }
}

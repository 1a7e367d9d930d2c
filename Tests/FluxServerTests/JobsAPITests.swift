import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import FluxServer

@Suite struct JobsAPITests {
    @Test func jobRunsToItsResult() async throws {
        try await withServer { client, _ in
            let submitted = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                     body: jsonBody(["prompt": "a cat", "n": 2, "seed": 100]))
            #expect(submitted.status == .accepted, "\(submitted.text)")
            let id = try #require(submitted.json["id"] as? String)
            #expect(submitted.json["status"] as? String == "queued")
            #expect(submitted.headers[.location] == "/v1/jobs/\(id)")
            let job = try await waitForJob(client, id)
            #expect(job["status"] as? String == "succeeded")
            #expect((job["progress"] as? [String: Any])?["step"] as? Int == 4)
            #expect(job["attempts"] as? Int == 1)
            let images = try #require((job["result"] as? [String: Any])?["data"] as? [[String: Any]])
            #expect(images.compactMap { $0["seed"] as? Int } == [100, 101])
            for image in images {
                let url = try #require(image["url"] as? String)
                let file = try await client.execute(uri: String(url.dropFirst("http://localhost".count)), method: .get)
                #expect(file.status == .ok)
            }
            let timings = try #require(job["timings"] as? [String: Any])
            #expect(timings["run_seconds"] is Double && timings["denoise_seconds"] is Double)
            let parameters = try #require(job["parameters"] as? [String: Any])
            #expect(parameters["size"] as? String == "64x64" && parameters["steps"] as? Int == 4)
        }
    }

    @Test func unknownJobIs404() async throws {
        try await withServer { client, _ in
            for method in [HTTPRequest.Method.get, .delete] {
                let response = try await client.execute(uri: "/v1/jobs/job_nothing", method: method)
                #expect(response.status == .notFound)
                #expect(response.errorCode == "not_found")
            }
            let events = try await client.execute(uri: "/v1/jobs/job_nothing/events", method: .get)
            #expect(events.status == .notFound)
        }
    }

    @Test func idempotencyKeyReturnsTheSameJob() async throws {
        try await withServer { client, _ in
            var headers = jsonHeaders
            headers[HTTPField.Name("Idempotency-Key")!] = "order-42"
            let body = ["prompt": "a boat", "n": 1] as [String: Any]
            let first = try await client.execute(uri: "/v1/jobs", method: .post, headers: headers, body: jsonBody(body))
            let second = try await client.execute(uri: "/v1/jobs", method: .post, headers: headers, body: jsonBody(body))
            #expect(first.status == .accepted)
            #expect(second.status == .ok)
            #expect(first.json["id"] as? String != nil && first.json["id"] as? String == second.json["id"] as? String)
            let other = try await client.execute(uri: "/v1/jobs", method: .post, headers: headers,
                                                 body: jsonBody(["prompt": "a different boat"]))
            #expect(other.status == .unprocessableContent)
            #expect(other.errorCode == "idempotency_key_reused")
            headers[HTTPField.Name("Idempotency-Key")!] = String(repeating: "k", count: 300)
            let bad = try await client.execute(uri: "/v1/jobs", method: .post, headers: headers, body: jsonBody(body))
            #expect(bad.status == .badRequest)
            #expect(bad.errorCode == "invalid_idempotency_key")
        }
    }

    @Test func cancelQueuedAndRunningJobs() async throws {
        let generator = FakeGenerator(stepDelay: 0.01, holdFirstBatch: true)
        try await withServer(generator: generator) { client, _ in
            let long = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                body: jsonBody(["prompt": "long", "steps": 1000]))
            let longID = try #require(long.json["id"] as? String)
            try await waitForJob(client, longID) { $0["status"] as? String == "running" }
            let waiting = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                   body: jsonBody(["prompt": "later", "size": "128x128"]))
            let waitingID = try #require(waiting.json["id"] as? String)
            let queued = try await client.execute(uri: "/v1/jobs/\(waitingID)", method: .get)
            #expect(queued.json["status"] as? String == "queued")
            #expect(queued.json["queue_position"] as? Int == 0)

            let cancelWaiting = try await client.execute(uri: "/v1/jobs/\(waitingID)", method: .delete)
            #expect(cancelWaiting.status == .ok)
            #expect(cancelWaiting.json["status"] as? String == "cancelled")
            let cancelLong = try await client.execute(uri: "/v1/jobs/\(longID)", method: .delete)
            #expect(cancelLong.json["status"] as? String == "cancelled")
            let again = try await client.execute(uri: "/v1/jobs/\(longID)", method: .delete)
            #expect(again.status == .conflict)
            #expect(again.errorCode == "already_finished")
            // The running batch stops at its next step: the first one after the cancel.
            generator.release()
            try await eventually { generator.finished.current == 1 }
            #expect(generator.finished.current == 1)
            #expect(generator.lastSteps.current == [1])
            // The cancelled waiting job never ran.
            try await Task.sleep(for: .milliseconds(50))
            #expect(generator.batches.current.count == 1)
            let final = try await client.execute(uri: "/v1/jobs/\(longID)", method: .get)
            #expect(final.json["status"] as? String == "cancelled")
            #expect(final.json["result"] == nil)
        }
    }

    @Test func fullQueueAnswers429WithRetryAfter() async throws {
        let generator = FakeGenerator(holdFirstBatch: true)
        try await withServer(generator: generator, configure: { $0.maxQueue = 2 }) { client, app in
            let running = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                   body: jsonBody(["prompt": "first", "steps": 100]))
            let runningID = try #require(running.json["id"] as? String)
            try await waitForJob(client, runningID) { $0["status"] as? String == "running" }
            var statuses: [Int] = [], ids: [String] = []
            for i in 0..<5 {
                let response = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                        body: jsonBody(["prompt": "burst \(i)", "steps": 100]))
                statuses.append(response.status.code)
                if response.status == .tooManyRequests {
                    #expect(response.errorCode == "queue_full")
                    #expect(Int(response.headers[.retryAfter] ?? "") ?? 0 >= 1)
                }
                if let id = response.json["id"] as? String { ids.append(id) }
            }
            #expect(statuses == [202, 202, 429, 429, 429])
            // The synchronous endpoint shares the bound.
            let sync = try await client.execute(uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                                                body: jsonBody(["prompt": "sync"]))
            #expect(sync.status == .tooManyRequests)
            for id in ids + [runningID] { _ = try await client.execute(uri: "/v1/jobs/\(id)", method: .delete) }
            generator.release()
            // Nobody is left listening for the refused request's job.
            #expect(app.runtime.events.subscriberCount == 0)
        }
    }

    @Test func compatibleJobsRunAsOneBatch() async throws {
        let generator = FakeGenerator(holdFirstBatch: true)
        try await withServer(generator: generator, configure: { $0.maxBatch = 4 }) { client, _ in
            // The head job holds the worker until everything else is queued.
            let first = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                 body: jsonBody(["prompt": "head", "steps": 30]))
            let firstID = try #require(first.json["id"] as? String)
            try await waitForJob(client, firstID) { $0["status"] as? String == "running" }
            var ids: [String] = []
            let bodies: [[String: Any]] = [
                ["prompt": "a", "seed": 10, "n": 1],
                ["prompt": "odd size", "seed": 50, "size": "128x64"],
                ["prompt": "b", "seed": 20, "n": 2],
                ["prompt": "c", "seed": 30, "n": 1],
                ["prompt": "d", "seed": 40, "n": 1],
            ]
            for body in bodies {
                let response = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                        body: jsonBody(body))
                ids.append(try #require(response.json["id"] as? String))
            }
            generator.release()
            for id in ids + [firstID] { #expect(try await waitForJob(client, id)["status"] as? String == "succeeded") }
            let batches = generator.batches.current
            #expect(batches.count == 4)
            // a, b (2 images) and c share the 4-image batch; d waits for the next; the odd size runs alone.
            #expect(batches[1].prompts == ["a", "b", "b", "c"])
            #expect(batches[1].seeds == [10, 20, 21, 30])
            #expect(batches[2].prompts == ["odd size"] && batches[2].width == 128 && batches[2].height == 64)
            #expect(batches[3].prompts == ["d"])
        }
    }

    @Test func serverSentEventsFollowAJob() async throws {
        let generator = FakeGenerator(stepDelay: 0.01, holdFirstBatch: true)
        try await withServer(generator: generator) { client, app in
            let submitted = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                     body: jsonBody(["prompt": "events", "steps": 5]))
            let id = try #require(submitted.json["id"] as? String)
            // The job waits at its first step until the stream is open.
            async let opened = client.execute(uri: "/v1/jobs/\(id)/events?previews=true", method: .get)
            try await eventually { app.runtime.events.hasSubscribers(id) }
            generator.release()
            let stream = try await opened
            #expect(stream.status == .ok)
            #expect(stream.headers[.contentType] == "text/event-stream")
            let events = stream.text.components(separatedBy: "\n").filter { $0.hasPrefix("event: ") }
                .map { String($0.dropFirst(7)) }
            #expect(events.first == "status")
            #expect(events.last == "succeeded")
            #expect(events.filter { $0 == "step" }.count >= 1)
            #expect(events.contains("preview"))
            #expect(stream.text.contains(#""b64_png":"#))
            // A finished job's stream is its status and the final event.
            let replay = try await client.execute(uri: "/v1/jobs/\(id)/events", method: .get)
            let replayed = replay.text.components(separatedBy: "\n").filter { $0.hasPrefix("event: ") }
            #expect(replayed == ["event: status", "event: succeeded"])
            #expect(app.runtime.events.subscriberCount == 0)
        }
    }

    @Test func failedGenerationFailsTheJobAndKeepsServing() async throws {
        try await withServer(generator: FakeGenerator(failPrompt: "boom")) { client, _ in
            let bad = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                               body: jsonBody(["prompt": "boom"]))
            let job = try await waitForJob(client, try #require(bad.json["id"] as? String))
            #expect(job["status"] as? String == "failed")
            #expect((job["error"] as? [String: Any])?["code"] as? String == "generation_failed")
            let good = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                body: jsonBody(["prompt": "fine"]))
            #expect(try await waitForJob(client, try #require(good.json["id"] as? String))["status"] as? String
                    == "succeeded")
        }
    }

    @Test func drainingRefusesNewWorkAndKeepsQueuedJobs() async throws {
        let generator = FakeGenerator(holdFirstBatch: true)
        try await withServer(generator: generator) { client, app in
            let running = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                   body: jsonBody(["prompt": "running", "steps": 20]))
            let runningID = try #require(running.json["id"] as? String)
            try await waitForJob(client, runningID) { $0["status"] as? String == "running" }
            let queued = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                  body: jsonBody(["prompt": "queued", "size": "128x128"]))
            let queuedID = try #require(queued.json["id"] as? String)
            await app.runtime.drain()
            let refused = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                   body: jsonBody(["prompt": "late"]))
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.errorCode == "shutting_down")
            #expect(refused.headers[.retryAfter] != nil)
            #expect(try await client.execute(uri: "/readyz", method: .get).status == .serviceUnavailable)
            // The running job finishes; the queued one stays queued for the next start.
            generator.release()
            #expect(try await waitForJob(client, runningID)["status"] as? String == "succeeded")
            try await Task.sleep(for: .milliseconds(100))
            let kept = try await client.execute(uri: "/v1/jobs/\(queuedID)", method: .get)
            #expect(kept.json["status"] as? String == "queued")
        }
    }
}

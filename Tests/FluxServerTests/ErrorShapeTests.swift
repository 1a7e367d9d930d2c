import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import FluxServer

/// Issue 12, items 1 and 2: every error, ours or the framework's, in one shape; decoding errors name the field.
@Suite struct ErrorShapeTests {
    static let key = "sk-shape-0123456789abcdef"

    /// `{"error": {"code", "message", "type", "param"}}` with exactly those keys (`param` null when there is none),
    /// JSON, and the request id header.
    static func expectShape(_ response: TestResponse, status: HTTPResponse.Status, code: String, param: String? = nil,
                            _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.status == status, "\(what): \(response.status) \(response.text)", sourceLocation: sourceLocation)
        #expect(response.headers[.contentType] == "application/json", "\(what)", sourceLocation: sourceLocation)
        #expect(response.headers[HTTPField.Name("X-Request-Id")!]?.isEmpty == false, "\(what)",
                sourceLocation: sourceLocation)
        let error = response.json["error"] as? [String: Any] ?? [:]
        #expect(Set(error.keys) == ["code", "message", "type", "param"], "\(what): \(response.text)",
                sourceLocation: sourceLocation)
        #expect(error["code"] as? String == code, "\(what): \(response.text)", sourceLocation: sourceLocation)
        #expect((error["message"] as? String)?.isEmpty == false, "\(what)", sourceLocation: sourceLocation)
        #expect((error["type"] as? String)?.isEmpty == false, "\(what)", sourceLocation: sourceLocation)
        if let param {
            #expect(error["param"] as? String == param, "\(what): \(response.text)", sourceLocation: sourceLocation)
        } else {
            #expect(error["param"] is NSNull, "\(what): \(response.text)", sourceLocation: sourceLocation)
        }
    }

    @Test func frameworkAndOurErrorsShareTheShape() async throws {
        let generator = FakeGenerator(holdFirstBatch: true)
        try await withServer(generator: generator, configure: { $0.maxQueue = 1 }) { client, app in
            Self.expectShape(try await client.execute(uri: "/v2/nothing", method: .get), status: .notFound,
                             code: "route_not_found", "unknown route")
            let wrongMethod = try await client.execute(uri: "/healthz", method: .post)
            Self.expectShape(wrongMethod, status: .methodNotAllowed, code: "method_not_allowed", "405")
            #expect(wrongMethod.headers[.allow] == "GET")
            Self.expectShape(try await client.execute(uri: "/v1/jobs/job_nope", method: .get), status: .notFound,
                             code: "not_found", "unknown job")
            let big = ByteBuffer(string: #"{"prompt": ""# + String(repeating: "a", count: 20_000) + #""}"#)
            Self.expectShape(try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders, body: big),
                             status: .contentTooLarge, code: "body_too_large", "413")
            Self.expectShape(try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                      body: ByteBuffer(string: "{")),
                             status: .badRequest, code: "invalid_json", "400")
            Self.expectShape(try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                      body: jsonBody(["prompt": "x", "steps": 0])),
                             status: .unprocessableContent, code: "invalid_value", param: "steps", "422")
            // 429: one job runs (held), one waits and fills the queue of 1.
            let running = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                   body: jsonBody(["prompt": "held"]))
            try await waitForJob(client, try #require(running.json["id"] as? String)) { $0["status"] as? String == "running" }
            _ = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                         body: jsonBody(["prompt": "waits"]))
            let full = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                                body: jsonBody(["prompt": "refused"]))
            Self.expectShape(full, status: .tooManyRequests, code: "queue_full", "429")
            #expect(full.headers[.retryAfter] != nil)
            // 503 while draining.
            await app.runtime.drain()
            let draining = try await client.execute(uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                                                    body: jsonBody(["prompt": "late"]))
            Self.expectShape(draining, status: .serviceUnavailable, code: "shutting_down", "503")
            generator.release()
        }
    }

    @Test func unauthorizedHasTheShape() async throws {
        try await withServer(configure: { $0.apiKeys = [Self.key] }) { client, _ in
            let missing = try await client.execute(uri: "/v1/jobs", method: .get)
            Self.expectShape(missing, status: .unauthorized, code: "unauthorized", "401 without a key")
            #expect(missing.headers[.wwwAuthenticate] == "Bearer")
            Self.expectShape(try await client.execute(uri: "/v1/models", method: .get,
                                                      headers: [.authorization: "Bearer wrong-key-0123456789"]),
                             status: .unauthorized, code: "unauthorized", "401 with a wrong key")
        }
    }

    /// A wrong type for any field of either body names that field (param) and what it must be.
    @Test func wrongTypesNameTheField() async throws {
        try await withServer { client, _ in
            for (uri, fields) in [("/v1/jobs", JobRequest.fields),
                                  ("/v1/images/generations", ImageGenerationRequest.fields)] {
                for (name, kind) in fields.sorted(by: { $0.key < $1.key }) {
                    var body: [String: Any] = ["prompt": "x"]
                    body[name] = kind == .string ? 5 : "five"
                    let response = try await client.execute(uri: uri, method: .post, headers: jsonHeaders,
                                                            body: jsonBody(body))
                    Self.expectShape(response, status: .badRequest, code: "invalid_type", param: name, "\(uri) \(name)")
                    let message = (response.json["error"] as? [String: Any])?["message"] as? String ?? ""
                    #expect(message.contains("'\(name)'") && message.contains(kind.expected), "\(message)")
                }
            }
        }
    }

    /// The shared strict reader judges bodies first: what Foundation's parser would take (a trailing comma, a key
    /// given twice, of which it keeps one) is 400 `invalid_json`, never a job.
    @Test func looseJSONIsRefused() async throws {
        try await withServer { client, app in
            for uri in ["/v1/jobs", "/v1/images/generations"] {
                for text in [#"{"prompt": "a red circle",}"#, #"{"prompt": "a", "prompt": "b"}"#,
                             #"{"prompt": "a red circle"} {}"#, #"{"prompt": "a" /* c */}"#] {
                    let response = try await client.execute(uri: uri, method: .post, headers: jsonHeaders,
                                                            body: ByteBuffer(string: text))
                    Self.expectShape(response, status: .badRequest, code: "invalid_json", "\(uri) \(text)")
                }
            }
            #expect(try await app.runtime.store.jobs(ownerKeyDigest: nil, after: nil, limit: 10)?.jobs.isEmpty == true)
        }
    }

    @Test func numbersOfTheWrongKindNameTheFieldAndRange() async throws {
        try await withServer { client, _ in
            for uri in ["/v1/jobs", "/v1/images/generations"] {
                let fractional = try await client.execute(uri: uri, method: .post, headers: jsonHeaders,
                                                          body: ByteBuffer(string: #"{"prompt": "x", "n": 1.5}"#))
                Self.expectShape(fractional, status: .badRequest, code: "invalid_type", param: "n", "n 1.5")
                let message = (fractional.json["error"] as? [String: Any])?["message"] as? String ?? ""
                #expect(message.contains("integer") && message.contains("1.5"), "\(message)")

                for seed in ["-1", "1e30", "18446744073709551616"] {
                    let response = try await client.execute(uri: uri, method: .post, headers: jsonHeaders,
                                                            body: ByteBuffer(string: #"{"prompt": "x", "seed": \#(seed)}"#))
                    Self.expectShape(response, status: .unprocessableContent, code: "invalid_value", param: "seed",
                                     "seed \(seed)")
                    let text = (response.json["error"] as? [String: Any])?["message"] as? String ?? ""
                    #expect(text.contains("0…18446744073709551615"), "\(text)")
                }
                let fractionalSeed = try await client.execute(uri: uri, method: .post, headers: jsonHeaders,
                                                              body: ByteBuffer(string: #"{"prompt": "x", "seed": 2.5}"#))
                Self.expectShape(fractionalSeed, status: .badRequest, code: "invalid_type", param: "seed", "seed 2.5")
                // The largest seed is accepted (one image: seed + 0 fits).
                let largest = try await client.execute(
                    uri: uri, method: .post, headers: jsonHeaders,
                    body: ByteBuffer(string: #"{"prompt": "x", "seed": 18446744073709551615}"#))
                #expect(largest.status.code < 300, "\(largest.text)")
                let overflow = try await client.execute(
                    uri: uri, method: .post, headers: jsonHeaders,
                    body: ByteBuffer(string: #"{"prompt": "x", "seed": 18446744073709551615, "n": 2}"#))
                Self.expectShape(overflow, status: .unprocessableContent, code: "invalid_value", param: "seed",
                                 "seed + n overflows")
            }
        }
    }

    /// The kind table of each body names exactly its coding keys, so no field escapes the kind check.
    @Test func fieldTablesMatchTheBodies() {
        #expect(Set(JobRequest.fields.keys) == Set(JobRequest.CodingKeys.allCases.map(\.stringValue)))
        #expect(Set(ImageGenerationRequest.fields.keys)
                == Set(ImageGenerationRequest.CodingKeys.allCases.map(\.stringValue)))
    }
}

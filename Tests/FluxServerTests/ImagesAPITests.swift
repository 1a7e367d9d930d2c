import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import FluxServer

@Suite struct ImagesAPITests {
    @Test func healthAndReadiness() async throws {
        try await withServer { client, _ in
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
            #expect(health.json["status"] as? String == "ok")
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(ready.status == .ok)
            #expect(ready.json["model"] as? String == "fake")
            #expect(ready.headers[HTTPField.Name("X-Request-Id")!] != nil)
        }
    }

    @Test func openAIBase64() async throws {
        try await withServer { client, _ in
            let response = try await client.execute(
                uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                body: jsonBody(["prompt": "a red fox", "n": 2, "size": "64x32", "response_format": "b64_json",
                                "model": "dall-e-3", "seed": 7]))
            #expect(response.status == .ok, "\(response.text)")
            let data = try #require(response.json["data"] as? [[String: Any]])
            #expect(data.count == 2)
            #expect(response.json["created"] is Int)
            for item in data {
                let b64 = try #require(item["b64_json"] as? String)
                let png = try #require(Data(base64Encoded: b64))
                #expect(pngSize(Array(png)).map { [$0.0, $0.1] } == [64, 32])
                #expect(item["url"] == nil)
            }
        }
    }

    @Test func openAIURLIsServedByTheService() async throws {
        try await withServer { client, _ in
            let response = try await client.execute(
                uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                body: jsonBody(["prompt": "a lighthouse", "response_format": "url"]))
            #expect(response.status == .ok, "\(response.text)")
            let data = try #require(response.json["data"] as? [[String: Any]])
            let url = try #require(data.first?["url"] as? String)
            #expect(url.hasPrefix("http://localhost/v1/files/job_"))
            #expect(url.hasSuffix(".png"))
            let path = String(url.dropFirst("http://localhost".count))
            let file = try await client.execute(uri: path, method: .get)
            #expect(file.status == .ok)
            #expect(file.headers[.contentType] == "image/png")
            #expect(pngSize(Array(file.body.readableBytesView)).map { [$0.0, $0.1] } == [64, 64])
            let missing = try await client.execute(uri: "/v1/files/job_000000000000000000000000_0.png", method: .get)
            #expect(missing.status == .notFound)
            #expect(missing.errorCode == "not_found")
            let traversal = try await client.execute(uri: "/v1/files/..%2F..%2Fetc%2Fpasswd.png", method: .get)
            #expect(traversal.status == .notFound)
        }
    }

    @Test func sameSeedSameImage() async throws {
        try await withServer { client, _ in
            var images: [String] = []
            for _ in 0..<2 {
                let response = try await client.execute(
                    uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                    body: jsonBody(["prompt": "x", "seed": 42, "response_format": "b64_json"]))
                images.append(((response.json["data"] as? [[String: Any]])?.first?["b64_json"] as? String) ?? "")
            }
            #expect(!images[0].isEmpty && images[0] == images[1])
        }
    }

    struct BadRequest: Sendable, CustomTestStringConvertible {
        let name: String
        let body: [UInt8]
        let status: Int
        let code: String
        var testDescription: String { name }

        init(_ name: String, _ body: String, _ status: Int, _ code: String) {
            (self.name, self.body, self.status, self.code) = (name, Array(body.utf8), status, code)
        }
        init(_ name: String, bytes: [UInt8], _ status: Int, _ code: String) {
            (self.name, self.body, self.status, self.code) = (name, bytes, status, code)
        }
    }

    static let badRequests: [BadRequest] = [
        .init("empty body", "", 400, "invalid_json"),
        .init("not JSON", "{prompt: x}", 400, "invalid_json"),
        .init("truncated JSON", #"{"prompt": "x""#, 400, "invalid_json"),
        .init("array", #"["x"]"#, 400, "invalid_json"),
        .init("string", #""x""#, 400, "invalid_json"),
        .init("bad UTF-8", bytes: Array(#"{"prompt": ""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8), 400, "invalid_utf8"),
        .init("unknown field", #"{"prompt": "x", "stepz": 3}"#, 400, "unknown_field"),
        .init("missing prompt", #"{"n": 1}"#, 400, "missing_field"),
        .init("prompt not a string", #"{"prompt": 5}"#, 400, "invalid_type"),
        .init("prompt null", #"{"prompt": null}"#, 400, "invalid_type"),
        .init("n a string", #"{"prompt": "x", "n": "2"}"#, 400, "invalid_type"),
        .init("n fractional", #"{"prompt": "x", "n": 1.5}"#, 400, "invalid_type"),
        .init("steps a bool", #"{"prompt": "x", "steps": true}"#, 400, "invalid_type"),
        .init("seed negative", #"{"prompt": "x", "seed": -1}"#, 422, "invalid_value"),
        .init("seed too large", #"{"prompt": "x", "seed": 1e30}"#, 422, "invalid_value"),
        .init("seed fractional", #"{"prompt": "x", "seed": 0.5}"#, 400, "invalid_type"),
        .init("guidance huge", #"{"prompt": "x", "guidance": 1e300}"#, 422, "invalid_value"),
        .init("cache threshold beyond Float", #"{"prompt": "x", "cache_threshold": 1.3e308}"#, 422, "invalid_value"),
        .init("size a number", #"{"prompt": "x", "size": 512}"#, 400, "invalid_type"),
        .init("empty prompt", #"{"prompt": "   "}"#, 422, "invalid_value"),
        .init("prompt too long", #"{"prompt": "\#(String(repeating: "a", count: 101))"}"#, 422, "invalid_value"),
        .init("n zero", #"{"prompt": "x", "n": 0}"#, 422, "invalid_value"),
        .init("n too many", #"{"prompt": "x", "n": 5}"#, 422, "invalid_value"),
        .init("size not a multiple of 16", #"{"prompt": "x", "size": "100x64"}"#, 422, "invalid_value"),
        .init("size too small", #"{"prompt": "x", "size": "16x64"}"#, 422, "invalid_value"),
        .init("size too large", #"{"prompt": "x", "size": "512x512"}"#, 422, "invalid_value"),
        .init("size garbage", #"{"prompt": "x", "size": "big"}"#, 422, "invalid_value"),
        .init("size negative", #"{"prompt": "x", "size": "-64x64"}"#, 422, "invalid_value"),
        .init("size huge digits", #"{"prompt": "x", "size": "99999999999999999999x64"}"#, 422, "invalid_value"),
        .init("steps zero", #"{"prompt": "x", "steps": 0}"#, 422, "invalid_value"),
        .init("steps too many", #"{"prompt": "x", "steps": 1001}"#, 422, "invalid_value"),
        .init("guidance negative", #"{"prompt": "x", "guidance": -1}"#, 422, "invalid_value"),
        .init("cache threshold too large", #"{"prompt": "x", "cache_threshold": 5}"#, 422, "invalid_value"),
        .init("bad response_format", #"{"prompt": "x", "response_format": "jpeg"}"#, 422, "invalid_value"),
        .init("bad output_format", #"{"prompt": "x", "output_format": "webp"}"#, 422, "invalid_value"),
        .init("deep nesting", String(repeating: "[", count: 5000), 400, "invalid_json"),
    ]

    @Test(arguments: badRequests)
    func badRequestIsAnsweredWithAJSONError(_ bad: BadRequest) async throws {
        try await withServer { client, _ in
            for uri in ["/v1/images/generations", "/v1/jobs"] {
                // Fields only the OpenAI endpoint has are unknown to the jobs endpoint.
                let expectedCode = uri == "/v1/jobs" && (bad.name.contains("_format")) ? "unknown_field" : bad.code
                let expectedStatus = expectedCode == "unknown_field" ? 400 : bad.status
                let response = try await client.execute(uri: uri, method: .post, headers: jsonHeaders,
                                                        body: ByteBuffer(bytes: bad.body))
                #expect(response.status.code == expectedStatus, "\(uri) \(bad.name): \(response.text)")
                #expect(response.errorCode == expectedCode, "\(uri) \(bad.name): \(response.text)")
                #expect(response.headers[.contentType] == "application/json")
                let error = response.json["error"] as? [String: Any]
                #expect((error?["message"] as? String)?.isEmpty == false)
            }
            // The server is unharmed.
            let good = try await client.execute(uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                                                body: jsonBody(["prompt": "fine"]))
            #expect(good.status == .ok)
        }
    }

    @Test func bodyTooLarge() async throws {
        try await withServer { client, _ in
            let big = #"{"prompt": ""# + String(repeating: "a", count: 20_000) + #""}"#
            let response = try await client.execute(uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                                                    body: ByteBuffer(string: big))
            #expect(response.status == .contentTooLarge)
            #expect(response.errorCode == "body_too_large")
        }
    }

    @Test func unknownRouteIsJSON404AndWrongMethod405() async throws {
        try await withServer { client, _ in
            let response = try await client.execute(uri: "/v2/nothing", method: .get)
            #expect(response.status == .notFound)
            #expect(response.errorCode == "route_not_found")
            for (uri, method, allow) in [("/v1/jobs", HTTPRequest.Method.put, "POST, GET"),
                                         ("/v1/jobs/job_1", .put, "GET, DELETE"),
                                         ("/healthz", HTTPRequest.Method("TRACE")!, "GET"),
                                         ("/v1/files/job_1_0.png", .delete, "GET")] {
                let wrong = try await client.execute(uri: uri, method: method)
                #expect(wrong.status == .methodNotAllowed, "\(method) \(uri)")
                #expect(wrong.errorCode == "method_not_allowed")
                #expect(wrong.headers[.allow] == allow)
            }
        }
    }

    @Test func defaultsAreBroughtWithinLimits() {
        var limits = GenerationLimits()
        limits.minSide = 100
        limits.maxSide = 200
        limits.maxSteps = 2
        limits.maxGuidance = 1
        let within = ModelDefaults(width: 1024, height: 8, steps: 28, guidance: 3.5).within(limits)
        #expect(within == ModelDefaults(width: 192, height: 112, steps: 2, guidance: 1))
    }

    @Test func generationFailureIsA500WithItsCode() async throws {
        try await withServer(generator: FakeGenerator(failPrompt: "boom")) { client, _ in
            let response = try await client.execute(uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                                                    body: jsonBody(["prompt": "boom"]))
            #expect(response.status == .internalServerError)
            #expect(response.errorCode == "generation_failed")
            let after = try await client.execute(uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                                                 body: jsonBody(["prompt": "fine"]))
            #expect(after.status == .ok)
        }
    }
}

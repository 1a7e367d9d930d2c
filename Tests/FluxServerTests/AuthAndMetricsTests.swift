import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import FluxServer

@Suite struct AuthAndMetricsTests {
    static let key = "sk-test-0123456789abcdef"
    static let bearer: HTTPFields = [.authorization: "Bearer \(key)", .contentType: "application/json"]

    @Test func keysAreRequiredWhereNotPublic() async throws {
        try await withServer(configure: { $0.apiKeys = ["another-key-0123456789", Self.key] }) { client, _ in
            let body = jsonBody(["prompt": "x"])
            let none = try await client.execute(uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                                                body: body)
            #expect(none.status == .unauthorized)
            #expect(none.errorCode == "unauthorized")
            #expect(none.headers[.wwwAuthenticate] == "Bearer")
            let wrong = try await client.execute(uri: "/v1/jobs", method: .post,
                                                 headers: [.authorization: "Bearer \(Self.key)x"], body: body)
            #expect(wrong.status == .unauthorized)
            let basic = try await client.execute(uri: "/v1/jobs/job_1", method: .get,
                                                 headers: [.authorization: "Basic \(Self.key)"])
            #expect(basic.status == .unauthorized)
            let right = try await client.execute(uri: "/v1/images/generations", method: .post, headers: Self.bearer,
                                                 body: body)
            #expect(right.status == .ok, "\(right.text)")
            // Health and the spec are public by default, metrics is not.
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/openapi.yaml", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/metrics", method: .get).status == .unauthorized)
            #expect(try await client.execute(uri: "/metrics", method: .get, headers: Self.bearer).status == .ok)
            // Result files are reachable by URL alone.
            let url = ((right.json["data"] as? [[String: Any]])?.first?["url"] as? String) ?? ""
            let file = try await client.execute(uri: String(url.dropFirst("http://localhost".count)), method: .get)
            #expect(file.status == .ok)
        }
    }

    @Test func publicEndpointsAreConfigurable() async throws {
        let configure: (inout ServerConfig) -> Void = { config in
            config.apiKeys = [Self.key]
            config.publicEndpoints = [.metrics]
        }
        try await withServer(configure: configure) { client, _ in
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            let health = try await client.execute(uri: "/healthz", method: .get)
            let healthWithKey = try await client.execute(uri: "/healthz", method: .get, headers: Self.bearer)
            #expect(metrics.status == .ok)
            #expect(health.status == .unauthorized)
            #expect(healthWithKey.status == .ok)
        }
    }

    @Test func constantTimeComparison() {
        let secret = Array("0123456789abcdef".utf8)
        #expect(APIKeys.constantTimeEquals(secret, secret))
        #expect(!APIKeys.constantTimeEquals(secret, Array("0123456789abcdeF".utf8)))
        #expect(!APIKeys.constantTimeEquals(secret, Array("0123456789abcdef0".utf8)))
        #expect(!APIKeys.constantTimeEquals(secret, Array("0123456789abcde".utf8)))
        #expect(!APIKeys.constantTimeEquals(secret, []))
        let keys = APIKeys(["first-key-0123456789", "second-key-0123456789"])
        #expect(keys.match("second-key-0123456789")?.name == "key-2")
        #expect(keys.match("second-key-012345678") == nil)
    }

    @Test func keysLoadFromEnvironmentAndFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/keys"
        try "# comment\n\nfile-key-0123456789abcdef\n".write(toFile: file, atomically: true, encoding: .utf8)
        let keys = try APIKeys.load(environment: ["FLUXSERVE_API_KEYS": "env-key-0123456789abc, env-key-2-0123456789"],
                                    file: file)
        #expect(keys == ["env-key-0123456789abc", "env-key-2-0123456789", "file-key-0123456789abcdef"])
        #expect(throws: APIKeysError.self) { try APIKeys.load(environment: ["FLUXSERVE_API_KEYS": "short"], file: nil) }
        #expect(throws: APIKeysError.self) { try APIKeys.load(environment: [:], file: dir + "/missing") }
    }

    @Test func metricsCountRequestsJobsAndImages() async throws {
        try await withServer(configure: { $0.publicEndpoints = [.metrics, .health] }) { client, _ in
            _ = try await client.execute(uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                                         body: jsonBody(["prompt": "x", "n": 3]))
            _ = try await client.execute(uri: "/v1/jobs", method: .post, headers: jsonHeaders,
                                         body: ByteBuffer(string: "nope"))
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            #expect(metrics.status == .ok)
            #expect(metrics.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = metrics.text
            for expected in [
                #"fluxserve_http_requests_total{route="/v1/images/generations",method="POST",status="200"} 1"#,
                #"fluxserve_http_requests_total{route="/v1/jobs",method="POST",status="400"} 1"#,
                "fluxserve_images_generated_total 3",
                "fluxserve_queue_depth 0",
                "fluxserve_ready 1",
                #"fluxserve_jobs_finished_total{status="succeeded"} 1"#,
                "fluxserve_job_run_seconds_bucket",
                "fluxserve_step_seconds_count",
                "fluxserve_http_request_seconds_bucket",
                #"fluxserve_batch_images_bucket{le="4.0"} 1"#,
            ] {
                #expect(text.contains(expected), "missing \(expected) in\n\(text)")
            }
        }
    }
}

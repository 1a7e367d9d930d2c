import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
@testable import FluxServer

@Suite struct OpenAPITests {
    /// (method, path) pairs of the spec's `paths`: two-space-indented path keys, four-space-indented method keys.
    static func specOperations() -> Set<String> {
        let text = String(decoding: OpenAPISpec.yaml, as: UTF8.self)
        var operations = Set<String>(), path: String?, inPaths = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if !line.hasPrefix(" ") { inPaths = line == "paths:"; continue }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), !line.hasPrefix("   ") {
                path = String(line.dropFirst(2).dropLast())  // "  /v1/jobs:" → "/v1/jobs"
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), let path {
                let key = line.dropFirst(4).prefix { $0 != ":" }
                if ["get", "post", "put", "delete", "patch", "head", "options"].contains(String(key)) {
                    operations.insert("\(key.uppercased()) \(path)")
                }
            }
        }
        return operations
    }

    @Test func specDescribesExactlyTheRoutes() async throws {
        try await withServer { client, app in
            let routes = Set(app.routes.map(\.description))
            let spec = Self.specOperations()
            #expect(spec.count >= 10)
            #expect(spec == routes, "in the spec only: \(spec.subtracting(routes)); routed only: \(routes.subtracting(spec))")
            // Each route really is routed: the router answers something other than "no such route".
            for route in app.routes {
                let uri = route.path.replacingOccurrences(of: "{id}", with: "job_x")
                let response = try await client.execute(uri: uri, method: HTTPRequest.Method(route.method)!)
                #expect(response.errorCode != "route_not_found", "\(route) is in the table but not routed")
            }
            let served = try await client.execute(uri: "/openapi.yaml", method: .get)
            #expect(served.status == .ok)
            #expect(served.text.hasPrefix("openapi: 3.1.0"))
        }
    }
}

import Foundation
import HTTPTypes
import Hummingbird

/// `GET /healthz` (the process answers), `GET /readyz` (model loaded and warm, not draining), `GET /metrics`
/// (Prometheus text), `GET /openapi.yaml` (this API's description).
struct HealthAPI {
    let runtime: ServerRuntime

    struct Health: Encodable {
        let status: String
    }

    struct Readiness: Encodable {
        let status: String
        let model: String
        let queueDepth: Int

        enum CodingKeys: String, CodingKey {
            case status, model, queueDepth = "queue_depth"
        }
    }

    func register(open: RouterGroup<FluxRequestContext>, authenticated: RouterGroup<FluxRequestContext>,
                  routes: RouteTable) {
        let publicEndpoints = runtime.config.publicEndpoints
        let runtime = self.runtime
        func group(_ endpoint: PublicEndpoint) -> RouterGroup<FluxRequestContext> {
            publicEndpoints.contains(endpoint) ? open : authenticated
        }
        routes.add(group(.health), .get, "/healthz", isPublic: publicEndpoints.contains(.health)) { _, _ in
            try jsonResponse(Health(status: "ok"))
        }
        routes.add(group(.health), .get, "/readyz", isPublic: publicEndpoints.contains(.health)) { _, _ in
            let phase = runtime.phase
            let body = Readiness(status: phase.rawValue, model: runtime.generator.modelName,
                                 queueDepth: await runtime.queue.depth)
            return try jsonResponse(body, status: phase == .ready ? .ok : .serviceUnavailable)
        }
        routes.add(group(.metrics), .get, "/metrics", isPublic: publicEndpoints.contains(.metrics)) { _, _ in
            runtime.metrics.queueDepth.set(Double(await runtime.queue.depth))
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: runtime.metrics.render())))
        }
        routes.add(group(.openapi), .get, "/openapi.yaml", isPublic: publicEndpoints.contains(.openapi)) { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: OpenAPISpec.yaml)))
        }
    }
}

/// The OpenAPI description of every route, `Sources/FluxServer/openapi.yaml`, compiled into the program.
public enum OpenAPISpec {
    public static let yaml: [UInt8] = PackageResources.openapi_yaml
}

import Foundation
import HTTPTypes
import Hummingbird

/// `GET /v1/files/{id}.png`: result images. Ids are 96-bit random, so the URL itself is the permission (as with
/// OpenAI's result URLs) and browsers can load it without an Authorization header.
struct FilesAPI {
    let runtime: ServerRuntime

    func register(open: RouterGroup<FluxRequestContext>, routes: RouteTable) {
        let store = runtime.store
        routes.add(open, .get, "/v1/files/{id}.png", isPublic: true) { _, context in
            guard let id = context.parameters.get("id"), JobRecord.isValidFileID(Substring(id)),
                  let data = FileManager.default.contents(atPath: store.fileURL(id).path)
            else {
                throw APIError.notFound("file")
            }
            return Response(status: .ok, headers: [.contentType: "image/png",
                                                   .cacheControl: "private, max-age=86400, immutable"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
    }
}

/// The scheme and host that result URLs start with: `--public-url`, else from the request (`X-Forwarded-Proto`,
/// Host).
func baseURL(_ request: Request, config: ServerConfig) -> String {
    if let configured = config.publicURL {
        return configured.hasSuffix("/") ? String(configured.dropLast()) : configured
    }
    let scheme = request.headers[HTTPField.Name("X-Forwarded-Proto")!] == "https" ? "https" : "http"
    let host = request.head.authority ?? "\(config.host):\(config.port)"
    // A Host header is echoed only if it looks like one.
    let safe = host.count <= 255 && host.utf8.allSatisfy { c in
        (c >= 0x30 && c <= 0x3A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x2E
            || c == 0x5B || c == 0x5D
    }
    return "\(scheme)://\(safe ? host : "\(config.host):\(config.port)")"
}

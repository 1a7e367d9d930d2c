import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The outermost middleware: turns every error into a JSON error response (a 500 only for our own faults), adds
/// `X-Request-Id`, counts the request in the metrics and logs one line for it. The Authorization header is never
/// logged.
struct RequestObserver: RouterMiddleware {
    typealias Context = FluxRequestContext
    let metrics: ServerMetrics
    /// For 405: an unmatched request whose path is routed for other methods.
    let routes: RouteTable

    static let requestIDHeader = HTTPField.Name("X-Request-Id")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let clock = ContinuousClock(), start = clock.now
        var response: Response
        var failure: APIError?
        do {
            response = try await next(request, context)
        } catch {
            let apiError: APIError
            if var known = APIError.from(error) {
                if known.code == "route_not_found" {
                    let allowed = routes.methods(for: request.uri.path)
                    if !allowed.isEmpty {
                        known = APIError(.methodNotAllowed, "method_not_allowed",
                                         "\(request.method.rawValue) is not allowed here; use \(allowed.joined(separator: ", "))",
                                         headers: [.allow: allowed.joined(separator: ", ")])
                    }
                }
                apiError = known
            } else {
                context.logger.error("unhandled error", metadata: ["error": "\(error)"])
                apiError = APIError(.internalServerError, "internal_error", "internal error; see the server log")
            }
            failure = apiError
            response = try apiError.response(from: request, context: context)
        }
        response.headers[Self.requestIDHeader] = context.id
        let duration = clock.now - start
        let route = context.endpointPath.map { $0 == "NotFound" ? "unmatched" : $0 } ?? "unmatched"
        metrics.recordRequest(route: route, method: request.method.rawValue, status: response.status.code,
                              duration: duration)
        var metadata: Logger.Metadata = [
            "method": "\(request.method.rawValue)", "path": "\(request.uri.path.prefix(200))",
            "status": "\(response.status.code)", "ms": "\(String(format: "%.1f", seconds(duration) * 1000))",
        ]
        if let identity = context.identity, identity != .anonymous { metadata["key"] = "\(identity.name)" }
        if let failure { metadata["error"] = "\(failure.code)" }
        context.logger.info("request", metadata: metadata)
        return response
    }
}

import HTTPTypes
import Hummingbird

/// The routes as registered, so that a test can hold them against the OpenAPI spec.
public struct RouteEntry: Sendable, Hashable, CustomStringConvertible {
    public let method: String
    /// In OpenAPI form: `/v1/jobs/{id}`.
    public let path: String
    /// Whether it answers without an API key.
    public let isPublic: Bool

    public var description: String { "\(method) \(path)" }
}

/// Registers handlers on a router (or group) and remembers what was registered.
final class RouteTable: @unchecked Sendable {
    private(set) var entries: [RouteEntry] = []

    func add<Output: ResponseGenerator>(
        _ methods: some RouterMethods<FluxRequestContext>, _ method: HTTPRequest.Method, _ path: String,
        isPublic: Bool, _ handler: @Sendable @escaping (Request, FluxRequestContext) async throws -> Output
    ) {
        methods.on(RouterPath(path), method: method, use: handler)
        entries.append(RouteEntry(method: method.rawValue, path: path, isPublic: isPublic))
    }
}

extension RouteTable {
    /// Methods routed for `path` (templates match any segment for `{id}`, and `{id}.png` any segment ending in
    /// `.png`): what a 405 lists in `Allow`.
    func methods(for path: String) -> [String] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        return entries.filter { entry in
            let pattern = entry.path.split(separator: "/", omittingEmptySubsequences: false)
            guard pattern.count == segments.count else { return false }
            return zip(pattern, segments).allSatisfy { pattern, segment in
                if pattern == "{id}" { return !segment.isEmpty }
                if pattern.hasPrefix("{id}") { return segment.hasSuffix(pattern.dropFirst(4)) && segment.count > pattern.count - 4 }
                return pattern == segment
            }
        }.map(\.method)
    }
}

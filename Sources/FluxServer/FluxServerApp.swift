import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import HummingbirdAuth
import Logging
import NIOCore
import ServiceLifecycle

/// A built server: the Hummingbird application (routes, worker, sweeper) and the runtime it shares with them.
public struct FluxServerApp: Sendable {
    public let application: Application<RouterResponder<FluxRequestContext>>
    public let runtime: ServerRuntime
    /// Every route, as registered.
    public let routes: [RouteEntry]

    /// Runs until SIGTERM or SIGINT, then shuts down in order: drain (503 for new work and `/readyz`, event streams
    /// closed, no new batches) until the running batch has finished or, past the grace, been re-queued, while the
    /// HTTP server still answers status reads; then the HTTP server (stops listening, finishes requests in flight),
    /// the worker, and the store (checkpointed and closed). A taken port is `ServerStartError.portInUse`.
    public func run() async throws {
        let group = ServiceGroup(configuration: .init(
            services: [application, DrainOnShutdown(runtime: runtime)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: runtime.logger))
        do {
            try await group.run()
        } catch where Self.isAddressInUse(error) {
            throw ServerStartError.portInUse(host: runtime.config.host, port: runtime.config.port)
        }
        try runtime.store.close()
        runtime.logger.info("stopped")
    }
}

extension FluxServerApp {
    /// NIO's bind failure for a taken address (the service group passes the listener's error through).
    static func isAddressInUse(_ error: any Error) -> Bool {
        if let error = error as? IOError { return error.errnoCode == EADDRINUSE }
        return false
    }
}

/// Why the server could not start listening.
public enum ServerStartError: Error, CustomStringConvertible, Equatable {
    case portInUse(host: String, port: Int)

    public var description: String {
        switch self {
        case .portInUse(let host, let port): "port \(port) on \(host) is already in use; choose another with --port"
        }
    }
}

/// Builds the application for `config` around `generator`: reads the LoRA directory (`LoRACatalog`), opens the store
/// under `config.dataDirectory` (re-queueing
/// what a previous process left), registers every route, and adds the worker and the expiry sweeper as services.
public func buildApplication(config: ServerConfig, generator: any ImageGenerator, logger: Logger) async throws
    -> FluxServerApp
{
    let runtime = try await ServerRuntime(config: config, generator: generator, logger: logger)
    let keys = APIKeys(config.apiKeys)
    if keys.isEmpty {
        logger.warning("no API keys configured: every endpoint is open (set FLUXSERVE_API_KEYS or --api-key-file)")
    }
    let router = Router(context: FluxRequestContext.self)
    // Identity first, so the request log knows it; it never throws.
    router.add(middleware: BearerKeyAuthenticator(keys: keys))
    let routes = RouteTable()
    router.add(middleware: RequestObserver(metrics: runtime.metrics, routes: routes))
    let open = router.group()
    let authenticated = router.group().add(middleware: RequireIdentityMiddleware())
    HealthAPI(runtime: runtime).register(open: open, authenticated: authenticated, routes: routes)
    FilesAPI(runtime: runtime).register(open: open, routes: routes)
    let images = ImagesAPI(runtime: runtime)
    images.register(authenticated: authenticated, routes: routes)
    ImageEditsAPI(runtime: runtime, images: images).register(authenticated: authenticated, routes: routes)
    JobsAPI(runtime: runtime).register(authenticated: authenticated, routes: routes)
    ModelsAPI(runtime: runtime).register(authenticated: authenticated, routes: routes)
    LoRAsAPI(runtime: runtime).register(authenticated: authenticated, routes: routes)

    let application = Application(
        router: router,
        configuration: .init(address: .hostname(config.host, port: config.port), serverName: "fluxserve"),
        services: [Worker(runtime: runtime), Sweeper(runtime: runtime)],
        onServerRunning: { channel in
            logger.info("listening", metadata: [
                "host": "\(config.host)", "port": "\(channel.localAddress?.port ?? config.port)",
            ])
        },
        logger: logger)
    return FluxServerApp(application: application, runtime: runtime, routes: routes.entries)
}

import Foundation
import ServiceLifecycle

/// Deletes finished jobs and their PNGs once older than `resultTTL`, every `sweepInterval` seconds.
struct Sweeper: Service {
    let runtime: ServerRuntime

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await sweep()
            try? await cancelWhenGracefulShutdown {
                try await Task.sleep(for: .seconds(runtime.config.sweepInterval))
            }
        }
    }

    func sweep() async {
        let cutoff = Date().addingTimeInterval(-runtime.config.resultTTL)
        do {
            let expired = try await runtime.store.expire(finishedBefore: cutoff)
            for job in expired { runtime.store.removeFiles(of: job) }
            if !expired.isEmpty {
                runtime.logger.info("expired results", metadata: ["jobs": "\(expired.count)"])
            }
        } catch {
            runtime.logger.error("store: expiry failed", metadata: ["error": "\(error)"])
        }
    }
}

/// The first service to hear of a graceful shutdown (SIGTERM): it drains the runtime (see `ServerRuntime.drain`) and
/// returns only when the running batch is over, so that the HTTP server, which the service group stops next, keeps
/// listening through the drain: `/readyz` 503, new work 503 with `Retry-After`, status reads and files answered.
struct DrainOnShutdown: Service {
    let runtime: ServerRuntime

    func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {
            return  // cancelled: the group is going down hard
        }
        await runtime.drain()
        await runtime.waitUntilWorkerIdle()
        runtime.logger.info("drained: the worker is idle; stopping the HTTP server")
    }
}

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// A real `fluxserve serve` process on a loopback port, for end-to-end tests. Output goes to a log file (a pipe left
/// unread would block the server); the port comes from its "listening" log line. Always `stop()` it.
final class ServeProcess: @unchecked Sendable {
    let process = Process()
    let logPath: String
    private(set) var port = 0

    /// The `fluxserve` executable built beside this test bundle (or `$FLUXSERVE_BIN`).
    static func executable() throws -> URL {
        var candidates: [URL] = []
        if let path = ProcessInfo.processInfo.environment["FLUXSERVE_BIN"] { candidates.append(URL(fileURLWithPath: path)) }
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<3 {
            candidates.append(dir.appendingPathComponent("fluxserve"))
            dir = dir.deletingLastPathComponent()
        }
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("fluxserve"))
        }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw E2EError.noExecutable(candidates.map(\.path))
        }
        return found
    }

    /// Starts `fluxserve serve --model demo --port 0 --data-dir DIR ARGS` and waits until it listens. The log is
    /// a new file beside the data directory.
    init(dataDirectory: String, arguments: [String] = [], environment: [String: String] = [:]) throws {
        logPath = dataDirectory + "-\(UUID().uuidString.prefix(8)).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = try Self.executable()
        process.arguments = ["serve", "--model", "demo", "--host", "127.0.0.1", "--port", "0", "--data-dir",
                             dataDirectory, "--max-steps", "1000"] + arguments
        var env = ProcessInfo.processInfo.environment
        env["FLUXSERVE_API_KEYS"] = nil
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && process.isRunning {
            if let port = listeningPort() {
                self.port = port
                return
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        stop()
        throw E2EError.didNotStart(log: logTail())
    }

    /// The port from the "listening" log line.
    private func listeningPort() -> Int? {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.contains("\"listening\"") {
            if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
               let port = (object["port"] as? String).flatMap(Int.init), port > 0 {
                return port
            }
        }
        return nil
    }

    func logTail(_ count: Int = 40) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(count).joined(separator: "\n")
    }

    var base: String { "http://127.0.0.1:\(port)" }

    /// Sends `signal` and waits up to `timeout` seconds for the process to exit; its exit status, or nil if it
    /// did not exit (it is then killed).
    @discardableResult
    func signal(_ signal: Int32, timeout: Double = 30) -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning {
            stop()
            return nil
        }
        return process.terminationStatus
    }

    /// Waits up to `timeout` seconds for the process to exit on its own; its exit status, or nil if it did not exit
    /// (it is then killed).
    func waitForExit(timeout: Double = 60) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning {
            stop()
            return nil
        }
        return process.terminationStatus
    }

    /// Kills the process if it still runs.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

enum E2EError: Error, CustomStringConvertible {
    case noExecutable([String])
    case didNotStart(log: String)
    case timeout(String)

    var description: String {
        switch self {
        case .noExecutable(let paths): "fluxserve executable not found (build it first); looked at \(paths)"
        case .didNotStart(let log): "fluxserve serve did not start:\n\(log)"
        case .timeout(let what): "timed out: \(what)"
        }
    }
}

/// A small HTTP client over URLSession with bounded timeouts.
struct HTTP: Sendable {
    struct Reply: Sendable {
        let status: Int
        let headers: [String: String]
        let body: Data

        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
        var text: String { String(decoding: body, as: UTF8.self) }
        var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
        func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }
    }

    let base: String
    var headers: [String: String] = [:]

    func send(_ method: String, _ path: String, json: [String: Any]? = nil, body: Data? = nil,
              headers extra: [String: String] = [:], timeout: Double = 120) async throws -> Reply {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        request.timeoutInterval = timeout
        for (key, value) in headers.merging(extra, uniquingKeysWith: { $1 }) {
            request.setValue(value, forHTTPHeaderField: key)
        }
        if let json {
            request.httpBody = try JSONSerialization.data(withJSONObject: json)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        } else if let body {
            request.httpBody = body
            if request.value(forHTTPHeaderField: "Content-Type") == nil {  // a multipart body names its own
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            }
        }
        let session = URLSession(configuration: .ephemeral)
        defer { session.finishTasksAndInvalidate() }
        let (data, response) = try await session.data(for: request)
        let http = response as? HTTPURLResponse
        var fields: [String: String] = [:]
        for (key, value) in http?.allHeaderFields ?? [:] { fields["\(key)"] = "\(value)" }
        return Reply(status: http?.statusCode ?? 0, headers: fields, body: data)
    }

    /// Polls a job until `done` (bounded by `timeout` seconds).
    @discardableResult
    func waitForJob(_ id: String, timeout: Double = 120,
                    until done: ([String: Any]) -> Bool = { ["succeeded", "failed", "cancelled"].contains($0["status"] as? String ?? "") })
        async throws -> [String: Any]
    {
        let deadline = Date().addingTimeInterval(timeout)
        var job: [String: Any] = [:]
        while Date() < deadline {
            job = try await send("GET", "/v1/jobs/\(id)").json
            if done(job) { return job }
            // A finished job will not change any more.
            if ["succeeded", "failed", "cancelled"].contains(job["status"] as? String ?? "") { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw E2EError.timeout("job \(id) never reached the expected state; last: \(job)")
    }

    func waitUntilReady(timeout: Double = 60) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? await send("GET", "/readyz", timeout: 5))?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw E2EError.timeout("readyz")
    }
}

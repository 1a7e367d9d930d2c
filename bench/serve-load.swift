// Load test for `fluxserve serve`: starts the server (the demo model unless --model is given) once per --max-batch
// value, measures the OpenAI endpoint under concurrent load (requests/s, p50/p99 latency) and the job API's image
// throughput with a full queue (the batching gain), and writes a Markdown report.
//
//   swift build -c release
//   swiftc -O bench/serve-load.swift -o serve-load     # compiled, so the client takes little of the CPU
//   ./serve-load --bin .build/release/fluxserve [--model demo] [--device cpu] [--requests 48] [--concurrency 8]
//       [--jobs 32] [--batches 1,4] [--out bench/results/DATE-cpu-serve/README.md]
//
// Everything is bounded: each request times out after 300 s and each server is stopped (SIGTERM, then SIGKILL).
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

struct Options {
    var bin = ".build/release/fluxserve"
    var model = "demo"
    var device = "cpu"
    var requests = 48
    var concurrency = 8
    var jobs = 32
    var batches = [1, 4]
    var out: String?

    init(_ arguments: [String]) {
        var i = 0
        func value() -> String {
            i += 1
            guard i < arguments.count else { fatalError("missing value for \(arguments[i - 1])") }
            return arguments[i]
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--bin": bin = value()
            case "--model": model = value()
            case "--device": device = value()
            case "--requests": requests = Int(value()) ?? requests
            case "--concurrency": concurrency = Int(value()) ?? concurrency
            case "--jobs": jobs = Int(value()) ?? jobs
            case "--batches": batches = value().split(separator: ",").compactMap { Int($0) }
            case "--out": out = value()
            default: fatalError("unknown argument \(arguments[i])")
            }
            i += 1
        }
    }
}

struct Reply {
    let status: Int
    let body: Data
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
}

func send(_ method: String, _ url: String, json: [String: Any]? = nil) async throws -> Reply {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    request.timeoutInterval = 300
    if let json {
        request.httpBody = try JSONSerialization.data(withJSONObject: json)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    }
    let session = URLSession(configuration: .ephemeral)
    defer { session.finishTasksAndInvalidate() }
    let (data, response) = try await session.data(for: request)
    return Reply(status: (response as? HTTPURLResponse)?.statusCode ?? 0, body: data)
}

/// A running server; its log goes to a file.
final class Server {
    let process = Process()
    let log: String
    var port = 0

    init(_ options: Options, maxBatch: Int, dataDirectory: String) throws {
        log = dataDirectory + ".log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.executableURL = URL(fileURLWithPath: options.bin)
        process.arguments = ["serve", "--model", options.model, "--device", options.device, "--port", "0",
                             "--data-dir", dataDirectory, "--max-batch", "\(maxBatch)", "--max-queue", "1024"]
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(600)
        while Date() < deadline && process.isRunning && port == 0 {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") where line.contains("\"listening\"") {
                let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
                port = (object?["port"] as? String).flatMap { Int($0) } ?? 0
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        guard port > 0 else {
            stop()
            throw NSError(domain: "serve-load", code: 1, userInfo: [NSLocalizedDescriptionKey: "server did not start; see \(log)"])
        }
    }

    var base: String { "http://127.0.0.1:\(port)" }

    func waitUntilReady() async throws {
        for _ in 0..<6000 {
            if (try? await send("GET", base + "/readyz"))?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw NSError(domain: "serve-load", code: 2, userInfo: [NSLocalizedDescriptionKey: "not ready"])
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// Request numbers 0..<count, handed out once each across client tasks.
final class Tickets: @unchecked Sendable {
    private let lock = NSLock()
    private var issued = 0
    private let count: Int

    init(_ count: Int) { self.count = count }

    func next() -> Int? {
        lock.withLock {
            guard issued < count else { return nil }
            issued += 1
            return issued - 1
        }
    }
}

/// The model's own time by batch size (images → batches run, mean seconds per batch), from the server's
/// "batch finished" log lines.
func batchTimes(log: String) -> [Int: (batches: Int, seconds: Double)] {
    var sums: [Int: (batches: Int, seconds: Double)] = [:]
    let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    for line in text.split(separator: "\n") where line.contains("\"batch finished\"") {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
              let images = (object["images"] as? String).flatMap({ Int($0) }),
              let seconds = (object["seconds"] as? String).flatMap({ Double($0) }) else { continue }
        let sum = sums[images] ?? (0, 0)
        sums[images] = (sum.batches + 1, sum.seconds + seconds)
    }
    return sums.mapValues { ($0.batches, $0.seconds / Double($0.batches)) }
}

struct Result {
    let maxBatch: Int
    let requestsPerSecond: Double
    let p50: Double
    let p99: Double
    let failures: Int
    let jobImagesPerSecond: Double
    /// Images per batch → (batches run, mean seconds per batch).
    let batchTimes: [Int: (batches: Int, seconds: Double)]
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}

func measure(_ options: Options, maxBatch: Int) async throws -> Result {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("serve-load-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: root) }
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    let server = try Server(options, maxBatch: maxBatch, dataDirectory: root + "/data")
    defer { server.stop() }
    try await server.waitUntilReady()
    let base = server.base

    // 1. OpenAI endpoint: `concurrency` clients, `requests` in all, each timed from send to full answer.
    let tickets = Tickets(options.requests)
    let start = Date()
    let latencies: [(Double, Bool)] = try await withThrowingTaskGroup(of: [(Double, Bool)].self) { group in
        for _ in 0..<options.concurrency {
            group.addTask {
                var mine: [(Double, Bool)] = []
                while let n = tickets.next() {
                    let t0 = Date()
                    let reply = try? await send("POST", base + "/v1/images/generations",
                                                json: ["prompt": "load test \(n)", "response_format": "b64_json",
                                                       "seed": n])
                    mine.append((Date().timeIntervalSince(t0), reply?.status == 200))
                }
                return mine
            }
        }
        return try await group.reduce(into: []) { $0 += $1 }
    }
    let wall = Date().timeIntervalSince(start)
    let sorted = latencies.map(\.0).sorted()

    // 2. Jobs: `jobs` submitted at once, then polled until all are done; images per second from first submit.
    let jobsStart = Date()
    var ids: [String] = []
    for i in 0..<options.jobs {
        let reply = try await send("POST", base + "/v1/jobs", json: ["prompt": "job \(i)", "seed": i])
        if let id = reply.json["id"] as? String { ids.append(id) }
    }
    var pending = Set(ids)
    let deadline = Date().addingTimeInterval(3600)
    while !pending.isEmpty && Date() < deadline {
        for id in pending {
            let status = try await send("GET", base + "/v1/jobs/\(id)").json["status"] as? String
            if status == "succeeded" || status == "failed" || status == "cancelled" { pending.remove(id) }
        }
        if !pending.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
    }
    let jobsWall = Date().timeIntervalSince(jobsStart)
    server.stop()
    return Result(maxBatch: maxBatch, requestsPerSecond: Double(options.requests) / wall,
                  p50: percentile(sorted, 50), p99: percentile(sorted, 99),
                  failures: latencies.filter { !$0.1 }.count + pending.count,
                  jobImagesPerSecond: Double(ids.count - pending.count) / jobsWall,
                  batchTimes: batchTimes(log: server.log))
}

func shell(_ command: String) -> String {
    let process = Process(), pipe = Pipe()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try? process.run()
    process.waitUntilExit()
    return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        .trimmingCharacters(in: .whitespacesAndNewlines)
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
var results: [Result] = []
for batch in options.batches {
    FileHandle.standardError.write(Data("max-batch \(batch): measuring…\n".utf8))
    let result = try await measure(options, maxBatch: batch)
    FileHandle.standardError.write(Data(String(format: "max-batch %d: %.2f req/s, p50 %.3f s, p99 %.3f s, jobs %.2f images/s, %d failures\n",
                                               batch, result.requestsPerSecond, result.p50, result.p99,
                                               result.jobImagesPerSecond, result.failures).utf8))
    results.append(result)
}

let date = shell("date -u +%Y-%m-%d")
var report = """
    # `fluxserve serve` load test, \(options.model) model, \(options.device)

    Date: \(date). Machine: \(shell("nproc")) CPU cores (\(shell("uname -m")), \(shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs"))), \
    shared with other work. Commit: \(shell("git rev-parse --short HEAD")). \(shell("swift --version 2>&1 | head -1")).

    Command:

    ```sh
    swift build -c release
    swiftc -O bench/serve-load.swift -o serve-load      # or run it as a script: swift bench/serve-load.swift …
    ./serve-load --bin \(options.bin) --model \(options.model) --device \(options.device) \\
        --requests \(options.requests) --concurrency \(options.concurrency) --jobs \(options.jobs) \\
        --batches \(options.batches.map(String.init).joined(separator: ","))
    ```

    Each row is a fresh server (`--max-queue 1024`). **OpenAI endpoint**: \(options.concurrency) clients send \
    \(options.requests) `POST /v1/images/generations` in all (the model's default size and steps, `b64_json`); \
    latency is from send to the whole answer. **Jobs**: \(options.jobs) `POST /v1/jobs` submitted at once, then \
    polled; images/s from the first submission to the last result.

    | --max-batch | requests/s | p50 latency (s) | p99 latency (s) | jobs: images/s | failures |
    |---:|---:|---:|---:|---:|---:|

    """
for r in results {
    report += String(format: "| %d | %.2f | %.3f | %.3f | %.2f | %d |\n", r.maxBatch, r.requestsPerSecond, r.p50,
                     r.p99, r.jobImagesPerSecond, r.failures)
}
report += """

    The model's own time per batch (from the servers' `batch finished` log lines, both runs), by images per batch:

    | images per batch | batches | mean seconds per batch | seconds per image |
    |---:|---:|---:|---:|

    """
var merged: [Int: (batches: Int, seconds: Double)] = [:]
for r in results {
    for (images, time) in r.batchTimes {
        let sum = merged[images] ?? (0, 0)
        merged[images] = (sum.batches + time.batches, sum.seconds + time.seconds * Double(time.batches))
    }
}
for images in merged.keys.sorted() {
    let time = merged[images]!, mean = time.seconds / Double(time.batches)
    report += String(format: "| %d | %d | %.3f | %.3f |\n", images, time.batches, mean, mean / Double(images))
}
if let single = results.first(where: { $0.maxBatch == 1 }), let batched = results.last, batched.maxBatch > 1 {
    report += String(format: "\nBatching gain (--max-batch %d over 1): %.2f× requests/s, %.2f× job images/s.\n",
                     batched.maxBatch, batched.requestsPerSecond / single.requestsPerSecond,
                     batched.jobImagesPerSecond / single.jobImagesPerSecond)
}
if let out = options.out {
    try FileManager.default.createDirectory(atPath: (out as NSString).deletingLastPathComponent,
                                            withIntermediateDirectories: true)
    try report.write(toFile: out, atomically: true, encoding: .utf8)
    FileHandle.standardError.write(Data("wrote \(out)\n".utf8))
} else {
    print(report)
}

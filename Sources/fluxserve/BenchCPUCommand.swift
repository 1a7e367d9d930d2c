import ArgumentParser
import FluxCPU
import Foundation

/// `fluxserve bench-cpu`: GFLOP/s of the CPU matrix product on each path, beside numpy's on the same machine.
struct BenchCPU: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-cpu",
        abstract: "Time the CPU f32 matrix product (system BLAS and Swift kernel) beside numpy's.")

    @Option(help: "Rows of A and C.")
    var m = 1024
    @Option(help: "Columns of B and C.")
    var n = 3072
    @Option(help: "Columns of A, rows of B.")
    var k = 3072
    @Option(help: "Timed runs per path after one warm-up; the median is reported.")
    var repeats = 5
    @Flag(help: "B stored n×k and used transposed (the Linear weight layout).")
    var transposedB = false
    @Option(help: "The numpy script to run, or 'none' to skip it.")
    var numpyScript = "tools/bench/numpy_gemm.py"
    @Flag(help: "Print one JSON object instead of a table.")
    var json = false
    @OptionGroup var cpu: CPUFlags

    func validate() throws {
        guard m > 0, n > 0, k > 0 else { throw ValidationError("--m, --n and --k must be positive") }
        guard m <= 1 << 15, n <= 1 << 15, k <= 1 << 15 else {
            throw ValidationError("--m, --n and --k must be at most 32768 (the matrices are held in memory)")
        }
        guard (1...1000).contains(repeats) else { throw ValidationError("--repeats must be between 1 and 1000") }
    }

    struct PathResult: Codable {
        var path: String
        /// From the median time.
        var gflops: Double
        var seconds: Double
        /// From the fastest run.
        var bestGflops: Double
    }

    struct Report: Codable {
        var m: Int, n: Int, k: Int
        var transposedB: Bool
        var threads: Int
        var blas: String?
        var results: [PathResult]
        var numpy: NumpyResult?
        var numpySkipped: String?
        /// The fastest path's GFLOP/s over numpy's.
        var ratioToNumpy: Double?
    }

    struct NumpyResult: Codable {
        var gflops: Double
        var seconds: Double
        var bestGflops: Double?
        var numpy: String?
        var blas: String?
        var threads: Int?
        var coretype: String?

        enum CodingKeys: String, CodingKey {
            case gflops, seconds, numpy, blas, threads, coretype
            case bestGflops = "best_gflops"
        }
    }

    func run() throws {
        try reportingErrors { try CPUBackend.configure(try BackendOptionsBuilder().cpu(cpu)) }
        let report = measure()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            printTable(report)
        }
    }

    func measure() -> Report {
        let a = randomMatrix(m * k, seed: 1), b = randomMatrix(k * n, seed: 2)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        c.initialize(repeating: 0, count: m * n)
        let ldb = transposedB ? k : n

        // Paths that really run (without a BLAS only the Swift kernel), timed in turns so that load from other
        // processes falls on each alike; run 0 of each warms caches, pages and threads.
        let paths = GemmPath.allCases.filter {
            resolvedGemmPath($0, m: m, n: n, k: k, lda: k, ldb: ldb, transposedB: transposedB, ldc: n,
                             threaded: true) == $0
        }
        var times = [[Double]](repeating: [], count: paths.count)
        for run in 0...repeats {
            for (index, path) in paths.enumerated() {
                let start = DispatchTime.now().uptimeNanoseconds
                sgemm(path: path, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: ldb, transposedB: transposedB,
                      c: c, ldc: n, accumulate: false)
                if run > 0 { times[index].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
            }
        }
        let results = zip(paths, times).map { path, times in
            let sorted = times.sorted(), median = sorted[sorted.count / 2]
            return PathResult(path: path.rawValue, gflops: flops / median / 1e9, seconds: median,
                              bestGflops: flops / sorted[0] / 1e9)
        }

        var report = Report(m: m, n: n, k: k, transposedB: transposedB, threads: cpuThreadCount,
                            blas: systemBLASDescription, results: results)
        switch runNumpy() {
        case .success(let numpy):
            report.numpy = numpy
            if let best = results.map(\.gflops).max(), numpy.gflops > 0 { report.ratioToNumpy = best / numpy.gflops }
        case .failure(let reason):
            report.numpySkipped = reason.message
        }
        return report
    }

    var flops: Double { 2 * Double(m) * Double(n) * Double(k) }

    func printTable(_ report: Report) {
        print("sgemm \(m)×\(n)×\(k) f32\(transposedB ? ", B transposed" : ""), \(report.threads) threads")
        print("system BLAS: \(report.blas ?? "none loaded (see --blas, or install libopenblas0)")")
        for result in report.results {
            let name = result.path == GemmPath.systemBLAS.rawValue ? "system BLAS" : "Swift kernel"
            print(row(name, result.gflops, result.seconds, best: result.bestGflops))
        }
        if let numpy = report.numpy {
            let detail = [numpy.blas, numpy.coretype, numpy.threads.map { "\($0) threads" }]
                .compactMap { $0 }.joined(separator: ", ")
            print(row("numpy", numpy.gflops, numpy.seconds, best: numpy.bestGflops) + (detail.isEmpty ? "" : "  [\(detail)]"))
            if let ratio = report.ratioToNumpy {
                print(String(format: "  fastest / numpy: %.2f", ratio))
            }
        } else if let reason = report.numpySkipped {
            print("  numpy: skipped (\(reason))")
        }
        if let coretype = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] {
            print("note: OPENBLAS_CORETYPE=\(coretype) is set; it pins OpenBLAS's kernels here and in numpy")
        }
    }

    /// `  name           123.4 GFLOP/s  (median 56.7 ms; best 130.2 GFLOP/s)`
    func row(_ name: String, _ gflops: Double, _ seconds: Double, best: Double?) -> String {
        let label = name.padding(toLength: 13, withPad: " ", startingAt: 0)
        let bestText = best.map { String(format: "; best %.1f GFLOP/s", $0) } ?? ""
        return "  \(label)" + String(format: "%8.1f GFLOP/s  (median %.2f ms", gflops, seconds * 1000) + bestText + ")"
    }

    struct Skip: Error { var message: String }

    /// Runs `python3 numpyScript M N K REPEATS` and decodes its JSON line.
    func runNumpy() -> Result<NumpyResult, Skip> {
        if numpyScript == "none" { return .failure(Skip(message: "--numpy-script none")) }
        guard FileManager.default.fileExists(atPath: numpyScript) else {
            return .failure(Skip(message: "\(numpyScript) not found; run from the repository root"))
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", numpyScript, "\(m)", "\(n)", "\(k)", "\(repeats)"]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        do { try process.run() } catch {
            return .failure(Skip(message: "python3 could not be started: \(error)"))
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let last = errorText.split(separator: "\n").last.map(String.init) ?? "exit \(process.terminationStatus)"
            return .failure(Skip(message: "python3 or numpy unavailable: \(last)"))
        }
        let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        guard let result = try? JSONDecoder().decode(NumpyResult.self, from: Data(line.utf8)) else {
            return .failure(Skip(message: "unexpected output from \(numpyScript): \(line.prefix(200))"))
        }
        return .success(result)
    }

    /// `count` floats uniform in [-1, 1) from a fixed seed (a 64-bit LCG: the numbers only need to be ordinary).
    func randomMatrix(_ count: Int, seed: UInt64) -> UnsafeMutablePointer<Float> {
        let values = UnsafeMutablePointer<Float>.allocate(capacity: count)
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        for i in 0..<count {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            values[i] = Float(Int32(truncatingIfNeeded: state >> 32)) / Float(1 << 31)
        }
        return values
    }
}

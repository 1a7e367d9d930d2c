import Foundation
import Testing

/// The backend options as the `fluxserve` executable builds them (`BackendOptionsBuilder`): flags, their environment
/// aliases, which wins, the refusal of bad values with the flag or variable named, and the `config:` line. Each case
/// runs the built executable on a command that stops right after making its backend (a model path that does not
/// exist), so no weights are needed; with no GPU here, `--device cuda` runs still print their configuration first.
@Suite struct BackendOptionsCLITests {
    struct Run {
        let status: Int32
        let stdout: String
        let stderr: String
        /// The `config: ...` line, if one was printed.
        var config: String? { stderr.split(separator: "\n").first { $0.hasPrefix("config: ") }.map(String.init) }
        /// `key=value` pairs of the config line.
        var values: [String: String] {
            Dictionary((config ?? "").dropFirst("config: ".count).split(separator: " ").compactMap { pair in
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                return parts.count == 2 ? (parts[0], parts[1]) : nil
            }, uniquingKeysWith: { $1 })
        }
    }

    /// Runs `fluxserve ARGS` with the `FLUXSERVE_*` variables of this process removed and `environment` added.
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Run {
        let process = Process()
        process.executableURL = try ServeProcess.executable()
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FLUXSERVE_") }
        env["FLUXSERVE_DEMO_MODEL"] = ProcessInfo.processInfo.environment["FLUXSERVE_DEMO_MODEL"]
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                   stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// `eval transformer` on a checkpoint that is not there: makes the backend (printing the configuration), fails.
    static func evalArguments(_ extra: [String]) -> [String] {
        ["eval", "transformer", "--model", "/nonexistent/fluxserve-model", "--inputs", "/nonexistent/in.safetensors",
         "-o", "/nonexistent/out.safetensors"] + extra
    }

    @Test func flagsReachTheConfigLine() throws {
        let run = try Self.run(Self.evalArguments(["--device", "cpu", "--threads", "3", "--blas", "none"]))
        #expect(run.status == 1)
        #expect(run.config == "config: device=cpu threads=3 blas=none", "\(run.stderr)")
    }

    @Test func aliasesApplyWhenNoFlagIsGiven() throws {
        let run = try Self.run(Self.evalArguments([]), environment: ["FLUXSERVE_THREADS": "5", "FLUXSERVE_BLAS": "none"])
        #expect(run.config == "config: device=cpu threads=5 blas=none", "\(run.stderr)")
    }

    @Test func aFlagBeatsItsAlias() throws {
        let run = try Self.run(Self.evalArguments(["--threads", "2"]), environment: ["FLUXSERVE_THREADS": "many"])
        #expect(run.values["threads"] == "2", "\(run.stderr)")
    }

    @Test func badValuesAreRefusedWithTheirNameBeforeAnythingRuns() throws {
        let flag = try Self.run(Self.evalArguments(["--threads", "0"]))
        #expect(flag.status == 1 && flag.config == nil)
        #expect(flag.stderr.contains("error: --threads '0': expected a whole number of threads"), "\(flag.stderr)")
        let alias = try Self.run(Self.evalArguments([]), environment: ["FLUXSERVE_THREADS": "zero"])
        #expect(alias.stderr.contains("error: FLUXSERVE_THREADS 'zero': expected"), "\(alias.stderr)")
        let conv = try Self.run(Self.evalArguments(["--device", "cuda", "--conv", "nhcw"]))
        #expect(conv.stderr.contains("error: --conv 'nhcw': expected auto, im2col"), "\(conv.stderr)")
        let tune = try Self.run(Self.evalArguments(["--device", "cuda"]), environment: ["FLUXSERVE_GEMM_TUNE": "fast"])
        #expect(tune.stderr.contains("error: FLUXSERVE_GEMM_TUNE 'fast': expected"), "\(tune.stderr)")
        let accumulate = try Self.run(Self.evalArguments(["--device", "cuda", "--fp8-fast-accum", "maybe"]))
        #expect(accumulate.stderr.contains("error: --fp8-fast-accum 'maybe': expected on or off"), "\(accumulate.stderr)")
        let debug = try Self.run(Self.evalArguments(["--device", "cuda"]), environment: ["FLUXSERVE_CUDA_DEBUG": "loud"])
        #expect(debug.stderr.contains("error: FLUXSERVE_CUDA_DEBUG 'loud'"), "\(debug.stderr)")
        let device = try Self.run(Self.evalArguments(["--device", "gpu"]))
        #expect(device.stderr.contains("--device 'gpu': expected cpu, cuda or cuda:N"), "\(device.stderr)")
    }

    /// GPU variables are read only for a GPU run: a stale one does not stop a CPU run.
    @Test func gpuAliasesDoNotStopACPURun() throws {
        let run = try Self.run(Self.evalArguments(["--device", "cpu"]), environment: ["FLUXSERVE_CONV": "nhcw"])
        #expect(run.values["device"] == "cpu" && run.values["conv"] == nil, "\(run.stderr)")
    }

    @Test func gpuOptionsFromFlagsAndAliases() throws {
        let run = try Self.run(
            Self.evalArguments(["--device", "cuda:1", "--gemm-tune", "off,log", "--conv", "nchw,first",
                                "--kernel-cache", "/tmp/fluxserve-k", "--cuda-lib-dir", "/a:/b"]),
            environment: ["FLUXSERVE_FP8_FAST_ACCUM": "0", "FLUXSERVE_LIBNVRTC": "/x/libnvrtc.so.13",
                          "FLUXSERVE_IMAGE_PROFILE": "1"])
        let v = run.values
        #expect(v["device"] == "cuda:1" && v["gemm-tune"] == "off,log" && v["conv"] == "nchw,first", "\(run.stderr)")
        #expect(v["fp8-fast-accum"] == "off" && v["kernel-cache"] == "/tmp/fluxserve-k" && v["cuda-lib-dir"] == "/a:/b")
        #expect(v["libnvrtc"] == "/x/libnvrtc.so.13" && v["image-diagnostics"] == "profile")
        #expect(run.status == 1)  // no such model (or, here, no GPU)
    }

    @Test func kernelCacheDefaultsAndAliases() throws {
        let home = try Self.run(Self.evalArguments(["--device", "cuda"]), environment: ["HOME": "/home/u"])
        #expect(home.values["kernel-cache"] == "/home/u/.cache/fluxserve/kernels", "\(home.stderr)")
        #expect(home.values["gemm-tune"] == "on" && home.values["fp8-fast-accum"] == "on" && home.values["conv"] == "auto")
        let alias = try Self.run(Self.evalArguments(["--device", "cuda"]), environment: ["FLUXSERVE_CACHE": "/c"])
        #expect(alias.values["kernel-cache"] == "/c/kernels", "\(alias.stderr)")
        let none = try Self.run(Self.evalArguments(["--device", "cuda", "--kernel-cache", "none"]),
                                environment: ["FLUXSERVE_CACHE": "/c"])
        #expect(none.values["kernel-cache"] == "none", "\(none.stderr)")
    }

    /// `bench --json` carries the same values as the `config:` line, as its `config` object.
    @Test func benchJSONHoldsTheConfig() throws {
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: json) }
        let run = try Self.run(["bench", "--model", "demo", "--stages", "clip", "--repeats", "1", "--warmup", "0",
                                "--sizes", "64x64", "--json", json.path, "--threads", "2"],
                               environment: ["FLUXSERVE_BLAS": "none"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any]
        let config = report?["config"] as? [String: String]
        #expect(config == ["device": "cpu", "threads": "2", "blas": "none"])
        #expect(config == run.values)
    }

    /// `bench-cpu` applies `--threads` and `--blas` to the process (what `sgemm` really used is in its report).
    @Test func benchCPUTakesTheCPUOptions() throws {
        let run = try Self.run(["bench-cpu", "--m", "8", "--n", "8", "--k", "8", "--repeats", "1", "--numpy-script",
                                "none", "--json", "--threads", "2", "--blas", "none"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        #expect(report?["threads"] as? Int == 2)
        #expect(report?["blas"] == nil || report?["blas"] is NSNull)
    }
}

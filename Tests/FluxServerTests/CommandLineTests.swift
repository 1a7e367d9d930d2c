import FluxCore
import Foundation
import Testing

/// The command line as a user meets it (the built `fluxserve`, run as a process): one way to name a model for every
/// command, one-line errors with exit status 1 for every mistake, nothing loaded before the request is judged.
@Suite struct CommandLineTests {
    typealias Run = BackendOptionsCLITests.Run

    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Run {
        try BackendOptionsCLITests.run(arguments, environment: environment)
    }

    /// Runs `arguments` and expects a refusal: exit status 1 and one stderr line, `error: …` containing `says`.
    static func expectOneErrorLine(_ arguments: [String], saying says: String) throws {
        let run = try Self.run(arguments)
        let lines = run.stderr.split(separator: "\n")
        #expect(run.status == 1, "\(arguments): status \(run.status)")
        #expect(lines.count == 1 && lines[0].hasPrefix("error: ") && lines[0].contains(says), "\(arguments): \(run.stderr)")
    }

    /// A fresh folder under the temporary directory.
    static func folder() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The demo model, where this checkout keeps it.
    static let demo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("models/demo").path

    /// A Hugging Face cache holding the demo as `org/demo` (refs/main naming its snapshot).
    static func hubCache() throws -> String {
        let cache = try Self.folder()
        let repo = cache + "/models--org--demo"
        try FileManager.default.createDirectory(atPath: repo + "/snapshots", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: repo + "/refs", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: demo, toPath: repo + "/snapshots/0123abcd")
        try Data("0123abcd\n".utf8).write(to: URL(fileURLWithPath: repo + "/refs/main"))
        return cache
    }

    @Test func everyCommandTakesTheSameModelNames() throws {
        let cache = try Self.hubCache()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let scratch = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let ids: [Int32] = [2012, 320, 736, 2013] + Array(repeating: 2013, count: 73)  // the demo's CLIP vocabulary
        try writeSafetensors(["input_ids": HostTensor(ids.map(Float.init), shape: [1, 77])], metadata: [:],
                             to: scratch + "/ids.safetensors")
        for name in ["demo", "org/demo", Self.demo] {
            let env = ["HF_HUB_CACHE": cache]
            let inspect = try Self.run(["inspect", name], environment: env)
            #expect(inspect.status == 0, "inspect \(name): \(inspect.stderr)")
            #expect(inspect.stdout.contains("loadable: yes"), "\(inspect.stdout)")
            let tokenize = try Self.run(["tokenize", "--model", name, "--encoder", "t5", "a red circle"], environment: env)
            #expect(tokenize.status == 0 && tokenize.stdout.hasPrefix("{\"input_ids\""), "tokenize \(name): \(tokenize.stderr)")
            let eval = try Self.run(["eval", "clip", "--model", name, "--inputs", scratch + "/ids.safetensors",
                                     "-o", scratch + "/clip.safetensors"], environment: env)
            #expect(eval.status == 0, "eval clip \(name): \(eval.stderr)")
        }
        let missing = try Self.run(["inspect", "org/absent"], environment: ["HF_HUB_CACHE": cache])
        #expect(missing.status == 1 && missing.stderr.hasPrefix("error: ") && missing.stderr.contains("org/absent"))
    }

    @Test func theDemoIsFoundBesideTheExecutableOrThroughItsAlias() throws {
        let elsewhere = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: elsewhere) }
        // An installation: the executable with demo-model/ beside it, nothing else.
        let binary = elsewhere + "/bin/fluxserve"
        try FileManager.default.createDirectory(atPath: elsewhere + "/bin", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try ServeProcess.executable().path, toPath: binary)
        try FileManager.default.copyItem(atPath: Self.demo, toPath: elsewhere + "/bin/demo-model")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["inspect", "demo"]
        process.currentDirectoryURL = URL(fileURLWithPath: elsewhere)
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FLUXSERVE_") }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = Pipe()
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(text.hasPrefix(elsewhere + "/bin/demo-model"), "\(text)")
        // FLUXSERVE_DEMO_MODEL names it anywhere.
        let aliased = try Self.run(["inspect", "demo"], environment: ["FLUXSERVE_DEMO_MODEL": elsewhere + "/bin/demo-model"])
        #expect(aliased.stdout.hasPrefix(elsewhere + "/bin/demo-model"), "\(aliased.stdout)")
    }

    @Test func mistakesAreOneErrorLineAndStatusOne() throws {
        let scratch = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let cases: [(arguments: [String], says: String)] = [
            (["generate", "a red circle", "--model", "demo", "--seed", "-5"], "--seed -5"),
            (["generate", "a red circle", "--model", "demo", "--steps", "-3"], "--steps -3"),
            (["generate", "a red circle", "--model", "demo", "--width", "100"], "--width 100"),
            (["generate", "a red circle", "--model", "demo", "--cache-threshold", "7"], "--cache-threshold"),
            (["generate", "   ", "--model", "demo"], "prompt"),
            (["generate", "a red circle", "--model", "demo", "-o", scratch + "/no/such/folder/out.png"], "does not exist"),
            (["generate", "a red circle", "--model", "demo", "-o", scratch + "/out.jpg"], ".png"),
            (["generate", "a red circle", "--model", "demo", "--vae", Self.demo + "/vae"], "--vae does not apply"),
            (["generate", "a red circle", "--model", "demo", "--text-encoders", Self.demo], "--text-encoders does not apply"),
            (["generate", "--model", "demo"], "prompt"),  // the argument parser's own error, in the same form
            (["generate", "x", "--model", "demo", "--no-such-flag"], "no-such-flag"),
            (["inspect", "/no/such/file.safetensors"], "/no/such/file.safetensors"),
        ]
        for c in cases {
            try Self.expectOneErrorLine(c.arguments, saying: c.says)
            #expect(!FileManager.default.fileExists(atPath: scratch + "/out.png"))
        }
        #expect(try Self.run(["--help"]).status == 0)
        #expect(try Self.run(["--version"]).stdout.hasPrefix("0."))
    }

    @Test func otherFormatsAreNamed() throws {
        let scratch = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let files: [(name: String, bytes: [UInt8], says: String)] = [
            ("model.gguf", Array("GGUF".utf8) + [3, 0, 0, 0] + Array(repeating: 0, count: 64), "GGUF"),
            ("model.ckpt", [0x50, 0x4B, 0x03, 0x04] + Array(repeating: 0, count: 64), "PyTorch"),
            ("old.bin", [0x80, 0x02, 0x7D, 0x71] + Array(repeating: 0, count: 64), "pickle"),
            ("lfs.safetensors", Array("version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n".utf8), "LFS"),
            ("image.png", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array(repeating: 0, count: 64), "PNG"),
        ]
        for file in files {
            let path = scratch + "/" + file.name
            try Data(file.bytes).write(to: URL(fileURLWithPath: path))
            let run = try Self.run(["inspect", path])
            #expect(run.status == 1 && run.stderr.hasPrefix("error: ") && run.stderr.contains(file.says)
                    && run.stderr.contains("accepted: .safetensors"), "\(file.name): \(run.stderr)")
        }
    }

    @Test func aGeneratedPNGRecordsWhatMadeIt() throws {
        let scratch = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let path = scratch + "/circle.png"
        try Data([1]).write(to: URL(fileURLWithPath: path))  // an existing file is replaced, and said so
        let long = Array(repeating: "a red circle on a blue background", count: 20).joined(separator: ", ")
        let run = try Self.run(["generate", long, "--model", "demo", "-o", path, "--seed", "-1", "--steps", "2",
                                "--width", "64", "--height", "64", "--cache-threshold", "0.1"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("replacing \(path)"))
        #expect(run.stderr.contains("warning: the prompt is") && run.stderr.contains("CLIP reads the first 77"),
                "\(run.stderr)")
        let chunks = try PNG.textChunks(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        let text = Dictionary(chunks.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        #expect(text["prompt"] == long)
        #expect(text["quantization"] == "none" && text["cache_threshold"] == "0.1")
        #expect(text["max_sequence_length"] != nil && text["model_hash"]?.count == 10)
        #expect(text["truncated"]?.hasPrefix("clip ") == true, "\(text)")
        let parameters = try #require(text["parameters"])
        for key in ["Steps: 2", "Sampler: Euler", "Distilled CFG Scale: ", "Seed: \(text["seed"] ?? "?")",
                    "Size: 64x64", "Model hash: \(text["model_hash"] ?? "?")", "Model: demo", "First Block Cache: 0.1"] {
            #expect(parameters.contains(key), "\(key) missing from \(parameters)")
        }
    }
}

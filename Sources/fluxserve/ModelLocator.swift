import FluxModel
import Foundation

/// Turns what a user passes as `--model` (or `inspect`'s path) into a path on disk, the same way for every command:
/// an existing file or folder as it is; `demo` → the demo model folder; `org/name` → its snapshot in the local
/// Hugging Face cache. Environment variables are read here, at the command-line edge, and nowhere in the libraries.
struct ModelLocator {
    /// The name that selects the demo model.
    static let demoName = "demo"

    /// `HF_HUB_CACHE`, `HF_HOME`, `HOME`, `FLUXSERVE_DEMO_MODEL` as the process got them.
    var environment: [String: String]
    /// The running executable, for the demo folder installed beside it.
    var executable: String

    init(environment: [String: String] = ProcessInfo.processInfo.environment,
         executable: String = CommandLine.arguments.first ?? "")
    {
        (self.environment, self.executable) = (environment, executable)
    }

    /// The hub cache root, as `huggingface_hub` finds it: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`.
    var hubCache: HubCache {
        if let cache = environment["HF_HUB_CACHE"], !cache.isEmpty { return HubCache(root: cache) }
        if let home = environment["HF_HOME"], !home.isEmpty { return HubCache(root: home + "/hub") }
        return HubCache(root: (environment["HOME"] ?? NSHomeDirectory()) + "/.cache/huggingface/hub")
    }

    /// The path `model` names. An existing path wins over the names, so a folder called `demo` is that folder.
    func path(for model: String) throws -> String {
        if FileManager.default.fileExists(atPath: model) { return model }
        if model == Self.demoName { return try demoFolder() }
        if HubCache.looksLikeId(model) { return try hubCache.snapshot(model) }
        throw ModelError.missingFile(path: model, expected:
            "a diffusers pipeline or component folder, a .safetensors file, a Hugging Face id in the local cache "
            + "(org/name), or demo")
    }

    /// The places the demo model may be, in order: `$FLUXSERVE_DEMO_MODEL`; beside the executable (`demo-model/`,
    /// `../share/fluxserve/demo-model/`, as an installation lays it out); `models/demo/` of a source checkout that
    /// holds the executable (`.build/release/fluxserve`) or is the working directory. Nothing about the machine
    /// that built the binary is baked in.
    var demoCandidates: [String] {
        var candidates: [String] = []
        if let explicit = environment["FLUXSERVE_DEMO_MODEL"], !explicit.isEmpty { candidates.append(explicit) }
        let binDir = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
        candidates.append(binDir.appendingPathComponent("demo-model").path)
        candidates.append(binDir.appendingPathComponent("../share/fluxserve/demo-model").standardized.path)
        var folder = binDir
        while folder.path != "/" && !folder.path.isEmpty {
            candidates.append(folder.appendingPathComponent("models/demo").path)
            folder = folder.deletingLastPathComponent()
        }
        candidates.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
            .appendingPathComponent("models/demo").path)
        return candidates
    }

    func demoFolder() throws -> String {
        let candidates = demoCandidates
        for path in candidates
        where FileManager.default.fileExists(atPath: URL(fileURLWithPath: path).appendingPathComponent("model_index.json").path) {
            return path
        }
        throw ModelError.missingFile(path: "demo", expected:
            "the demo model folder beside the executable (demo-model/) or in a source checkout (models/demo/); "
            + "set FLUXSERVE_DEMO_MODEL to its path (looked in: \(candidates.prefix(4).joined(separator: ", ")), …)")
    }
}

import Foundation

/// The Hugging Face hub cache layout (`<root>/models--org--name/snapshots/<revision>/…`, `refs/main`), read without
/// any network access. The root is configuration: the command line finds it (`HF_HUB_CACHE`, `HF_HOME/hub`,
/// `~/.cache/huggingface/hub`, as `huggingface_hub` does) and hands it here.
public struct HubCache: Sendable, Equatable {
    public let root: String

    public init(root: String) { self.root = root }

    /// Whether `name` has the shape of a hub id (`org/name`: two non-empty parts, no `.`/`..`, not absolute).
    public static func looksLikeId(_ name: String) -> Bool {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
            && !name.hasPrefix("/") && !name.contains("\\")
    }

    /// The snapshot folder of a cached repository: the revision `refs/main` names, else the only snapshot.
    public func snapshot(_ id: String) throws -> String {
        let repo = "\(root)/models--\(id.replacingOccurrences(of: "/", with: "--"))"
        guard FileManager.default.fileExists(atPath: repo) else {
            throw ModelError.missingFile(path: repo, expected:
                "\(id) in the Hugging Face cache (nothing is downloaded; fetch it with `hf download \(id)` first)")
        }
        if let main = try? String(contentsOfFile: repo + "/refs/main", encoding: .utf8) {
            let snapshot = "\(repo)/snapshots/\(main.trimmingCharacters(in: .whitespacesAndNewlines))"
            if FileManager.default.fileExists(atPath: snapshot) { return snapshot }
        }
        let snapshots = ((try? FileManager.default.contentsOfDirectory(atPath: repo + "/snapshots")) ?? []).sorted()
        guard snapshots.count == 1, let only = snapshots.first else {
            throw ModelError.missingFile(path: repo + "/snapshots", expected: snapshots.isEmpty
                ? "a downloaded snapshot" : "refs/main naming one of \(snapshots.count) snapshots")
        }
        return "\(repo)/snapshots/\(only)"
    }
}

import Foundation
@testable import FluxTokenizers

/// `Tests/Fixtures/tokenizers/...`, found from this source file so tests need no resource bundle.
func tokenizerFixture(_ components: String...) -> String {
    var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent("tokenizers")
    for c in components { url.appendPathComponent(c) }
    return url.path
}

/// corpus.json, written by tools/reference/make_tokenizer_fixtures.py: each list is the unpadded prefix of what
/// the Python tokenizer returned with FluxPipeline's arguments; the rest is pad ids with attention mask 0.
struct TokenizerCorpus: Decodable {
    struct Entry: Decodable {
        var text: String
        var clip: [Int32]
        var clip_tokens: [Int32]
        var clip_json: [Int32]
        var t5_512: [Int32]
        var t5_256: [Int32]
        var t5_tokens: [Int32]
    }

    var clip_max_length: Int
    var clip_pad_id: Int32
    var t5_pad_id: Int32
    var entries: [Entry]

    static let shared: TokenizerCorpus = {
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: tokenizerFixture("corpus.json")))
            return try JSONDecoder().decode(TokenizerCorpus.self, from: data)
        } catch {
            fatalError("cannot load corpus.json: \(error)")
        }
    }()
}

/// The padded result FluxPipeline gets: `prefix`, then `padId` up to `maxLength`; mask 1 then 0.
func expectedPadded(_ prefix: [Int32], padId: Int32, maxLength: Int) -> TokenizedText {
    let pad = max(0, maxLength - prefix.count)
    return TokenizedText(inputIds: prefix + Array(repeating: padId, count: pad),
                         attentionMask: Array(repeating: 1, count: prefix.count) + Array(repeating: 0, count: pad))
}

/// Compares every corpus entry; returns (equal count, descriptions of the first mismatches).
func compareCorpus(_ name: String, _ check: (TokenizerCorpus.Entry) -> (Bool, String)) -> (Int, [String]) {
    var equal = 0
    var failures: [String] = []
    for entry in TokenizerCorpus.shared.entries {
        let (ok, detail) = check(entry)
        if ok {
            equal += 1
        } else if failures.count < 5 {
            failures.append("\(name): \(String(reflecting: String(entry.text.prefix(60)))): \(detail)")
        }
    }
    print("\(name): \(equal)/\(TokenizerCorpus.shared.entries.count) corpus strings equal")
    return (equal, failures)
}

/// A fresh temporary folder holding copies of `files` (absolute paths).
func temporaryFolder(copying files: [String]) throws -> String {
    let folder = FileManager.default.temporaryDirectory
        .appendingPathComponent("fluxserve-tok-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    for file in files {
        try FileManager.default.copyItem(
            at: URL(fileURLWithPath: file),
            to: folder.appendingPathComponent((file as NSString).lastPathComponent))
    }
    return folder.path
}

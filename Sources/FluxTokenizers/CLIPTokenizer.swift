import FluxCore
/// CLIP's byte-level BPE tokenizer, equal to transformers 5.24's `CLIPTokenizer` (the `tokenizer/` of a FLUX
/// pipeline): `<|startoftext|>` + tokens + `<|endoftext|>`, truncated and padded with the pad token
/// (`<|endoftext|>` in FLUX.1) to 77 ids.
///
/// Loads `tokenizer.json`, or `vocab.json` + `merges.txt`, with `tokenizer_config.json` when present for the
/// special tokens. As in transformers 5, the normalizer, pre-tokenizer and post-processor are CLIP's own whatever a
/// tokenizer.json says; only its vocabulary and merges are read.
public final class CLIPTokenizer: TextTokenizer {
    public static let defaultMaxLength = 77

    private let bpe: ByteLevelBPE
    private let rawSplitter: AddedTokenSplitter
    private let normalizedSplitter: AddedTokenSplitter
    private let specialFrame: SpecialTokenFrame

    /// The id written after the text and used for padding, and the one written before it.
    public let bosId: Int32
    public let eosId: Int32
    public let padId: Int32

    public convenience init(directory: String) throws {
        let folder = try TokenizerFolder(directory)
        let config = try folder.config()
        if folder.has("tokenizer.json") {
            try self.init(tokenizerJSON: folder.file("tokenizer.json"), config: config)
        } else if folder.has("vocab.json") && folder.has("merges.txt") {
            try self.init(vocabFile: folder.file("vocab.json"), mergesFile: folder.file("merges.txt"), config: config)
        } else {
            throw TokenizerError.missingFiles(
                directory: directory, expected: "tokenizer.json, or vocab.json and merges.txt")
        }
    }

    convenience init(vocabFile: String, mergesFile: String, config: JSONDocument?) throws {
        let document = try JSONDocument(path: vocabFile)
        var vocab: [String: Int32] = [:]
        for (token, id) in try document.object(document.root, "the vocabulary") {
            vocab[token] = try document.id(id, "the id of \"\(token)\"")
        }
        let merges = try Self.readMerges(mergesFile)
        try self.init(vocab: vocab, merges: merges, fileAddedTokens: [], config: config, path: vocabFile)
    }

    convenience init(tokenizerJSON path: String, config: JSONDocument?) throws {
        let document = try JSONDocument(path: path)
        let model = try document.object(document.root["model"], "model")
        if let type = model["type"], !type.isNull {
            let name = try document.string(type, "model.type")
            guard name == "BPE" else { throw document.fail("model.type is \(name), CLIP needs BPE") }
        }
        var vocab: [String: Int32] = [:]
        for (token, id) in try document.object(model["vocab"], "model.vocab") {
            vocab[token] = try document.id(id, "model.vocab[\"\(token)\"]")
        }
        var merges: [(String, String)] = []
        for (index, merge) in try document.array(model["merges"], "model.merges").enumerated() {
            // Either "a b" strings (older files) or ["a", "b"] pairs.
            switch merge {
            case let .string(line):
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw document.fail("model.merges[\(index)] is not two symbols") }
                merges.append((String(parts[0]), String(parts[1])))
            case let .array(pair) where pair.count == 2:
                merges.append((try document.string(pair[0], "model.merges[\(index)][0]"),
                               try document.string(pair[1], "model.merges[\(index)][1]")))
            default:
                throw document.fail("model.merges[\(index)] is not a pair of symbols")
            }
        }
        let added = try document.addedTokens(fromTokenizerJSON: document.root["added_tokens"])
        try self.init(vocab: vocab, merges: merges, fileAddedTokens: added, config: config, path: path)
    }

    private init(vocab: [String: Int32], merges: [(String, String)], fileAddedTokens: [AddedToken],
                 config: JSONDocument?, path: String) throws {
        func specialToken(_ key: String, _ fallback: String) throws -> String {
            guard let config, let value = config.root[key], !value.isNull else { return fallback }
            if case let .string(content) = value { return content }
            return try config.string(config.object(value, key)["content"], "\(key).content")
        }
        let bos = try specialToken("bos_token", "<|startoftext|>")
        let eos = try specialToken("eos_token", "<|endoftext|>")
        let pad = try specialToken("pad_token", "<|endoftext|>")
        let unk = try specialToken("unk_token", "<|endoftext|>")
        func id(_ token: String, _ role: String) throws -> Int32 {
            if let id = vocab[token] { return id }
            if let added = fileAddedTokens.first(where: { $0.content == token }) { return added.id }
            throw TokenizerError.malformed(path: path, reason: "the \(role) token \(token) is not in the vocabulary")
        }
        bosId = try id(bos, "bos")
        eosId = try id(eos, "eos")
        padId = try id(pad, "pad")

        do {
            bpe = try ByteLevelBPE(ByteLevelBPE.Config(
                vocab: vocab, merges: merges, unkToken: unk, continuingSubwordPrefix: "", endOfWordSuffix: "</w>",
                fuseUnk: false))
        } catch {
            throw TokenizerError.malformed(path: path, reason: error.description)
        }

        // The special tokens are added tokens matched on the raw text unless the config says otherwise.
        var tokens = fileAddedTokens
        for (content, tokenId) in [(bos, bosId), (eos, eosId), (unk, try id(unk, "unk")), (pad, padId)]
        where !tokens.contains(where: { $0.id == tokenId }) {
            tokens.append(AddedToken(id: tokenId, content: content))
        }
        tokens = mergeAddedTokens(
            tokens, preferred: try config?.addedTokens(fromConfig: config?.root["added_tokens_decoder"]) ?? [])
        rawSplitter = AddedTokenSplitter(tokens.filter { !$0.normalized }.map { ($0.content, $0) })
        normalizedSplitter = AddedTokenSplitter(tokens.filter(\.normalized).map {
            (CLIPPreTokenizer.normalize($0.content), $0)
        })
        specialFrame = SpecialTokenFrame(prefix: [bosId], suffix: [eosId], padId: padId)
    }

    /// merges.txt: one "left right" pair a line, after an optional `#version` line.
    private static func readMerges(_ path: String) throws -> [(String, String)] {
        let bytes = try readFile(path)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw TokenizerError.malformed(path: path, reason: "not UTF-8 text")
        }
        var merges: [(String, String)] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if line.isEmpty || line.hasPrefix("#version") { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.malformed(path: path, reason: "line \(index + 1) is not two symbols")
            }
            merges.append((String(parts[0]), String(parts[1])))
        }
        return merges
    }

    public func tokenize(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        for piece in rawSplitter.split(text) {
            switch piece {
            case let .token(id):
                ids.append(id)
            case let .text(raw):
                for part in normalizedSplitter.split(CLIPPreTokenizer.normalize(raw)) {
                    switch part {
                    case let .token(id):
                        ids.append(id)
                    case let .text(normalized):
                        for word in CLIPPreTokenizer.words(normalized) {
                            bpe.encode(word[...], into: &ids)
                        }
                    }
                }
            }
        }
        return ids
    }

    public func encode(_ text: String, maxLength: Int = CLIPTokenizer.defaultMaxLength) -> TokenizedText {
        specialFrame.frame(tokenize(text), maxLength: maxLength)
    }
}

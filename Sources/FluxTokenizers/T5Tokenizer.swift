import FluxCore
import Foundation

/// T5's SentencePiece unigram tokenizer, equal to transformers 5.24's `T5TokenizerFast` (the `tokenizer_2/` of a
/// FLUX pipeline): tokens + `</s>`, truncated and padded with `<pad>` (id 0) to max_sequence_length (512 for
/// FLUX.1-dev, 256 for schnell).
///
/// Loads `tokenizer.json` if the folder has one (as transformers does), else `spiece.model`. As in transformers 5,
/// the pipeline is T5's own whatever a tokenizer.json says: normalizer = the precompiled charsmap alone;
/// pre-tokenizer = split on whitespace, then Metaspace (`▁` prepended to every word, split before every `▁`);
/// unigram model with unknown id 2 and no byte fallback; `</s>` appended.
public final class T5Tokenizer: TextTokenizer {
    private let model: UnigramModel
    private let charsmap: PrecompiledCharsmap?
    private let rawSplitter: AddedTokenSplitter
    private let normalizedSplitter: AddedTokenSplitter
    private let specialFrame: SpecialTokenFrame

    public let eosId: Int32
    public let padId: Int32
    /// Number of ids, added tokens included.
    public let vocabularySize: Int

    /// T5Tokenizer's unknown id, fixed by transformers whatever the file says.
    static let unknownId = 2
    static let metaspace: Unicode.Scalar = "\u{2581}"

    public convenience init(directory: String) throws {
        let folder = try TokenizerFolder(directory)
        let config = try folder.config()
        if folder.has("tokenizer.json") {
            try self.init(tokenizerJSON: folder.file("tokenizer.json"), config: config)
        } else if folder.has("spiece.model") {
            try self.init(sentencePieceModel: folder.file("spiece.model"), config: config)
        } else {
            throw TokenizerError.missingFiles(directory: directory, expected: "tokenizer.json or spiece.model")
        }
    }

    convenience init(tokenizerJSON path: String, config: JSONDocument?) throws {
        let document = try JSONDocument(path: path)
        let model = try document.object(document.root["model"], "model")
        let type = try document.string(model["type"], "model.type")
        guard type == "Unigram" else { throw document.fail("model.type is \(type), T5 needs Unigram") }
        let pieces = try document.array(model["vocab"], "model.vocab").enumerated().map { index, entry in
            let pair = try document.array(entry, "model.vocab[\(index)]")
            guard pair.count == 2 else { throw document.fail("model.vocab[\(index)] is not [piece, score]") }
            return (text: try document.string(pair[0], "model.vocab[\(index)][0]"),
                    score: try document.double(pair[1], "model.vocab[\(index)][1]"))
        }
        let charsmap = try Self.precompiledCharsmap(in: document.root["normalizer"], document: document)
        let added = try document.addedTokens(fromTokenizerJSON: document.root["added_tokens"])
        try self.init(pieces: pieces, charsmap: charsmap, fileAddedTokens: added, config: config, path: path)
    }

    convenience init(sentencePieceModel path: String, config: JSONDocument?) throws {
        let proto: SentencePieceModel
        do {
            proto = try SentencePieceModel(try readFile(path))
        } catch let error as SentencePieceModel.FormatError {
            throw TokenizerError.malformed(path: path, reason: "not a SentencePiece model: \(error.reason)")
        }
        guard proto.modelType == 1 else {
            throw TokenizerError.malformed(path: path, reason: "model_type \(proto.modelType) is not unigram (1)")
        }
        // transformers' T5 conversion: the pieces, then `extra_ids` sentinels <extra_id_{n-1}> ... <extra_id_0>.
        var pieces = proto.pieces.map { (text: $0.text, score: Double($0.score)) }
        var extraIds = 100
        if let config, let value = config.root["extra_ids"], !value.isNull {
            extraIds = try config.int(value, "extra_ids")
            guard (0...100_000).contains(extraIds) else { throw config.fail("extra_ids = \(extraIds) is out of range") }
        }
        var added: [AddedToken] = []
        for (id, piece) in proto.pieces.enumerated() where piece.type == .control || piece.type == .userDefined {
            added.append(AddedToken(id: Int32(id), content: piece.text, normalized: false,
                                    special: piece.type == .control))
        }
        for k in stride(from: extraIds - 1, through: 0, by: -1) {
            added.append(AddedToken(id: Int32(pieces.count), content: "<extra_id_\(k)>"))
            pieces.append((text: "<extra_id_\(k)>", score: 0))
        }
        let charsmap: PrecompiledCharsmap?
        do {
            charsmap = proto.precompiledCharsmap.isEmpty ? nil : try PrecompiledCharsmap(proto.precompiledCharsmap)
        } catch {
            throw TokenizerError.malformed(path: path, reason: error.reason)
        }
        try self.init(pieces: pieces, charsmap: charsmap, fileAddedTokens: added, config: config, path: path)
    }

    private init(pieces: [(text: String, score: Double)], charsmap: PrecompiledCharsmap?,
                 fileAddedTokens: [AddedToken], config: JSONDocument?, path: String) throws {
        do {
            model = try UnigramModel(pieces: pieces, unkId: Self.unknownId)
        } catch {
            throw TokenizerError.malformed(path: path, reason: error.reason)
        }
        self.charsmap = charsmap
        func specialToken(_ key: String, _ fallback: String) throws -> String {
            guard let config, let value = config.root[key], !value.isNull else { return fallback }
            if case let .string(content) = value { return content }
            return try config.string(config.object(value, key)["content"], "\(key).content")
        }
        var ids: [String: Int32] = [:]
        for (id, piece) in pieces.enumerated() { ids[piece.text] = Int32(id) }
        for token in fileAddedTokens { ids[token.content] = token.id }
        func id(_ token: String, _ role: String) throws -> Int32 {
            guard let id = ids[token] else {
                throw TokenizerError.malformed(
                    path: path, reason: "the \(role) token \(token) is not in the vocabulary")
            }
            return id
        }
        let eos = try specialToken("eos_token", "</s>")
        let pad = try specialToken("pad_token", "<pad>")
        let unk = try specialToken("unk_token", "<unk>")
        eosId = try id(eos, "eos")
        padId = try id(pad, "pad")

        // pad, eos and unk are special added tokens matched on the raw text, as transformers registers them.
        var tokens = fileAddedTokens
        for (content, tokenId) in [(pad, padId), (eos, eosId), (unk, try id(unk, "unk"))]
        where !tokens.contains(where: { $0.id == tokenId }) {
            tokens.append(AddedToken(id: tokenId, content: content))
        }
        tokens = mergeAddedTokens(
            tokens, preferred: try config?.addedTokens(fromConfig: config?.root["added_tokens_decoder"]) ?? [])
        vocabularySize = max(pieces.count, Int(tokens.map(\.id).max() ?? 0) + 1)
        rawSplitter = AddedTokenSplitter(tokens.filter { !$0.normalized }.map { ($0.content, $0) })
        normalizedSplitter = AddedTokenSplitter(tokens.filter(\.normalized).map {
            (charsmap?.normalize($0.content) ?? $0.content, $0)
        })
        specialFrame = SpecialTokenFrame(prefix: [], suffix: [eosId], padId: padId)
    }

    /// The `Precompiled` normalizer of a tokenizer.json, alone or inside a `Sequence`; nil if there is none.
    private static func precompiledCharsmap(in normalizer: JSONValue?, document: JSONDocument) throws
        -> PrecompiledCharsmap?
    {
        guard let normalizer, !normalizer.isNull else { return nil }
        let type = try document.string(normalizer["type"], "normalizer.type")
        if type == "Sequence" {
            for (index, inner) in try document.array(normalizer["normalizers"], "normalizer.normalizers").enumerated() {
                let innerType = try document.string(inner["type"], "normalizer.normalizers[\(index)].type")
                if innerType == "Precompiled" {
                    return try precompiledCharsmap(in: inner, document: document)
                }
            }
            return nil
        }
        guard type == "Precompiled" else { return nil }
        let encoded = try document.string(normalizer["precompiled_charsmap"], "normalizer.precompiled_charsmap")
        if encoded.isEmpty { return nil }
        guard let blob = Data(base64Encoded: encoded) else {
            throw document.fail("normalizer.precompiled_charsmap is not base64")
        }
        do {
            return try PrecompiledCharsmap([UInt8](blob))
        } catch {
            throw document.fail("normalizer.precompiled_charsmap: \(error.reason)")
        }
    }

    public func tokenize(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        for piece in rawSplitter.split(text) {
            switch piece {
            case let .token(id):
                ids.append(id)
            case let .text(raw):
                let normalized = charsmap?.normalize(raw) ?? raw
                for part in normalizedSplitter.split(normalized) {
                    switch part {
                    case let .token(id):
                        ids.append(id)
                    case let .text(chunk):
                        for word in Self.words(chunk) {
                            model.encode(word, into: &ids)
                        }
                    }
                }
            }
        }
        return ids
    }

    public func encode(_ text: String, maxLength: Int) -> TokenizedText {
        specialFrame.frame(tokenize(text), maxLength: maxLength)
    }

    /// WhitespaceSplit (drop White_Space, keep the runs between) then Metaspace with prepend_scheme "always" and
    /// split: `▁` before each run that does not start with one, and a cut before every `▁`.
    static func words(_ text: String) -> [[UInt8]] {
        var words: [[UInt8]] = []
        var run: [Unicode.Scalar] = []
        func flush() {
            if run.isEmpty { return }
            if run[0] != metaspace { run.insert(metaspace, at: 0) }
            var start = 0
            for index in 1..<run.count where run[index] == metaspace {
                words.append(Array(makeString(run[start..<index]).utf8))
                start = index
            }
            words.append(Array(makeString(run[start...]).utf8))
            run.removeAll(keepingCapacity: true)
        }
        for scalar in text.unicodeScalars {
            if scalar.properties.isWhitespace {
                flush()
            } else {
                run.append(scalar)
            }
        }
        flush()
        return words
    }
}

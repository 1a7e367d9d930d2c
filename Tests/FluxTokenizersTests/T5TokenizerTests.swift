import Foundation
import Testing
@testable import FluxTokenizers

@Suite struct T5TokenizerTests {
    static let t5: T5Tokenizer = {
        do { return try T5Tokenizer(directory: tokenizerFixture("t5")) } catch { fatalError("\(error)") }
    }()

    static func check(_ name: String, _ tokenizer: T5Tokenizer) {
        let corpus = TokenizerCorpus.shared
        for maxLength in [512, 256] {
            let (equal, failures) = compareCorpus("T5 \(name), \(maxLength)") { entry in
                let got = tokenizer.encode(entry.text, maxLength: maxLength)
                let want = expectedPadded(maxLength == 512 ? entry.t5_512 : entry.t5_256, padId: corpus.t5_pad_id,
                                          maxLength: maxLength)
                return (got == want, "got \(got.inputIds.prefix(16)), want \(want.inputIds.prefix(16))")
            }
            #expect(failures.isEmpty, "\(failures)")
            #expect(equal == corpus.entries.count)
        }
        let (equal, failures) = compareCorpus("T5 \(name), tokenize") { entry in
            let got = tokenizer.tokenize(entry.text)
            return (got == entry.t5_tokens, "got \(got.prefix(16)), want \(entry.t5_tokens.prefix(16))")
        }
        #expect(failures.isEmpty, "\(failures)")
        #expect(equal == corpus.entries.count)
    }

    /// The FLUX layout: spiece.model and tokenizer.json side by side; tokenizer.json is read, as transformers does.
    @Test func corpusFolderWithBoth() {
        Self.check("t5/ (tokenizer.json + spiece.model)", Self.t5)
        #expect(Self.t5.eosId == 1)
        #expect(Self.t5.padId == 0)
        #expect(Self.t5.vocabularySize == 3100)
    }

    @Test func corpusSpieceModelOnly() throws {
        let folder = try temporaryFolder(copying: [tokenizerFixture("t5", "spiece.model")])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        Self.check("spiece.model only", try T5Tokenizer(directory: folder))
    }

    @Test func corpusTokenizerJSONOnly() throws {
        let folder = try temporaryFolder(copying: [tokenizerFixture("t5", "tokenizer.json")])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        Self.check("tokenizer.json only", try T5Tokenizer(directory: folder))
    }

    @Test func basicIds() {
        #expect(Self.t5.encode("", maxLength: 4) == TokenizedText(inputIds: [1, 0, 0, 0], attentionMask: [1, 0, 0, 0]))
        #expect(Self.t5.tokenize("</s>") == [1])
        #expect(Self.t5.tokenize("<extra_id_0>") == [3099])
        #expect(Self.t5.encode("a b c d e", maxLength: 3).inputIds.last == 1)
        #expect(Self.t5.encode("a b c d e", maxLength: 3).inputIds.count == 3)
    }

    /// The scores read from tokenizer.json's decimal text equal the float32 scores of spiece.model.
    @Test func scoresAgreeBetweenFormats() throws {
        let proto = try SentencePieceModel(readFile(tokenizerFixture("t5", "spiece.model")))
        let document = try JSONDocument(path: tokenizerFixture("t5", "tokenizer.json"))
        let vocab = try document.array(document.root["model"]?["vocab"], "vocab")
        #expect(proto.pieces.count == 3000)
        for (index, piece) in proto.pieces.enumerated() {
            let pair = try document.array(vocab[index], "entry")
            #expect(try document.string(pair[0], "piece") == piece.text)
            #expect(try document.double(pair[1], "score") == Double(piece.score))
        }
        #expect(proto.normalizerName == "nmt_nfkc")
        #expect(proto.unkId == 2)
        #expect(!proto.precompiledCharsmap.isEmpty)
    }

    @Test func metaspaceWords() {
        func words(_ text: String) -> [String] { T5Tokenizer.words(text).map { String(decoding: $0, as: UTF8.self) } }
        #expect(words("  hello   world \n") == ["▁hello", "▁world"])
        #expect(words("▁▁a") == ["▁", "▁a"])
        #expect(words("a▁") == ["▁a", "▁"])
        #expect(words("a▁▁b") == ["▁a", "▁", "▁b"])
        #expect(words("\u{3000}") == [])
    }
}

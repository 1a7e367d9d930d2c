import Foundation
import Testing
@testable import FluxTokenizers

@Suite struct CLIPTokenizerTests {
    static let clip: CLIPTokenizer = {
        do { return try CLIPTokenizer(directory: tokenizerFixture("clip")) } catch { fatalError("\(error)") }
    }()

    @Test func knownIds() throws {
        let ids = Self.clip.encode("a photo of a cat", maxLength: 77)
        #expect(Array(ids.inputIds.prefix(7)) == [49406, 320, 1125, 539, 320, 2368, 49407])
        #expect(ids.inputIds.count == 77)
        #expect(ids.inputIds[7...].allSatisfy { $0 == 49407 })
        #expect(ids.attentionMask == Array(repeating: 1, count: 7) + Array(repeating: 0, count: 70))
        #expect(Self.clip.tokenize("a photo of a cat") == [320, 1125, 539, 320, 2368])
        #expect(CLIPTokenizer.defaultMaxLength == 77)
    }

    @Test func corpusVocabJSON() {
        let corpus = TokenizerCorpus.shared
        let (equal, failures) = compareCorpus("CLIP vocab.json+merges.txt, 77") { entry in
            let got = Self.clip.encode(entry.text, maxLength: corpus.clip_max_length)
            let want = expectedPadded(entry.clip, padId: corpus.clip_pad_id, maxLength: corpus.clip_max_length)
            return (got == want, "got \(got.inputIds.prefix(12)), want \(want.inputIds.prefix(12))")
        }
        #expect(failures.isEmpty, "\(failures)")
        #expect(equal == corpus.entries.count)
        #expect(corpus.entries.count >= 300)
    }

    @Test func corpusTokenizeWithoutSpecialTokens() {
        let (equal, failures) = compareCorpus("CLIP tokenize (no special tokens, no truncation)") { entry in
            let got = Self.clip.tokenize(entry.text)
            return (got == entry.clip_tokens, "got \(got.prefix(12)), want \(entry.clip_tokens.prefix(12))")
        }
        #expect(failures.isEmpty, "\(failures)")
        #expect(equal == TokenizerCorpus.shared.entries.count)
    }

    @Test func corpusTokenizerJSON() throws {
        let corpus = TokenizerCorpus.shared
        let small = try CLIPTokenizer(directory: tokenizerFixture("clip-json"))
        let (equal, failures) = compareCorpus("CLIP tokenizer.json (6000 merges), 77") { entry in
            let got = small.encode(entry.text, maxLength: corpus.clip_max_length)
            let want = expectedPadded(entry.clip_json, padId: small.padId, maxLength: corpus.clip_max_length)
            return (got == want, "got \(got.inputIds.prefix(12)), want \(want.inputIds.prefix(12))")
        }
        #expect(failures.isEmpty, "\(failures)")
        #expect(equal == corpus.entries.count)
    }

    /// Below the number of special tokens transformers neither truncates nor pads; 0 means no limit.
    @Test func shortMaxLengths() {
        let text = "hello world there"
        let full = Self.clip.tokenize(text)
        #expect(Self.clip.encode(text, maxLength: 0).inputIds == [49406] + full + [49407])
        #expect(Self.clip.encode(text, maxLength: 1).inputIds == [49406] + full + [49407])
        #expect(Self.clip.encode(text, maxLength: 2).inputIds == [49406, 49407])
        #expect(Self.clip.encode(text, maxLength: 3).inputIds == [49406, full[0], 49407])
    }

    @Test func specialTokenIds() {
        #expect(Self.clip.bosId == 49406)
        #expect(Self.clip.eosId == 49407)
        #expect(Self.clip.padId == 49407)
    }
}

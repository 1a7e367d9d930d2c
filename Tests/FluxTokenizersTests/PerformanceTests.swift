import Foundation
import Testing
@testable import FluxTokenizers

@Suite struct PerformanceTests {
    /// The corpus's 10,000-character strings, each through both tokenizers; prints the time per string (a figure to
    /// read, not a limit: timing belongs to benchmarks, and a loaded CI machine must not fail a test).
    @Test func tenThousandCharacters() throws {
        let clip = CLIPTokenizerTests.clip
        let t5 = T5TokenizerTests.t5
        let long = TokenizerCorpus.shared.entries.filter { $0.text.unicodeScalars.count >= 10_000 }
        #expect(long.count >= 7)
        for entry in long {
            let start = Date()
            let clipIds = clip.encode(entry.text, maxLength: 77)
            let clipTokens = clip.tokenize(entry.text)
            let t5Ids = t5.encode(entry.text, maxLength: 512)
            let t5Tokens = t5.tokenize(entry.text)
            let seconds = Date().timeIntervalSince(start)
            print(String(format: "10k chars (%@...): %.3f s for CLIP and T5, encode and tokenize (%d / %d tokens)",
                         String(entry.text.prefix(12)).debugDescription, seconds, clipTokens.count, t5Tokens.count))
            #expect(clipIds.inputIds.count == 77 && t5Ids.inputIds.count == 512)
        }
    }
}

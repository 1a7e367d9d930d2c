import Foundation
import Testing
@testable import FluxTokenizers

/// Bad folders and files give a TokenizerError naming the file, never a crash.
@Suite struct ErrorTests {
    func write(_ contents: [String: [UInt8]]) throws -> String {
        let folder = try temporaryFolder(copying: [])
        for (name, bytes) in contents {
            try Data(bytes).write(to: URL(fileURLWithPath: folder).appendingPathComponent(name))
        }
        return folder
    }

    func error(_ body: () throws -> Void) -> TokenizerError? {
        do {
            try body()
            return nil
        } catch let error as TokenizerError {
            return error
        } catch {
            Issue.record("unexpected error type: \(error)")
            return nil
        }
    }

    @Test func missingFolder() {
        let clip = error { _ = try CLIPTokenizer(directory: "/nonexistent/tokenizer") }
        #expect(clip == .missingFolder(path: "/nonexistent/tokenizer"))
        #expect(clip?.description == "/nonexistent/tokenizer: no such folder")
        let t5 = error { _ = try T5Tokenizer(directory: "/nonexistent/tokenizer_2") }
        #expect(t5?.description.contains("/nonexistent/tokenizer_2") == true)
    }

    @Test func fileInsteadOfFolder() {
        let path = tokenizerFixture("t5", "spiece.model")
        #expect(error { _ = try T5Tokenizer(directory: path) } != nil)
    }

    @Test func emptyFolder() throws {
        let folder = try write([:])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let clip = error { _ = try CLIPTokenizer(directory: folder) }
        #expect(clip?.description.contains("vocab.json") == true)
        let t5 = error { _ = try T5Tokenizer(directory: folder) }
        #expect(t5?.description.contains("spiece.model") == true)
    }

    @Test func corruptVocabJSON() throws {
        let merges = try Data(contentsOf: URL(fileURLWithPath: tokenizerFixture("clip", "merges.txt")))
        for vocab in ["{\"a\": 1,", "[1, 2]", "{\"a\": \"x\"}", "", "{\"a\": -3}", "\u{FEFF}nonsense"] {
            let folder = try write(["vocab.json": Array(vocab.utf8), "merges.txt": [UInt8](merges)])
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let failure = error { _ = try CLIPTokenizer(directory: folder) }
            #expect(failure?.description.contains("vocab.json") == true, "\(vocab): \(String(describing: failure))")
        }
    }

    @Test func badMerges() throws {
        let vocab = "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<|startoftext|>\": 3, \"<|endoftext|>\": 4}"
        for merges in ["#version: 0.2\na b c\n", "a x\n", "a\n"] {
            let folder = try write(["vocab.json": Array(vocab.utf8), "merges.txt": Array(merges.utf8)])
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let failure = error { _ = try CLIPTokenizer(directory: folder) }
            #expect(failure != nil, "\(merges)")
        }
        // A well-formed tiny vocabulary loads; "b</w>" is missing from it, so the last byte is the unknown token
        // and the merge "a b" never applies.
        let folder = try write(["vocab.json": Array(vocab.utf8), "merges.txt": Array("a b\n".utf8)])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let tiny = try CLIPTokenizer(directory: folder)
        #expect(tiny.tokenize("ab") == [0, 4])
        #expect(tiny.tokenize("zz") == [4, 4])
    }

    @Test func truncatedSpieceModel() throws {
        let model = [UInt8](try Data(contentsOf: URL(fileURLWithPath: tokenizerFixture("t5", "spiece.model"))))
        for length in [0, 1, 2, 7, 100, 1000, model.count / 2, model.count - 1] {
            let folder = try write(["spiece.model": Array(model.prefix(length))])
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let failure = error { _ = try T5Tokenizer(directory: folder) }
            #expect(failure?.description.contains("spiece.model") == true, "length \(length)")
        }
        // Random bytes.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let noise = (0..<256).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let folder = try write(["spiece.model": noise])
            defer { try? FileManager.default.removeItem(atPath: folder) }
            _ = error { _ = try T5Tokenizer(directory: folder) }  // any outcome but a crash
        }
    }

    @Test func corruptTokenizerJSON() throws {
        let cases = [
            "{}", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
            "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", \"x\"]]}}",
            "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"<pad>\", 0], [\"</s>\", 0]]}}",
            "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"<pad>\", 0], [\"</s>\", 0], [\"<unk>\", 0]]},"
                + "\"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"AAAA\"}}",
            "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"<pad>\", 0], [\"</s>\", 0], [\"<unk>\", 0]]},"
                + "\"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"!!\"}}",
            "[", "{\"model\": 3}",
        ]
        for text in cases {
            let folder = try write(["tokenizer.json": Array(text.utf8)])
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let failure = error { _ = try T5Tokenizer(directory: folder) }
            #expect(failure?.description.contains("tokenizer.json") == true, "\(text)")
        }
        // The smallest valid one tokenizes everything to unknowns.
        let minimal = "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"<pad>\", 0], [\"</s>\", 0], [\"<unk>\", 0]]}}"
        let folder = try write(["tokenizer.json": Array(minimal.utf8)])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let tiny = try T5Tokenizer(directory: folder)
        #expect(tiny.encode("hello world", maxLength: 5).inputIds == [2, 2, 1, 0, 0])
    }

    @Test func damagedCharsmapDoesNotCrash() throws {
        // A trie whose offsets point outside it: lookups stop instead of trapping.
        var blob: [UInt8] = [8, 0, 0, 0]
        blob += [0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0xFF, 0xFF, 0x7F]
        blob += Array("x\0".utf8)
        let charsmap = try PrecompiledCharsmap(blob)
        #expect(charsmap.normalize("abc ✓ 漢") == "abc ✓ 漢")
    }
}

import Foundation
import Testing
@testable import FluxTokenizers

/// unicode_classes.json holds, for every scalar, the class Oniguruma (inside `tokenizers`) gives it for CLIP's
/// pattern, and every scalar whose lowercase under `tokenizers`' Lowercase normalizer differs from itself.
@Suite struct UnicodeTableTests {
    struct Table: Decodable {
        var runs: [[JSONNumberOrString]]
        var lowercase: [[JSONNumberOrString]]
    }

    enum JSONNumberOrString: Decodable {
        case number(Int)
        case string(String)

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let int = try? container.decode(Int.self) {
                self = .number(int)
            } else {
                self = .string(try container.decode(String.self))
            }
        }

        var int: Int? { if case let .number(n) = self { n } else { nil } }
        var string: String? { if case let .string(s) = self { s } else { nil } }
    }

    static let table: Table = {
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: tokenizerFixture("unicode_classes.json")))
            return try JSONDecoder().decode(Table.self, from: data)
        } catch {
            fatalError("cannot load unicode_classes.json: \(error)")
        }
    }()

    @Test func regexClassesMatchOniguruma() throws {
        var checked = 0
        var mismatches: [String] = []
        for run in Self.table.runs {
            let first = try #require(run[0].int), last = try #require(run[1].int)
            let want: RegexClass = switch run[2].string {
            case "L": .letter
            case "N": .number
            case "S": .space
            default: .other
            }
            for value in first...last {
                guard let scalar = Unicode.Scalar(UInt32(value)) else { continue }
                checked += 1
                if scalar.regexClass != want && mismatches.count < 20 {
                    mismatches.append(String(value, radix: 16))
                }
            }
        }
        print("regex classes: \(checked) scalars checked, \(mismatches.count) differ")
        #expect(checked == 0x110000 - 0x800)
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    @Test func lowercaseMatchesTokenizers() throws {
        var expected: [UInt32: String] = [:]
        for entry in Self.table.lowercase {
            let scalar = try #require(entry[0].int)
            let mapped: String = try #require(entry[1].string)
            expected[UInt32(scalar)] = mapped
        }
        var mismatches: [String] = []
        var checked = 0
        for value in UInt32(0)..<0x110000 {
            guard let scalar = Unicode.Scalar(value) else { continue }
            let want = expected[value] ?? String(scalar)
            let got = CLIPPreTokenizer.normalize(String(scalar))
            // Only scalars NFC leaves alone and that are not whitespace test the lowercase mapping directly.
            let composed = String(scalar).precomposedStringWithCanonicalMapping
            guard Array(composed.unicodeScalars) == [scalar], scalar.regexClass != .space else { continue }
            checked += 1
            if Array(got.unicodeScalars) != Array(want.unicodeScalars) && mismatches.count < 20 {
                mismatches.append(String(value, radix: 16))
            }
        }
        print("lowercase: \(checked) scalars checked, \(expected.count) with a mapping")
        #expect(checked > 1_000_000)
        #expect(mismatches.isEmpty, "\(mismatches)")
    }
}

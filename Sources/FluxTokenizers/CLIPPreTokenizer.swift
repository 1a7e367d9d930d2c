import Foundation

/// CLIP's text clean-up and word splitting, as transformers 5's CLIPTokenizer configures `tokenizers`:
/// normalizer NFC -> `\s+` replaced by one space -> per-scalar lowercase; pre-tokenizer Split on
/// `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+` keeping only the
/// matches, then ByteLevel's GPT-2 split (`'s|'t|...| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|...`) of each match.
/// (No ftfy and no HTML unescaping: transformers 5 does neither.)
enum CLIPPreTokenizer {
    static func normalize(_ text: String) -> String {
        let composed = text.precomposedStringWithCanonicalMapping
        var out = String.UnicodeScalarView()
        var inSpace = false
        for scalar in composed.unicodeScalars {
            if scalar.regexClass == .space {
                if !inSpace { out.append(" ") }
                inSpace = true
                continue
            }
            inSpace = false
            // Rust's char::to_lowercase: the full mapping of each scalar on its own (no final-sigma rule).
            let lower = scalar.properties.lowercaseMapping
            if lower.unicodeScalars.count == 1 && lower.unicodeScalars.first == scalar {
                out.append(scalar)
            } else {
                out.append(contentsOf: lower.unicodeScalars)
            }
        }
        return String(out)
    }

    private static let specialWords: [[Unicode.Scalar]] = ["<|startoftext|>", "<|endoftext|>"].map {
        Array($0.unicodeScalars)
    }
    private static let contractionTails: [[Unicode.Scalar]] = ["s", "t", "re", "ve", "m", "ll", "d"].map {
        Array($0.unicodeScalars)
    }

    /// The words of normalized text, each as UTF-8 bytes ready for the byte-level BPE.
    static func words(_ normalized: String) -> [[UInt8]] {
        let scalars = Array(normalized.unicodeScalars)
        var words: [[UInt8]] = []
        var position = 0
        while position < scalars.count {
            if let length = clipMatch(scalars, at: position) {
                let piece = scalars[position..<(position + length)]
                for range in gpt2Split(piece) {
                    words.append(Array(makeString(piece[range]).utf8))
                }
                position += length
            } else {
                position += 1  // whitespace: not part of any match, dropped
            }
        }
        return words
    }

    private static func hasPrefix(_ scalars: ArraySlice<Unicode.Scalar>, at position: Int,
                                  _ prefix: [Unicode.Scalar]) -> Bool {
        position + prefix.count <= scalars.endIndex
            && scalars[position..<(position + prefix.count)].elementsEqual(prefix)
    }

    /// Length of a contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`, tried in that order) at `position`.
    private static func contraction(_ scalars: ArraySlice<Unicode.Scalar>, at position: Int) -> Int? {
        guard scalars[position] == "'" else { return nil }
        for tail in contractionTails where hasPrefix(scalars, at: position + 1, tail) {
            return 1 + tail.count
        }
        return nil
    }

    private static func run(_ scalars: ArraySlice<Unicode.Scalar>, from position: Int,
                            while keep: (RegexClass) -> Bool) -> Int {
        var end = position
        while end < scalars.endIndex, keep(scalars[end].regexClass) { end += 1 }
        return end - position
    }

    /// Length of the CLIP pattern's match starting at `position`, nil if none starts there.
    private static func clipMatch(_ scalars: [Unicode.Scalar], at position: Int) -> Int? {
        let all = scalars[...]
        for word in specialWords where hasPrefix(all, at: position, word) {
            return word.count
        }
        if let length = contraction(all, at: position) { return length }
        switch scalars[position].regexClass {
        case .letter: return run(all, from: position) { $0 == .letter }
        case .number: return 1
        case .other: return run(all, from: position) { $0 == .other }
        case .space: return nil
        }
    }

    /// GPT-2's pattern over one CLIP match (which holds no whitespace): contractions, letter runs, number runs,
    /// runs of anything else. Splits `<|endoftext|>` into `<|`, `endoftext`, `|>`.
    private static func gpt2Split(_ piece: ArraySlice<Unicode.Scalar>) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var position = piece.startIndex
        while position < piece.endIndex {
            var length: Int
            if let contracted = contraction(piece, at: position) {
                length = contracted
            } else {
                let kind = piece[position].regexClass
                length = run(piece, from: position) { $0 == kind }
            }
            length = max(length, 1)
            ranges.append(position..<(position + length))
            position += length
        }
        return ranges
    }
}

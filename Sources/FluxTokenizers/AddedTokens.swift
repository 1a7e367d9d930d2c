/// A token matched on the text before the model sees it (`<|endoftext|>`, `</s>`, `<extra_id_0>`, ...), with the
/// flags of `tokenizers`' AddedToken.
struct AddedToken: Sendable, Equatable {
    var id: Int32
    var content: String
    var singleWord = false
    var lstrip = false
    var rstrip = false
    /// Matched on the normalized text (true) or on the raw text (false).
    var normalized = false
    var special = true
}

/// Text between added tokens, or an added token's id.
enum TextPiece: Equatable {
    case text(String)
    case token(Int32)
}

/// Splits text around added tokens the way `tokenizers`' AddedVocabulary does: leftmost-longest matches scanned
/// left to right without overlap, then `single_word` matches not standing alone are dropped and `lstrip` /
/// `rstrip` widen a match over the whitespace beside it.
struct AddedTokenSplitter: Sendable {
    private struct Pattern: Sendable {
        var scalars: [Unicode.Scalar]
        var token: AddedToken
    }

    private let patterns: [Pattern]
    /// First scalar -> indices into `patterns`, longest first.
    private let byFirstScalar: [UInt32: [Int]]

    /// `pairs`: the text to look for (the content, or its normalized form) and the token it stands for.
    init(_ pairs: [(pattern: String, token: AddedToken)]) {
        var patterns: [Pattern] = []
        for (text, token) in pairs where !text.isEmpty {
            patterns.append(Pattern(scalars: Array(text.unicodeScalars), token: token))
        }
        var index: [UInt32: [Int]] = [:]
        for (i, pattern) in patterns.enumerated() {
            index[pattern.scalars[0].value, default: []].append(i)
        }
        for key in index.keys {
            index[key]?.sort { a, b in
                let (la, lb) = (patterns[a].scalars.count, patterns[b].scalars.count)
                return la != lb ? la > lb : patterns[a].token.id < patterns[b].token.id
            }
        }
        self.patterns = patterns
        self.byFirstScalar = index
    }

    var isEmpty: Bool { patterns.isEmpty }

    func split(_ text: String) -> [TextPiece] {
        if patterns.isEmpty || text.isEmpty { return text.isEmpty ? [] : [.text(text)] }
        let scalars = Array(text.unicodeScalars)
        var pieces: [TextPiece] = []
        var consumed = 0
        var position = 0
        while position < scalars.count {
            guard let (index, length) = longestMatch(in: scalars, at: position) else {
                position += 1
                continue
            }
            var start = position
            var stop = position + length
            position = stop
            let token = patterns[index].token
            if token.singleWord {
                let alone = (start == 0 || !isWordScalar(scalars[start - 1]))
                    && (stop == scalars.count || !isWordScalar(scalars[stop]))
                if !alone { continue }
            }
            if token.lstrip {
                var newStart = start
                while newStart > 0, scalars[newStart - 1].properties.isWhitespace { newStart -= 1 }
                start = max(newStart, consumed)
            }
            if token.rstrip {
                while stop < scalars.count, scalars[stop].properties.isWhitespace { stop += 1 }
            }
            if consumed < start {
                pieces.append(.text(makeString(scalars[consumed..<start])))
            }
            pieces.append(.token(token.id))
            consumed = stop
        }
        if consumed < scalars.count {
            pieces.append(.text(makeString(scalars[consumed...])))
        }
        return pieces
    }

    private func longestMatch(in scalars: [Unicode.Scalar], at position: Int) -> (Int, Int)? {
        guard let candidates = byFirstScalar[scalars[position].value] else { return nil }
        for index in candidates {
            let pattern = patterns[index].scalars
            if position + pattern.count <= scalars.count
                && scalars[position..<(position + pattern.count)].elementsEqual(pattern) {
                return (index, pattern.count)
            }
        }
        return nil
    }
}

/// `\w` of Rust's regex crate (Unicode): Alphabetic, marks, decimal digits, connector punctuation, Join_Control.
func isWordScalar(_ scalar: Unicode.Scalar) -> Bool {
    let properties = scalar.properties
    if properties.isAlphabetic || properties.isJoinControl { return true }
    switch properties.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
    default: return false
    }
}

func makeString<C: Collection>(_ scalars: C) -> String where C.Element == Unicode.Scalar {
    var view = String.UnicodeScalarView()
    view.append(contentsOf: scalars)
    return String(view)
}

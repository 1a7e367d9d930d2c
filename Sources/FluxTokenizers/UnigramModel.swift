/// SentencePiece's unigram model as `tokenizers` runs it (`Unigram::encode_optimized`): the Viterbi path of
/// highest total score over the pieces that match the word's bytes; a character no piece covers on its own costs
/// (lowest score - 10) as the unknown piece, and adjacent unknowns are fused into one token.
///
/// As in `tokenizers` (unlike SentencePiece itself), every piece can match, control pieces such as `</s>` and
/// `<unk>` included.
struct UnigramModel: Sendable {
    private let scores: [Double]
    private let trie: ByteTrie
    private let unkId: Int32
    private let unkScore: Double

    struct BuildError: Error {
        var reason: String
    }

    init(pieces: [(text: String, score: Double)], unkId: Int) throws(BuildError) {
        guard !pieces.isEmpty else { throw BuildError(reason: "the vocabulary is empty") }
        guard unkId >= 0 && unkId < pieces.count else {
            throw BuildError(reason: "unk id \(unkId) is outside the vocabulary of \(pieces.count)")
        }
        var trie = ByteTrie()
        var minScore = Double.infinity
        for (id, piece) in pieces.enumerated() {
            trie.insert(Array(piece.text.utf8), id: Int32(id))  // a repeated piece keeps its last id
            minScore = min(minScore, piece.score)
        }
        self.scores = pieces.map(\.score)
        self.trie = trie
        self.unkId = Int32(unkId)
        self.unkScore = minScore - 10
    }

    /// Appends the ids of one pre-tokenized word (UTF-8 bytes).
    func encode(_ word: [UInt8], into ids: inout [Int32]) {
        let size = word.count
        if size == 0 { return }
        // Best path ending at each byte offset: its score, where its last piece starts (-1: none yet), that piece.
        var bestScore = [Double](repeating: 0, count: size + 1)
        var startsAt = [Int](repeating: -1, count: size + 1)
        var bestId = [Int32](repeating: 0, count: size + 1)
        var start = 0
        while start < size {
            let scoreHere = bestScore[start]
            let characterLength = utf8Length(leadByte: word[start], remaining: size - start)
            var hasSingleNode = false
            trie.forEachPrefix(of: word, from: start) { end, id in
                let candidate = scores[Int(id)] + scoreHere
                if startsAt[end] == -1 || candidate > bestScore[end] {
                    bestScore[end] = candidate
                    startsAt[end] = start
                    bestId[end] = id
                }
                if end - start == characterLength { hasSingleNode = true }
            }
            if !hasSingleNode {
                let end = start + characterLength
                let candidate = unkScore + scoreHere
                if startsAt[end] == -1 || candidate > bestScore[end] {
                    bestScore[end] = candidate
                    startsAt[end] = start
                    bestId[end] = unkId
                }
            }
            start += characterLength
        }

        // Walk back from the end; runs of unknown pieces become one token, looked up again as a whole.
        var path: [Int32] = []
        var end = size
        var unknownRunStart = -1
        var unknownRunEnd = -1
        func flushUnknownRun() {
            if unknownRunStart >= 0 {
                path.append(trie.id(of: word[unknownRunStart..<unknownRunEnd]) ?? unkId)
                unknownRunStart = -1
            }
        }
        while end > 0 {
            let begin = startsAt[end]
            guard begin >= 0 else { break }  // unreachable for valid UTF-8
            if bestId[end] == unkId {
                if unknownRunStart < 0 { unknownRunEnd = end }
                unknownRunStart = begin
            } else {
                flushUnknownRun()
                path.append(bestId[end])
            }
            end = begin
        }
        flushUnknownRun()
        ids.append(contentsOf: path.reversed())
    }
}

/// Length of the UTF-8 sequence a lead byte starts, at least 1 and at most what is left.
func utf8Length(leadByte: UInt8, remaining: Int) -> Int {
    let length: Int
    switch leadByte {
    case 0xF0...: length = 4
    case 0xE0...: length = 3
    case 0xC0...: length = 2
    default: length = 1
    }
    return min(length, remaining)
}

/// A byte trie from piece text to piece id.
struct ByteTrie: Sendable {
    /// (node << 8 | byte) -> child node.
    private var children: [Int: Int32] = [:]
    /// Piece id ending at each node, -1 where none does.
    private var terminal: [Int32] = [-1]

    mutating func insert(_ key: [UInt8], id: Int32) {
        if key.isEmpty { return }
        var node = 0
        for byte in key {
            let slot = node << 8 | Int(byte)
            if let child = children[slot] {
                node = Int(child)
            } else {
                let child = terminal.count
                terminal.append(-1)
                children[slot] = Int32(child)
                node = child
            }
        }
        terminal[node] = id
    }

    /// Calls `body(end, id)` for every piece that `bytes[start..<end]` spells, shortest first.
    func forEachPrefix(of bytes: [UInt8], from start: Int, _ body: (Int, Int32) -> Void) {
        var node = 0
        var position = start
        while position < bytes.count, let child = children[node << 8 | Int(bytes[position])] {
            node = Int(child)
            position += 1
            if terminal[node] >= 0 { body(position, terminal[node]) }
        }
    }

    func id(of key: ArraySlice<UInt8>) -> Int32? {
        var node = 0
        for byte in key {
            guard let child = children[node << 8 | Int(byte)] else { return nil }
            node = Int(child)
        }
        return key.isEmpty || terminal[node] < 0 ? nil : terminal[node]
    }
}

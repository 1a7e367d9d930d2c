/// GPT-2's byte -> character table, used by CLIP's vocabulary: printable Latin-1 bytes stand for themselves, the
/// other 68 bytes map to U+0100 onwards in byte order.
let byteLevelCharacters: [Character] = {
    var printable = Array(UInt32(0x21)...0x7E) + Array(UInt32(0xA1)...0xAC) + Array(UInt32(0xAE)...0xFF)
    var table = [UInt32](repeating: 0, count: 256)
    for byte in printable { table[Int(byte)] = byte }
    var extra: UInt32 = 0
    for byte in 0..<256 where !printable.contains(UInt32(byte)) {
        table[byte] = 256 + extra
        extra += 1
        printable.append(UInt32(byte))
    }
    return table.map { Character(Unicode.Scalar($0)!) }
}()

/// Byte-pair encoding over byte-level symbols, as `tokenizers`' BPE model runs it: every byte of a word starts as
/// its own symbol (the last one with the end-of-word suffix, `</w>` for CLIP), then the pair of adjacent symbols
/// with the lowest merge rank is merged, leftmost first among equal ranks, until no listed pair remains.
struct ByteLevelBPE: Sendable {
    /// Symbol ids of single bytes: [first-in-word or not][last-in-word or not][byte]; nil where the vocabulary
    /// lacks the string.
    private let byteSymbols: [[[Int32?]]]
    /// (left id, right id) packed in 64 bits -> (rank, merged id).
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    private let unkId: Int32?
    private let fuseUnk: Bool

    struct Config {
        var vocab: [String: Int32]
        var merges: [(String, String)]
        var unkToken: String?
        var continuingSubwordPrefix = ""
        var endOfWordSuffix = ""
        var fuseUnk = false
    }

    /// Throws a message naming the merge whose parts or result are missing from the vocabulary.
    init(_ config: Config) throws(BPEBuildError) {
        let vocab = config.vocab
        var symbols: [[[Int32?]]] = []
        for first in [true, false] {
            var row: [[Int32?]] = []
            for last in [true, false] {
                row.append((0..<256).map { byte in
                    var key = String(byteLevelCharacters[byte])
                    if !first { key = config.continuingSubwordPrefix + key }
                    if last { key += config.endOfWordSuffix }
                    return vocab[key]
                })
            }
            symbols.append(row)
        }
        byteSymbols = symbols

        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        table.reserveCapacity(config.merges.count)
        let prefix = config.continuingSubwordPrefix
        for (rank, (left, right)) in config.merges.enumerated() {
            guard let leftId = vocab[left] else { throw BPEBuildError(merge: rank, missing: left) }
            guard let rightId = vocab[right] else { throw BPEBuildError(merge: rank, missing: right) }
            let merged = left + (right.hasPrefix(prefix) ? String(right.dropFirst(prefix.count)) : right)
            guard let mergedId = vocab[merged] else { throw BPEBuildError(merge: rank, missing: merged) }
            // Later duplicates win, as when tokenizers collects the merges into a map.
            table[Self.key(leftId, rightId)] = (Int32(truncatingIfNeeded: rank), mergedId)
        }
        merges = table
        unkId = config.unkToken.flatMap { vocab[$0] }
        fuseUnk = config.fuseUnk
    }

    private static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    private struct Symbol {
        var id: Int32
        var prev: Int
        var next: Int
        var length: Int  // bytes covered; 0 once merged into the symbol on its left
    }

    /// Appends the ids of one pre-tokenized word (raw UTF-8 bytes, mapped to byte-level characters here).
    func encode(_ word: ArraySlice<UInt8>, into ids: inout [Int32]) {
        if word.isEmpty { return }
        var symbols: [Symbol] = []
        symbols.reserveCapacity(word.count)
        var pendingUnk: (id: Int32, length: Int)?
        func add(_ id: Int32, _ length: Int) {
            let index = symbols.count
            symbols.append(Symbol(id: id, prev: index - 1, next: -1, length: length))
            if index > 0 { symbols[index - 1].next = index }
        }
        let start = word.startIndex
        for index in word.indices {
            let table = byteSymbols[index == start ? 0 : 1][index == word.endIndex - 1 ? 0 : 1]
            if let id = table[Int(word[index])] {
                if let unk = pendingUnk {
                    add(unk.id, unk.length)
                    pendingUnk = nil
                }
                add(id, 1)
            } else if let unkId {
                if let unk = pendingUnk {
                    if fuseUnk {
                        pendingUnk = (unk.id, unk.length + 1)
                        continue
                    }
                    add(unk.id, unk.length)
                }
                pendingUnk = (unkId, 1)
            }
        }
        if let unk = pendingUnk { add(unk.id, unk.length) }
        if symbols.isEmpty { return }
        mergeAll(&symbols)
        for symbol in symbols where symbol.length != 0 {
            ids.append(symbol.id)
        }
    }

    private func mergeAll(_ symbols: inout [Symbol]) {
        var queue = MergeQueue()
        for index in 0..<(symbols.count - 1) {
            if let merge = merges[Self.key(symbols[index].id, symbols[index + 1].id)] {
                queue.push(MergeQueue.Entry(rank: merge.rank, position: index, id: merge.id))
            }
        }
        while let top = queue.pop() {
            let position = top.position
            if symbols[position].length == 0 || symbols[position].next == -1 { continue }
            let nextPosition = symbols[position].next
            let right = symbols[nextPosition]
            // Skip entries made stale by an earlier merge.
            guard let current = merges[Self.key(symbols[position].id, right.id)], current.id == top.id else {
                continue
            }
            symbols[position].id = top.id
            symbols[position].length += right.length
            symbols[position].next = right.next
            symbols[nextPosition].length = 0
            if right.next >= 0 && right.next < symbols.count {
                symbols[right.next].prev = position
            }
            let merged = symbols[position]
            if merged.prev >= 0, let merge = merges[Self.key(symbols[merged.prev].id, merged.id)] {
                queue.push(MergeQueue.Entry(rank: merge.rank, position: merged.prev, id: merge.id))
            }
            if merged.next >= 0 && merged.next < symbols.count,
               let merge = merges[Self.key(merged.id, symbols[merged.next].id)] {
                queue.push(MergeQueue.Entry(rank: merge.rank, position: position, id: merge.id))
            }
        }
    }
}

struct BPEBuildError: Error {
    var merge: Int
    var missing: String
    var description: String { "merge \(merge + 1) needs \"\(missing)\", which is not in the vocabulary" }
}

/// Binary min-heap of pending merges ordered by (rank, position).
private struct MergeQueue {
    struct Entry {
        var rank: Int32
        var position: Int
        var id: Int32

        func precedes(_ other: Entry) -> Bool {
            rank != other.rank ? rank < other.rank : position < other.position
        }
    }

    private var heap: [Entry] = []

    mutating func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let first = heap.first else { return nil }
        let last = heap.removeLast()
        if heap.isEmpty { return first }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            if left >= heap.count { break }
            var best = left
            if left + 1 < heap.count && heap[left + 1].precedes(heap[left]) { best = left + 1 }
            guard heap[best].precedes(heap[parent]) else { break }
            heap.swapAt(best, parent)
            parent = best
        }
        return first
    }
}

import Dispatch

/// Several byte spans seen as one array of fixed-size elements laid end to end (a weight stored as parts, a tensor
/// split across staging buffers): visiting the parts that fall in a range, and cutting a range across threads.
public struct JoinedPieces: @unchecked Sendable {
    public let pieces: [UnsafeRawBufferPointer]
    /// Bytes per element; every piece holds a whole number of them.
    public let elementSize: Int

    public init(_ pieces: [UnsafeRawBufferPointer], elementSize: Int) {
        (self.pieces, self.elementSize) = (pieces, elementSize)
    }

    /// Calls `body(source, first, count)` for each piece's part inside `elements`, in order: `count` elements at
    /// `source`, which are elements `first ..< first + count` of the joined array.
    public func forEachPart(in elements: Range<Int>, _ body: (UnsafeRawPointer, Int, Int) -> Void) {
        var pieceStart = 0  // index of the piece's first element in the joined array
        for piece in pieces {
            let pieceCount = piece.count / elementSize
            let lo = max(elements.lowerBound, pieceStart), hi = min(elements.upperBound, pieceStart + pieceCount)
            if lo < hi, let base = piece.baseAddress { body(base + (lo - pieceStart) * elementSize, lo, hi - lo) }
            pieceStart += pieceCount
            if pieceStart >= elements.upperBound { break }
        }
    }
}

/// Runs `body` over `range` cut into up to 4 × `threads` slices of at least `minimumSlice` items, concurrently (more
/// slices than threads, so a slice slowed by page faults holds up nothing); once, on this thread, when a single
/// slice would do. `body` must only write what its slice owns.
public func forEachSlice(of range: Range<Int>, minimumSlice: Int, threads: Int, _ body: (Range<Int>) -> Void) {
    let slices = min(4 * max(threads, 1), range.count / max(minimumSlice, 1))
    guard threads > 1, slices > 1 else { return body(range) }
    withoutActuallyEscaping(body) { body in
        let shared = UncheckedBody(body: body)
        DispatchQueue.concurrentPerform(iterations: slices) { s in
            shared.body((range.lowerBound + range.count * s / slices)..<(range.lowerBound + range.count * (s + 1) / slices))
        }
    }
}

/// The slice body, handed to worker threads that write disjoint memory.
private struct UncheckedBody: @unchecked Sendable {
    let body: (Range<Int>) -> Void
}

/// The Swift single-precision matrix product: packed, cache-blocked and register-tiled, in the loop order of Goto and
/// BLIS. It is the path `sgemm` takes when no system BLAS is loaded, and the one every BLAS result is tested against.
///
///   for jc in n by nc:               B panel (kc × nc) packed once per (jc, pc), shared by all workers (L3)
///     for pc in k by kc:
///       pack B[pc.., jc..] into nr-wide column strips, each kc × nr, row after row
///       workers split the rows (or, for short C, the columns) of C into micro-tile ranges:
///         for ic in their rows by mc:  A block (mc × kc) packed into mr-high row strips (L2)
///           for jr in their columns by nr:   B strip (kc × nr) stays in L1 while ...
///             for ir in the block by mr:     ... the mr × nr tile of C is summed in registers
///
/// Packed strips are zero-padded to full mr / nr, so the micro-kernel always runs a full tile; only the write-back
/// of the last tile in a row or column is clipped.
enum GemmKernel {
    /// Rows of the register tile: 6 rows × 8 columns are 12 SSE (or 6 AVX) accumulators, which fit the 16 vector
    /// registers of baseline x86-64 together with the two B vectors, the broadcast A value and a product.
    static let mr = 6
    /// Columns of the register tile (one `SIMD8<Float>`).
    static let nr = 8
    /// Depth of a packed panel: one B strip is kc × nr × 4 B = 8 KiB, well inside L1.
    static let kc = 256
    /// Rows of a packed A block: mc × kc × 4 B = 144 KiB, inside L2.
    static let mc = 144
    /// Columns of a packed B panel: kc × nc × 4 B = 4 MiB, inside L3.
    static let nc = 4096
    /// Below this many multiply-adds the product stays on the calling thread.
    static let minParallelWork = 1 << 18

    /// C (m×n) = A (m×k) · op(B) (+ C if `accumulate`); see `sgemm` for the layouts.
    static func run(m: Int, n: Int, k: Int,
                    a: UnsafePointer<Float>, lda: Int,
                    b: UnsafePointer<Float>, ldb: Int, transposedB: Bool,
                    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, threaded: Bool) {
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            return
        }
        let parallel = threaded && cpuThreadCount > 1 && m * n * k >= minParallelWork
        let panelWidth = min(n, nc), panelDepth = min(k, kc)
        let bPanel = alignedFloats(panelDepth * roundUp(panelWidth, nr))
        defer { bPanel.deallocate() }
        let shared = UncheckedSendable((a, b, c, bPanel))

        for jc in stride(from: 0, to: n, by: nc) {
            let width = min(nc, n - jc), strips = (width + nr - 1) / nr
            for pc in stride(from: 0, to: k, by: kc) {
                let depth = min(kc, k - pc)
                let overwrite = pc == 0 && !accumulate
                // Pack B (depth × width at row pc, column jc of op(B)), strip by strip.
                parallelFor(strips, minChunk: parallel ? 8 : strips) { range in
                    let (_, b, _, bPanel) = shared.value
                    for s in range {
                        packB(b: b, ldb: ldb, transposed: transposedB, row: pc, column: jc + s * nr,
                              depth: depth, width: min(nr, width - s * nr), into: bPanel + s * depth * nr)
                    }
                }
                // Split C: by row tiles when there are enough of them, else by column strips.
                let rowTiles = (m + mr - 1) / mr
                let byRows = rowTiles >= 2 * cpuThreadCount || rowTiles >= strips
                let count = byRows ? rowTiles : strips
                parallelFor(count, minChunk: parallel ? 1 : count) { range in
                    let (a, _, c, bPanel) = shared.value
                    let rows = byRows ? range.lowerBound * mr..<min(m, range.upperBound * mr) : 0..<m
                    let stripRange = byRows ? 0..<strips : range
                    let aBlock = alignedFloats(min(mc, roundUp(rows.count, mr)) * depth)
                    defer { aBlock.deallocate() }
                    for ic in stride(from: rows.lowerBound, to: rows.upperBound, by: mc) {
                        let height = min(mc, rows.upperBound - ic)
                        packA(a: a + ic * lda + pc, lda: lda, height: height, depth: depth, into: aBlock)
                        for s in stripRange {
                            let j = s * nr, cols = min(nr, width - j)
                            let bStrip = UnsafePointer(bPanel + s * depth * nr)
                            for i in stride(from: 0, to: height, by: mr) {
                                microKernel(depth: depth, a: UnsafePointer(aBlock + i * depth), b: bStrip,
                                            c: c + (ic + i) * ldc + jc + j, ldc: ldc,
                                            rows: min(mr, height - i), cols: cols, overwrite: overwrite)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Packs rows `row..<row+depth`, columns `column..<column+width` of op(B) as `depth` rows of `nr` floats,
    /// zero-filling columns past `width`.
    @inline(__always)
    static func packB(b: UnsafePointer<Float>, ldb: Int, transposed: Bool, row: Int, column: Int,
                      depth: Int, width: Int, into out: UnsafeMutablePointer<Float>) {
        if width < nr { out.update(repeating: 0, count: depth * nr) }
        if transposed {
            // B is stored n × k: column j of op(B) is row j of B, contiguous along the depth.
            for j in 0..<width {
                let src = b + (column + j) * ldb + row
                for p in 0..<depth { out[p * nr + j] = src[p] }
            }
        } else if width == nr {
            for p in 0..<depth {
                let src = UnsafeRawPointer(b + (row + p) * ldb + column)
                UnsafeMutableRawPointer(out + p * nr).storeBytes(of: src.loadUnaligned(as: SIMD8<Float>.self),
                                                                 as: SIMD8<Float>.self)
            }
        } else {
            for p in 0..<depth {
                let src = b + (row + p) * ldb + column
                for j in 0..<width { out[p * nr + j] = src[j] }
            }
        }
    }

    /// Packs `height` rows × `depth` columns of A (starting at `a`) as strips of `mr` rows, each stored column after
    /// column (`depth` groups of `mr` floats), zero-filling rows past `height` in the last strip.
    @inline(__always)
    static func packA(a: UnsafePointer<Float>, lda: Int, height: Int, depth: Int,
                      into out: UnsafeMutablePointer<Float>) {
        for i in stride(from: 0, to: height, by: mr) {
            let rows = min(mr, height - i), strip = out + i * depth
            if rows < mr { strip.update(repeating: 0, count: depth * mr) }
            for r in 0..<rows {
                let src = a + (i + r) * lda
                for p in 0..<depth { strip[p * mr + r] = src[p] }
            }
        }
    }

    /// The mr × nr tile of C at `c` = (or +=) Σₚ a[p, 0..<mr]ᵀ · b[p, 0..<nr], with only `rows` × `cols` written.
    @inline(__always)
    static func microKernel(depth: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                            c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, cols: Int, overwrite: Bool) {
        var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>()
        var c3 = SIMD8<Float>(), c4 = SIMD8<Float>(), c5 = SIMD8<Float>()
        let bRaw = UnsafeRawPointer(b)
        var ap = a
        for p in 0..<depth {
            let bv = bRaw.load(fromByteOffset: p * 32, as: SIMD8<Float>.self)
            c0 += SIMD8(repeating: ap[0]) * bv
            c1 += SIMD8(repeating: ap[1]) * bv
            c2 += SIMD8(repeating: ap[2]) * bv
            c3 += SIMD8(repeating: ap[3]) * bv
            c4 += SIMD8(repeating: ap[4]) * bv
            c5 += SIMD8(repeating: ap[5]) * bv
            ap += mr
        }
        if rows == mr && cols == nr {
            store(c0, c, overwrite); store(c1, c + ldc, overwrite); store(c2, c + 2 * ldc, overwrite)
            store(c3, c + 3 * ldc, overwrite); store(c4, c + 4 * ldc, overwrite); store(c5, c + 5 * ldc, overwrite)
        } else {
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: mr) { tile in
                tile[0] = c0; tile[1] = c1; tile[2] = c2; tile[3] = c3; tile[4] = c4; tile[5] = c5
                for r in 0..<rows {
                    let row = c + r * ldc
                    for j in 0..<cols { row[j] = overwrite ? tile[r][j] : row[j] + tile[r][j] }
                }
            }
        }
    }

    @inline(__always)
    static func store(_ value: SIMD8<Float>, _ c: UnsafeMutablePointer<Float>, _ overwrite: Bool) {
        let raw = UnsafeMutableRawPointer(c)
        raw.storeBytes(of: overwrite ? value : value + raw.loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
    }

    static func roundUp(_ x: Int, _ multiple: Int) -> Int { (x + multiple - 1) / multiple * multiple }

    /// `count` floats on a 64-byte boundary (vector loads from packed panels never split a cache line).
    static func alignedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(count, 1))
    }
}

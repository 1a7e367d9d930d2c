import FluxCPU
import Testing

/// One product shape, with the padding added to each leading dimension beyond its row length.
struct GemmShape: CustomStringConvertible, Sendable {
    var m: Int, n: Int, k: Int
    var padA = 0, padB = 0, padC = 0

    var description: String { "\(m)×\(n)×\(k) pad(\(padA),\(padB),\(padC))" }
}

/// Awkward sizes: single elements, primes, one past the register tile (6×8) and the blocks (kc 256, mc 144),
/// empty dimensions, vectors, padded strides, and shapes that take the row and the column split across threads.
let gemmShapes: [GemmShape] = [
    GemmShape(m: 1, n: 1, k: 1),
    GemmShape(m: 7, n: 13, k: 5),
    GemmShape(m: 65, n: 33, k: 129),
    GemmShape(m: 200, n: 1, k: 300),
    GemmShape(m: 1, n: 200, k: 300),
    GemmShape(m: 6, n: 8, k: 16),
    GemmShape(m: 4, n: 5, k: 0),
    GemmShape(m: 0, n: 5, k: 3),
    GemmShape(m: 5, n: 0, k: 3),
    GemmShape(m: 13, n: 17, k: 19, padA: 3, padB: 5, padC: 7),
    GemmShape(m: 150, n: 70, k: 520, padA: 1, padB: 2, padC: 3),
    GemmShape(m: 7, n: 500, k: 260),
    GemmShape(m: 2, n: 4105, k: 9, padC: 1),
]

/// The product in Double by the definition: C[i][j] (+)= Σₚ A[i][p] · op(B)[p][j].
func naiveProduct(_ s: GemmShape, a: [Float], lda: Int, b: [Float], ldb: Int, transposedB: Bool,
                  c: [Float], ldc: Int, accumulate: Bool) -> [Double] {
    var out = c.map(Double.init)
    for i in 0..<s.m {
        for j in 0..<s.n {
            var sum = accumulate ? Double(c[i * ldc + j]) : 0
            for p in 0..<s.k {
                let bv = transposedB ? b[j * ldb + p] : b[p * ldb + j]
                sum += Double(a[i * lda + p]) * Double(bv)
            }
            out[i * ldc + j] = sum
        }
    }
    return out
}

/// Floats uniform in [-1, 1) from a fixed seed.
func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(Int32(truncatingIfNeeded: state >> 32)) / Float(1 << 31)
    }
}

/// Runs `sgemm(path:)` on `shape` in every layout, accumulate and threading combination and checks it against the
/// naive product: max |C - reference| ≤ 1e-5 · max |reference| over C's m×n region, and C's padding untouched.
func checkGemm(_ shape: GemmShape, path: GemmPath) {
    let (m, n, k) = (shape.m, shape.n, shape.k)
    for transposedB in [false, true] {
        let lda = k + shape.padA, ldc = n + shape.padC
        let ldb = (transposedB ? k : n) + shape.padB
        let a = randomFloats(max(m * lda, 1), seed: 1)
        let b = randomFloats(max((transposedB ? n : k) * ldb, 1), seed: 2)
        for accumulate in [false, true] {
            for threaded in [false, true] {
                // Without accumulate the old C must be ignored entirely: start from NaN there.
                var c = accumulate ? randomFloats(max(m * ldc, 1), seed: 3) : [Float](repeating: .nan, count: max(m * ldc, 1))
                for i in 0..<m { for j in n..<ldc { c[i * ldc + j] = 12345 } }
                let expected = naiveProduct(shape, a: a, lda: lda, b: b, ldb: ldb, transposedB: transposedB,
                                            c: c, ldc: ldc, accumulate: accumulate)
                a.withUnsafeBufferPointer { a in
                    b.withUnsafeBufferPointer { b in
                        c.withUnsafeMutableBufferPointer { c in
                            sgemm(path: path, m: m, n: n, k: k, a: a.baseAddress!, lda: lda, b: b.baseAddress!,
                                  ldb: ldb, transposedB: transposedB, c: c.baseAddress!, ldc: ldc,
                                  accumulate: accumulate, threaded: threaded)
                        }
                    }
                }
                var worst = 0.0, scale = 0.0, paddingKept = true
                for i in 0..<m {
                    for j in 0..<ldc {
                        let index = i * ldc + j
                        if j >= n { paddingKept = paddingKept && c[index] == 12345; continue }
                        let error = abs(Double(c[index]) - expected[index])
                        worst = error.isNaN ? .infinity : max(worst, error)
                        scale = max(scale, abs(expected[index]))
                    }
                }
                let relative = worst / max(scale, 1e-30)
                let label = "\(path) \(shape) transposedB=\(transposedB) accumulate=\(accumulate) threaded=\(threaded)"
                #expect(relative <= 1e-5 || worst == 0, "\(label): max relative error \(relative)")
                #expect(paddingKept, "\(label): wrote past column n into C's padding")
            }
        }
    }
}

@Test(arguments: gemmShapes)
func swiftKernelMatchesNaiveProduct(_ shape: GemmShape) {
    checkGemm(shape, path: .swift)
}

@Test(.enabled(if: systemBLASDescription != nil, "no system BLAS loaded"), arguments: gemmShapes)
func systemBLASMatchesNaiveProduct(_ shape: GemmShape) {
    checkGemm(shape, path: .systemBLAS)
}

/// When a BLAS is loaded, ordinary calls really take it (so the test above is not the Swift kernel again), and
/// the default `sgemm` uses it.
@Test(.enabled(if: systemBLASDescription != nil, "no system BLAS loaded"))
func systemBLASIsUsedWhenLoaded() {
    #expect(resolvedGemmPath(.systemBLAS, m: 7, n: 13, k: 5, lda: 5, ldb: 5, transposedB: true, ldc: 13,
                             threaded: true) == .systemBLAS)
    // Leading dimensions CBLAS would reject go to the Swift kernel instead of an xerbla message.
    #expect(resolvedGemmPath(.systemBLAS, m: 1, n: 4, k: 8, lda: 2, ldb: 8, transposedB: true, ldc: 4,
                             threaded: true) == .swift)
}

@Test func swiftPathIsAlwaysSwift() {
    #expect(resolvedGemmPath(.swift, m: 64, n: 64, k: 64, lda: 64, ldb: 64, transposedB: false, ldc: 64,
                             threaded: true) == .swift)
}

/// The public entry point (default path) on a Linear-shaped product.
@Test func defaultSgemmMatchesNaiveProduct() {
    let shape = GemmShape(m: 33, n: 96, k: 70)
    let a = randomFloats(shape.m * shape.k, seed: 4), b = randomFloats(shape.n * shape.k, seed: 5)
    var c = [Float](repeating: 0, count: shape.m * shape.n)
    a.withUnsafeBufferPointer { a in
        b.withUnsafeBufferPointer { b in
            c.withUnsafeMutableBufferPointer { c in
                sgemm(m: shape.m, n: shape.n, k: shape.k, a: a.baseAddress!, lda: shape.k, b: b.baseAddress!,
                      ldb: shape.k, transposedB: true, c: c.baseAddress!, ldc: shape.n, accumulate: false)
            }
        }
    }
    let expected = naiveProduct(shape, a: a, lda: shape.k, b: b, ldb: shape.k, transposedB: true, c: c,
                                ldc: shape.n, accumulate: false)
    let worst = zip(c, expected).map { abs(Double($0) - $1) }.max() ?? 0
    let scale = expected.map(abs).max() ?? 1
    #expect(worst / scale <= 1e-5)
}

/// A product big enough for every block loop and the library's large-matrix kernels, checked at sampled entries
/// against the Double dot product.
@Test(arguments: GemmPath.allCases)
func largeProductMatchesSampledEntries(_ path: GemmPath) {
    let (m, n, k) = (300, 520, 1100)
    let a = randomFloats(m * k, seed: 6), b = randomFloats(n * k, seed: 7)
    for transposedB in [false, true] {
        var c = [Float](repeating: .nan, count: m * n)
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    sgemm(path: path, m: m, n: n, k: k, a: a.baseAddress!, lda: k, b: b.baseAddress!,
                          ldb: transposedB ? k : n, transposedB: transposedB, c: c.baseAddress!, ldc: n,
                          accumulate: false)
                }
            }
        }
        var worst = 0.0, scale = 0.0
        for sample in 0..<200 {
            let i = (sample * 7919) % m, j = (sample * 104_729 + sample / 7) % n
            var sum = 0.0
            for p in 0..<k { sum += Double(a[i * k + p]) * Double(transposedB ? b[j * k + p] : b[p * n + j]) }
            let error = abs(Double(c[i * n + j]) - sum)
            worst = error.isNaN ? .infinity : max(worst, error)
            scale = max(scale, abs(sum))
        }
        #expect(worst / scale <= 1e-5, "\(path) transposedB=\(transposedB): max relative error \(worst / scale)")
    }
}

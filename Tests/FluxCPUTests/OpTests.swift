import FluxCPU
import FluxCore
import Foundation
import Testing

/// Every CPU op against a naive formula written out here, on random inputs of awkward shapes. The GPU backend's op
/// test compares against the CPU op in turn.
@Suite struct CPUOpTests {
    let cpu = CPUBackend()

    @Test func linearWithBiasAndActivations() throws {
        var rng = SeededGenerator(seed: 1)
        for activation in Activation.allCases {
            let (m, k, n) = (7, 13, 5)
            let x = rng.floats(2 * m * k), w = rng.floats(n * k), b = rng.floats(n)
            let y = try cpu.floats(cpu.linear(try cpu.tensor(x, shape: [2, m, k]), weight: try cpu.tensor(w, shape: [n, k]),
                                              bias: try cpu.tensor(b, shape: [n]), activation: activation))
            var expected = [Float]()
            for row in 0..<(2 * m) {
                for j in 0..<n {
                    var s = Double(b[j])
                    for p in 0..<k { s += Double(x[row * k + p]) * Double(w[j * k + p]) }
                    expected.append(naive(Float(s), activation))
                }
            }
            #expect(relativeError(y, expected) < 1e-5, "linear + \(activation)")
        }
    }

    @Test func linearRejectsWrongShapes() throws {
        let x = try cpu.tensor([1, 2, 3], shape: [1, 3]), w = try cpu.tensor([1, 2, 3, 4], shape: [2, 2])
        #expect(throws: TensorError.self) { try cpu.linear(x, weight: w, bias: nil) }
    }

    @Test func layerNormWithAndWithoutAffine() throws {
        var rng = SeededGenerator(seed: 2)
        let (rows, d) = (5, 37)
        let x = rng.floats(rows * d).map { $0 * 3 + 1 }, w = rng.floats(d), b = rng.floats(d)
        for affine in [false, true] {
            let y = try cpu.floats(cpu.layerNorm(try cpu.tensor(x, shape: [rows, d]),
                                                 weight: affine ? try cpu.tensor(w, shape: [d]) : nil,
                                                 bias: affine ? try cpu.tensor(b, shape: [d]) : nil, eps: 1e-6))
            var expected = [Float]()
            for r in 0..<rows {
                let row = x[(r * d)..<((r + 1) * d)].map(Double.init)
                let mean = row.reduce(0, +) / Double(d)
                let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(d)
                for j in 0..<d {
                    let v = (row[j] - mean) / (variance + 1e-6).squareRoot()
                    expected.append(Float(affine ? v * Double(w[j]) + Double(b[j]) : v))
                }
            }
            #expect(relativeError(y, expected) < 1e-5)
        }
    }

    @Test func rmsNormPerHead() throws {
        var rng = SeededGenerator(seed: 3)
        let shape = [2, 3, 4, 10], x = rng.floats(240), w = rng.floats(10)
        let y = try cpu.floats(cpu.rmsNorm(try cpu.tensor(x, shape: shape), weight: try cpu.tensor(w, shape: [10]),
                                           eps: 1e-6))
        var expected = [Float]()
        for r in 0..<24 {
            let row = x[(r * 10)..<((r + 1) * 10)]
            let rms = (row.map { Double($0) * Double($0) }.reduce(0, +) / 10 + 1e-6).squareRoot()
            for (j, v) in row.enumerated() { expected.append(Float(Double(v) / rms * Double(w[j]))) }
        }
        #expect(relativeError(y, expected) < 1e-5)
    }

    @Test func modulatedLayerNormBroadcastsOverTokens() throws {
        var rng = SeededGenerator(seed: 4)
        let (batch, seq, d) = (2, 3, 9)
        let x = rng.floats(batch * seq * d), shift = rng.floats(batch * d), scale = rng.floats(batch * d)
        let y = try cpu.floats(cpu.modulatedLayerNorm(try cpu.tensor(x, shape: [batch, seq, d]),
                                                      shift: try cpu.tensor(shift, shape: [batch, d]),
                                                      scale: try cpu.tensor(scale, shape: [batch, d]), eps: 1e-6))
        let normed = try cpu.floats(cpu.layerNorm(try cpu.tensor(x, shape: [batch * seq, d]), weight: nil, bias: nil,
                                                  eps: 1e-6))
        var expected = [Float]()
        for row in 0..<(batch * seq) {
            let bIndex = row / seq
            for j in 0..<d {
                expected.append(normed[row * d + j] * (1 + scale[bIndex * d + j]) + shift[bIndex * d + j])
            }
        }
        #expect(relativeError(y, expected) < 1e-6)
    }

    @Test func activationsMatchFormulas() throws {
        let x: [Float] = [-6, -2.5, -1, -0.1, 0, 0.3, 1, 2, 7]
        for kind in Activation.allCases {
            let y = try cpu.floats(cpu.activation(try cpu.tensor(x, shape: [9]), kind))
            #expect(relativeError(y, x.map { naive($0, kind) }) < 1e-6, "\(kind)")
        }
        // Known values: GELU-tanh(1) = 0.841192, SiLU(1) = 0.731059, GELU(1) = 0.841345.
        let one = try cpu.tensor([1], shape: [1])
        #expect(abs(try cpu.floats(cpu.activation(one, .geluTanh))[0] - 0.841192) < 1e-5)
        #expect(abs(try cpu.floats(cpu.activation(one, .silu))[0] - 0.731059) < 1e-5)
        #expect(abs(try cpu.floats(cpu.activation(one, .gelu))[0] - 0.841345) < 1e-5)
    }

    @Test func elementwiseAndGatedAdd() throws {
        var rng = SeededGenerator(seed: 5)
        let (batch, seq, d) = (3, 2, 5)
        let r = rng.floats(30), x = rng.floats(30), g = rng.floats(15)
        let shape = [batch, seq, d]
        #expect(try cpu.floats(cpu.add(try cpu.tensor(r, shape: shape), try cpu.tensor(x, shape: shape)))
            == zip(r, x).map(+))
        #expect(try cpu.floats(cpu.multiply(try cpu.tensor(r, shape: shape), try cpu.tensor(x, shape: shape)))
            == zip(r, x).map(*))
        let y = try cpu.floats(cpu.gatedAdd(try cpu.tensor(r, shape: shape), try cpu.tensor(x, shape: shape),
                                            gate: try cpu.tensor(g, shape: [batch, d])))
        let expected = (0..<30).map { i in r[i] + g[(i / (seq * d)) * d + i % d] * x[i] }
        #expect(relativeError(y, expected) < 1e-7)
        #expect(throws: TensorError.self) {
            try cpu.add(try cpu.tensor(r, shape: shape), try cpu.tensor(x, shape: [30]))
        }
    }

    @Test func concatAndSliceOnEveryAxis() throws {
        let a = (0..<24).map(Float.init), b = (100..<112).map(Float.init)
        let ta = try cpu.tensor(a, shape: [2, 3, 4])
        let tb = try cpu.tensor(b, shape: [2, 3, 2])
        let joined = try cpu.concat([ta, tb], axis: 2)
        #expect(joined.shape == [2, 3, 6])
        let values = try cpu.floats(joined)
        for i in 0..<2 { for j in 0..<3 { for k in 0..<6 {
            let v = values[(i * 3 + j) * 6 + k]
            #expect(v == (k < 4 ? a[(i * 3 + j) * 4 + k] : b[(i * 3 + j) * 2 + k - 4]))
        } } }
        #expect(try cpu.floats(cpu.slice(joined, axis: 2, start: 4, count: 2)) == b)
        #expect(try cpu.floats(cpu.slice(joined, axis: 2, start: 0, count: 4)) == a)
        let rows = try cpu.concat([ta, ta], axis: 0)
        #expect(try cpu.floats(cpu.slice(rows, axis: 0, start: 2, count: 2)) == a)
        let middle = try cpu.slice(ta, axis: 1, start: 1, count: 2)
        #expect(try cpu.floats(middle) == [4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23])
        #expect(throws: TensorError.self) { try cpu.slice(ta, axis: 1, start: 2, count: 2) }
        #expect(throws: TensorError.self) { try cpu.concat([ta, try cpu.tensor(b, shape: [3, 4])], axis: 0) }
    }

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func attentionMatchesSoftmaxFormula(withBias: Bool, causal: Bool) throws {
        var rng = SeededGenerator(seed: 7)
        let (batch, sq, sk, heads, d) = (2, 67, 67, 3, 5)  // 67 > one 64-query block
        let q = rng.floats(batch * sq * heads * d), k = rng.floats(batch * sk * heads * d)
        let v = rng.floats(batch * sk * heads * d), bias = rng.floats(heads * sq * sk)
        let scale: Float = 0.37
        let y = try cpu.floats(cpu.attention(q: try cpu.tensor(q, shape: [batch, sq, heads, d]),
                                             k: try cpu.tensor(k, shape: [batch, sk, heads, d]),
                                             v: try cpu.tensor(v, shape: [batch, sk, heads, d]), scale: scale,
                                             bias: withBias ? try cpu.tensor(bias, shape: [heads, sq, sk]) : nil,
                                             causal: causal))
        var expected = [Float](repeating: 0, count: y.count)
        for b in 0..<batch { for h in 0..<heads { for i in 0..<sq {
            var scores = [Double](repeating: -.infinity, count: sk)
            for j in 0..<sk where !(causal && j > i) {
                var s = 0.0
                for c in 0..<d { s += Double(q[((b * sq + i) * heads + h) * d + c]) * Double(k[((b * sk + j) * heads + h) * d + c]) }
                scores[j] = s * Double(scale) + (withBias ? Double(bias[(h * sq + i) * sk + j]) : 0)
            }
            let top = scores.max()!
            let weights = scores.map { exp($0 - top) }, total = weights.reduce(0, +)
            for c in 0..<d {
                var o = 0.0
                for j in 0..<sk { o += weights[j] / total * Double(v[((b * sk + j) * heads + h) * d + c]) }
                expected[((b * sq + i) * heads + h) * d + c] = Float(o)
            }
        } } }
        #expect(relativeError(y, expected) < 1e-5)
    }

    @Test func attentionWithDifferentQueryAndKeyLengths() throws {
        var rng = SeededGenerator(seed: 8)
        let q = try cpu.tensor(rng.floats(1 * 3 * 1 * 4), shape: [1, 3, 1, 4])
        let kv = try cpu.tensor(rng.floats(1 * 9 * 1 * 4), shape: [1, 9, 1, 4])
        #expect(try cpu.attention(q: q, k: kv, v: kv, scale: 0.5).shape == [1, 3, 1, 4])
        #expect(throws: TensorError.self) { try cpu.attention(q: q, k: q, v: kv, scale: 0.5) }
    }

    @Test func uploadConvertsCheckpointDtypes() throws {
        // bf16 0x3F80 = 1.0, 0xC040 = −3.0; f16 0x3C00 = 1.0; f8 e4m3 0x38 = 1.0, 0xC0 = −2.0.
        let bf16: [UInt16] = [0x3F80, 0xC040]
        let bf16Host = bf16.withUnsafeBytes { HostTensor(copying: $0, shape: [2], dtype: .bf16) }
        #expect(try cpu.floats(cpu.upload(bf16Host)) == [1, -3])
        let f8: [UInt8] = [0x38, 0xC0]
        let f8Host = f8.withUnsafeBytes { HostTensor(copying: $0, shape: [2], dtype: .f8e4m3) }
        #expect(try cpu.floats(cpu.upload(f8Host)) == [1, -2])
        #expect(floatToBfloat16(1.0) == 0x3F80)
        #expect(floatToBfloat16(1.00390625) == 0x3F80)  // halfway rounds to even
    }
}

/// The activation formulas in f64.
func naive(_ x: Float, _ kind: Activation) -> Float {
    let v = Double(x)
    switch kind {
    case .identity: return x
    case .silu: return Float(v / (1 + exp(-v)))
    case .geluTanh: return Float(0.5 * v * (1 + tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v))))
    case .gelu: return Float(0.5 * v * (1 + erf(v / 2.0.squareRoot())))
    case .quickGelu: return Float(v / (1 + exp(-1.702 * v)))
    }
}

/// max |a − b| / max |b|.
func relativeError(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    var diff: Float = 0, scale: Float = 0
    for i in a.indices { diff = max(diff, abs(a[i] - b[i])); scale = max(scale, abs(b[i])) }
    return diff / max(scale, .leastNormalMagnitude)
}

/// Reproducible random inputs.
typealias SeededGenerator = SplitMix64

extension SplitMix64 {
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &self) } }
}

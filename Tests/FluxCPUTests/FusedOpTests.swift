import FluxCPU
import FluxCore
import Foundation
import Testing

/// The fused ops on the CPU against formulas written out here element by element.
@Suite struct FusedOpTests {
    let cpu = CPUBackend()

    /// Two streams, 3 heads × 6: every output element of q and k is RMSNorm · scale then rotated at its joint
    /// position; v is the third block copied.
    @Test func attentionInputsNormalisesRotatesAndJoins() throws {
        var rng = SeededGenerator(seed: 11)
        let (batch, heads, dim, lengths) = (2, 3, 6, [2, 5])
        let total = lengths.reduce(0, +), half = dim / 2
        let qkvs = lengths.map { rng.floats(batch * $0 * 3 * heads * dim).map { $0 * 2 } }
        let scales = lengths.map { _ in (rng.floats(dim).map { $0 + 1 }, rng.floats(dim).map { $0 + 1 }) }
        let cosines = rng.floats(total * half), sines = rng.floats(total * half)
        let streams = try lengths.indices.map { i in
            QKVProjection(qkv: try cpu.tensor(qkvs[i], shape: [batch, lengths[i], 3 * heads * dim]),
                          queryScale: try cpu.tensor(scales[i].0, shape: [dim]),
                          keyScale: try cpu.tensor(scales[i].1, shape: [dim]))
        }
        let out = try cpu.attentionInputs(streams, heads: heads, eps: 1e-6,
                                          cos: try cpu.tensor(cosines, shape: [total, half]),
                                          sin: try cpu.tensor(sines, shape: [total, half]))
        for t in [out.q, out.k, out.v] { #expect(t.shape == [batch, total, heads, dim]) }
        let got = [try cpu.floats(out.q), try cpu.floats(out.k), try cpu.floats(out.v)]
        var expected = [[Float]](repeating: [Float](repeating: 0, count: batch * total * heads * dim), count: 3)
        var start = 0
        for (i, length) in lengths.enumerated() {
            for b in 0..<batch {
                for s in 0..<length {
                    let position = start + s
                    for c in 0..<3 {
                        for h in 0..<heads {
                            let x = (0..<dim).map {
                                Double(qkvs[i][((b * length + s) * 3 * heads + c * heads + h) * dim + $0])
                            }
                            let outBase = ((b * total + position) * heads + h) * dim
                            if c == 2 {
                                for d in 0..<dim { expected[2][outBase + d] = Float(x[d]) }
                                continue
                            }
                            let rms = (x.map { $0 * $0 }.reduce(0, +) / Double(dim) + 1e-6).squareRoot()
                            let scale = c == 0 ? scales[i].0 : scales[i].1
                            let n = (0..<dim).map { x[$0] / rms * Double(scale[$0]) }
                            for p in 0..<half {
                                let co = Double(cosines[position * half + p]), si = Double(sines[position * half + p])
                                expected[c][outBase + 2 * p] = Float(n[2 * p] * co - n[2 * p + 1] * si)
                                expected[c][outBase + 2 * p + 1] = Float(n[2 * p + 1] * co + n[2 * p] * si)
                            }
                        }
                    }
                }
            }
            start += length
        }
        for c in 0..<3 { #expect(relativeError(got[c], expected[c]) < 1e-5, "component \(c)") }
    }

    @Test func attentionInputsRejectsAWrongTable() throws {
        let stream = QKVProjection(qkv: try cpu.tensor([Float](repeating: 1, count: 24), shape: [1, 2, 12]),
                                   queryScale: try cpu.tensor([1, 1], shape: [2]),
                                   keyScale: try cpu.tensor([1, 1], shape: [2]))
        let table = try cpu.tensor([1, 1, 1], shape: [3, 1])
        #expect(throws: TensorError.self) {
            try cpu.attentionInputs([stream], heads: 2, eps: 1e-6, cos: table, sin: table)
        }
    }

    /// Σᵢ partᵢ · W[:, block i]ᵀ + bias, then the activation.
    @Test func linearOverConcatenatedParts() throws {
        var rng = SeededGenerator(seed: 12)
        let (rows, widths, n) = (7, [5, 3, 9], 4)
        let k = widths.reduce(0, +)
        let parts = widths.map { rng.floats(rows * $0) }, w = rng.floats(n * k), bias = rng.floats(n)
        for activation in [Activation.identity, .silu] {
            let y = try cpu.floats(cpu.linear(
                concatenating: try zip(parts, widths).map { try cpu.tensor($0, shape: [1, rows, $1]) },
                weight: try cpu.tensor(w, shape: [n, k]), bias: try cpu.tensor(bias, shape: [n]),
                activation: activation))
            var expected = [Float]()
            for r in 0..<rows {
                for j in 0..<n {
                    var s = Double(bias[j]), column = 0
                    for (part, width) in zip(parts, widths) {
                        for p in 0..<width { s += Double(part[r * width + p]) * Double(w[j * k + column + p]) }
                        column += width
                    }
                    expected.append(naive(Float(s), activation))
                }
            }
            #expect(relativeError(y, expected) < 1e-5, "\(activation)")
        }
    }
}

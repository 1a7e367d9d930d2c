import FluxCPU
import FluxCore
import Foundation
import Testing

/// The VAE and text-encoder ops (convolution, group norm, upsampling, permutation, embedding, scalar ops) against
/// naive formulas.
@Suite struct ImageAndLayoutOpTests {
    let cpu = CPUBackend()

    @Test(arguments: [(1, Padding2D.all(1), 3), (2, Padding2D(top: 0, bottom: 1, left: 0, right: 1), 3),
                      (1, Padding2D.all(0), 1), (2, Padding2D(top: 2, bottom: 0, left: 1, right: 3), 2)])
    func conv2dMatchesDirectSum(stride: Int, padding: Padding2D, kernel: Int) throws {
        var rng = SeededGenerator(seed: 11)
        let (batch, cin, cout, h, w) = (2, 3, 5, 7, 6)
        let x = rng.floats(batch * cin * h * w), wt = rng.floats(cout * cin * kernel * kernel), b = rng.floats(cout)
        let y = try cpu.conv2d(try cpu.tensor(x, shape: [batch, cin, h, w]),
                               weight: try cpu.tensor(wt, shape: [cout, cin, kernel, kernel]),
                               bias: try cpu.tensor(b, shape: [cout]), stride: stride, padding: padding)
        let ho = (h + padding.top + padding.bottom - kernel) / stride + 1
        let wo = (w + padding.left + padding.right - kernel) / stride + 1
        #expect(y.shape == [batch, cout, ho, wo])
        var expected = [Float]()
        for n in 0..<batch { for o in 0..<cout { for oy in 0..<ho { for ox in 0..<wo {
            var s = Double(b[o])
            for c in 0..<cin { for dy in 0..<kernel { for dx in 0..<kernel {
                let iy = oy * stride + dy - padding.top, ix = ox * stride + dx - padding.left
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                s += Double(x[((n * cin + c) * h + iy) * w + ix]) * Double(wt[((o * cin + c) * kernel + dy) * kernel + dx])
            } } }
            expected.append(Float(s))
        } } } }
        #expect(relativeError(try cpu.floats(y), expected) < 1e-5)
    }

    @Test func groupNormWithSiLU() throws {
        var rng = SeededGenerator(seed: 12)
        let (batch, channels, h, w, groups) = (2, 6, 3, 5, 3)
        let x = rng.floats(batch * channels * h * w).map { $0 * 2 + 0.5 }, wt = rng.floats(channels), b = rng.floats(channels)
        for activation in [Activation.identity, .silu] {
            let y = try cpu.floats(cpu.groupNorm(try cpu.tensor(x, shape: [batch, channels, h, w]), groups: groups,
                                                 weight: try cpu.tensor(wt, shape: [channels]),
                                                 bias: try cpu.tensor(b, shape: [channels]), eps: 1e-6,
                                                 activation: activation))
            var expected = [Float](repeating: 0, count: x.count)
            let per = channels / groups * h * w
            for n in 0..<batch { for g in 0..<groups {
                let base = (n * groups + g) * per
                let values = x[base..<(base + per)].map(Double.init)
                let mean = values.reduce(0, +) / Double(per)
                let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(per)
                for i in 0..<per {
                    let c = g * (channels / groups) + i / (h * w)
                    let v = (values[i] - mean) / (variance + 1e-6).squareRoot() * Double(wt[c]) + Double(b[c])
                    expected[base + i] = naive(Float(v), activation)
                }
            } }
            #expect(relativeError(y, expected) < 1e-5)
        }
        #expect(throws: TensorError.self) {
            try cpu.groupNorm(try cpu.tensor(x, shape: [batch, channels, h, w]), groups: 4,
                              weight: try cpu.tensor(wt, shape: [channels]), bias: try cpu.tensor(b, shape: [channels]),
                              eps: 1e-6, activation: .identity)
        }
    }

    @Test func upsampleNearestRepeatsPixels() throws {
        let x = try cpu.tensor([1, 2, 3, 4, 5, 6], shape: [1, 1, 2, 3])
        let y = try cpu.upsampleNearest(x, factor: 2)
        #expect(y.shape == [1, 1, 4, 6])
        #expect(try cpu.floats(y) == [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6])
    }

    @Test func permuteMovesAxes() throws {
        let shape = [2, 3, 4, 5]
        let x = (0..<120).map(Float.init)
        let order = [0, 2, 3, 1]
        let y = try cpu.permute(try cpu.tensor(x, shape: shape), order)
        #expect(y.shape == [2, 4, 5, 3])
        let values = try cpu.floats(y)
        for a in 0..<2 { for b in 0..<4 { for c in 0..<5 { for d in 0..<3 {
            #expect(values[((a * 4 + b) * 5 + c) * 3 + d] == x[((a * 3 + d) * 4 + b) * 5 + c])
        } } } }
        #expect(throws: TensorError.self) { try cpu.permute(try cpu.tensor(x, shape: shape), [0, 1, 1, 2]) }
    }

    @Test func embeddingPicksRows() throws {
        let table = try cpu.tensor((0..<12).map(Float.init), shape: [4, 3])
        let y = try cpu.embedding(table, ids: [3, 0, 2, 2], shape: [2, 2])
        #expect(y.shape == [2, 2, 3])
        #expect(try cpu.floats(y) == [9, 10, 11, 0, 1, 2, 6, 7, 8, 6, 7, 8])
        #expect(throws: TensorError.self) { try cpu.embedding(table, ids: [4], shape: [1]) }
        #expect(throws: TensorError.self) { try cpu.embedding(table, ids: [-1], shape: [1]) }
    }

    @Test func scalarOpsAndAbsSum() throws {
        let a = try cpu.tensor([1, -2, 3], shape: [3]), b = try cpu.tensor([0.5, 0.5, -1], shape: [3])
        #expect(try cpu.floats(cpu.scaleShift(a, scale: 2, shift: 1)) == [3, -3, 7])
        #expect(try cpu.floats(cpu.addScaled(a, b, scale: -2)) == [0, -3, 5])
        #expect(try cpu.absSum(a) == 6)
    }
}

@testable import FluxCore
import Testing

/// The shared operand rules: the geometry they return, and a typed error (never a trap) for bad operands.
@Suite struct OpShapesTests {
    final class NoStorage: TensorStorage, @unchecked Sendable { var byteCount: Int { 0 } }
    func t(_ shape: [Int]) -> Tensor { Tensor(shape: shape, dtype: .f32, storage: NoStorage()) }

    func rejects(_ body: () throws -> Void) -> Bool {
        do { try body() } catch TensorError.shapeMismatch { return true } catch { return false }
        return false
    }

    @Test func convolutionGeometry() throws {
        let g = try OpShapes.conv2d(t([2, 3, 9, 7]), weight: t([5, 3, 3, 3]), bias: t([5]), stride: 2,
                                    padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1))
        #expect(g == OpShapes.Convolution(batch: 2, channels: 3, height: 9, width: 7, outChannels: 5, kernelHeight: 3,
                                          kernelWidth: 3, outHeight: 4, outWidth: 3))
        #expect(rejects { _ = try OpShapes.conv2d(t([1, 3, 2, 2]), weight: t([5, 3, 3, 3]), bias: nil, stride: 1,
                                                  padding: .all(0)) })
        #expect(rejects { _ = try OpShapes.conv2d(t([1, 4, 8, 8]), weight: t([5, 3, 3, 3]), bias: nil, stride: 1,
                                                  padding: .all(1)) })
        #expect(rejects { _ = try OpShapes.conv2d(t([1, 3, 8, 8]), weight: t([5, 3, 3, 3]), bias: t([4]), stride: 0,
                                                  padding: .all(1)) })
    }

    @Test func layoutRules() throws {
        let c = try OpShapes.concat([t([2, 3, 4]), t([2, 5, 4])], axis: -2)
        #expect(c == OpShapes.AxisSplit(axis: 1, outer: 2, inner: 4, shape: [2, 8, 4]))
        #expect(rejects { _ = try OpShapes.concat([t([2, 3, 4]), t([3, 5, 4])], axis: 1) })
        #expect(rejects { _ = try OpShapes.concat([t([2, 3])], axis: 2) })
        let s = try OpShapes.slice(t([2, 6, 4]), axis: 1, start: 2, count: 3)
        #expect(s == OpShapes.AxisSplit(axis: 1, outer: 2, inner: 4, shape: [2, 3, 4]))
        #expect(rejects { _ = try OpShapes.slice(t([2, 6, 4]), axis: 1, start: 4, count: 3) })
        #expect(rejects { _ = try OpShapes.slice(t([2, 6, 4]), axis: -4, start: 0, count: 1) })
    }

    @Test func attentionAndNorms() throws {
        let a = try OpShapes.attention(q: t([2, 5, 3, 8]), k: t([2, 7, 3, 8]), v: t([2, 7, 3, 8]), bias: t([3, 5, 7]))
        #expect(a.batch == 2 && a.sq == 5 && a.sk == 7 && a.heads == 3 && a.dim == 8)
        #expect(rejects { _ = try OpShapes.attention(q: t([2, 5, 3, 8]), k: t([2, 7, 3, 8]), v: t([2, 6, 3, 8]),
                                                     bias: nil) })
        #expect(try OpShapes.rowNorm("layerNorm", t([4, 6]), weight: t([6]), bias: t([6])) == 6)
        // A rank-0 tensor is an error, not a trap reading its last axis.
        #expect(rejects { _ = try OpShapes.rowNorm("layerNorm", t([]), weight: nil, bias: nil) })
        #expect(rejects { _ = try OpShapes.modulatedLayerNorm(t([2, 3, 4]), shift: t([2, 4]), scale: t([1, 4])) })
    }

    /// The rules the backends used to check each on their own, now only here.
    @Test func productsElementwiseAndLayout() throws {
        try OpShapes.linear(t([2, 7, 13]), weight: t([5, 13]), bias: t([5]))
        #expect(rejects { try OpShapes.linear(t([2, 7, 13]), weight: t([5, 12]), bias: nil) })
        #expect(rejects { try OpShapes.linear(t([2, 7, 13]), weight: t([5, 13]), bias: t([4])) })
        #expect(rejects { try OpShapes.linear(t([]), weight: t([5, 13]), bias: nil) })
        let c = try OpShapes.linearConcatenating([t([2, 3, 4]), t([2, 3, 6])], weight: t([5, 10]), bias: nil)
        #expect(c.leading == [2, 3] && c.widths == [4, 6])
        #expect(rejects {
            try OpShapes.linearConcatenating([t([2, 3, 4]), t([2, 3, 6])], weight: t([5, 9]), bias: nil)
        })
        #expect(rejects { try OpShapes.concatenatedRows([], op: "quantizeRows") })
        #expect(rejects { try OpShapes.quantizeRows(t([])) })
        try OpShapes.gatedAdd(t([2, 3, 5]), t([2, 3, 5]), gate: t([2, 5]))
        #expect(rejects { try OpShapes.gatedAdd(t([2, 3, 5]), t([2, 3, 5]), gate: t([2, 3])) })
        #expect(rejects { try OpShapes.sameShape("add", t([2, 3]), t([3, 2])) })
        try OpShapes.permute(t([2, 3, 4]), [2, 0, 1])
        #expect(rejects { try OpShapes.permute(t([2, 3, 4]), [0, 1, 1]) })
        try OpShapes.embedding(t([11, 6]), ids: [0, 10], shape: [2])
        #expect(rejects { try OpShapes.embedding(t([11, 6]), ids: [0, 10], shape: [3]) })
        #expect(throws: TensorError.backend("embedding: token id 11 outside the vocabulary of 11")) {
            try OpShapes.embedding(t([11, 6]), ids: [0, 11], shape: [2])
        }
        #expect(rejects { try OpShapes.concat([], axis: 0) })
        try OpShapes.groupNorm(t([2, 8, 5]), groups: 4, weight: t([8]), bias: t([8]))
        #expect(rejects { try OpShapes.groupNorm(t([2, 8, 5]), groups: 3, weight: t([8]), bias: t([8])) })
        #expect(rejects { try OpShapes.upsampleNearest(t([2, 8, 5]), factor: 2) })
    }

    @Test func attentionInputsGeometry() throws {
        let stream = { (s: Int) in QKVProjection(qkv: self.t([2, s, 3 * 3 * 10]), queryScale: self.t([10]),
                                                 keyScale: self.t([10])) }
        let g = try OpShapes.attentionInputs([stream(3), stream(5)], heads: 3, cos: t([8, 5]), sin: t([8, 5]))
        #expect(g == OpShapes.AttentionInputs([stream(3), stream(5)], heads: 3))
        #expect(g.batch == 2 && g.headDim == 10 && g.lengths == [3, 5])
        #expect(rejects { try OpShapes.attentionInputs([stream(3), stream(5)], heads: 3, cos: t([7, 5]),
                                                       sin: t([8, 5])) })
        #expect(rejects { try OpShapes.attentionInputs([], heads: 3, cos: t([0, 5]), sin: t([0, 5])) })
    }
}

import FluxCore
import Foundation

/// T5's bucketed relative position bias (transformers `T5Attention._relative_position_bucket` and `compute_bias`).
///
/// The relative position of key j to query i is `j − i`. Bidirectional (encoder): half the buckets are for keys
/// after the query, half for keys before or at it. Within a half, distances below `exact = half / 2` get a bucket
/// each; larger ones share `half − exact` buckets spaced logarithmically up to `maxDistance`, beyond which
/// everything falls in the last bucket.
public enum T5RelativePosition {
    /// The bucket of relative position `relative` (= key − query). Mirrors transformers' arithmetic in f32
    /// (`log(float(d) / exact) / log(maxDistance / exact) · (half − exact)`, truncated), so boundaries round alike.
    public static func bucket(_ relative: Int, numBuckets: Int, maxDistance: Int) -> Int {
        let half = numBuckets / 2
        let base = relative > 0 ? half : 0
        let distance = abs(relative)
        let exact = half / 2
        if distance < exact { return base + distance }
        let logRatio = Float(log(Double(maxDistance) / Double(exact)))
        let scaled = logf(Float(distance) / Float(exact)) / logRatio * Float(half - exact)
        let large = exact + Int(scaled)
        return base + min(large, half - 1)
    }

    /// Bucket of every (query i, key j) pair, row-major (length, length).
    public static func buckets(length: Int, numBuckets: Int, maxDistance: Int) -> [Int32] {
        var out = [Int32](repeating: 0, count: length * length)
        for i in 0..<length {
            for j in 0..<length {
                out[i * length + j] = Int32(bucket(j - i, numBuckets: numBuckets, maxDistance: maxDistance))
            }
        }
        return out
    }

    /// The attention bias (heads, length, length): row `bucket(j − i)` of `table` (numBuckets, heads), per head.
    static func bias(table: Tensor, length: Int, maxDistance: Int, on b: any Backend) throws -> Tensor {
        let ids = buckets(length: length, numBuckets: table.shape[0], maxDistance: maxDistance)
        let gathered = try b.embedding(table, ids: ids, shape: [length, length])  // (L, L, H)
        return try b.permute(gathered, [2, 0, 1])
    }
}

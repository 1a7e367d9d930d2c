import FluxCore
import Foundation
import Testing

@testable import FluxModel

/// Weights assembled from stored parts: joined bytes exact on the parallel path, host blocks handed out again.
@Suite struct WeightAssemblyTests {
    @Test func parallelCopyJoinsPiecesExactly() {
        let total = 5_000_003
        let bytes = (0..<total).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 7) }
        bytes.withUnsafeBytes { raw in
            let cuts = [0, 3, 1_048_579, 1_048_580, 4_000_000, total]
            let pieces = zip(cuts, cuts.dropFirst()).map { UnsafeRawBufferPointer(rebasing: raw[$0..<$1]) }
            var out = [UInt8](repeating: 0, count: total)
            out.withUnsafeMutableBytes { copyInParallel(pieces, to: $0.baseAddress!) }
            #expect(out == bytes)
        }
    }

    @Test func aDroppedBlockIsHandedOutAgain() {
        let pool = AssemblyBuffers()
        var first: (pointer: UnsafeMutableRawPointer, owner: AnyObject)? = pool.take(4096)
        let address = first?.pointer
        // While the first is held, another request gets its own block.
        let second = pool.take(100)
        #expect(second.pointer != address)
        first = nil
        #expect(pool.take(2000).pointer == address)
        // Too small a spare is not used.
        #expect(pool.take(8192).pointer != address)
        withExtendedLifetime(second.owner) {}
    }

    /// concat and swapHalves through a real file, large enough for the parallel copy, with the block reused.
    @Test func concatAndSwapHalvesFromAFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fluxserve-wa-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("w.safetensors").path
        func part(_ rows: Int, _ seed: Float) -> HostTensor {
            HostTensor((0..<(rows * 512)).map { Float($0 % 1000) * 0.001 + seed }, shape: [rows, 512])
        }
        let q = part(700, 1), k = part(701, 2), v = part(3, 3)
        try writeSafetensors(["q": q, "k": k, "v": v], to: path)
        let source = WeightSource(checkpoint: try SafetensorsCheckpoint(path: path), description: path) { name in
            name == "qkv" ? .concat(["q", "k", "v"]) : .swapHalves("q")
        }
        for _ in 0..<2 {
            let qkv = try source.load("qkv")
            #expect(qkv.shape == [1404, 512])
            #expect(qkv.floats() == q.floats() + k.floats() + v.floats())
        }
        let swapped = try source.load("swapped")
        let values = q.floats(), half = values.count / 2
        #expect(swapped.floats() == Array(values[half...] + values[..<half]))
    }
}

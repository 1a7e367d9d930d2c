import FluxCore
import Foundation
import Testing

@testable import FluxCPU
@testable import FluxCUDA

/// The host side of staged uploads, which needs no GPU: where the ring puts each part, and the bf16 writer.
@Suite struct StagedUploadTests {
    /// A ring of 4 KiB buffers (256-byte alignment, tails of at least 1 KiB taken).
    private func smallRing(buffers: Int = 3) -> StagingRing {
        StagingRing(bufferBytes: 4096, bufferCount: buffers, alignment: 256, minimumTailBytes: 1024)
    }

    /// Stages uploads of the given byte sizes, returning every upload's slots.
    private func plan(_ ring: inout StagingRing, _ sizes: [Int]) -> [[StagingRing.Slot]] {
        sizes.map { size in
            var slots: [StagingRing.Slot] = []
            var remaining = size
            while remaining > 0 {
                let slot = ring.reserve(remaining)
                slots.append(slot)
                remaining -= slot.byteCount
            }
            return slots
        }
    }

    @Test func smallUploadsArePackedAtAlignedOffsets() {
        var ring = smallRing()
        let slots = plan(&ring, [2, 300, 256, 10]).map { $0[0] }
        #expect(slots.map(\.buffer) == [0, 0, 0, 0])
        #expect(slots.map(\.offset) == [0, 256, 768, 1024])
        #expect(slots.map(\.byteCount) == [2, 300, 256, 10])
        #expect(slots.allSatisfy { !$0.entersBuffer })
    }

    @Test func aLargeTailIsUsedAndTheRestGoesOnInTheNextBuffer() {
        var ring = smallRing()
        _ = plan(&ring, [1000])  // 3072 bytes free from offset 1024
        let slots = plan(&ring, [5000])[0]
        #expect(slots == [
            .init(buffer: 0, offset: 1024, byteCount: 3072, entersBuffer: false),
            .init(buffer: 1, offset: 0, byteCount: 1928, entersBuffer: true),
        ])
    }

    @Test func aSmallTailIsSkipped() {
        var ring = smallRing()
        _ = plan(&ring, [3500])  // 512 bytes free: less than the 1 KiB worth a part
        #expect(plan(&ring, [600])[0] == [.init(buffer: 1, offset: 0, byteCount: 600, entersBuffer: true)])
        // An upload that fits the tail still goes there.
        var other = smallRing()
        _ = plan(&other, [3500])
        #expect(plan(&other, [500])[0] == [.init(buffer: 0, offset: 3584, byteCount: 500, entersBuffer: false)])
    }

    @Test func aLargeUploadIsCutIntoBufferSizedPartsAroundTheRing() {
        var ring = smallRing(buffers: 2)
        let slots = plan(&ring, [4096 * 3 + 100])[0]
        #expect(slots.map(\.buffer) == [0, 1, 0, 1])
        #expect(slots.map(\.byteCount) == [4096, 4096, 4096, 100])
        #expect(slots.map(\.entersBuffer) == [false, true, true, true])
        #expect(slots.allSatisfy { $0.offset == 0 })
    }

    @Test func limitingBuffersReentersTheFirst() {
        var ring = smallRing(buffers: 4)
        _ = plan(&ring, [4096, 4096])  // now in buffer 1
        ring.limitBuffers(to: 1)
        #expect(plan(&ring, [10])[0] == [.init(buffer: 0, offset: 0, byteCount: 10, entersBuffer: true)])
        #expect(plan(&ring, [10])[0] == [.init(buffer: 0, offset: 256, byteCount: 10, entersBuffer: false)])
        #expect(plan(&ring, [4096])[0].map(\.buffer) == [0, 0])
    }

    /// Many random uploads: every part is whole elements, aligned, inside its buffer, and never overlaps a part
    /// written to the same buffer since the ring last entered it (which is what makes reuse without a wait safe).
    @Test func partsNeverOverlapWithoutAWait() {
        var ring = smallRing(buffers: 3)
        var random = ConformanceRandom(seed: 7)
        var live: [[Range<Int>]] = Array(repeating: [], count: 3)
        for _ in 0..<2000 {
            let large = random.next() % 4 == 0  // a quarter larger than a buffer, the rest small
            let size = 2 * (1 + Int(random.next() % (large ? 9000 : 400)))
            var covered = 0
            for slot in plan(&ring, [size])[0] {
                #expect(slot.byteCount > 0 && slot.byteCount % 2 == 0)
                #expect(slot.offset % 256 == 0 && slot.offset + slot.byteCount <= 4096)
                if slot.entersBuffer { live[slot.buffer] = [] }
                let range = slot.offset..<(slot.offset + slot.byteCount)
                #expect(!live[slot.buffer].contains { $0.overlaps(range) })
                live[slot.buffer].append(range)
                covered += slot.byteCount
            }
            #expect(covered == size)
        }
    }

    // MARK: bf16 writer

    /// bf16 pieces joined and cut at awkward places, copied bit for bit by one thread or many, from any subrange.
    @Test func bf16IsCopiedExactlyAcrossPieces() {
        var random = ConformanceRandom(seed: 11)
        let count = 1_500_001
        let values = (0..<count).map { _ in UInt16(truncatingIfNeeded: random.next()) }
        values.withUnsafeBytes { raw in
            let cuts = [0, 1, 777, 700_000, 1_499_999, count]
            let pieces = zip(cuts, cuts.dropFirst()).map { UnsafeRawBufferPointer(rebasing: raw[($0 * 2)..<($1 * 2)]) }
            for (range, threads) in [(0..<count, 1), (0..<count, 8), (5..<1_400_003, 8), (776..<778, 8)] {
                var out = [UInt16](repeating: 0xFFFF, count: range.count)
                out.withUnsafeMutableBytes {
                    writeBF16(pieces, dtype: .bf16, elements: range, to: $0.baseAddress!, threads: threads,
                              minimumSliceBytes: 4096)
                }
                #expect(out == Array(values[range]), "\(range) on \(threads) threads")
            }
        }
    }

    /// f32 (from unaligned memory), f16 and integers become the bf16 that `floatToBfloat16` gives their f32 value.
    @Test func otherDtypesAreRoundedToNearestBF16() {
        var random = ConformanceRandom(seed: 13)
        let count = 300_003
        let floats = (0..<count).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: random.next()) & 0xBFFF_FFFF) }
        // One byte in, so every f32 is unaligned, as in a safetensors file whose header length is not a multiple of 4.
        var bytes = [UInt8](repeating: 0, count: count * 4 + 1)
        bytes.withUnsafeMutableBytes { raw in
            for (i, f) in floats.enumerated() { raw.storeBytes(of: f.bitPattern, toByteOffset: 1 + 4 * i, as: UInt32.self) }
        }
        let halves = floats.prefix(1000).map { Float16($0) }
        let ints: [Int32] = [0, 1, -1, 257, 65_537, -16_777_217, Int32.max]
        bytes.withUnsafeBytes { raw in
            let unaligned = UnsafeRawBufferPointer(rebasing: raw[1...])
            let pieces = [UnsafeRawBufferPointer(rebasing: unaligned[..<(4 * 1001)]),
                          UnsafeRawBufferPointer(rebasing: unaligned[(4 * 1001)...])]
            var out = [UInt16](repeating: 0, count: count)
            out.withUnsafeMutableBytes {
                writeBF16(pieces, dtype: .f32, elements: 0..<count, to: $0.baseAddress!, threads: 4,
                          minimumSliceBytes: 4096)
            }
            #expect(out == floats.map(floatToBfloat16))
        }
        halves.withUnsafeBytes { raw in
            var out = [UInt16](repeating: 0, count: halves.count)
            out.withUnsafeMutableBytes { writeBF16([raw], dtype: .f16, elements: 0..<halves.count, to: $0.baseAddress!) }
            #expect(out == halves.map { floatToBfloat16(Float($0)) })
        }
        ints.withUnsafeBytes { raw in
            var out = [UInt16](repeating: 0, count: ints.count)
            out.withUnsafeMutableBytes { writeBF16([raw], dtype: .i32, elements: 0..<ints.count, to: $0.baseAddress!) }
            #expect(out == ints.map { floatToBfloat16(Float($0)) })
        }
    }

    /// Every dtype a checkpoint may hold goes through the writer as `HostTensor.floats()` then bf16 would.
    @Test func everyDtypeMatchesFloatsThenRounding() {
        var random = ConformanceRandom(seed: 17)
        for dtype in DType.allCases {
            let count = 2500
            let raw = (0..<(count * dtype.byteSize)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let host = raw.withUnsafeBytes { HostTensor(copying: $0, shape: [count], dtype: dtype) }
            var out = [UInt16](repeating: 0, count: count)
            out.withUnsafeMutableBytes { writeBF16([host.bytes], dtype: dtype, elements: 0..<count, to: $0.baseAddress!) }
            let expected = host.floats().map(floatToBfloat16)
            // NaN payloads may differ only where both are NaN.
            let same = zip(out, expected).allSatisfy { a, b in
                a == b || (bfloat16ToFloat(a).isNaN && bfloat16ToFloat(b).isNaN)
            }
            #expect(same, "\(dtype)")
        }
    }
}

import FluxCPU
import FluxCore
import Testing

/// Contiguous slices are views of their parent's storage (no copy); every other slice is a copy. Either way the
/// values, and every op that reads them, are the same.
@Suite struct TensorViewTests {
    let cpu = CPUBackend()

    @Test func sliceIsAViewOnlyWhenContiguousAndAligned() throws {
        var rng = SeededGenerator(seed: 31)
        let x = try cpu.tensor(rng.floats(1 * 6 * 256), shape: [1, 6, 256])
        // Axis 1 of a batch-1 tensor at a 128-element boundary: a view.
        let view = try cpu.slice(x, axis: 1, start: 2, count: 3)
        #expect(view.storage === x.storage && view.offset == 512 && view.shape == [1, 3, 256])
        // A view of a view, then a reshape: still the same storage, offsets add up.
        let inner = try cpu.slice(view, axis: 1, start: 1, count: 2).reshaped([2, 2, 128])
        #expect(inner.storage === x.storage && inner.offset == 768)
        // Not contiguous (batch 2), or not aligned: copies.
        let batched = try cpu.tensor(rng.floats(2 * 6 * 256), shape: [2, 6, 256])
        #expect(try cpu.slice(batched, axis: 1, start: 2, count: 3).storage !== batched.storage)
        let odd = try cpu.tensor(rng.floats(6 * 100), shape: [6, 100])
        #expect(try cpu.slice(odd, axis: 0, start: 1, count: 2).storage !== odd.storage)

        let all = try cpu.floats(x)
        #expect(try cpu.floats(view) == Array(all[512..<(512 + 768)]))
        #expect(try cpu.floats(inner) == Array(all[768..<(768 + 512)]))
    }

    @Test func opsReadViewsLikeCopies() throws {
        var rng = SeededGenerator(seed: 32)
        let (rows, width) = (8, 128)
        let x = try cpu.tensor(rng.floats(rows * width), shape: [rows, width])
        let w = try cpu.tensor(rng.floats(16 * width), shape: [16, width])
        let view = try cpu.slice(x, axis: 0, start: 3, count: 4)
        let copy = try cpu.tensor(Array(try cpu.floats(x)[(3 * width)..<(7 * width)]), shape: [4, width])
        #expect(view.storage === x.storage)
        #expect(try cpu.floats(cpu.linear(view, weight: w, bias: nil)) == cpu.floats(cpu.linear(copy, weight: w, bias: nil)))
        #expect(try cpu.floats(cpu.add(view, view)) == cpu.floats(cpu.add(copy, copy)))
        #expect(try cpu.floats(cpu.concat([view, copy], axis: 0)) == cpu.floats(cpu.concat([copy, copy], axis: 0)))
        // chunk of a (1, 6·128) modulation vector: six views.
        let vec = try cpu.tensor(rng.floats(6 * 128), shape: [1, 6 * 128])
        let chunks = try cpu.chunk(vec, 6, axis: 1)
        #expect(chunks.allSatisfy { $0.storage === vec.storage })
        #expect(try chunks.flatMap { try cpu.floats($0) } == cpu.floats(vec))
    }
}

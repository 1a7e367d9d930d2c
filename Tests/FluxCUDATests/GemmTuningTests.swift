import FluxCore
import Foundation
import Testing

@testable import FluxCUDA

/// The host side of choosing a cuBLASLt algorithm per product shape: the `--gemm-tune` words, reading the heuristic's
/// result array, choosing from timings, the scratch output's size and the report lines. The timing itself and the
/// products of every candidate need a GPU: `fluxserve selftest --device cuda` and `fluxserve bench --profile` there.
@Suite struct GemmTuningTests {
    @Test func settingsParse() throws {
        let defaults = GemmTuneSettings()
        #expect(defaults.enabled && defaults.candidates == 8 && defaults.repeats == 3 && !defaults.log)
        #expect(try GemmTuneSettings(parsing: "", option: "--gemm-tune") == defaults)
        #expect(try GemmTuneSettings(parsing: "1", option: "--gemm-tune") == defaults)
        #expect(try GemmTuneSettings(parsing: " ON ", option: "--gemm-tune") == defaults)
        for off in ["0", "off", "false", "no", "first"] { #expect(try GemmTuneSettings(parsing: off, option: "--gemm-tune").enabled == false) }
        let custom = try GemmTuneSettings(parsing: "candidates=16, repeats=5,log", option: "--gemm-tune")
        #expect(custom.enabled && custom.candidates == 16 && custom.repeats == 5 && custom.log)
        #expect(try GemmTuneSettings(parsing: "0,log", option: "--gemm-tune").log)
        #expect(try GemmTuneSettings(parsing: "all", option: "--gemm-tune").minimumFlops == 0)
        #expect(try GemmTuneSettings(parsing: "all,pick=3", option: "--gemm-tune").pick == 3)
        #expect(try GemmTuneSettings(parsing: "pick=0", option: "--gemm-tune").pick == 0)
        for bad in ["2", "candidates=0", "candidates=33", "repeats=0", "repeats=x", "fast", "0;log", "pick=32",
                    "pick=-1"] {
            #expect(throws: CUDAOptionError.self) { try GemmTuneSettings(parsing: bad, option: "--gemm-tune") }
        }
    }

    /// A bad word is refused with one line naming where it came from (the flag or its environment alias).
    @Test func refusalNamesTheOption() {
        for option in ["--gemm-tune", "FLUXSERVE_GEMM_TUNE"] {
            do {
                _ = try GemmTuneSettings(parsing: "on,fast", option: option)
                Issue.record("'fast' accepted")
            } catch {
                #expect("\(error)".hasPrefix("\(option) 'fast': expected 1, on, 0, off"), "\(error)")
                #expect(!"\(error)".contains("\n"))
            }
        }
    }

    /// The `config:` line's words parse back to the same settings.
    @Test func summaryParsesBack() throws {
        for text in ["", "0", "candidates=16,repeats=5,log", "all,pick=3", "off,all"] {
            let settings = try GemmTuneSettings(parsing: text, option: "--gemm-tune")
            #expect(try GemmTuneSettings(parsing: settings.summary, option: "x") == settings, "\(text)")
        }
        #expect(GemmTuneSettings().summary == "on")
        #expect(try GemmTuneSettings(parsing: "log,0", option: "x").summary == "off,log")
    }

    @Test func candidatesAskedFor() throws {
        let on = GemmTuneSettings(), off = try GemmTuneSettings(parsing: "0", option: "--gemm-tune")
        let big = 2.0 * 12288 * 4608 * 3072, small = 2.0 * 64 * 64 * 64
        #expect(on.candidates(flops: big) == 8)
        #expect(on.candidates(flops: small) == 1)
        #expect(off.candidates(flops: big) == 1)
        #expect(try GemmTuneSettings(parsing: "candidates=3", option: "--gemm-tune").candidates(flops: big) == 3)
        // `all` times small products too; `pick` asks for just enough results to reach its candidate.
        #expect(try GemmTuneSettings(parsing: "all", option: "--gemm-tune").candidates(flops: small) == 8)
        #expect(try GemmTuneSettings(parsing: "pick=5", option: "--gemm-tune").candidates(flops: big) == 6)
        #expect(try GemmTuneSettings(parsing: "pick=5", option: "--gemm-tune").candidates(flops: small) == 1)
        #expect(try GemmTuneSettings(parsing: "all,pick=5,0", option: "--gemm-tune").candidates(flops: small) == 6)
    }

    @Test func median() {
        #expect(GemmTuning.median([]) == nil)
        #expect(GemmTuning.median([3]) == 3)
        #expect(GemmTuning.median([5, 1, 3]) == 3)
        #expect(GemmTuning.median([4, 1, 3, 2]) == 2.5)
        #expect(GemmTuning.median([9, 1, 1]) == 1)
    }

    @Test func chooseFastest() {
        // Nothing timed: the heuristic's first.
        #expect(GemmTuning.choose([], margin: 0.01) == 0)
        #expect(GemmTuning.choose([nil, nil], margin: 0.01) == 0)
        // A clear winner.
        #expect(GemmTuning.choose([1.0, 0.8, 0.9], margin: 0.01) == 1)
        #expect(GemmTuning.choose([1.0, 0.95, 0.9], margin: 0.01) == 2)
        // Within the margin the first stays; just past it, the fastest wins.
        #expect(GemmTuning.choose([1.0, 0.995], margin: 0.01) == 0)
        #expect(GemmTuning.choose([1.0, 0.98], margin: 0.01) == 1)
        #expect(GemmTuning.choose([1.0, 0.995], margin: 0) == 1)
        // The first is the fastest.
        #expect(GemmTuning.choose([0.5, 0.8, 0.6], margin: 0.01) == 0)
        // Failed candidates are never chosen; a failed first gives way to any timed one.
        #expect(GemmTuning.choose([nil, 0.9, 0.7], margin: 0.01) == 2)
        #expect(GemmTuning.choose([1.0, nil, 0.7], margin: 0.01) == 2)
        #expect(GemmTuning.choose([1.0, nil, nil], margin: 0.01) == 0)
        // Ties go to the earlier candidate.
        #expect(GemmTuning.choose([nil, 0.7, 0.7], margin: 0.01) == 1)
    }

    @Test func scratchOutputBytes() {
        typealias Shape = CuBLASLt.Shape
        // linear: D (N × M, ld N), bf16.
        let linear = Shape(m: 3072, n: 4096, k: 12288, transA: true, lda: 12288, ldb: 12288, ldd: 3072,
                           epilogue: .bias)
        #expect(GemmTuning.outputBytes(linear) == 3072 * 4096 * 2)
        var f32 = linear
        f32.outputF32 = true
        #expect(GemmTuning.outputBytes(f32) == 3072 * 4096 * 4)
        // A leading dimension past m: the last column ends m elements after its start.
        let padded = Shape(m: 100, n: 3, k: 8, transA: false, lda: 128, ldb: 8, ldd: 128, epilogue: .none)
        #expect(GemmTuning.outputBytes(padded) == (128 * 2 + 100) * 2)
        // Strided batches (attention scores per head).
        var batched = Shape(m: 512, n: 512, k: 64, transA: true, lda: 64, ldb: 64, ldd: 512, epilogue: .none)
        batched.batch = 24
        batched.strideD = 512 * 512
        #expect(GemmTuning.outputBytes(batched) == 24 * 512 * 512 * 2)
        let empty = Shape(m: 0, n: 0, k: 0, transA: false, lda: 1, ldb: 1, ldd: 1, epilogue: .none)
        #expect(GemmTuning.outputBytes(empty) == 2)
    }

    /// `cublasLtMatmulHeuristicResult_t` as cublasLt.h lays it out (96 bytes: algo at 0, workspaceSize at 64, state
    /// at 72, wavesCount at 76, reserved at 80), written byte by byte here and read back by `usableResults`.
    @Test func heuristicResultLayout() {
        let size = CuBLASLt.heuristicResultSize
        #expect(size == 96 && CuBLASLt.algoSize == 64)
        let count = 4
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size * count, alignment: 16)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0xAB, count: size * count)
        let entries: [(workspace: UInt64, state: Int32, waves: Float)] = [
            (0, 0, 0.75), (1 << 20, 0, 1.5), (64 << 20, 0, 2), (0, 15, 1),  // too much workspace; NOT_SUPPORTED
        ]
        for (i, e) in entries.enumerated() {
            let base = buffer + size * i
            for j in 0..<8 { base.storeBytes(of: UInt64(i * 100 + j), toByteOffset: 8 * j, as: UInt64.self) }
            base.storeBytes(of: e.workspace, toByteOffset: 64, as: UInt64.self)
            base.storeBytes(of: e.state, toByteOffset: 72, as: Int32.self)
            base.storeBytes(of: e.waves, toByteOffset: 76, as: Float.self)
        }
        let usable = CuBLASLt.usableResults(buffer, count: count, workspaceLimit: 32 << 20)
        #expect(usable == [
            .init(index: 0, workspaceSize: 0, state: 0, wavesCount: 0.75),
            .init(index: 1, workspaceSize: 1 << 20, state: 0, wavesCount: 1.5),
        ])
        #expect(CuBLASLt.usableResults(buffer, count: 0, workspaceLimit: 32 << 20).isEmpty)
        #expect(CuBLASLt.usableResults(buffer, count: -1, workspaceLimit: 32 << 20).isEmpty)
        // A workspace size too large for Int is refused, not trapped on.
        buffer.storeBytes(of: UInt64.max, toByteOffset: 64, as: UInt64.self)
        #expect(CuBLASLt.usableResults(buffer, count: 1, workspaceLimit: Int.max - 1).isEmpty)
    }

    @Test func reportLines() {
        let moved = GemmTuningEntry(shape: "12288x4608x3072 geluBias", flops: 2 * 12288 * 4608 * 3072,
                                    milliseconds: [0.52, nil, 0.48], chosen: 2, tuningMs: 6.25)
        #expect(abs(moved.speedup - 0.52 / 0.48) < 1e-12)
        #expect(moved.line.hasPrefix("gemm 12288x4608x3072 geluBias: [0.520 failed *0.480] ms, candidate 2"))
        #expect(moved.line.contains("1.083x the heuristic's first, tuned in 6.2 ms")
                || moved.line.contains("1.083x the heuristic's first, tuned in 6.3 ms"))
        let kept = GemmTuningEntry(shape: "3072x512x3072 bias", flops: 2 * 3072 * 512 * 3072,
                                   milliseconds: [0.05, 0.06], chosen: 0, tuningMs: 1, note: nil)
        #expect(kept.speedup == 1)
        let failed = GemmTuningEntry(shape: "1x1x1 none", flops: 2, milliseconds: [nil], chosen: 0, tuningMs: 0,
                                     note: "cuda: out of memory")
        #expect(failed.speedup == 1 && failed.line.hasSuffix("(cuda: out of memory)"))
        var described = moved
        described.algorithms = ["id 66 tile 20 splitK 1", "id 66 tile 19 splitK 1", "id 71 tile 20 splitK 2"]
        #expect(described.line.contains(" [id 71 tile 20 splitK 2 over id 66 tile 20 splitK 1]"))
        described.chosen = 0
        #expect(described.line.hasSuffix(" [id 66 tile 20 splitK 1]"))
        let summary = GemmTuningEntry.summary([moved, kept])
        #expect(summary.hasPrefix("cuBLASLt tuning: 2 shapes timed in 7.2 ms, 1 moved off the heuristic's first"))
        #expect(summary.hasSuffix("(12288x4608x3072 1.08x)"))
        #expect(GemmTuningEntry.summary([kept]).hasSuffix("0 moved off the heuristic's first"))
    }

    /// The report goes into `fluxserve bench --json`: failed candidates as null.
    @Test func reportEncodes() throws {
        let entry = GemmTuningEntry(shape: "9216x4608x3072 bias", flops: 1, milliseconds: [0.4, nil], chosen: 0,
                                    tuningMs: 2)
        let data = try JSONEncoder().encode(entry)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"milliseconds\":[0.4,null]"))
        #expect(try JSONDecoder().decode(GemmTuningEntry.self, from: data) == entry)
    }

    /// `describe` through the real library (no GPU needed): every attribute size must match exactly. Needs
    /// libcublasLt.so.13 (in the standard folders or on the loader path); reported as skipped without it.
    @Test(.requires("libcublasLt", GPUAvailability.cuBLASLt)) func describeAlgorithm() throws {
        let lt = try CuBLASLt()
        let algo = UnsafeMutableRawPointer.allocate(byteCount: CuBLASLt.algoSize, alignment: 16)
        defer { algo.deallocate() }
        algo.initializeMemory(as: UInt8.self, repeating: 0, count: CuBLASLt.algoSize)
        #expect(lt.describe(algo) == "id 0 tile 0 stages 0 splitK 0 reduction 0 swizzle 0 cluster 0")
    }
}

import FluxCPU
import FluxCore
import Foundation
import Testing

@testable import FluxCUDA

/// The op conformance table, on the GPU when there is one, and checks of the table itself on any machine.
@Suite struct ConformanceTests {
    /// Every GPU op against the CPU. Reported as skipped without a driver or device.
    @Test(.requires("a CUDA device", GPUAvailability.device)) func cudaMatchesCPU() throws {
        let gpu = try CUDABackend(options: .init(poisonOutputs: true))
        let results = BackendConformance.run(on: gpu)
        for r in results {
            print("\(r.passed ? "PASS" : "FAIL") \(r.op) \(r.detail) err \(r.error) limit \(r.threshold) \(r.note ?? "")")
            #expect(r.passed, "\(r.op) \(r.detail): error \(r.error) > \(r.threshold) \(r.note ?? "")")
        }
    }

    /// The harness on the CPU against itself: every case runs and passes with error 0.
    @Test func cpuAgainstItselfIsExact() {
        let results = BackendConformance.run(on: CPUBackend())
        #expect(results.count >= 50)
        for r in results { #expect(r.passed && r.error == 0, "\(r.op) \(r.detail): \(r.error) \(r.note ?? "")") }
    }

    /// The table covers every op of the `Backend` protocol, and every fused op has a case against its composition
    /// (read from the protocol's source, so a new op fails this test until it has cases).
    @Test func everyBackendOpHasACase() throws {
        let source = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/FluxCore/Backend.swift").standardized, encoding: .utf8)
        let body = source.components(separatedBy: "public protocol Backend")[1].components(separatedBy: "\n}\n")[0]
        func ops(_ text: String) -> Set<String> {
            Set(text.split(separator: "\n").compactMap { line -> String? in
                guard let range = line.range(of: "func ") else { return nil }
                let name = String(line[range.upperBound...].prefix { $0.isLetter || $0.isNumber })
                guard name.hasPrefix("unchecked") else { return name }
                let op = name.dropFirst("unchecked".count)
                return op.prefix(1).lowercased() + op.dropFirst()
            })
        }
        let all = ops(body).subtracting(["upload", "download", "synchronize"])
        let fused = ops(body.components(separatedBy: "// MARK: Fused ops")[1])
        #expect(all.count >= 20)
        #expect(fused == ["linear", "quantizeRows", "modulatedLayerNormFP8", "attentionInputs"])
        #expect(all.subtracting(BackendConformance.coveredOps).isEmpty,
                "ops without a conformance case: \(all.subtracting(BackendConformance.coveredOps).sorted())")
        let uncompared = fused.subtracting(BackendConformance.opsCheckedAgainstComposition)
        #expect(uncompared.isEmpty, "fused ops without a composition case: \(uncompared.sorted())")
    }

    /// A backend that gets one op slightly wrong is caught: the harness is not vacuous.
    @Test func aWrongOpFails() {
        let results = BackendConformance.run(on: OffByOneAdd(), only: ["add", "multiply"])
        #expect(results.contains { $0.op == "add" && !$0.passed })
        #expect(results.contains { $0.op == "multiply" && $0.passed })
    }

    /// A fused override 1 % off its composition fails a composition case of its op, while the same backend's
    /// composition cases pass when the overrides are right.
    @Test func aWrongFusedOverrideFails() {
        let fused: Set = ["linear", "quantizeRows", "modulatedLayerNormFP8", "attentionInputs"]
        let right = BackendConformance.run(on: ForwardingBackend(), only: fused)
            .filter { $0.detail.hasSuffix("composition") }
        #expect(right.count >= 8)
        for r in right { #expect(r.passed && r.error == 0, "\(r.op) \(r.detail): \(r.error) \(r.note ?? "")") }
        let wrong = BackendConformance.run(on: OffByOnePercentFused(), only: fused)
            .filter { $0.detail.hasSuffix("composition") }
        for op in fused {
            #expect(wrong.contains { $0.op == op && !$0.passed }, "\(op): a 1 % error passed every composition case")
        }
    }

    /// Shapes are checked before the backend is called: a bad operand never reaches an `unchecked…` op.
    @Test func badShapesNeverReachTheBackend() throws {
        let b = ForwardingBackend(), x = try b.tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        func rejected(_ operand: String, _ body: () throws -> Tensor) -> Bool {
            do { _ = try body() } catch let TensorError.shapeMismatch(_, got, _, _) { return got == operand } catch {}
            return false
        }
        #expect(rejected("weight") { try b.linear(x, weight: try x.reshaped([6]), bias: nil) })
        #expect(rejected("b") { try b.add(x, try x.reshaped([3, 2])) })
        #expect(rejected("x") { try b.slice(x, axis: 1, start: 2, count: 2) })
        #expect(rejected("order") { try b.permute(x, [0, 0]) })
        #expect(rejected("parts[1]") { try b.linear(concatenating: [x, try x.reshaped([3, 2])], weight: x, bias: nil) })
        #expect(rejected("x") { try b.modulatedLayerNormFP8(x, shift: x, scale: x, eps: 1e-6).values })
        #expect(b.uncheckedCalls == 0)
        _ = try b.linear(x, weight: x, bias: nil, activation: .identity)
        #expect(b.uncheckedCalls == 1, "a good call is counted")
    }
}

/// The CPU backend's ops behind every requirement (fused ones included, so subclasses can override them); counts the
/// calls of the basic ops `badShapesNeverReachTheBackend` tries (linear, add, slice, permute, concat, the norm).
class ForwardingBackend: Backend, @unchecked Sendable {
    let cpu = CPUBackend()
    var uncheckedCalls = 0
    var name: String { "forwarding" }
    func upload(_ host: HostTensor) throws -> Tensor { try cpu.upload(host) }
    func download(_ tensor: Tensor) throws -> HostTensor { try cpu.download(tensor) }
    func synchronize() throws {}
    func uncheckedAdd(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        uncheckedCalls += 1
        return try cpu.uncheckedAdd(a, b)
    }
    func uncheckedLinear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation) throws -> Tensor {
        uncheckedCalls += 1
        return try cpu.uncheckedLinear(x, weight: weight, bias: bias, activation: activation)
    }
    func uncheckedAttention(q: Tensor, k: Tensor, v: Tensor, scale: Float, bias: Tensor?, causal: Bool) throws
        -> Tensor
    {
        try cpu.uncheckedAttention(q: q, k: k, v: v, scale: scale, bias: bias, causal: causal)
    }
    func uncheckedLayerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor {
        try cpu.uncheckedLayerNorm(x, weight: weight, bias: bias, eps: eps)
    }
    func uncheckedRmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor {
        try cpu.uncheckedRmsNorm(x, weight: weight, eps: eps)
    }
    func uncheckedModulatedLayerNorm(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws -> Tensor {
        uncheckedCalls += 1
        return try cpu.uncheckedModulatedLayerNorm(x, shift: shift, scale: scale, eps: eps)
    }
    func uncheckedActivation(_ x: Tensor, _ kind: Activation) throws -> Tensor { try cpu.uncheckedActivation(x, kind) }
    func uncheckedMultiply(_ a: Tensor, _ b: Tensor) throws -> Tensor { try cpu.uncheckedMultiply(a, b) }
    func uncheckedGatedAdd(_ residual: Tensor, _ x: Tensor, gate: Tensor) throws -> Tensor {
        try cpu.uncheckedGatedAdd(residual, x, gate: gate)
    }
    func uncheckedConcat(_ parts: [Tensor], axis: Int) throws -> Tensor {
        uncheckedCalls += 1
        return try cpu.uncheckedConcat(parts, axis: axis)
    }
    func uncheckedSlice(_ x: Tensor, axis: Int, start: Int, count: Int) throws -> Tensor {
        uncheckedCalls += 1
        return try cpu.uncheckedSlice(x, axis: axis, start: start, count: count)
    }
    func uncheckedPermute(_ x: Tensor, _ order: [Int]) throws -> Tensor {
        uncheckedCalls += 1
        return try cpu.uncheckedPermute(x, order)
    }
    func uncheckedEmbedding(_ table: Tensor, ids: [Int32], shape: [Int]) throws -> Tensor {
        try cpu.uncheckedEmbedding(table, ids: ids, shape: shape)
    }
    func uncheckedScaleShift(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor {
        try cpu.uncheckedScaleShift(x, scale: scale, shift: shift)
    }
    func uncheckedAddScaled(_ a: Tensor, _ b: Tensor, scale: Float) throws -> Tensor {
        try cpu.uncheckedAddScaled(a, b, scale: scale)
    }
    func uncheckedAbsSum(_ x: Tensor) throws -> Float { try cpu.uncheckedAbsSum(x) }
    func uncheckedConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Padding2D) throws -> Tensor {
        try cpu.uncheckedConv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }
    func uncheckedGroupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float,
                            activation: Activation) throws -> Tensor
    {
        try cpu.uncheckedGroupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, activation: activation)
    }
    func uncheckedUpsampleNearest(_ x: Tensor, factor: Int) throws -> Tensor {
        try cpu.uncheckedUpsampleNearest(x, factor: factor)
    }
    func uncheckedQuantizeRows(_ x: Tensor) throws -> QuantizedRows { try cpu.uncheckedQuantizeRows(x) }
    func uncheckedLinear(_ x: QuantizedRows, weight: QuantizedWeight, bias: Tensor?, activation: Activation) throws
        -> Tensor
    {
        try cpu.uncheckedLinear(x, weight: weight, bias: bias, activation: activation)
    }
    // Fused: the compositions on this backend (what the protocol's defaults do), overridable.
    func uncheckedLinear(concatenating parts: [Tensor], weight: Tensor, bias: Tensor?, activation: Activation) throws
        -> Tensor
    {
        try FusedOps.linear(on: self, concatenating: parts, weight: weight, bias: bias, activation: activation)
    }
    func uncheckedQuantizeRows(concatenating parts: [Tensor]) throws -> QuantizedRows {
        try FusedOps.quantizeRows(on: self, concatenating: parts)
    }
    func uncheckedModulatedLayerNormFP8(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws -> QuantizedRows {
        try FusedOps.modulatedLayerNormFP8(on: self, x, shift: shift, scale: scale, eps: eps)
    }
    func uncheckedAttentionInputs(_ streams: [QKVProjection], heads: Int, eps: Float, cos: Tensor, sin: Tensor) throws
        -> AttentionHeads
    {
        try FusedOps.attentionInputs(on: self, streams, heads: heads, eps: eps, cos: cos, sin: sin)
    }
}

/// The CPU backend with `add` off by 1 %.
final class OffByOneAdd: ForwardingBackend, @unchecked Sendable {
    override var name: String { "off-by-one" }
    override func uncheckedAdd(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try cpu.scaleShift(try cpu.add(a, b), scale: 1.01, shift: 0)
    }
}

/// Every fused op overridden 1 % off its composition: tensors scaled by 1.01, quantized rows' scales too.
final class OffByOnePercentFused: ForwardingBackend, @unchecked Sendable {
    override var name: String { "off-by-one-percent-fused" }
    private func off(_ t: Tensor) throws -> Tensor { try cpu.scaleShift(t, scale: 1.01, shift: 0) }
    private func off(_ q: QuantizedRows) throws -> QuantizedRows {
        QuantizedRows(values: q.values, scales: try off(q.scales))
    }
    override func uncheckedLinear(concatenating parts: [Tensor], weight: Tensor, bias: Tensor?,
                                  activation: Activation) throws -> Tensor
    {
        try off(try super.uncheckedLinear(concatenating: parts, weight: weight, bias: bias, activation: activation))
    }
    override func uncheckedQuantizeRows(concatenating parts: [Tensor]) throws -> QuantizedRows {
        try off(try super.uncheckedQuantizeRows(concatenating: parts))
    }
    override func uncheckedModulatedLayerNormFP8(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws
        -> QuantizedRows
    {
        try off(try super.uncheckedModulatedLayerNormFP8(x, shift: shift, scale: scale, eps: eps))
    }
    override func uncheckedAttentionInputs(_ streams: [QKVProjection], heads: Int, eps: Float, cos: Tensor,
                                           sin: Tensor) throws -> AttentionHeads
    {
        let out = try super.uncheckedAttentionInputs(streams, heads: heads, eps: eps, cos: cos, sin: sin)
        return AttentionHeads(q: try off(out.q), k: try off(out.k), v: try off(out.v))
    }
}

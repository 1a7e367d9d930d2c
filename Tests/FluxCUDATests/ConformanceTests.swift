import FluxCPU
import FluxCore
import Foundation
import Testing

@testable import FluxCUDA

/// The op conformance table, on the GPU when there is one, and checks of the table itself on any machine.
@Suite struct ConformanceTests {
    /// Every GPU op against the CPU. Skipped, visibly, without a driver or device.
    @Test func cudaMatchesCPU() throws {
        if let reason = CUDABackend.unavailableReason() {
            print("skipped: no CUDA driver (\(reason))")
            return
        }
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

    /// The table covers every op of the `Backend` protocol (read from its source, so a new op fails this test until
    /// it has a case).
    @Test func everyBackendOpHasACase() throws {
        let source = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/FluxCore/Backend.swift").standardized, encoding: .utf8)
        let body = source.components(separatedBy: "public protocol Backend")[1].components(separatedBy: "\n}\n")[0]
        let ops = Set(body.split(separator: "\n").compactMap { line -> String? in
            guard let range = line.range(of: "func ") else { return nil }
            return String(line[range.upperBound...].prefix { $0.isLetter || $0.isNumber })
        }).subtracting(["upload", "download"])
        #expect(ops.count >= 20)
        #expect(ops.subtracting(BackendConformance.coveredOps).isEmpty,
                "ops without a conformance case: \(ops.subtracting(BackendConformance.coveredOps).sorted())")
    }

    /// A backend that gets one op slightly wrong is caught: the harness is not vacuous.
    @Test func aWrongOpFails() {
        let results = BackendConformance.run(on: OffByOneAdd(), only: ["add", "multiply"])
        #expect(results.contains { $0.op == "add" && !$0.passed })
        #expect(results.contains { $0.op == "multiply" && $0.passed })
    }
}

/// The CPU backend with `add` off by 1 %.
final class OffByOneAdd: Backend, @unchecked Sendable {
    let cpu = CPUBackend()
    var name: String { "off-by-one" }
    func upload(_ host: HostTensor) throws -> Tensor { try cpu.upload(host) }
    func download(_ tensor: Tensor) throws -> HostTensor { try cpu.download(tensor) }
    func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try cpu.scaleShift(try cpu.add(a, b), scale: 1.01, shift: 0) }
    func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation) throws -> Tensor {
        try cpu.linear(x, weight: weight, bias: bias, activation: activation)
    }
    func attention(q: Tensor, k: Tensor, v: Tensor, scale: Float, bias: Tensor?, causal: Bool) throws -> Tensor {
        try cpu.attention(q: q, k: k, v: v, scale: scale, bias: bias, causal: causal)
    }
    func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor {
        try cpu.layerNorm(x, weight: weight, bias: bias, eps: eps)
    }
    func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor { try cpu.rmsNorm(x, weight: weight, eps: eps) }
    func modulatedLayerNorm(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws -> Tensor {
        try cpu.modulatedLayerNorm(x, shift: shift, scale: scale, eps: eps)
    }
    func activation(_ x: Tensor, _ kind: Activation) throws -> Tensor { try cpu.activation(x, kind) }
    func multiply(_ a: Tensor, _ b: Tensor) throws -> Tensor { try cpu.multiply(a, b) }
    func gatedAdd(_ residual: Tensor, _ x: Tensor, gate: Tensor) throws -> Tensor {
        try cpu.gatedAdd(residual, x, gate: gate)
    }
    func concat(_ parts: [Tensor], axis: Int) throws -> Tensor { try cpu.concat(parts, axis: axis) }
    func slice(_ x: Tensor, axis: Int, start: Int, count: Int) throws -> Tensor {
        try cpu.slice(x, axis: axis, start: start, count: count)
    }
    func permute(_ x: Tensor, _ order: [Int]) throws -> Tensor { try cpu.permute(x, order) }
    func embedding(_ table: Tensor, ids: [Int32], shape: [Int]) throws -> Tensor {
        try cpu.embedding(table, ids: ids, shape: shape)
    }
    func scaleShift(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor {
        try cpu.scaleShift(x, scale: scale, shift: shift)
    }
    func addScaled(_ a: Tensor, _ b: Tensor, scale: Float) throws -> Tensor { try cpu.addScaled(a, b, scale: scale) }
    func absSum(_ x: Tensor) throws -> Float { try cpu.absSum(x) }
    func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Padding2D) throws -> Tensor {
        try cpu.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }
    func groupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float, activation: Activation) throws
        -> Tensor
    {
        try cpu.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, activation: activation)
    }
    func upsampleNearest(_ x: Tensor, factor: Int) throws -> Tensor { try cpu.upsampleNearest(x, factor: factor) }
    func rope(_ x: Tensor, cos: Tensor, sin: Tensor) throws -> Tensor { try cpu.rope(x, cos: cos, sin: sin) }
    func linear(concatenating parts: [Tensor], weight: Tensor, bias: Tensor?, activation: Activation) throws -> Tensor {
        try cpu.linear(concatenating: parts, weight: weight, bias: bias, activation: activation)
    }
    func quantizeRows(_ parts: [Tensor]) throws -> QuantizedRows { try cpu.quantizeRows(parts) }
    func modulatedLayerNormFP8(_ x: Tensor, shift: Tensor, scale: Tensor, eps: Float) throws -> QuantizedRows {
        try cpu.modulatedLayerNormFP8(x, shift: shift, scale: scale, eps: eps)
    }
    func linear(_ x: QuantizedRows, weight: QuantizedWeight, bias: Tensor?, activation: Activation) throws -> Tensor {
        try cpu.linear(x, weight: weight, bias: bias, activation: activation)
    }
    func attentionInputs(_ streams: [QKVProjection], heads: Int, eps: Float, cos: Tensor, sin: Tensor) throws
        -> AttentionHeads
    {
        try cpu.attentionInputs(streams, heads: heads, eps: eps, cos: cos, sin: sin)
    }
}

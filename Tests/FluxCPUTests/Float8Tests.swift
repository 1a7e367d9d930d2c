import FluxCPU
import FluxCore
import Foundation
import Testing

/// f8 e4m3 conversion and the fp8 linear of Quantization.swift against torch (`tools/reference/make_fp8_fixtures.py`:
/// torch 2.11's float8_e4m3fn cast, and the row-wise recipe computed with it in f64).
@Suite struct Float8Tests {
    static func fixture(_ name: String) throws -> SafetensorsFile {
        try SafetensorsFile(path: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/fp8/\(name)").path)
    }

    /// Every value of the fixture (grid points, exact ties, their neighbours, random values over 5 scales, both
    /// signs) converts to torch's byte.
    @Test func conversionMatchesTorch() throws {
        let file = try Self.fixture("e4m3.safetensors")
        let x = try file.tensor("x").floats(), bits = try file.tensor("bits").floats().map { UInt8($0) }
        #expect(x.count > 5000)
        let wrong = x.indices.filter { floatToFloat8E4M3(x[$0]) != bits[$0] }
        #expect(wrong.isEmpty, "\(wrong.count) differ, e.g. \(wrong.prefix(5).map { (x[$0], bits[$0]) })")
    }

    /// What the fixture cannot show (torch does not saturate): saturation, NaN, signed zero, subnormal ties, and
    /// that every finite byte survives decode → encode.
    @Test func saturationAndSpecials() {
        #expect(floatToFloat8E4M3(448) == 0x7E)
        #expect(floatToFloat8E4M3(463.9) == 0x7E)
        #expect(floatToFloat8E4M3(1e30) == 0x7E)
        #expect(floatToFloat8E4M3(-.infinity) == 0xFE)
        #expect(floatToFloat8E4M3(.nan) == 0x7F)
        #expect(floatToFloat8E4M3(-0.0) == 0x80)
        #expect(floatToFloat8E4M3(0x1p-9) == 0x01)
        #expect(floatToFloat8E4M3(0x1p-10) == 0x00)            // tie between 0 and 2⁻⁹: to even
        #expect(floatToFloat8E4M3(3 * 0x1p-10) == 0x02)        // tie between 1 and 2 steps: to even
        #expect(floatToFloat8E4M3(15 * 0x1p-10) == 0x08)       // rounds up out of the subnormals into 2⁻⁶
        for byte in UInt8(0)...0xFE where byte & 0x7F != 0x7F {
            #expect(floatToFloat8E4M3(float8E4M3ToFloat(byte)) == byte, "byte \(byte)")
        }
        #expect(float8RowScale(absMax: 0) == 1)
        #expect(float8RowScale(absMax: 896) == 2)
    }

    /// The CPU op (the reference every GPU case is measured against) reproduces torch's quantized operands exactly and
    /// its product within f32 accumulation error; splitting the input in two parts changes nothing; and the result is
    /// measurably not the f32 product (the quantization really happens).
    @Test func cpuLinearMatchesTorch() throws {
        let file = try Self.fixture("linear.safetensors"), cpu = CPUBackend()
        let x = try cpu.upload(file.tensor("x")), w = try cpu.upload(file.tensor("w")), b = try cpu.upload(file.tensor("b"))
        let q = try cpu.quantizeFP8(w)
        #expect(try cpu.floats(q.values) == file.tensor("q_w").floats())
        #expect(try cpu.floats(q.scales) == file.tensor("scale_w").floats())

        let expected = try file.tensor("y").floats()
        let y = try cpu.floats(try cpu.linear(x, weight: q, bias: b))
        let error = relativeError(y, expected)
        print("fp8 linear vs torch: max relative error \(error)")
        #expect(error < 1e-5)

        let k = x.dim(-1)
        let parts = [try cpu.slice(x, axis: 1, start: 0, count: 40), try cpu.slice(x, axis: 1, start: 40, count: k - 40)]
        #expect(try cpu.floats(try cpu.linear(concatenating: parts, weight: q, bias: b, activation: .identity)) == y)

        let dense = try cpu.floats(try cpu.linear(x, weight: w, bias: b))
        let quantizationError = relativeError(y, dense)
        print("fp8 linear vs f32 linear: max relative error \(quantizationError)")
        #expect(quantizationError > 1e-3 && quantizationError < 0.1)
    }

    func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.reduce(0) { max($0, abs($1)) }
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) } / max(scale, .leastNormalMagnitude)
    }
}

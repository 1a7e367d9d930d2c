import FluxCore
import Foundation

/// Table-driven conformance of a backend against `CPUBackend`: every `Backend` op on seeded random inputs of awkward
/// shapes (odd sizes, sizes that are not multiples of any tile, batch 2, odd head dims), compared by
/// `max |out − ref| / max |ref|`.
///
/// Inputs are rounded to bf16 values before either backend sees them, so both compute on identical numbers and the
/// error measures the op, not the upload. Thresholds, per op family (bf16 has 8 significant bits: one rounding of a
/// value is at most 2⁻⁹ ≈ 2.0e-3 of it, so at most that of max |ref|):
/// - copies (concat, slice, permute, embedding, upsample): bit-exact, threshold 1e-6;
/// - pointwise ops: one output rounding → 4e-3 (2 roundings' headroom);
/// - norms, matrix products, convolution: f32 accumulation in another order plus at most two roundings (an
///   activation run after the product re-rounds) → 1e-2;
/// - attention: as above with softmax and two products → 2e-2, the bf16 tolerance of the project;
/// - absSum (a scalar, summed in f64 by the CPU): 1e-4;
/// - the GELU-tanh tail case compares each element to its own reference value (threshold 5e-2) on inputs in
///   [−4.5, −3], where tanh-GELU and erf-GELU differ by 10–66 %: it proves which GELU a fused epilogue computes
///   (cuBLASLt's GELU epilogue measured 2.9e-2 from tanh-GELU there on an H100, our kernels 3e-3).
/// Rejection cases pass when both backends throw `TensorError.shapeMismatch` for the same bad operand.
///
/// Fused ops (`Backend`'s `MARK: Fused ops`) also have composition cases: the backend's implementation against the
/// composition of basic ops it stands for (`FusedOps`), called explicitly on the same backend, so an override is
/// checked against what it replaces with the backend's own rounding (on the CPU, which overrides nothing, both are
/// the same code: error 0). Thresholds (`compositionCases`): copies bit-exact; the GPU's fused passes round once
/// where the composition rounds each intermediate to bf16 → at most four roundings apart, 4 × 2⁻⁹ ≈ 7.8e-3 → 8e-3,
/// below the 1e-2 of a 1 % error; fp8 rows as in `fp8Cases`.
public enum BackendConformance {
    public struct Result: Sendable {
        /// The Backend method (`linear`, `attention`, ...).
        public let op: String
        /// Shapes and options of the case.
        public let detail: String
        /// max |out − ref| / max |ref| (or the case's own metric); infinity when the output had NaN or a wrong shape.
        public let error: Float
        public let threshold: Float
        public let passed: Bool
        /// Why it failed, when it did not fail by its numbers alone.
        public let note: String?

        public init(op: String, detail: String, error: Float, threshold: Float, passed: Bool, note: String?) {
            (self.op, self.detail, self.error, self.threshold, self.passed, self.note) =
                (op, detail, error, threshold, passed, note)
        }
    }

    /// Runs every case (or those whose op is in `only`) on `backend` and on `reference`.
    public static func run(on backend: any Backend, reference: any Backend = CPUBackend(), seed: UInt64 = 0x5EED,
                           only: Set<String>? = nil) -> [Result]
    {
        var results: [Result] = []
        for (index, c) in cases.enumerated() where only.map({ $0.contains(c.op) }) ?? true {
            var rng = ConformanceRandom(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
            let inputs = c.inputs(&rng)
            results.append(evaluate(c, inputs, backend, reference))
        }
        return results
    }

    /// The names of the ops the table covers (tests check it against the protocol).
    public static var coveredOps: Set<String> { Set(cases.map(\.op)) }

    /// The ops with a case against their composition (tests check it against the protocol's fused ops).
    public static var opsCheckedAgainstComposition: Set<String> {
        Set(cases.filter { $0.composition != nil }.map(\.op))
    }

    // MARK: Cases

    enum Output: Sendable {
        case tensor(Tensor)
        case scalar(Float)
    }

    enum Metric: Sendable {
        /// max |out − ref| / max |ref|
        case relativeToMax
        /// max over elements of |out − ref| / |ref|
        case perElement
        /// both backends must throw a shape error
        case rejects
    }

    struct Case: Sendable {
        let op: String
        let detail: String
        let threshold: Float
        var metric: Metric = .relativeToMax
        let inputs: @Sendable (inout ConformanceRandom) -> [HostTensor]
        let body: @Sendable (any Backend, [Tensor]) throws -> Output
        /// When set, the expected output is this (a fused op's composition, `FusedOps`) run on the backend under
        /// test, not `body` on the reference backend.
        var composition: (@Sendable (any Backend, [Tensor]) throws -> Output)? = nil
    }

    private static func evaluate(_ c: Case, _ inputs: [HostTensor], _ backend: any Backend,
                                 _ reference: any Backend) -> Result
    {
        func fail(_ note: String) -> Result {
            Result(op: c.op, detail: c.detail, error: .infinity, threshold: c.threshold, passed: false, note: note)
        }
        func outcome(_ b: any Backend, _ run: @Sendable (any Backend, [Tensor]) throws -> Output)
            -> Swift.Result<(shape: [Int], values: [Float]), Error>
        {
            Swift.Result(catching: {
                let tensors = try inputs.map { try b.upload($0) }
                switch try run(b, tensors) {
                case let .tensor(t): return (t.shape, try b.download(t).floats())
                case let .scalar(v): return ([], [v])
                }
            })
        }
        let got = outcome(backend, c.body)
        let expected = c.composition.map { outcome(backend, $0) } ?? outcome(reference, c.body)
        if case .rejects = c.metric {
            switch (got, expected) {
            case let (.failure(a as TensorError), .failure(b as TensorError)):
                if case .shapeMismatch(_, let oa, _, _) = a, case .shapeMismatch(_, let ob, _, _) = b, oa == ob {
                    return Result(op: c.op, detail: c.detail, error: 0, threshold: c.threshold, passed: true,
                                  note: nil)
                }
                return fail("errors differ: \(a) | reference: \(b)")
            case let (.failure(a), _): return fail("threw \(a); reference: \(expected)")
            default: return fail("accepted a bad operand")
            }
        }
        let out: (shape: [Int], values: [Float]), ref: (shape: [Int], values: [Float])
        switch expected {
        case let .success(v): ref = v
        case let .failure(e): return fail("\(c.composition == nil ? "reference" : "composition") threw: \(e)")
        }
        switch got {
        case let .success(v): out = v
        case let .failure(e): return fail("threw: \(e)")
        }
        guard out.shape == ref.shape, out.values.count == ref.values.count else {
            return fail("shape \(out.shape), expected \(ref.shape)")
        }
        var error: Float = 0
        switch c.metric {
        case .relativeToMax, .rejects:
            let scale = max(ref.values.reduce(0) { max($0, abs($1)) }, 1e-30)
            for (a, b) in zip(out.values, ref.values) {
                let e = abs(a - b) / scale
                if !(e <= error) { error = e.isNaN ? .infinity : max(error, e) }
            }
        case .perElement:
            for (a, b) in zip(out.values, ref.values) {
                let e = abs(a - b) / max(abs(b), 1e-30)
                if !(e <= error) { error = e.isNaN ? .infinity : max(error, e) }
            }
        }
        let nan = out.values.contains { $0.isNaN } && !ref.values.contains { $0.isNaN }
        if nan { error = .infinity }
        return Result(op: c.op, detail: c.detail, error: error, threshold: c.threshold,
                      passed: error <= c.threshold, note: nan ? "NaN in output (unwritten element?)" : nil)
    }

    private static let copy: Float = 1e-6, pointwise: Float = 4e-3, accumulated: Float = 1e-2, attention: Float = 2e-2
    /// A fused override against its composition on one backend (see the type's header).
    private static let fusedComposition: Float = 8e-3

    static let cases: [Case] = linearCases + fp8Cases + attentionCases + normCases + pointwiseCases + layoutCases
        + imageCases + fusedCases + compositionCases + rejectionCases + uploadCases

    private static let linearCases: [Case] = {
        var out: [Case] = []
        for activation in Activation.allCases {
            for withBias in [false, true] {
                out.append(Case(op: "linear", detail: "x[2,7,13] w[5,13]\(withBias ? " +bias" : "") \(activation)",
                                threshold: accumulated,
                                inputs: { r in [r.tensor([2, 7, 13]), r.tensor([5, 13]), r.tensor([5])] },
                                body: { b, t in .tensor(try b.linear(t[0], weight: t[1], bias: withBias ? t[2] : nil,
                                                                      activation: activation)) }))
            }
        }
        out.append(Case(op: "linear", detail: "x[3,5,24] w[16,24] +bias silu (8-wide bias pass)", threshold: accumulated,
                        inputs: { r in [r.tensor([3, 5, 24]), r.tensor([16, 24], scale: 0.3), r.tensor([16])] },
                        body: { b, t in .tensor(try b.linear(t[0], weight: t[1], bias: t[2], activation: .silu)) }))
        out.append(Case(op: "linear", detail: "x[2,65,257] w[130,257] +bias silu", threshold: accumulated,
                        inputs: { r in [r.tensor([2, 65, 257]), r.tensor([130, 257], scale: 0.1), r.tensor([130])] },
                        body: { b, t in .tensor(try b.linear(t[0], weight: t[1], bias: t[2], activation: .silu)) }))
        out.append(Case(op: "linear", detail: "x[1,300,320] w[640,320] +bias geluTanh", threshold: accumulated,
                        inputs: { r in [r.tensor([1, 300, 320]), r.tensor([640, 320], scale: 0.1), r.tensor([640])] },
                        body: { b, t in .tensor(try b.linear(t[0], weight: t[1], bias: t[2], activation: .geluTanh)) }))
        out.append(Case(op: "linear", detail: "x[3,129,1000] w[96,1000]", threshold: accumulated,
                        inputs: { r in [r.tensor([3, 129, 1000]), r.tensor([96, 1000], scale: 0.05)] },
                        body: { b, t in .tensor(try b.linear(t[0], weight: t[1], bias: nil)) }))
        // GELU tail: x·1 + 0 with x in [−4.5, −3], per element: tanh-GELU, not erf-GELU (they differ by 10–66 % here;
        // cuBLASLt's fused GELU epilogue is within 3 % of tanh-GELU this far out, where outputs are below 1e-3).
        out.append(Case(op: "linear", detail: "geluTanh tail x[64,1] w[1,1] +bias, per element", threshold: 5e-2,
                        metric: .perElement,
                        inputs: { r in
                            [HostTensor((0..<64).map { Float(-3 - 1.5 * Double($0) / 63) }.map(roundedToBF16),
                                        shape: [64, 1]),
                             HostTensor([1], shape: [1, 1]), HostTensor([0], shape: [1])]
                        },
                        body: { b, t in .tensor(try b.linear(t[0], weight: t[1], bias: t[2], activation: .geluTanh)) }))
        return out
    }()

    private static let attentionCases: [Case] = [
        Case(op: "attention", detail: "q[2,33,3,16] kv[2,47,3,16]", threshold: attention,
             inputs: { r in [r.tensor([2, 33, 3, 16]), r.tensor([2, 47, 3, 16]), r.tensor([2, 47, 3, 16])] },
             body: { b, t in .tensor(try b.attention(q: t[0], k: t[1], v: t[2], scale: 0.25)) }),
        Case(op: "attention", detail: "q[2,19,2,64] kv[2,23,2,64] +bias[2,19,23]", threshold: attention,
             inputs: { r in [r.tensor([2, 19, 2, 64]), r.tensor([2, 23, 2, 64]), r.tensor([2, 23, 2, 64]),
                             r.tensor([2, 19, 23], scale: 3)] },
             body: { b, t in .tensor(try b.attention(q: t[0], k: t[1], v: t[2], scale: 0.125, bias: t[3],
                                                     causal: false)) }),
        Case(op: "attention", detail: "q/kv[2,40,2,64] causal", threshold: attention,
             inputs: { r in [r.tensor([2, 40, 2, 64]), r.tensor([2, 40, 2, 64]), r.tensor([2, 40, 2, 64])] },
             body: { b, t in .tensor(try b.attention(q: t[0], k: t[1], v: t[2], scale: 0.125, bias: nil,
                                                     causal: true)) }),
        Case(op: "attention", detail: "q/kv[1,77,3,64] causal +bias", threshold: attention,
             inputs: { r in [r.tensor([1, 77, 3, 64]), r.tensor([1, 77, 3, 64]), r.tensor([1, 77, 3, 64]),
                             r.tensor([3, 77, 77])] },
             body: { b, t in .tensor(try b.attention(q: t[0], k: t[1], v: t[2], scale: 0.125, bias: t[3],
                                                     causal: true)) }),
        Case(op: "attention", detail: "q/kv[1,130,4,64] +bias[4,130,130] scale 1 (T5 shape)", threshold: attention,
             inputs: { r in [r.tensor([1, 130, 4, 64], scale: 0.5), r.tensor([1, 130, 4, 64], scale: 0.5),
                             r.tensor([1, 130, 4, 64]), r.tensor([4, 130, 130], scale: 4)] },
             body: { b, t in .tensor(try b.attention(q: t[0], k: t[1], v: t[2], scale: 1, bias: t[3], causal: false)) }),
        Case(op: "attention", detail: "q/kv[1,150,2,128] (FLUX head dim)", threshold: attention,
             inputs: { r in [r.tensor([1, 150, 2, 128], scale: 2), r.tensor([1, 150, 2, 128], scale: 2),
                             r.tensor([1, 150, 2, 128])] },
             body: { b, t in .tensor(try b.attention(q: t[0], k: t[1], v: t[2], scale: 1 / Float(128).squareRoot()))
             }),
        Case(op: "attention", detail: "q[2,200,4,128] kv[2,333,4,128] (cross lengths)", threshold: attention,
             inputs: { r in [r.tensor([2, 200, 4, 128], scale: 2), r.tensor([2, 333, 4, 128], scale: 2),
                             r.tensor([2, 333, 4, 128])] },
             body: { b, t in .tensor(try b.attention(q: t[0], k: t[1], v: t[2], scale: 1 / Float(128).squareRoot()))
             }),
        Case(op: "attention", detail: "q/kv[1,77,12,64] (CLIP size, no mask)", threshold: attention,
             inputs: { r in [r.tensor([1, 77, 12, 64]), r.tensor([1, 77, 12, 64]), r.tensor([1, 77, 12, 64])] },
             body: { b, t in .tensor(try b.attention(q: t[0], k: t[1], v: t[2], scale: 0.125)) }),
        Case(op: "attention", detail: "q/kv[2,35,1,512] (VAE mid-block: one head of 512)", threshold: attention,
             inputs: { r in [r.tensor([2, 35, 1, 512]), r.tensor([2, 35, 1, 512]), r.tensor([2, 35, 1, 512])] },
             body: { b, t in .tensor(try b.attention(q: t[0], k: t[1], v: t[2], scale: 1 / Float(512).squareRoot()))
             }),
        Case(op: "attention", detail: "q[1,9,2,5] kv[1,31,2,5] (odd head dim)", threshold: attention,
             inputs: { r in [r.tensor([1, 9, 2, 5]), r.tensor([1, 31, 2, 5]), r.tensor([1, 31, 2, 5])] },
             body: { b, t in .tensor(try b.attention(q: t[0], k: t[1], v: t[2], scale: 0.45)) }),
        Case(op: "attention", detail: "q/kv[1,20,1,256]", threshold: attention,
             inputs: { r in [r.tensor([1, 20, 1, 256]), r.tensor([1, 20, 1, 256]), r.tensor([1, 20, 1, 256])] },
             body: { b, t in .tensor(try b.attention(q: t[0], k: t[1], v: t[2], scale: 1 / 16)) }),
    ]

    private static let normCases: [Case] = [
        Case(op: "layerNorm", detail: "x[3,5,37] no affine", threshold: accumulated,
             inputs: { r in [r.tensor([3, 5, 37], scale: 3, offset: 1)] },
             body: { b, t in .tensor(try b.layerNorm(t[0], weight: nil, bias: nil, eps: 1e-6)) }),
        Case(op: "layerNorm", detail: "x[2,3,1031] weight+bias", threshold: accumulated,
             inputs: { r in [r.tensor([2, 3, 1031], scale: 2, offset: -0.5), r.tensor([1031]), r.tensor([1031])] },
             body: { b, t in .tensor(try b.layerNorm(t[0], weight: t[1], bias: t[2], eps: 1e-5)) }),
        Case(op: "rmsNorm", detail: "x[2,3,4,10] weight", threshold: accumulated,
             inputs: { r in [r.tensor([2, 3, 4, 10], scale: 2), r.tensor([10], offset: 1)] },
             body: { b, t in .tensor(try b.rmsNorm(t[0], weight: t[1], eps: 1e-6)) }),
        Case(op: "rmsNorm", detail: "x[2,9,3,128] no weight", threshold: accumulated,
             inputs: { r in [r.tensor([2, 9, 3, 128])] },
             body: { b, t in .tensor(try b.rmsNorm(t[0], weight: nil, eps: 1e-6)) }),
        // Rows of 512…4096 with D % 8 == 0 take the GPU's block-per-row kernel.
        Case(op: "layerNorm", detail: "x[3,1024] weight+bias (wide rows)", threshold: accumulated,
             inputs: { r in [r.tensor([3, 1024], scale: 2, offset: 0.7), r.tensor([1024]), r.tensor([1024])] },
             body: { b, t in .tensor(try b.layerNorm(t[0], weight: t[1], bias: t[2], eps: 1e-6)) }),
        Case(op: "rmsNorm", detail: "x[2,4096] weight (T5 width)", threshold: accumulated,
             inputs: { r in [r.tensor([2, 4096], scale: 3), r.tensor([4096], offset: 1)] },
             body: { b, t in .tensor(try b.rmsNorm(t[0], weight: t[1], eps: 1e-6)) }),
        Case(op: "modulatedLayerNorm", detail: "x[2,5,776] shift/scale[2,776] (wide rows)", threshold: accumulated,
             inputs: { r in [r.tensor([2, 5, 776], scale: 2, offset: 0.3), r.tensor([2, 776]), r.tensor([2, 776])] },
             body: { b, t in .tensor(try b.modulatedLayerNorm(t[0], shift: t[1], scale: t[2], eps: 1e-6)) }),
        Case(op: "modulatedLayerNorm", detail: "x[2,7,45] shift/scale[2,45]", threshold: accumulated,
             inputs: { r in [r.tensor([2, 7, 45], scale: 2, offset: 0.3), r.tensor([2, 45]), r.tensor([2, 45])] },
             body: { b, t in .tensor(try b.modulatedLayerNorm(t[0], shift: t[1], scale: t[2], eps: 1e-6)) }),
        Case(op: "groupNorm", detail: "x[2,8,5,7] groups 4 silu", threshold: accumulated,
             inputs: { r in [r.tensor([2, 8, 5, 7], scale: 2, offset: 0.5), r.tensor([8], offset: 1), r.tensor([8])] },
             body: { b, t in .tensor(try b.groupNorm(t[0], groups: 4, weight: t[1], bias: t[2], eps: 1e-6,
                                                     activation: .silu)) }),
        Case(op: "groupNorm", detail: "x[1,6,33] groups 3 identity", threshold: accumulated,
             inputs: { r in [r.tensor([1, 6, 33], scale: 4, offset: 3), r.tensor([6]), r.tensor([6])] },
             body: { b, t in .tensor(try b.groupNorm(t[0], groups: 3, weight: t[1], bias: t[2], eps: 1e-6,
                                                     activation: .identity)) }),
    ]

    private static let pointwiseCases: [Case] = {
        var out: [Case] = Activation.allCases.map { kind in
            Case(op: "activation", detail: "x[3,333] \(kind)", threshold: pointwise,
                 inputs: { r in [r.tensor([3, 333], scale: 4)] },
                 body: { b, t in .tensor(try b.activation(t[0], kind)) })
        }
        out += [
            Case(op: "add", detail: "[2,3,1001]", threshold: pointwise,
                 inputs: { r in [r.tensor([2, 3, 1001]), r.tensor([2, 3, 1001])] },
                 body: { b, t in .tensor(try b.add(t[0], t[1])) }),
            Case(op: "multiply", detail: "[2,3,1001]", threshold: pointwise,
                 inputs: { r in [r.tensor([2, 3, 1001]), r.tensor([2, 3, 1001])] },
                 body: { b, t in .tensor(try b.multiply(t[0], t[1])) }),
            Case(op: "gatedAdd", detail: "res/x[2,9,37] gate[2,37]", threshold: pointwise,
                 inputs: { r in [r.tensor([2, 9, 37]), r.tensor([2, 9, 37]), r.tensor([2, 37])] },
                 body: { b, t in .tensor(try b.gatedAdd(t[0], t[1], gate: t[2])) }),
            Case(op: "gatedAdd", detail: "res/x[2,5,48] gate[2,48] (8-wide)", threshold: pointwise,
                 inputs: { r in [r.tensor([2, 5, 48]), r.tensor([2, 5, 48]), r.tensor([2, 48])] },
                 body: { b, t in .tensor(try b.gatedAdd(t[0], t[1], gate: t[2])) }),
            Case(op: "scaleShift", detail: "[3,101] ·0.3611 −0.1159", threshold: pointwise,
                 inputs: { r in [r.tensor([3, 101], scale: 3)] },
                 body: { b, t in .tensor(try b.scaleShift(t[0], scale: 0.3611, shift: -0.1159)) }),
            Case(op: "addScaled", detail: "[2,77] scale −0.0357", threshold: pointwise,
                 inputs: { r in [r.tensor([2, 77]), r.tensor([2, 77], scale: 5)] },
                 body: { b, t in .tensor(try b.addScaled(t[0], t[1], scale: -0.0357)) }),
            Case(op: "absSum", detail: "[3,1001]", threshold: 1e-4,
                 inputs: { r in [r.tensor([3, 1001], offset: 0.2)] },
                 body: { b, t in .scalar(try b.absSum(t[0])) }),
        ]
        return out
    }()

    private static let layoutCases: [Case] = [
        Case(op: "concat", detail: "axis 1 of [2,3,5] [2,4,5] [2,1,5]", threshold: copy,
             inputs: { r in [r.tensor([2, 3, 5]), r.tensor([2, 4, 5]), r.tensor([2, 1, 5])] },
             body: { b, t in .tensor(try b.concat(t, axis: 1)) }),
        Case(op: "concat", detail: "axis 1 of [2,3,16] [2,5,16] (8-wide)", threshold: copy,
             inputs: { r in [r.tensor([2, 3, 16]), r.tensor([2, 5, 16])] },
             body: { b, t in .tensor(try b.concat(t, axis: 1)) }),
        Case(op: "concat", detail: "axis -1 of [3,7] [3,2]", threshold: copy,
             inputs: { r in [r.tensor([3, 7]), r.tensor([3, 2])] },
             body: { b, t in .tensor(try b.concat(t, axis: -1)) }),
        Case(op: "concat", detail: "axis 0 of [1,3,5] [2,3,5]", threshold: copy,
             inputs: { r in [r.tensor([1, 3, 5]), r.tensor([2, 3, 5])] },
             body: { b, t in .tensor(try b.concat(t, axis: 0)) }),
        Case(op: "slice", detail: "[2,9,7] axis 1 3..<8", threshold: copy,
             inputs: { r in [r.tensor([2, 9, 7])] },
             body: { b, t in .tensor(try b.slice(t[0], axis: 1, start: 3, count: 5)) }),
        Case(op: "slice", detail: "[2,9,7] axis 2 1..<7", threshold: copy,
             inputs: { r in [r.tensor([2, 9, 7])] },
             body: { b, t in .tensor(try b.slice(t[0], axis: 2, start: 1, count: 6)) }),
        Case(op: "slice", detail: "[3,4,5] axis 0 2..<3", threshold: copy,
             inputs: { r in [r.tensor([3, 4, 5])] },
             body: { b, t in .tensor(try b.slice(t[0], axis: 0, start: 2, count: 1)) }),
        Case(op: "permute", detail: "[2,3,4,5] order [0,2,1,3]", threshold: copy,
             inputs: { r in [r.tensor([2, 3, 4, 5])] },
             body: { b, t in .tensor(try b.permute(t[0], [0, 2, 1, 3])) }),
        Case(op: "permute", detail: "[2,3,4,5] order [3,1,0,2]", threshold: copy,
             inputs: { r in [r.tensor([2, 3, 4, 5])] },
             body: { b, t in .tensor(try b.permute(t[0], [3, 1, 0, 2])) }),
        Case(op: "permute", detail: "[5,7] order [1,0]", threshold: copy,
             inputs: { r in [r.tensor([5, 7])] },
             body: { b, t in .tensor(try b.permute(t[0], [1, 0])) }),
        Case(op: "embedding", detail: "table[11,6] ids[2,5]", threshold: copy,
             inputs: { r in [r.tensor([11, 6])] },
             body: { b, t in .tensor(try b.embedding(t[0], ids: [3, 0, 10, 7, 7, 1, 2, 9, 4, 10], shape: [2, 5])) }),
        Case(op: "upsampleNearest", detail: "[2,3,4,5] ×2", threshold: copy,
             inputs: { r in [r.tensor([2, 3, 4, 5])] },
             body: { b, t in .tensor(try b.upsampleNearest(t[0], factor: 2)) }),
        Case(op: "upsampleNearest", detail: "[1,2,3,3] ×3", threshold: copy,
             inputs: { r in [r.tensor([1, 2, 3, 3])] },
             body: { b, t in .tensor(try b.upsampleNearest(t[0], factor: 3)) }),
        // Shapes that reach the GPU's vectorised group-norm and ×2 upsample kernels.
        Case(op: "groupNorm", detail: "x[2,16,8,12] groups 4 silu (vectorised)", threshold: accumulated,
             inputs: { r in [r.tensor([2, 16, 8, 12], scale: 2, offset: 0.5), r.tensor([16], offset: 1), r.tensor([16])] },
             body: { b, t in .tensor(try b.groupNorm(t[0], groups: 4, weight: t[1], bias: t[2], eps: 1e-6,
                                                     activation: .silu)) }),
        Case(op: "upsampleNearest", detail: "[2,3,4,8] ×2 (vectorised)", threshold: copy,
             inputs: { r in [r.tensor([2, 3, 4, 8])] },
             body: { b, t in .tensor(try b.upsampleNearest(t[0], factor: 2)) }),
    ]

    private static let imageCases: [Case] = [
        Case(op: "conv2d", detail: "x[2,3,9,11] w[5,3,3,3] +bias stride 1 pad 1", threshold: accumulated,
             inputs: { r in [r.tensor([2, 3, 9, 11]), r.tensor([5, 3, 3, 3]), r.tensor([5])] },
             body: { b, t in .tensor(try b.conv2d(t[0], weight: t[1], bias: t[2], stride: 1, padding: .all(1))) }),
        Case(op: "conv2d", detail: "x[1,4,10,7] w[6,4,3,3] +bias stride 2 pad (0,1,0,1)", threshold: accumulated,
             inputs: { r in [r.tensor([1, 4, 10, 7]), r.tensor([6, 4, 3, 3]), r.tensor([6])] },
             body: { b, t in .tensor(try b.conv2d(t[0], weight: t[1], bias: t[2], stride: 2,
                                                  padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1))) }),
        Case(op: "conv2d", detail: "x[2,6,5,7] w[4,6,1,1] 1×1", threshold: accumulated,
             inputs: { r in [r.tensor([2, 6, 5, 7]), r.tensor([4, 6, 1, 1])] },
             body: { b, t in .tensor(try b.conv2d(t[0], weight: t[1], bias: nil, stride: 1, padding: .all(0))) }),
        Case(op: "conv2d", detail: "x[1,64,16,16] w[32,64,3,3] +bias pad 1", threshold: accumulated,
             inputs: { r in [r.tensor([1, 64, 16, 16]), r.tensor([32, 64, 3, 3], scale: 0.1), r.tensor([32])] },
             body: { b, t in .tensor(try b.conv2d(t[0], weight: t[1], bias: t[2], stride: 1, padding: .all(1))) }),
        // ≥ 1 GFLOP: the GPU times its plans and takes the channels-last path; 3 output channels: the VAE's conv_out.
        Case(op: "conv2d", detail: "x[1,128,96,96] w[128,128,3,3] +bias pad 1 (timed plans)", threshold: accumulated,
             inputs: { r in [r.tensor([1, 128, 96, 96]), r.tensor([128, 128, 3, 3], scale: 0.05), r.tensor([128])] },
             body: { b, t in .tensor(try b.conv2d(t[0], weight: t[1], bias: t[2], stride: 1, padding: .all(1))) }),
        Case(op: "conv2d", detail: "x[2,16,13,10] w[3,16,3,3] +bias pad 1 (3 outputs)", threshold: accumulated,
             inputs: { r in [r.tensor([2, 16, 13, 10]), r.tensor([3, 16, 3, 3], scale: 0.3), r.tensor([3])] },
             body: { b, t in .tensor(try b.conv2d(t[0], weight: t[1], bias: t[2], stride: 1, padding: .all(1))) }),
    ]

    /// Streams of (B, Sᵢ, 3·H·D) projections with scales near 1, and a cos/sin table over the joint length; against
    /// the reference backend, or against the composition on the same backend.
    private static func attentionInputsCase(_ detail: String, batch: Int, lengths: [Int], heads: Int, dim: Int,
                                            againstComposition: Bool = false) -> Case
    {
        @Sendable func run(_ b: any Backend, _ t: [Tensor], composed: Bool) throws -> Output {
            let streams = lengths.indices.map { QKVProjection(qkv: t[3 * $0], queryScale: t[3 * $0 + 1],
                                                              keyScale: t[3 * $0 + 2]) }
            let (cos, sin) = (t[t.count - 2], t[t.count - 1])
            let out = composed
                ? try FusedOps.attentionInputs(on: b, streams, heads: heads, eps: 1e-6, cos: cos, sin: sin)
                : try b.attentionInputs(streams, heads: heads, eps: 1e-6, cos: cos, sin: sin)
            return .tensor(try b.concat([out.q, out.k, out.v], axis: 0))
        }
        var c = Case(op: "attentionInputs", detail: detail + (againstComposition ? " vs composition" : ""),
                     threshold: againstComposition ? fusedComposition : accumulated,
                     inputs: { r in
                         lengths.flatMap { [r.tensor([batch, $0, 3 * heads * dim], scale: 2),
                                            r.tensor([dim], offset: 1), r.tensor([dim], offset: 1)] }
                             + [r.tensor([lengths.reduce(0, +), dim / 2]), r.tensor([lengths.reduce(0, +), dim / 2])]
                     },
                     body: { b, t in try run(b, t, composed: false) })
        if againstComposition { c.composition = { b, t in try run(b, t, composed: true) } }
        return c
    }

    /// `linear(concatenating:)` with a bias: against the reference backend, or against the composition.
    private static func concatenatedLinearCase(_ detail: String, parts: [[Int]], n: Int, activation: Activation,
                                               againstComposition: Bool = false) -> Case
    {
        let k = parts.reduce(0) { $0 + ($1.last ?? 0) }
        @Sendable func run(_ b: any Backend, _ t: [Tensor], composed: Bool) throws -> Output {
            let (parts, weight, bias) = (Array(t.dropLast(2)), t[t.count - 2], t[t.count - 1])
            return .tensor(composed
                ? try FusedOps.linear(on: b, concatenating: parts, weight: weight, bias: bias, activation: activation)
                : try b.linear(concatenating: parts, weight: weight, bias: bias, activation: activation))
        }
        var c = Case(op: "linear", detail: detail + (againstComposition ? " vs composition" : ""),
                     threshold: againstComposition ? fusedComposition : accumulated,
                     inputs: { r in parts.map { r.tensor($0) } + [r.tensor([n, k], scale: 0.3), r.tensor([n])] },
                     body: { b, t in try run(b, t, composed: false) })
        if againstComposition { c.composition = { b, t in try run(b, t, composed: true) } }
        return c
    }

    /// The fused ops against their plain compositions on the reference.
    private static let fusedCases: [Case] = {
        return [
            // Not a Backend op: the optional `RandomFill` both backends offer. The same streams, up to a rare tie of
            // the bf16 rounding (f64 libm differs by an ulp), hence the pointwise limit.
            Case(op: "randomNormal", detail: "[3,1001] chunks of 64, mean 1 std 0.1", threshold: pointwise,
                 inputs: { _ in [] },
                 body: { b, _ in
                     guard let fill = b as? any RandomFill else { throw TensorError.backend("no RandomFill") }
                     return .tensor(try fill.randomNormal(shape: [3, 1001], seed: 0xF1A5, chunkLength: 64, mean: 1,
                                                          std: 0.1))
                 }),
            attentionInputsCase("streams [2,3,90] [2,5,90], 3 heads × 10 (pairs)", batch: 2, lengths: [3, 5], heads: 3,
                                dim: 10),
            attentionInputsCase("stream [1,7,768], 2 heads × 128 (FLUX head dim)", batch: 1, lengths: [7], heads: 2,
                                dim: 128),
            attentionInputsCase("streams [1,4,144] [1,9,144], 3 heads × 16", batch: 1, lengths: [4, 9], heads: 3,
                                dim: 16),
            attentionInputsCase("streams [2,5,1536] [2,33,1536], 4 heads × 128 (rows in fours)", batch: 2,
                                lengths: [5, 33], heads: 4, dim: 128),
            attentionInputsCase("streams [2,1,288] [2,6,288], 1 head × 96", batch: 2, lengths: [1, 6], heads: 1,
                                dim: 96),
            concatenatedLinearCase("concatenating [2,5,128] [2,5,256] w[9,384] +bias", parts: [[2, 5, 128], [2, 5, 256]],
                                   n: 9, activation: .identity),
            concatenatedLinearCase("concatenating [2,7,13] [2,7,6] [2,7,3] w[5,22] +bias",
                                   parts: [[2, 7, 13], [2, 7, 6], [2, 7, 3]], n: 5, activation: .identity),
            concatenatedLinearCase("concatenating [3,64] [3,200] w[33,264] +bias silu", parts: [[3, 64], [3, 200]],
                                   n: 33, activation: .silu),
        ]
    }()

    private static let rejectionCases: [Case] = [
        Case(op: "linear", detail: "rejects x[3,4] with w[2,5]", threshold: 0, metric: .rejects,
             inputs: { r in [r.tensor([3, 4]), r.tensor([2, 5])] },
             body: { b, t in .tensor(try b.linear(t[0], weight: t[1], bias: nil)) }),
        Case(op: "attention", detail: "rejects v[1,5,2,8] for k[1,4,2,8]", threshold: 0, metric: .rejects,
             inputs: { r in [r.tensor([1, 3, 2, 8]), r.tensor([1, 4, 2, 8]), r.tensor([1, 5, 2, 8])] },
             body: { b, t in .tensor(try b.attention(q: t[0], k: t[1], v: t[2], scale: 1)) }),
        Case(op: "gatedAdd", detail: "rejects gate[2,4] for x[2,3,5]", threshold: 0, metric: .rejects,
             inputs: { r in [r.tensor([2, 3, 5]), r.tensor([2, 3, 5]), r.tensor([2, 4])] },
             body: { b, t in .tensor(try b.gatedAdd(t[0], t[1], gate: t[2])) }),
        Case(op: "attentionInputs", detail: "rejects keyScale[8] for head dim 4", threshold: 0, metric: .rejects,
             inputs: { r in [r.tensor([1, 3, 24]), r.tensor([4]), r.tensor([4]), r.tensor([1, 2, 24]), r.tensor([4]),
                             r.tensor([8]), r.tensor([5, 2]), r.tensor([5, 2])] },
             body: { b, t in
                 let out = try b.attentionInputs([QKVProjection(qkv: t[0], queryScale: t[1], keyScale: t[2]),
                                                  QKVProjection(qkv: t[3], queryScale: t[4], keyScale: t[5])],
                                                 heads: 2, eps: 1e-6, cos: t[6], sin: t[7])
                 return .tensor(out.q)
             }),
        Case(op: "linear", detail: "rejects concatenating [2,3,4] with [3,3,4]", threshold: 0, metric: .rejects,
             inputs: { r in [r.tensor([2, 3, 4]), r.tensor([3, 3, 4]), r.tensor([5, 8])] },
             body: { b, t in .tensor(try b.linear(concatenating: [t[0], t[1]], weight: t[2], bias: nil,
                                                  activation: .identity)) }),
        Case(op: "conv2d", detail: "rejects w[4,2,3,3] for x[1,3,5,5]", threshold: 0, metric: .rejects,
             inputs: { r in [r.tensor([1, 3, 5, 5]), r.tensor([4, 2, 3, 3])] },
             body: { b, t in .tensor(try b.conv2d(t[0], weight: t[1], bias: nil, stride: 1, padding: .all(1))) }),
    ]
}

extension BackendConformance {
    /// `upload` then `download`, element by element against the CPU (which keeps f32 exactly): bf16 must come back
    /// bit for bit, f32 rounded to nearest (at most 2⁻⁸ of each value; truncating would reach 2⁻⁷). Sizes from one
    /// element to 150 MB, more than one of the GPU's 64 MiB staging buffers.
    fileprivate static let uploadCases: [Case] = {
        let roundTrips: [(DType, [Int], String)] = [
            (.bf16, [1], "1"), (.bf16, [8, 125], "1000"), (.bf16, [1021, 1541], "3 MB"),
            (.bf16, [7, 10_714_287], "150 MB"),
            (.f32, [1], "1"), (.f32, [8, 125], "1000"), (.f32, [769, 1023], "3 MB"), (.f32, [3, 12_500_003], "150 MB"),
        ]
        return roundTrips.map { dtype, shape, size in
            Case(op: "upload", detail: "\(dtype.safetensorsName) \(shape) (\(size)), round trip",
                 threshold: dtype == .bf16 ? 0 : 1.0 / 256, metric: .perElement,
                 inputs: { r in [r.rawTensor(shape, dtype: dtype)] },
                 body: { _, t in .tensor(t[0]) })
        }
    }()
}

/// The value nearest `x` that bf16 can hold.
func roundedToBF16(_ x: Float) -> Float { bfloat16ToFloat(floatToBfloat16(x)) }

/// SplitMix64: seeded, platform-independent random numbers for conformance inputs.
struct ConformanceRandom {
    private var stream: SplitMix64

    init(seed: UInt64) { stream = SplitMix64(seed: seed) }

    mutating func next() -> UInt64 { stream.next() }

    /// Uniform in [−1, 1).
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }

    /// A host tensor of random finite bf16 or f32 values: random sign and mantissa bits, exponents within 2^±30
    /// (bf16 also zeros and subnormals), not rounded to anything.
    mutating func rawTensor(_ shape: [Int], dtype: DType) -> HostTensor {
        precondition(dtype == .bf16 || dtype == .f32, "rawTensor: \(dtype)")
        let n = shape.reduce(1, *), block = HostBuffer(byteCount: n * dtype.byteSize)
        for i in 0..<n {
            let bits = next()
            if dtype == .bf16 {
                // An all-ones exponent (inf, NaN) loses its top bit.
                let raw = UInt16(truncatingIfNeeded: bits)
                let value = raw & 0x7F80 == 0x7F80 ? raw & ~0x4000 : raw
                block.pointer.storeBytes(of: value, toByteOffset: 2 * i, as: UInt16.self)
            } else {
                let exponent = UInt32(97 + (bits >> 32) % 61)  // 2^-30 ... 2^30
                let value = UInt32(truncatingIfNeeded: bits) & 0x807F_FFFF | exponent << 23
                block.pointer.storeBytes(of: value, toByteOffset: 4 * i, as: UInt32.self)
            }
        }
        return HostTensor(shape: shape, dtype: dtype,
                          bytes: UnsafeRawBufferPointer(start: block.pointer, count: block.byteCount), owner: block)
    }

    /// A host tensor of `offset + scale · uniform` values, rounded to bf16.
    mutating func tensor(_ shape: [Int], scale: Float = 1, offset: Float = 0) -> HostTensor {
        let n = shape.reduce(1, *)
        return HostTensor((0..<n).map { _ in roundedToBF16(offset + scale * uniform()) }, shape: shape)
    }
}

extension BackendConformance {
    /// `quantizeRows(concatenating:)` (or, with one part and `single`, the basic `quantizeRows`): the e4m3 values or
    /// the scales; against the reference backend, or against the composition.
    fileprivate static func rowsCase(_ detail: String, parts: [[Int]], scales: Bool, single: Bool = false,
                                     againstComposition: Bool = false) -> Case
    {
        @Sendable func run(_ b: any Backend, _ t: [Tensor], composed: Bool) throws -> Output {
            let q = single ? try b.quantizeRows(t[0])
                : composed ? try FusedOps.quantizeRows(on: b, concatenating: t) : try b.quantizeRows(concatenating: t)
            return .tensor(scales ? q.scales : q.values)
        }
        var c = Case(op: "quantizeRows", detail: detail + (againstComposition ? " vs composition" : ""),
                     threshold: copy,
                     inputs: { r in parts.map { r.tensor($0) } },
                     body: { b, t in try run(b, t, composed: false) })
        if againstComposition { c.composition = { b, t in try run(b, t, composed: true) } }
        return c
    }

    /// The GPU quantizes normalised values that differ from the CPU's in the last bits (f32 sums in another
    /// order in the fused pass; rounded to bf16 first in the narrow-row path and in the composition), so a value
    /// next to an e4m3 rounding boundary may land one step (1/16 of it) away. Rows are compared through a product,
    /// whose limit allows a few such steps over short rows (K = 48: measured 3.5e-2 on an H100; a missing shift or
    /// scale is off by O(1)); the scales at the pointwise limit (they also catch a 1 % error of the rows).
    fileprivate static func normCase(_ detail: String, x: [Int], n: Int, scales: Bool,
                                     againstComposition: Bool = false) -> Case
    {
        let (batch, dim) = (x[0], x[x.count - 1])
        @Sendable func run(_ b: any Backend, _ t: [Tensor], composed: Bool) throws -> Output {
            let q = composed ? try FusedOps.modulatedLayerNormFP8(on: b, t[0], shift: t[1], scale: t[2], eps: 1e-6)
                : try b.modulatedLayerNormFP8(t[0], shift: t[1], scale: t[2], eps: 1e-6)
            if scales { return .tensor(q.scales) }
            return .tensor(try b.linear(q, weight: try b.quantizeFP8(t[3]), bias: nil, activation: .identity))
        }
        var c = Case(op: "modulatedLayerNormFP8", detail: detail + (againstComposition ? " vs composition" : ""),
                     threshold: scales ? pointwise : 5e-2,
                     inputs: { r in
                         [r.tensor(x), r.tensor([batch, dim]), r.tensor([batch, dim], scale: 0.5),
                          r.tensor([n, dim], scale: 0.3)]
                     },
                     body: { b, t in try run(b, t, composed: false) })
        if againstComposition { c.composition = { b, t in try run(b, t, composed: true) } }
        return c
    }

    /// Every fused op against its composition on the same backend, on the shapes where the GPU runs its fused path
    /// (and one where it falls back to the composition itself, which must then agree exactly).
    fileprivate static let compositionCases: [Case] = [
        concatenatedLinearCase("concatenating [2,5,128] [2,5,256] w[9,384] +bias", parts: [[2, 5, 128], [2, 5, 256]],
                               n: 9, activation: .identity, againstComposition: true),
        concatenatedLinearCase("concatenating [2,33,64] [2,33,40] [2,33,24] w[48,128] +bias",
                               parts: [[2, 33, 64], [2, 33, 40], [2, 33, 24]], n: 48, activation: .identity,
                               againstComposition: true),
        concatenatedLinearCase("concatenating [3,64] [3,200] w[33,264] +bias silu (composition on the GPU too)",
                               parts: [[3, 64], [3, 200]], n: 33, activation: .silu, againstComposition: true),
        rowsCase("values of [2,7,48] [2,7,16]", parts: [[2, 7, 48], [2, 7, 16]], scales: false,
                 againstComposition: true),
        rowsCase("scales of [2,7,48] [2,7,16]", parts: [[2, 7, 48], [2, 7, 16]], scales: true,
                 againstComposition: true),
        rowsCase("values of [3,5,13] [3,5,6] [3,5,7] (three parts)", parts: [[3, 5, 13], [3, 5, 6], [3, 5, 7]],
                 scales: false, againstComposition: true),
        normCase("x[2,37,768] then w[64,768] (one fused pass)", x: [2, 37, 768], n: 64, scales: false,
                 againstComposition: true),
        normCase("scales of x[2,37,768] (one fused pass)", x: [2, 37, 768], n: 64, scales: true,
                 againstComposition: true),
        attentionInputsCase("streams [2,3,90] [2,5,90], 3 heads × 10 (pairs)", batch: 2, lengths: [3, 5], heads: 3,
                            dim: 10, againstComposition: true),
        attentionInputsCase("streams [2,5,1536] [2,33,1536], 4 heads × 128 (rows in fours)", batch: 2,
                            lengths: [5, 33], heads: 4, dim: 128, againstComposition: true),
        attentionInputsCase("streams [2,1,288] [2,6,288], 1 head × 96", batch: 2, lengths: [1, 6], heads: 1, dim: 96,
                            againstComposition: true),
    ]

    /// fp8 (Quantization.swift): both backends quantize the same bf16 numbers with the same IEEE division and
    /// rounding, so the e4m3 values and scales must agree exactly; products then differ only by accumulation order
    /// (the GPU's fp8 tensor cores) and the output rounding → the matrix-product limit. Shapes: FLUX-like multiples of
    /// 16 (cuBLASLt fp8), fused GELU and the f32-output path (silu), two parts read in place, three parts, and
    /// 13-wide rows that cuBLASLt cannot take in fp8 (the dequantized fallback); input rows quantized alone and in the
    /// modulated LayerNorm's pass.
    fileprivate static let fp8Cases: [Case] = {
        func quantizeCase(_ detail: String, rows: Int, cols: Int, scales: Bool) -> Case {
            Case(op: "quantizeFP8", detail: detail, threshold: copy,
                 inputs: { r in
                     // Row 1 all zero (scale 1), row 2 tiny (subnormal e4m3 values after scaling), the rest N(0, 1).
                     var w = r.tensor([rows, cols]).floats()
                     for k in 0..<cols { w[cols + k] = 0; w[2 * cols + k] = roundedToBF16(w[2 * cols + k] * 1e-30) }
                     return [HostTensor(w, shape: [rows, cols])]
                 },
                 body: { b, t in
                     let q = try b.quantizeFP8(t[0])
                     return .tensor(scales ? q.scales : q.values)
                 })
        }
        func linearCase(_ detail: String, parts: [[Int]], n: Int, bias: Bool = true,
                        activation: Activation = .identity) -> Case
        {
            let k = parts.reduce(0) { $0 + ($1.last ?? 0) }
            return Case(op: "linear", detail: "fp8 " + detail, threshold: accumulated,
                        inputs: { r in parts.map { r.tensor($0) } + [r.tensor([n, k], scale: 0.3), r.tensor([n])] },
                        body: { b, t in
                            let w = try b.quantizeFP8(t[t.count - 2])
                            return .tensor(try b.linear(concatenating: Array(t.dropLast(2)), weight: w,
                                                        bias: bias ? t[t.count - 1] : nil, activation: activation))
                        })
        }
        return [
            rowsCase("values of [2,7,48] [2,7,16]", parts: [[2, 7, 48], [2, 7, 16]], scales: false),
            rowsCase("scales of [2,7,48] [2,7,16]", parts: [[2, 7, 48], [2, 7, 16]], scales: true),
            rowsCase("values of [3,5,13] [3,5,6] [3,5,7] (three parts)", parts: [[3, 5, 13], [3, 5, 6], [3, 5, 7]],
                     scales: false),
            rowsCase("values of [3,5,40] (one tensor)", parts: [[3, 5, 40]], scales: false, single: true),
            rowsCase("scales of [3,5,40] (one tensor)", parts: [[3, 5, 40]], scales: true, single: true),
            normCase("x[2,37,768] then w[64,768] (one fused pass)", x: [2, 37, 768], n: 64, scales: false),
            normCase("scales of x[2,37,768] (one fused pass)", x: [2, 37, 768], n: 64, scales: true),
            normCase("x[2,9,48] then w[32,48] (norm, then quantizeRows)", x: [2, 9, 48], n: 32, scales: false),
            quantizeCase("values of w[37,200] (a zero row, a tiny row)", rows: 37, cols: 200, scales: false),
            quantizeCase("scales of w[37,200] (a zero row, a tiny row)", rows: 37, cols: 200, scales: true),
            quantizeCase("values of w[5,13] (rows not in eights)", rows: 5, cols: 13, scales: false),
            linearCase("x[2,7,48] w[32,48]", parts: [[2, 7, 48]], n: 32, bias: false),
            linearCase("x[2,7,48] w[32,48] +bias", parts: [[2, 7, 48]], n: 32),
            linearCase("x[1,300,320] w[640,320] +bias geluTanh", parts: [[1, 300, 320]], n: 640,
                       activation: .geluTanh),
            linearCase("x[3,37,64] w[48,64] +bias silu (f32 product)", parts: [[3, 37, 64]], n: 48, activation: .silu),
            linearCase("concatenating [2,33,128] [2,33,256] w[96,384] +bias", parts: [[2, 33, 128], [2, 33, 256]],
                       n: 96),
            linearCase("concatenating [2,5,16] [2,5,32] [2,5,16] w[16,64]", parts: [[2, 5, 16], [2, 5, 32], [2, 5, 16]],
                       n: 16, bias: false),
            linearCase("x[3,5,13] w[5,13] +bias (no fp8 product: dequantized)", parts: [[3, 5, 13]], n: 5),
            linearCase("x[2,3,16400] w[16,16400] +bias (rows wider than the register cache)", parts: [[2, 3, 16400]],
                       n: 16),
        ]
    }()
}

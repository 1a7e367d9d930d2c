import FluxCore

/// How a checkpoint's tensors match what a model asks for: the one check behind every component's checkpoint type
/// (transformer, VAE, CLIP, T5) and `fluxserve inspect`.
public struct CheckpointCheck: Codable, Sendable, Equatable {
    /// A stored weight (reference name) whose shape is not the one the model asks for.
    public struct ShapeMismatch: Codable, Sendable, Equatable {
        public var name: String
        /// The assembled shape, or nil when its stored parts do not join.
        public var stored: [Int]?
        public var expected: [Int]

        public var description: String {
            "\(name): shape \(stored.map { "\($0)" } ?? "of unjoinable parts"), expected \(expected)"
        }
    }

    /// Reference names the model asks for that the checkpoint lacks (any stored part absent).
    public var missing: [String]
    /// Stored tensors (among those in scope) that no expected weight reads.
    public var unexpected: [String]
    public var shapeMismatches: [ShapeMismatch]

    public init(missing: [String], unexpected: [String], shapeMismatches: [ShapeMismatch]) {
        (self.missing, self.unexpected, self.shapeMismatches) = (missing, unexpected, shapeMismatches)
    }

    /// Compares what a model asks for (`expected`, from `WeightRecorder`) with what `source` stores under its key
    /// map. Only stored names for which `inScope` holds can be unexpected (an LDM VAE inside a Stable Diffusion file
    /// sits beside other models' tensors).
    public static func compare(expected: [ExpectedWeight], available source: WeightSource,
                               inScope: (String) -> Bool = { _ in true }) -> CheckpointCheck {
        var check = CheckpointCheck(missing: [], unexpected: [], shapeMismatches: [])
        var read = Set<String>()
        for weight in expected {
            let parts = source.recipe(for: weight.name).sources
            read.formUnion(parts)
            guard source.contains(weight.name) else {
                check.missing.append(weight.name)
                continue
            }
            let stored = source.shape(weight.name)
            if let stored, holds(stored, expected: weight.shape) { continue }
            check.shapeMismatches.append(ShapeMismatch(name: weight.name, stored: stored, expected: weight.shape))
        }
        check.unexpected = source.checkpoint.names.filter { inScope($0) && !read.contains($0) }
        return check
    }

    /// Whether a stored shape holds the numbers of the expected one: equal, or a 1×1 convolution (C_out, C_in, 1, 1)
    /// for a linear (C_out, C_in) — the two forms of the VAE's attention projections (`pointwiseLinear`).
    static func holds(_ stored: [Int], expected: [Int]) -> Bool {
        stored == expected || (expected.count == 2 && stored == expected + [1, 1])
    }

    /// Whether the model can be built from the checkpoint (unexpected tensors are ignored when loading).
    public var isComplete: Bool { missing.isEmpty && shapeMismatches.isEmpty }

    /// One line per kind of fault, naming the first few tensors, for `what` (e.g. "VAE"); empty when complete.
    public func problems(_ what: String) -> [String] {
        var lines: [String] = []
        if !missing.isEmpty { lines.append("\(missing.count) \(what) weights missing: " + Self.list(missing)) }
        if !shapeMismatches.isEmpty {
            lines.append("\(shapeMismatches.count) \(what) weights of the wrong shape: "
                + Self.list(shapeMismatches.map(\.description)))
        }
        return lines
    }

    /// The first few names, then how many more.
    public static func list(_ names: [String], first: Int = 5) -> String {
        names.prefix(first).joined(separator: ", ") + (names.count > first ? " and \(names.count - first) more" : "")
    }
}

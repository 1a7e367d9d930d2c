import FluxCore
import Foundation

/// How `conv2d` picks its implementation, once per backend (`CUDABackend.Options.convolution`). The command line gives
/// it as comma-separated words (`--conv`; empty or `auto` means every choice is open and timed):
/// - `im2col` (or `off`): never cuDNN — im2col + cuBLASLt, the path before cuDNN convolutions;
/// - `nchw`, `nhwc`: only these layouts (our NCHW buffers described to cuDNN as they are, or channels-last copies);
/// - `fused`, `accumulate`: only these ways of adding the bias (see `CuDNNConvolution`);
/// - `first`: no timing, the first candidate that builds (in the order nhwc, nchw; fused, accumulate);
/// - `nortc`: no engine that compiles its kernel at plan time;
/// - `configs=N`: engine configs timed per graph (default 3).
public struct ConvolutionSettings: Equatable, Sendable {
    typealias Layout = CuDNNConvolution.Layout
    typealias BiasMode = CuDNNConvolution.BiasMode

    /// cuDNN at all (false: `im2col`).
    public var enabled = true
    var layouts: [Layout] = [.nhwc, .nchw]
    var biasModes: [BiasMode] = [.fused, .accumulate]
    /// Time the candidates of a shape (false: `first`).
    public var tune = true
    /// Engines that compile at plan time allowed (false: `nortc`).
    public var runtimeCompiled = true
    public var configsPerGraph = 3
    /// Below this many FLOPs a convolution takes the first candidate untimed (NCHW first: fewer launches), since
    /// timing would cost more than it can save.
    var tuneMinimumFlops = 1e9

    public init() {}

    /// The settings the words of `text` ask for; an unknown word throws a `CUDAOptionError` naming `option` (the
    /// flag or environment variable the text came from).
    public init(parsing text: String, option: String) throws {
        var layouts: [Layout] = [], modes: [BiasMode] = []
        for raw in text.split(separator: ",") {
            let word = raw.trimmingCharacters(in: .whitespaces).lowercased()
            switch word {
            case "im2col", "off": enabled = false
            case "nchw": layouts.append(.nchw)
            case "nhwc": layouts.append(.nhwc)
            case "fused": modes.append(.fused)
            case "accumulate": modes.append(.accumulate)
            case "first": tune = false
            case "nortc": runtimeCompiled = false
            case "auto", "": break
            default:
                if word.hasPrefix("configs="), let n = Int(word.dropFirst("configs=".count)), n >= 1, n <= 16 {
                    configsPerGraph = n
                } else {
                    throw CUDAOptionError(option: option, value: word, expected: "auto, im2col, nchw, nhwc, fused, "
                                              + "accumulate, first, nortc, configs=N with 1 ≤ N ≤ 16")
                }
            }
        }
        if !layouts.isEmpty { self.layouts = layouts }
        if !modes.isEmpty { biasModes = modes }
    }

    /// The words that give these settings back (`auto`, `im2col`, `nchw,first`), for the `config:` line.
    public var summary: String {
        guard enabled else { return "im2col" }
        var words: [String] = []
        if layouts != ConvolutionSettings().layouts { words += layouts.map(\.rawValue) }
        if biasModes != ConvolutionSettings().biasModes { words += biasModes.map(\.rawValue) }
        if !tune { words.append("first") }
        if !runtimeCompiled { words.append("nortc") }
        if configsPerGraph != 3 { words.append("configs=\(configsPerGraph)") }
        return words.isEmpty ? "auto" : words.joined(separator: ",")
    }
}

/// One way of running a convolution shape on cuDNN, with what timing it found.
final class ConvolutionCandidate: @unchecked Sendable, CustomStringConvertible {
    let plan: CuDNNConvolution.Plan
    var milliseconds: Double?

    init(plan: CuDNNConvolution.Plan) { self.plan = plan }

    var layout: CuDNNConvolution.Layout { plan.graph.layout }
    var bias: CuDNNConvolution.BiasMode { plan.graph.bias }
    var description: String { "\(layout) \(bias) \(plan.engine)" }
}

/// The cuDNN side of `conv2d` for one backend: its handle (on the backend's stream) and the choice made per shape.
final class ConvolutionEngine: @unchecked Sendable {
    enum Choice {
        case cudnn(ConvolutionCandidate)
        /// cuDNN has nothing for the shape: im2col, and why.
        case columns(String)
    }

    struct Key: Hashable {
        let shape: CuDNNConvolution.Shape
        let bias: Bool
    }

    /// Largest workspace a plan may ask for.
    static let workspaceLimit = 512 << 20

    let api: CuDNNConvolution
    let handle: OpaquePointer
    let settings: ConvolutionSettings
    var choices: [Key: Choice] = [:]

    init(api: CuDNNConvolution, handle: OpaquePointer, settings: ConvolutionSettings) {
        self.api = api
        self.handle = handle
        self.settings = settings
    }

    deinit { api.destroy(handle: handle) }

    /// Plans for every graph the settings allow, in preference order: for each layout, each bias mode, up to
    /// `configsPerGraph` engine configs as the heuristics rank them (none that reduces in less than f32; at most one
    /// that compiles at plan time). With `firstOnly`, stops at the first plan. Also returns why graphs gave nothing.
    func candidates(for key: Key, layouts: [CuDNNConvolution.Layout], firstOnly: Bool) -> ([ConvolutionCandidate],
                                                                                          [String])
    {
        var found: [ConvolutionCandidate] = [], notes: [String] = []
        for layout in layouts {
            var shape = key.shape
            if layout == .nhwc {
                shape.channels = CuDNNConvolution.Shape.nhwcChannels(shape.channels)
                shape.outChannels = CuDNNConvolution.Shape.nhwcChannels(shape.outChannels)
            }
            for mode in key.bias ? settings.biasModes : [.none] {
                do {
                    let graph = try CuDNNConvolution.Graph(api, shape: shape, layout: layout, bias: mode,
                                                           handle: handle)
                    let configs = try graph.configs(api, limit: 16)
                    if configs.isEmpty { notes.append("\(layout) \(mode): no engine config") }
                    var built = 0, compiled = 0
                    for config in configs where built < settings.configsPerGraph {
                        let engine = api.info(of: config)
                        if engine.reducedPrecision { continue }
                        if engine.runtimeCompiled && (!settings.runtimeCompiled || compiled >= 1) { continue }
                        do {
                            let plan = try CuDNNConvolution.Plan(api, graph: graph, config: config, engine: engine,
                                                                 handle: handle)
                            guard plan.workspaceSize <= ConvolutionEngine.workspaceLimit else {
                                notes.append("\(layout) \(mode) \(engine): workspace \(plan.workspaceSize) bytes")
                                continue
                            }
                            found.append(ConvolutionCandidate(plan: plan))
                            built += 1
                            if engine.runtimeCompiled { compiled += 1 }
                            if firstOnly { return (found, notes) }
                        } catch {
                            notes.append("\(layout) \(mode) \(engine): \(error)")
                        }
                    }
                } catch {
                    notes.append("\(layout) \(mode): \(error)")
                }
            }
        }
        return (found, notes)
    }
}

/// Per-backend convolution engines. `CUDABackend` keeps no stored property for one (that file is shared), so they
/// live here, keyed by the backend object and made at its first `conv2d`.
final class ConvolutionEngines: @unchecked Sendable {
    static let shared = ConvolutionEngines()

    private final class Entry {
        weak var backend: CUDABackend?
        let engine: ConvolutionEngine?
        let reason: String
        init(backend: CUDABackend, engine: ConvolutionEngine?, reason: String) {
            self.backend = backend
            self.engine = engine
            self.reason = reason
        }
    }

    private let lock = NSLock()
    private var entries: [ObjectIdentifier: Entry] = [:]

    /// The backend's engine, made by `make` the first time (nil, with the reason, when cuDNN is not used).
    func engine(for backend: CUDABackend, make: () throws -> (ConvolutionEngine?, String)) rethrows
        -> (engine: ConvolutionEngine?, reason: String)
    {
        lock.lock()
        defer { lock.unlock() }
        let id = ObjectIdentifier(backend)
        if let entry = entries[id], entry.backend === backend { return (entry.engine, entry.reason) }
        entries = entries.filter { $0.value.backend != nil }
        let (engine, reason) = try make()
        entries[id] = Entry(backend: backend, engine: engine, reason: reason)
        return (engine, reason)
    }
}

extension CUDABackend {
    /// This backend's cuDNN convolution engine, or nil (and why) when conv2d runs as im2col: the fallback-kernel
    /// backend (`matmul: .kernel`), `options.convolution` saying `im2col`, or cuDNN missing.
    func convolutionEngine() throws -> (engine: ConvolutionEngine?, reason: String) {
        ConvolutionEngines.shared.engine(for: self) {
            guard options.matmul != .kernel else { return (nil, "fallback kernels") }
            let settings = options.convolution
            guard settings.enabled else { return (nil, "conv=im2col") }
            do {
                let dnn = try CuDNN(search: librarySearch)
                let api = try CuDNNConvolution(dnn)
                let handle = try dnn.createHandle(stream: stream)
                return (ConvolutionEngine(api: api, handle: handle, settings: settings), "cuDNN \(dnn.version)")
            } catch {
                return (nil, "\(error)")
            }
        }
    }

    /// Where `conv2d` runs, for reports.
    public var convolutionDescription: String {
        let columns = "im2col + " + (matmul == nil ? "gemm.cu" : "cuBLASLt")
        guard let state = try? locked({ try convolutionEngine() }) else { return columns }
        guard let engine = state.engine else { return "\(columns) (\(state.reason))" }
        let s = engine.settings
        return "\(state.reason) convolution forward (\(s.layouts.map(\.rawValue).joined(separator: "/")), bias "
            + "\(s.biasModes.map(\.rawValue).joined(separator: "/")), \(s.tune ? "timed per shape" : "first plan")), "
            + "else \(columns)"
    }

    /// Runs the convolution on cuDNN, choosing how at the first call of each shape. Returns false, having queued
    /// nothing, when cuDNN has nothing for the shape (then the caller takes im2col).
    func convolveWithCuDNN(_ engine: ConvolutionEngine, _ s: CuDNNConvolution.Shape, x: CUdeviceptr, w: CUdeviceptr,
                           bias: CUdeviceptr?, y: CUdeviceptr) throws -> ConvolutionCandidate?
    {
        let key = ConvolutionEngine.Key(shape: s, bias: bias != nil)
        if let choice = engine.choices[key] {
            guard case let .cudnn(candidate) = choice else { return nil }
            try runCandidate(engine, candidate, s, x: x, w: w, bias: bias, y: y)
            return candidate
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let settings = engine.settings
        let small = s.flops < settings.tuneMinimumFlops
        let timed = settings.tune && !small
        let layouts = small && settings.tune ? settings.layouts.sorted { a, b in a == .nchw && b != .nchw } : settings.layouts
        let (candidates, notes) = engine.candidates(for: key, layouts: layouts, firstOnly: !timed)
        let built = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        var chosen: ConvolutionCandidate?
        if timed && candidates.count > 1 {
            for candidate in candidates {
                candidate.milliseconds = try? timeOnStream(repeats: 3) {
                    try runCandidate(engine, candidate, s, x: x, w: w, bias: bias, y: y)
                }
            }
            chosen = candidates.compactMap { c in c.milliseconds.map { (c, $0) } }.min { $0.1 < $1.1 }?.0
        } else {
            chosen = candidates.first
        }
        if options.imageDiagnostics.checking {
            var lines = ["conv2d \(s)\(bias != nil ? " +bias" : ""): \(candidates.count) plans in "
                         + String(format: "%.1f ms", built)]
            for c in candidates {
                let time = c.milliseconds.map {
                    String(format: "%8.3f ms %6.0f TFLOP/s", $0, s.flops / ($0 * 1e-3) / 1e12)
                } ?? "   untimed"
                lines.append("  \(c === chosen ? "*" : " ") \(time)  \(c)  workspace \(c.plan.workspaceSize)  "
                             + String(format: "plan %.1f ms", c.plan.finalizeMilliseconds))
            }
            lines += notes.map { "    not used: \($0)" }
            ImageDiagnostics.log(lines.joined(separator: "\n"))
        }
        guard let chosen else {
            engine.choices[key] = .columns(notes.last ?? "no plan")
            return nil
        }
        do {
            try runCandidate(engine, chosen, s, x: x, w: w, bias: bias, y: y)
        } catch {
            // The chosen plan would not run: remember im2col for the shape (nothing of it was queued).
            engine.choices[key] = .columns("\(error)")
            ImageDiagnostics.log("conv2d \(s): \(chosen) failed to run (\(error)); im2col from now on")
            return nil
        }
        engine.choices[key] = .cudnn(chosen)
        return chosen
    }

    /// Queues one candidate: for channels-last, the copies in and out around cuDNN; for `.accumulate`, the bias
    /// fill first.
    private func convolutionName(_ s: CuDNNConvolution.Shape) -> String {
        "conv \(s.channels)→\(s.outChannels) \(s.kernelHeight)x\(s.kernelWidth) at \(s.height)x\(s.width)"
    }

    private func runCandidate(_ engine: ConvolutionEngine, _ c: ConvolutionCandidate, _ s: CuDNNConvolution.Shape,
                              x: CUdeviceptr, w: CUdeviceptr, bias: CUdeviceptr?, y: CUdeviceptr) throws
    {
        let workspace = try allocator.allocate(max(c.plan.workspaceSize, 16))
        let (pixels, outPixels) = (s.height * s.width, s.outHeight * s.outWidth)
        switch c.layout {
        case .nchw:
            if c.bias == .accumulate, let bias {
                try fillChannels(y, bias: bias, count: s.batch * s.outChannels * outPixels, inner: outPixels,
                                 channels: s.outChannels, valid: s.outChannels)
            }
            try profiler.measure(convolutionName(s), flops: s.flops, stream: stream) {
                try engine.api.execute(c.plan, handle: engine.handle, x: x, w: w, bias: bias, y: y,
                                       workspace: workspace.pointer)
            }
        case .nhwc:
            let (cp, kp) = (c.plan.graph.shape.channels, c.plan.graph.shape.outChannels)
            let taps = s.kernelHeight * s.kernelWidth
            let xt = try allocator.allocate(s.batch * pixels * cp * 2)
            try transposePad(x, xt.pointer, batch: s.batch, rows: s.channels, cols: pixels, ldX: pixels, ldY: cp,
                             batchX: s.channels * pixels, batchY: pixels * cp)
            let wt = try allocator.allocate(kp * taps * cp * 2)
            if kp > s.outChannels {
                try driver.check(driver.cuMemsetD16Async(wt.pointer + CUdeviceptr(s.outChannels * taps * cp * 2), 0,
                                                         (kp - s.outChannels) * taps * cp, stream), "cuMemsetD16Async")
            }
            try transposePad(w, wt.pointer, batch: s.outChannels, rows: s.channels, cols: taps, ldX: taps, ldY: cp,
                             batchX: s.channels * taps, batchY: taps * cp)
            var paddedBias: CUDAStorage?
            if c.bias == .fused, let bias, kp > s.outChannels {
                let b = try allocator.allocate(kp * 2)
                try driver.check(driver.cuMemsetD16Async(b.pointer, 0, kp, stream), "cuMemsetD16Async")
                try driver.check(driver.cuMemcpyDtoDAsync(b.pointer, bias, s.outChannels * 2, stream),
                                 "cuMemcpyDtoDAsync")
                paddedBias = b
            }
            let yt = try allocator.allocate(s.batch * outPixels * kp * 2)
            if c.bias == .accumulate, let bias {
                try fillChannels(yt.pointer, bias: bias, count: s.batch * outPixels * kp, inner: 1, channels: kp,
                                 valid: s.outChannels)
            }
            try profiler.measure(convolutionName(s), flops: s.flops, stream: stream) {
                try engine.api.execute(c.plan, handle: engine.handle, x: xt.pointer, w: wt.pointer,
                                       bias: paddedBias?.pointer ?? bias, y: yt.pointer, workspace: workspace.pointer)
            }
            try transposePad(yt.pointer, y, batch: s.batch, rows: outPixels, cols: s.outChannels, ldX: kp,
                             ldY: outPixels, batchX: outPixels * kp, batchY: s.outChannels * outPixels)
        }
    }

    /// `transpose_pad_bf16` (see image.cu): y[b, j, i] = i < rows ? x[b, i, j] : 0 for j < cols, i < ldY.
    func transposePad(_ x: CUdeviceptr, _ y: CUdeviceptr, batch: Int, rows: Int, cols: Int, ldX: Int, ldY: Int,
                      batchX: Int, batchY: Int) throws
    {
        guard batch > 0, cols > 0, ldY > 0 else { return }
        let pairs = (ldX | ldY | batchX | batchY) & 1 == 0
        let tile = pairs ? 64 : 32
        let tilesI = (ldY + tile - 1) / tile, tilesJ = (cols + tile - 1) / tile
        try launch("image", pairs ? "transpose_pad_pairs_bf16" : "transpose_pad_bf16", grid: (tilesI * tilesJ, 1, batch),
                   block: (32, 8, 1),
                   [.pointer(x), .pointer(y), .int(rows), .int(cols), .long(ldX), .long(ldY), .long(batchX),
                    .long(batchY), .int(tilesJ)])
    }

    /// `fill_channels_bf16`: y[i] = c < valid ? bias[c] : 0 with c = (i / inner) % channels.
    func fillChannels(_ y: CUdeviceptr, bias: CUdeviceptr, count: Int, inner: Int, channels: Int, valid: Int) throws {
        try launchElements("image", "fill_channels_bf16", count: count % 8 == 0 ? count / 8 : count,
                           [.pointer(y), .pointer(bias), .long(count), .long(inner), .int(channels), .int(valid)])
    }

    /// Milliseconds per run of `body` on the stream: one untimed run (unless `warm` is false), then `repeats` between
    /// two events.
    func timeOnStream(repeats: Int, warm: Bool = true, _ body: () throws -> Void) throws -> Double {
        if warm { try body() }
        var start: CUhandle?, end: CUhandle?
        try driver.check(driver.cuEventCreate(&start, 0), "cuEventCreate")
        defer { _ = driver.cuEventDestroy(start) }
        try driver.check(driver.cuEventCreate(&end, 0), "cuEventCreate")
        defer { _ = driver.cuEventDestroy(end) }
        try driver.check(driver.cuEventRecord(start, stream), "cuEventRecord")
        for _ in 0..<repeats { try body() }
        try driver.check(driver.cuEventRecord(end, stream), "cuEventRecord")
        try driver.check(driver.cuEventSynchronize(end), "cuEventSynchronize")
        var ms: Float = 0
        try driver.check(driver.cuEventElapsedTime(&ms, start, end), "cuEventElapsedTime")
        return Double(ms) / Double(max(repeats, 1))
    }

    /// max |a − b| / max |b| over `count` bf16 values on the device (`max_abs_diff_bf16`); waits for the stream.
    func relativeDifference(_ a: CUdeviceptr, _ b: CUdeviceptr, count: Int) throws -> Float {
        let out = try allocator.allocate(8)
        try driver.check(driver.cuMemsetD8Async(out.pointer, 0, 8, stream), "cuMemsetD8Async")
        try launchElements("image", "max_abs_diff_bf16", count: count,
                           [.pointer(a), .pointer(b), .long(count), .pointer(out.pointer)])
        var bits: [UInt32] = [0, 0]
        try bits.withUnsafeMutableBytes { raw in
            try driver.check(driver.cuMemcpyDtoHAsync(raw.baseAddress, out.pointer, 8, stream), "cuMemcpyDtoHAsync")
        }
        try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
        let (diff, scale) = (Float(bitPattern: bits[0]), Float(bitPattern: bits[1]))
        return scale > 0 ? diff / scale : diff
    }
}

/// The process-wide side of the image-op diagnostics (`CUDABackend.Options.imageDiagnostics` says which are on):
/// shapes already checked, and the log on standard error.
enum ImageDiagnostics {
    private static let seen = SeenShapes()

    /// True the first time `key` is passed (per process).
    static func firstTime(_ key: String) -> Bool { seen.insert(key) }

    static func log(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    private final class SeenShapes: @unchecked Sendable {
        private let lock = NSLock()
        private var keys: Set<String> = []
        func insert(_ key: String) -> Bool {
            lock.lock()
            defer { lock.unlock() }
            return keys.insert(key).inserted
        }
    }
}

import ArgumentParser
import FluxCore
import FluxCUDA
import FluxModel
import Foundation

/// `fluxserve bench`: per-stage timings (medians after warm-up) of T5 and CLIP encoding, one transformer step per
/// size, VAE decode, and a whole image, on `random-dev` / `random-schnell` (the published architectures with seeded
/// random bf16 weights, nothing downloaded) or a real checkpoint. Prints a table and optionally writes JSON.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time each pipeline stage and a whole image.")

    @Option(help: "random-dev, random-schnell, or a model folder / hub id (as for generate).")
    var model: String = "random-dev"

    @Option(help: "Denoising steps of the whole-image timing.")
    var steps: Int = 28

    @Option(help: "Image sizes WxH for the transformer step; the first is used for VAE decode and the whole image.")
    var sizes: String = "1024x1024,768x768,512x512"

    @Option(help: "Timed repeats per stage (median reported).")
    var repeats: Int = 5

    @Option(help: "Untimed runs before timing.")
    var warmup: Int = 2

    @Option(help: "Stages: t5, clip, step, vae, image (comma-separated).")
    var stages: String = "t5,clip,step,vae,image"

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    @Option(help: "Also time a random rank-R LoRA on every attention and MLP projection of the blocks: merged into the weights, run beside them, and switching between two such sets (0 = off).")
    var loraRank = 0

    @Flag(help: "Also time every op of one transformer step (first size) and one VAE decode on the GPU.")
    var profile = false

    @OptionGroup var device: DeviceOptions
    @OptionGroup var quantization: QuantizationOptions

    struct Row: Codable {
        var stage: String
        var size: String
        var medianMs: Double
        var minMs: Double
        var repeats: Int
    }

    struct Report: Codable {
        var model: String
        var device: String
        /// `--quantize`: none or fp8.
        var quantization: String
        var rows: [Row]
        var loadSeconds: [String: Double]
        var peakMemoryBytes: Int?
        var profiles: [StageProfile] = []
        /// cuBLASLt candidates timed per product shape (`--gemm-tune`), GPU only.
        var gemmTuning: [GemmTuningEntry] = []
        /// The backend options in effect, as the `config:` line gives them (docs/configuration.md).
        var config: [String: String] = [:]
    }

    func run() throws {
        try reportingErrors {
            let configuration = try device.configuration()
            configuration.announce()
            let backend = try configuration.makeBackend()
            let wanted = Set(stages.split(separator: ",").map { String($0) })
            let parsedSizes = try sizes.split(separator: ",").map { try parseSize(String($0)) }
            guard let mainSize = parsedSizes.first else { throw ValidationError("--sizes: at least one WxH") }
            guard repeats >= 1, warmup >= 0, steps >= 1 else { throw ValidationError("--repeats, --steps ≥ 1") }
            guard loraRank >= 0, loraRank <= 512, loraRank % 16 == 0 else {
                throw ValidationError("--lora-rank \(loraRank): a multiple of 16, 0…512")
            }
            var report = Report(model: model, device: backend.name, quantization: quantization.quantize.rawValue, rows: [],
                                loadSeconds: [:], peakMemoryBytes: nil, config: configuration.dictionary)
            let models = try loadModels(backend, &report)
            let defaults = models.transformer.config.guidanceEmbeds ? PipelineDefaults.dev : PipelineDefaults.schnell
            var rng = SplitMix64(seed: 1)
            let t5Ids = try TokenIds(rows: [(0..<defaults.maxSequenceLength).map { _ in
                Int32(rng.next() % UInt64(models.t5.config.vocabSize)) }])
            let clipIds = try TokenIds(rows: [(0..<77).map { _ in Int32(rng.next() % UInt64(models.clip.config.vocabSize)) }])

            func profileStage(_ stage: String, _ size: String, _ body: () throws -> Tensor) throws {
                guard let p = try StageProfile.measure(stage, size, on: backend, body) else {
                    return printError("--profile: per-op times need --device cuda")
                }
                report.profiles.append(p)
                print(p.table())
                if let cuda = backend as? CUDABackend { cuda.attentionTuning.forEach { print($0) } }
            }

            func time(_ stage: String, _ size: String, repeats: Int, _ body: () throws -> Tensor) throws {
                for _ in 0..<warmup { _ = try backend.absSum(try body()) }
                var samples: [Double] = []
                for _ in 0..<repeats {
                    let start = DispatchTime.now().uptimeNanoseconds
                    _ = try backend.absSum(try body())  // a scalar back on the host: the device has finished
                    samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                }
                samples.sort()
                let row = Row(stage: stage, size: size, medianMs: samples[samples.count / 2], minMs: samples[0],
                              repeats: repeats)
                report.rows.append(row)
                printError(String(format: "%-16@ %-10@ median %9.2f ms   min %9.2f ms", stage, size, row.medianMs, row.minMs))
            }

            if wanted.contains("t5") { try time("t5-encode", "\(t5Ids.length) tok", repeats: repeats) { try models.t5(t5Ids) } }
            if wanted.contains("clip") {
                try time("clip-encode", "77 tok", repeats: repeats) { try models.clip(clipIds).poolerOutput }
            }
            let txt = try models.t5(t5Ids), pooled = try models.clip(clipIds).poolerOutput
            for (i, (w, h)) in parsedSizes.enumerated() where wanted.contains("step") {
                let g = try geometry(models, w, h)
                let img = try noise(backend, [1, g.imageTokens, g.packedChannels], seed: 2)
                let pe = try positions(models.transformer, g, textTokens: txt.shape[1])
                let step = {
                    try models.transformer(img: img, txt: txt, y: pooled, timesteps: [0.5],
                                           guidance: models.transformer.config.guidanceEmbeds ? [3.5] : nil, pe: pe)
                }
                try time("transformer-step", "\(w)x\(h)", repeats: repeats, step)
                if profile, i == 0 { try profileStage("transformer-step", "\(w)x\(h)", step) }
                if let lora = models.lora {
                    try lora.slots.apply(lora.sets[0], on: backend, as: .beside)
                    try time("step-lora-beside", "\(w)x\(h)", repeats: repeats, step)
                    try lora.slots.apply(lora.sets[0], on: backend, as: .swap)
                    try time("step-lora-swapped", "\(w)x\(h)", repeats: repeats, step)
                    try lora.slots.apply([:], on: backend)
                    try time("step-lora-merged", "\(w)x\(h)", repeats: repeats) {
                        try lora.merged(img: img, txt: txt, y: pooled, timesteps: [0.5],
                                        guidance: lora.merged.config.guidanceEmbeds ? [3.5] : nil, pe: pe)
                    }
                }
            }
            if let lora = models.lora {
                // Switching sets beside the weights: upload both matrices of every adapted layer, then one scalar
                // back (the uploads have landed).
                for mode in [LowRankSlots.Mode.beside, .swap] {
                    var which = 0
                    try time("lora-switch-\(mode)", "rank \(loraRank)", repeats: repeats) {
                        which = 1 - which
                        try lora.slots.apply(lora.sets[which], on: backend, as: mode)
                        return try backend.tensor([0], shape: [1])
                    }
                }
                try lora.slots.apply([:], on: backend)
                printError("LoRA: \(lora.sets[0].count) weights, rank \(loraRank); merged copy loaded in "
                           + String(format: "%.2f s", report.loadSeconds["transformer-lora-merged"] ?? 0))
            }
            if let tuning = (backend as? CUDABackend)?.matmulTuning, !tuning.isEmpty {
                printError(GemmTuningEntry.summary(tuning))
                if profile { tuning.forEach { printError("  " + $0.line) } }
            }
            (backend as? CUDABackend)?.matmulRefusals.forEach { printError("cuBLASLt refused: " + $0) }
            let (w, h) = mainSize, g = try geometry(models, w, h)
            if wanted.contains("vae") {
                let latents = try noise(backend, [1, g.latentChannels, g.latentHeight, g.latentWidth], seed: 3)
                try time("vae-decode", "\(w)x\(h)", repeats: repeats) { try models.vae.decode(latents) }
                if profile { try profileStage("vae-decode", "\(w)x\(h)") { try models.vae.decode(latents) } }
            }
            if wanted.contains("image") {
                let schedule = try models.scheduler.schedule(steps: steps, imageSeqLen: g.imageTokens)
                let start = try noise(backend, [1, g.imageTokens, g.packedChannels], seed: 4)
                try time("image-\(steps)-steps", "\(w)x\(h)", repeats: max(1, min(repeats, 3))) {
                    // From token ids to pixels, as the pipeline runs it.
                    let txt = try models.t5(t5Ids), pooled = try models.clip(clipIds).poolerOutput
                    let pe = try positions(models.transformer, g, textTokens: txt.shape[1])
                    var latents = start
                    let timesteps = (0..<schedule.steps).map { [schedule.modelTimestep($0)] }
                    let guidance: [Float]? = models.transformer.config.guidanceEmbeds ? [defaults.guidance] : nil
                    let conditioning = try models.transformer.conditioning(
                        y: pooled, timesteps: timesteps, guidance: guidance.map { Array(repeating: $0, count: schedule.steps) })
                    for i in 0..<schedule.steps {
                        let v = try models.transformer(img: latents, txt: txt, y: pooled, timesteps: timesteps[i],
                                                       guidance: guidance, pe: pe, conditioning: conditioning, step: i)
                        latents = try schedule.step(i, sample: latents, velocity: v, on: backend)
                    }
                    return try models.vae.decode(try models.vae.unscaleLatents(try g.unpack(latents, on: backend)))
                }
            }
            if let reporting = backend as? any MemoryReporting {
                report.peakMemoryBytes = try reporting.memoryUsage().peak
                printError("peak device memory: \(formatBytes(report.peakMemoryBytes ?? 0))")
            }
            report.gemmTuning = (backend as? CUDABackend)?.matmulTuning ?? []
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let text = String(decoding: try encoder.encode(report), as: UTF8.self)
            if let json { try text.write(toFile: json, atomically: true, encoding: .utf8) }
            print(table(report))
        }
    }

    /// `--lora-rank`: the transformer's LoRA slots (made for swapping, which also run LoRAs beside the weights), two
    /// random sets, and a second transformer with set 0 merged at load.
    struct LoRABench {
        let slots: LowRankSlots
        let sets: [LowRankDeltas]
        let merged: FluxTransformer
    }

    struct Models {
        let transformer: FluxTransformer
        var lora: LoRABench? = nil
        let t5: T5Encoder
        let clip: CLIPTextModel
        let vae: AutoencoderKL
        let scheduler: SchedulerConfig
    }

    private func loadModels(_ backend: any Backend, _ report: inout Report) throws -> Models {
        func timed<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
            let start = Date()
            defer {
                report.loadSeconds[name] = Date().timeIntervalSince(start)
                printError(String(format: "loaded %@ in %.1fs", name, report.loadSeconds[name] ?? 0))
            }
            return try body()
        }
        let slots = loraRank > 0 ? LowRankSlots(.swap) : nil
        if model == "random-dev" || model == "random-schnell" {
            let dev = model == "random-dev"
            let random = RandomWeights(seed: 2024, description: model)
            func weights() -> ModuleWeights { ModuleWeights(backend: backend, random: random) }
            var models = Models(
                transformer: try timed("transformer") {
                    var w = weights()
                    w.lowRankSlots = slots
                    return try FluxTransformer(config: dev ? .dev : .schnell, weights: w,
                                               quantization: quantization.quantize)
                },
                t5: try timed("t5") { try T5Encoder(config: .xxl, weights: weights()) },
                clip: try timed("clip") { try CLIPTextModel(config: .vitL14, weights: weights()) },
                vae: try timed("vae") { try AutoencoderKL(config: .flux, weights: weights(), parts: .decoder) },
                scheduler: dev ? .dev : .schnell)
            if let slots {
                let sets = try randomLoRASets(models.transformer.config)
                var w = weights()
                w.lowRank = sets[0]
                let merged = try timed("transformer-lora-merged") {
                    try FluxTransformer(config: models.transformer.config, weights: w,
                                        quantization: quantization.quantize)
                }
                models.lora = LoRABench(slots: slots, sets: sets, merged: merged)
            }
            return models
        }
        let components = try PipelineComponents.resolve(try ModelLocator().path(for: model))
        var models = Models(
            transformer: try timed("transformer") {
                try components.transformer.load(on: backend, quantization: quantization.quantize, slots: slots)
            },
            t5: try timed("t5") { try T5Checkpoint.open(components.textEncoder2).load(on: backend) },
            clip: try timed("clip") { try CLIPCheckpoint.open(components.textEncoder).load(on: backend) },
            vae: try timed("vae") { try components.vae.load(on: backend, parts: .decoder) },
            scheduler: components.scheduler)
        if let slots {
            let sets = try randomLoRASets(components.transformer.config)
            let merged = try timed("transformer-lora-merged") {
                try components.transformer.load(on: backend, quantization: quantization.quantize, lowRank: sets[0])
            }
            models.lora = LoRABench(slots: slots, sets: sets, merged: merged)
        }
        return models
    }

    /// Two seeded random rank-`loraRank` sets on every attention and MLP projection of the double and single
    /// blocks (qkv, proj, mlp.0, mlp.2 of both streams; linear1, linear2) — the modulations are left alone.
    private func randomLoRASets(_ config: FluxConfig) throws -> [LowRankDeltas] {
        let linears = try WeightRecorder.linearWeights { _ = try FluxTransformer(config: config, weights: $0) }
            .filter { ($0.name.hasPrefix("double_blocks.") || $0.name.hasPrefix("single_blocks."))
                && !$0.name.contains("mod") }
        return (0..<2).map { set in
            Dictionary(uniqueKeysWithValues: linears.enumerated().map { i, w in
                (w.name, LowRankDelta.random(out: w.shape[0], in: w.shape[1], rank: loraRank,
                                             seed: UInt64(set * 100_000 + i)))
            })
        }
    }

    private func geometry(_ m: Models, _ w: Int, _ h: Int) throws -> LatentGeometry {
        try LatentGeometry(height: h, width: w, vaeScaleFactor: m.vae.config.downsamplingFactor,
                           latentChannels: m.vae.config.latentChannels)
    }

    private func positions(_ t: FluxTransformer, _ g: LatentGeometry, textTokens: Int) throws -> PositionEmbedding {
        let axes = t.config.axesDimsRope.count
        return try t.positionEmbedding(txtIds: LatentGeometry.textIds(count: textTokens, axes: axes),
                                       imgIds: g.imageIds.map { Array($0.prefix(axes)) })
    }

    private func noise(_ b: any Backend, _ shape: [Int], seed: UInt64) throws -> Tensor {
        var n = GaussianNoise(seed: seed)
        return try b.tensor(n.sample(shape.reduce(1, *)), shape: shape)
    }

    private func parseSize(_ text: String) throws -> (Int, Int) {
        let parts = text.lowercased().split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts.allSatisfy({ $0 > 0 && $0 <= 4096 }) else {
            throw ValidationError("size \(text): expected WxH, e.g. 1024x1024")
        }
        return (parts[0], parts[1])
    }

    private func table(_ r: Report) -> String {
        var lines = ["| stage | size | median ms | min ms | repeats |", "|---|---|---|---|---|"]
        for row in r.rows {
            lines.append(String(format: "| %@ | %@ | %.2f | %.2f | %d |", row.stage, row.size, row.medianMs,
                                row.minMs, row.repeats))
        }
        lines.append("model \(r.model) on \(r.device); load " + r.loadSeconds.sorted { $0.key < $1.key }
            .map { String(format: "%@ %.1fs", $0.key, $0.value) }.joined(separator: ", ")
            + (r.peakMemoryBytes.map { "; peak memory \(formatBytes($0))" } ?? ""))
        return lines.joined(separator: "\n")
    }
}

import ArgumentParser
import FluxCore
import FluxModel
import Foundation

/// `fluxserve inspect PATH`: what a checkpoint holds, or why it cannot be loaded.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a checkpoint file or model folder holds, or why it is wrong.")

    @Argument(help: "A .safetensors file, an index json, a diffusers model or pipeline folder, a Hugging Face id in the local cache (org/name), or 'demo'.")
    var path: String

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(help: "A diffusers transformer config.json to check the weights against.")
    var config: String?

    func run() throws {
        let report = try reportingErrors {
            try CheckpointReport.inspect(try ModelLocator().path(for: path),
                                         config: config.map { try FluxConfig.load(contentsOf: $0) })
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(render(report))
        }
        if let problem = report.problems.first {
            let more = report.problems.count > 1 ? " (and \(report.problems.count - 1) more problems)" : ""
            printError("error: \(path): not loadable: \(problem)\(more)")
            throw ExitCode.failure
        }
    }

    private func render(_ r: CheckpointReport) -> String {
        var lines = ["\(r.path)", "  layout: \(r.layout.rawValue)"]
        for c in r.components {
            let dtypes = c.dtypes.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
            lines.append("  \(c.name): \(c.tensors) tensors in \(c.files) file(s), "
                + "\(formatParameters(c.parameters)) parameters, \(formatBytes(c.bytes)) [\(dtypes)]")
        }
        if let t = r.transformer {
            let c = t.config
            lines.append("  transformer: \(t.variant) (config \(t.configSource))")
            lines.append("    double blocks \(c.numLayers), single blocks \(c.numSingleLayers), heads "
                + "\(c.numAttentionHeads) × \(c.attentionHeadDim) = \(c.hiddenSize), in \(c.inChannels) → out "
                + "\(c.outputChannels), text \(c.jointAttentionDim), pooled \(c.pooledProjectionDim), RoPE axes "
                + "\(c.axesDimsRope), guidance embedding \(c.guidanceEmbeds ? "yes" : "no")")
            lines.append("    missing weights: \(t.missing.count)" + list(t.missing))
            lines.append("    unexpected tensors: \(t.unexpected.count)" + list(t.unexpected))
        }
        lines.append(r.problems.isEmpty ? "  loadable: yes" : "  loadable: no — " + r.problems.joined(separator: "; "))
        return lines.joined(separator: "\n")
    }

    private func list(_ names: [String]) -> String {
        guard !names.isEmpty else { return "" }
        let shown = names.prefix(8).joined(separator: ", ")
        return " (\(shown)\(names.count > 8 ? ", …" : ""))"
    }

    private func formatParameters(_ n: Int) -> String {
        n >= 1_000_000_000 ? String(format: "%.2f B", Double(n) / 1e9)
            : n >= 1_000_000 ? String(format: "%.2f M", Double(n) / 1e6) : "\(n)"
    }
}

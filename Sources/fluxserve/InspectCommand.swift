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
        if let variant = r.variant { lines.append("  variant: \(variant.rawValue) (\(variant.pipelineClass))") }
        for c in r.components {
            let dtypes = c.dtypes.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
            lines.append("  \(c.name): \(c.tensors) tensors in \(c.files) file(s), "
                + "\(formatParameters(c.parameters)) parameters, \(formatBytes(c.bytes)) [\(dtypes)]")
        }
        for m in r.models {
            lines.append("  \(m.component): \(m.kind.rawValue) (\(m.layout.rawValue))")
            lines.append("    " + m.architecture.map { "\($0.name) \($0.value)" }.joined(separator: ", "))
            lines.append("    missing weights: \(m.check.missing.count)" + list(m.check.missing))
            lines.append("    unexpected tensors: \(m.check.unexpected.count)" + list(m.check.unexpected))
            if !m.check.shapeMismatches.isEmpty {
                lines.append("    wrong shapes: \(m.check.shapeMismatches.count)"
                    + list(m.check.shapeMismatches.map(\.description)))
            }
        }
        lines.append(r.problems.isEmpty ? "  loadable: yes" : "  loadable: no — " + r.problems.joined(separator: "; "))
        return lines.joined(separator: "\n")
    }

    private func list(_ names: [String]) -> String {
        guard !names.isEmpty else { return "" }
        return " (\(CheckpointCheck.list(names, first: 8)))"
    }

    private func formatParameters(_ n: Int) -> String {
        n >= 1_000_000_000 ? String(format: "%.2f B", Double(n) / 1e9)
            : n >= 1_000_000 ? String(format: "%.2f M", Double(n) / 1e6) : "\(n)"
    }
}

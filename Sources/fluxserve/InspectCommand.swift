import ArgumentParser
import FluxCore
import FluxModel
import Foundation

/// `fluxserve inspect PATH`: what a checkpoint holds, or why it cannot be loaded; on a LoRA file, what it adapts
/// and (with `--model`) whether it fits that model.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a checkpoint file, model folder or LoRA file holds, or why it is wrong.")

    @Argument(help: "A .safetensors file (a checkpoint or a LoRA), an index json, a diffusers model or pipeline folder, a Hugging Face id in the local cache (org/name), or 'demo'.")
    var path: String

    @Option(help: "For a LoRA file: a model (as generate's --model) to check that every module fits.")
    var model: String?

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(help: "A diffusers transformer config.json to check the weights against.")
    var config: String?

    func run() throws {
        let located = try reportingErrors { try ModelLocator().path(for: path) }
        if LoRAReport.isAdapter(located) { return try inspectLoRA(located) }
        if model != nil {
            printError("error: --model applies to LoRA files; \(path) is not one")
            throw ExitCode.failure
        }
        let report = try reportingErrors {
            try CheckpointReport.inspect(located, config: config.map { try FluxConfig.load(contentsOf: $0) })
        }
        if json {
            print(try Self.json(report))
        } else {
            print(render(report))
        }
        if let problem = report.problems.first {
            let more = report.problems.count > 1 ? " (and \(report.problems.count - 1) more problems)" : ""
            printError("error: \(path): not loadable: \(problem)\(more)")
            throw ExitCode.failure
        }
    }

    /// A LoRA file: its report, and with `--model` whether it fits (a misfit is the `LoRAError` line and exit 1).
    private func inspectLoRA(_ located: String) throws {
        let (report, problem) = try reportingErrors { () throws -> (LoRAReport, String?) in
            if config != nil { throw ValidationError("--config applies to checkpoints; \(path) is a LoRA file") }
            let components = try model.map { try ModelOptions.resolve(model: $0) }
            let file = try LoRAFile.open(located)
            var report = LoRAReport(file)
            guard let model, let components else { return (report, nil) }
            do {
                try LoRAStack([LoRAStack.Entry(file: file, scale: 1)]).check(against: try components.loraTargets())
                report.fit = LoRAReport.Fit(model: model, fits: true)
                return (report, nil)
            } catch let error as LoRAError {
                report.fit = LoRAReport.Fit(model: model, fits: false, problem: "\(error)")
                return (report, "\(error)")
            }
        }
        print(json ? try Self.json(report) : report.render())
        if let problem {
            printError("error: \(problem)")
            throw ExitCode.failure
        }
    }

    private static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
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

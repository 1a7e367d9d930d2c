import ArgumentParser
import FluxCore
import FluxModel
import Foundation

/// Reads `input_ids` (B, L) the way both text encoders take it, refusing a mask the encoders would not apply.
private func textEncoderInputs(_ path: String) throws -> TokenIds {
    let inputs = try EvalInputs(path: path)
    if try inputs.optional("attention_mask") != nil {
        throw ValidationError("\(path): attention_mask is not supported; FluxPipeline calls the text encoders with input_ids only (padding attends)")
    }
    return try TokenIds(try inputs.require("input_ids", expected: "(B, L) token ids"))
}

struct EvalCLIP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clip",
        abstract: "CLIPTextModel.forward: input_ids → last_hidden_state, pooler_output (no attention mask, as FluxPipeline).")

    @OptionGroup var options: EvalOptions

    func run() throws {
        try reportingErrors {
            let backend = try options.device.makeBackend()
            let checkpoint = try CLIPCheckpoint.open(try options.modelPath())
            let ids = try textEncoderInputs(options.inputs)
            let out = try checkpoint.load(on: backend)(ids)
            try writeSafetensors(["last_hidden_state": try backend.download(out.lastHiddenState),
                                  "pooler_output": try backend.download(out.poolerOutput)],
                                 metadata: ["producer": "fluxserve \(fluxServeVersion)", "component": "clip"],
                                 to: options.output)
        }
    }
}

struct EvalT5: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "t5",
        abstract: "T5EncoderModel.forward: input_ids → last_hidden_state (no attention mask, as FluxPipeline).")

    @OptionGroup var options: EvalOptions

    func run() throws {
        try reportingErrors {
            let backend = try options.device.makeBackend()
            let checkpoint = try T5Checkpoint.open(try options.modelPath())
            let ids = try textEncoderInputs(options.inputs)
            let out = try checkpoint.load(on: backend)(ids)
            try writeSafetensors(["last_hidden_state": try backend.download(out)],
                                 metadata: ["producer": "fluxserve \(fluxServeVersion)", "component": "t5"],
                                 to: options.output)
        }
    }
}

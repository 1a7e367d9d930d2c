import ArgumentParser
import FluxCPU
import FluxCUDA
import FluxCore
import Foundation

/// Writes one line to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Runs a command body; any error becomes one `error: ...` line on stderr and exit status 1.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        printError("error: \(error)")
        throw ExitCode.failure
    }
}

/// `--device cpu | cuda | cuda:N` and the backend options (`BackendOptionsBuilder`, docs/configuration.md).
struct DeviceOptions: ParsableArguments {
    @Option(help: "Where to run: cpu, or cuda[:N] for an NVIDIA GPU.")
    var device: String = "cpu"

    @OptionGroup var cpu: CPUFlags
    @OptionGroup var cuda: CUDAFlags

    /// The options these flags and their environment aliases give; throws one line naming a bad flag or variable.
    func configuration() throws -> BackendConfiguration {
        try BackendOptionsBuilder().configuration(device: device, cpu: cpu, cuda: cuda)
    }

    /// The backend for `--device`, after printing the effective configuration once (`config: ...` on stderr).
    func makeBackend() throws -> any Backend {
        let configuration = try configuration()
        configuration.announce()
        return try configuration.makeBackend()
    }
}

/// `--quantize`: how the transformer keeps its blocks' linear weights.
struct QuantizationOptions: ParsableArguments {
    @Option(help: """
        Transformer block weights: none (the checkpoint's precision) or fp8 (e4m3 with per-row scales, activations \
        quantized per token; about twice the GPU's matrix rate, an approximation — see bench/results).
        """)
    var quantize: LinearQuantization = .none
}

extension LinearQuantization: ExpressibleByArgument {}

/// Formats a byte count for people: 1.5 GB, 20.0 MB.
func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"]
    var value = Double(bytes), unit = 0
    while value >= 1000 && unit < units.count - 1 { value /= 1000; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}

/// Whether `path` is a folder (following links).
func isFolder(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
}

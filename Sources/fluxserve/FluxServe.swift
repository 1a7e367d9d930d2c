import ArgumentParser
import Foundation

@main
struct FluxServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fluxserve",
        abstract: "FLUX.1 text-to-image engine and HTTP service.",
        version: fluxServeVersion,
        subcommands: [Generate.self, Serve.self, Inspect.self, Eval.self, Bench.self, BenchCPU.self, Tokenize.self,
                      Selftest.self, Warmup.self])

    /// Runs the command line. Every error, the argument parser's own included, ends as one `error: …` line on
    /// standard error and exit status 1 (the README's promise); `--help` and `--version` print as usual and exit 0.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)  // the command has said why already
        } catch {
            if exitCode(for: error) == .success {  // help, version
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            let words = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            printError("error: " + (words.lowercased().hasPrefix("error: ") ? String(words.dropFirst(7)) : words))
            Foundation.exit(1)
        }
    }
}

/// The program's version, written into PNG metadata and `--version`.
let fluxServeVersion = "0.1.0"

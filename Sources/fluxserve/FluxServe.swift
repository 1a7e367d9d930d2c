import ArgumentParser

@main
struct FluxServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fluxserve",
        abstract: "FLUX.1 text-to-image engine and HTTP service.",
        version: fluxServeVersion,
        subcommands: [Generate.self, Serve.self, Inspect.self, Eval.self, Bench.self, BenchCPU.self, Tokenize.self,
                      Selftest.self, Warmup.self])
}

/// The program's version, written into PNG metadata and `--version`.
let fluxServeVersion = "0.1.0"

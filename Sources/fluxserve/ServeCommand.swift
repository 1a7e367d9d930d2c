import ArgumentParser
import FluxCUDA
import FluxCore
import FluxModel
import FluxServer
import Foundation
import Logging

/// `fluxserve serve --model M`: the HTTP service (OpenAI Images API, async jobs, SSE, metrics).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the model over HTTP: OpenAI Images API, async jobs with events, health, metrics.",
        discussion: """
            API keys: FLUXSERVE_API_KEYS (comma-separated) and/or --api-key-file (one per line); with none, every \
            endpoint is open. SIGTERM stops accepting work, finishes or re-queues the running batch and exits 0.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var quantization: QuantizationOptions

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on (0: any free port; the 'listening' log line names it).")
    var port: Int = 8080

    @Option(help: "Folder for the job database (jobs.sqlite) and result PNGs (files/).")
    var dataDir: String = "fluxserve-data"

    @Option(help: "Jobs that may wait before submissions get 429.")
    var maxQueue: Int = 64

    @Option(help: "Images per batch: queued jobs with the same size, steps and guidance run together.")
    var maxBatch: Int = 4

    @Option(help: "Largest request body in bytes (413 beyond), except bodies with uploaded images.")
    var maxBodyBytes: Int = 1 << 20

    @Option(help: "Largest request body with uploaded images (multipart, or JSON with a base64 image), in bytes.")
    var maxUploadBytes: Int = 25_000_000

    @Option(help: "Smallest image side in pixels.")
    var minSize: Int = 64

    @Option(help: "Largest image side in pixels.")
    var maxSize: Int = 2048

    @Option(help: "Most denoising steps a request may ask for (at most 1000).")
    var maxSteps: Int = 100

    @Option(help: "Most images per request (n).")
    var maxImages: Int = 4

    @Option(help: "Longest prompt in characters.")
    var maxPromptLength: Int = 4000

    @Option(help: "Hours a finished job and its images are kept.")
    var resultTtlHours: Double = 24

    @Option(help: "File of API keys, one per line ('#' comments).")
    var apiKeyFile: String?

    @Option(help: "Endpoints open without a key: comma-separated from health, metrics, openapi; or 'none'.")
    var publicEndpoints: String = "health,openapi"

    @Option(help: "Base of result URLs (e.g. https://img.example.com); default: from the request's Host.")
    var publicUrl: String?

    @Option(help: "Seconds a synchronous request waits for its images.")
    var syncTimeout: Double = 600

    @Option(help: "Seconds the running batch may take after SIGTERM before it is re-queued.")
    var shutdownGrace: Double = 20

    @Option(help: ArgumentHelp("Folder of LoRA files (*.safetensors) requests may name in 'loras' (by file name "
                               + "without the extension); GET /v1/loras lists them. Builds the model with LoRA slots.",
                               valueName: "dir"))
    var loraDir: String?

    enum LoRAMode: String, ExpressibleByArgument, CaseIterable { case auto, swap, beside }

    @Option(help: ArgumentHelp("How a request's LoRAs reach the model: swap (a merged copy of each adapted layer, "
                               + "made at each switch: steps as fast as without, memory for the copies and, with fp8, "
                               + "the layers' dense weights), beside (y = W·x + up·(down·x) each step: no memory, "
                               + "slower steps), auto (swap, or beside with --quantize fp8)."))
    var loraMode: LoRAMode = .auto

    @Option(help: "Log format: json or text.")
    var logFormat: String = "json"

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0…65535") }
        guard maxQueue >= 1, maxBatch >= 1, maxBodyBytes >= 1024, maxUploadBytes >= 1024 else {
            throw ValidationError("--max-queue and --max-batch must be ≥ 1, --max-body-bytes and --max-upload-bytes ≥ 1024")
        }
        guard minSize >= 16, minSize <= maxSize, maxSize <= 8192 else {
            throw ValidationError("--min-size/--max-size: need 16 ≤ min ≤ max ≤ 8192")
        }
        guard (1...1000).contains(maxSteps), (1...64).contains(maxImages), maxPromptLength >= 1 else {
            throw ValidationError("--max-steps 1…1000, --max-images 1…64, --max-prompt-length ≥ 1")
        }
        guard resultTtlHours > 0, syncTimeout > 0, shutdownGrace >= 0 else {
            throw ValidationError("--result-ttl-hours and --sync-timeout must be > 0, --shutdown-grace ≥ 0")
        }
        guard ["json", "text"].contains(logFormat) else { throw ValidationError("--log-format: json or text") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel): unknown") }
        _ = try publicSet()
    }

    func publicSet() throws -> Set<PublicEndpoint> {
        if publicEndpoints == "none" || publicEndpoints.isEmpty { return [] }
        return Set(try publicEndpoints.split(separator: ",").map { name in
            guard let endpoint = PublicEndpoint(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--public-endpoints: unknown '\(name)'; use health, metrics, openapi or none")
            }
            return endpoint
        })
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let json = logFormat == "json"
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = json ? JSONLogHandler(label: label) : StreamLogHandler.standardOutput(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "fluxserve")
        do {
            var config = ServerConfig(dataDirectory: dataDir)
            config.host = host
            config.port = port
            config.maxQueue = maxQueue
            config.maxBatch = maxBatch
            config.maxBodyBytes = maxBodyBytes
            config.maxUploadBytes = maxUploadBytes
            config.imageLimits.maxBytes = maxUploadBytes
            config.limits.minSide = minSize
            config.limits.maxSide = maxSize
            config.limits.maxSteps = maxSteps
            config.limits.maxImages = maxImages
            config.limits.maxPromptCharacters = maxPromptLength
            config.resultTTL = resultTtlHours * 3600
            config.apiKeys = try APIKeys.load(environment: ProcessInfo.processInfo.environment, file: apiKeyFile)
            config.publicEndpoints = try publicSet()
            config.publicURL = publicUrl
            config.syncTimeout = syncTimeout
            config.shutdownGrace = shutdownGrace
            config.version = fluxServeVersion
            config.loraDirectory = loraDir

            // Bad backend options stop the service before it listens; the line says what the workers will use.
            let backendConfiguration = try device.configuration()
            backendConfiguration.announce()
            let components = try model.resolve()
            let device = self.device
            let resolvedLoRAMode: LowRankSlots.Mode = switch loraMode {
            case .swap: .swap
            case .beside: .beside
            case .auto: quantization.quantize == .fp8 ? .beside : .swap
            }
            let generator = try PipelineGenerator(
                modelName: model.name, components: components, quantization: quantization.quantize,
                loraMode: loraDir == nil ? nil : resolvedLoRAMode, makeBackend: { try backendConfiguration.makeBackend() },
                memoryProbe: { backend in
                    guard let cuda = backend as? CUDABackend, let memory = try? cuda.memoryInfo() else { return nil }
                    return (memory.total - memory.free, memory.total)
                })
            logger.info("starting", metadata: [
                "model": "\(model.name)", "device": "\(device.device)", "data_dir": "\(dataDir)",
                "api_keys": "\(config.apiKeys.count)", "version": "\(fluxServeVersion)",
                "lora_dir": "\(loraDir ?? "none")", "lora_mode": "\(loraDir == nil ? "none" : "\(resolvedLoRAMode)")",
            ])
            let server = try await buildApplication(config: config, generator: generator, logger: logger)
            try await server.run()
        } catch {
            logger.critical("fatal", metadata: ["error": "\(error)"])
            printError("error: \(error)")
            // _exit, not exit: the worker thread may still be loading the model (a failed bind cancels the service
            // group at once), and exit handlers (OpenBLAS's, C++ destructors) would free memory under it.
            fflush(nil)
            _exit(ExitCode.failure.rawValue)
        }
    }
}

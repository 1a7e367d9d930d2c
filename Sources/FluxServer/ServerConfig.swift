import FluxImages
import FluxModel
import Foundation

/// What one request may ask for. Sizes in pixels; the model's own geometry (multiples of 16 for FLUX) is checked too.
public struct GenerationLimits: Sendable, Equatable {
    public var minSide = 64
    public var maxSide = 2048
    public var maxSteps = 100
    /// Images per request (`n`).
    public var maxImages = 4
    /// Prompt length in characters (grapheme clusters).
    public var maxPromptCharacters = 4000
    public var maxGuidance: Float = 30

    public init() {}

    /// The rules every generation obeys, at these limits' sizes and guidance.
    var rules: GenerationRules {
        GenerationRules(sides: minSide...max(minSide, maxSide), guidance: 0...Double(maxGuidance))
    }
}

/// Endpoints that may be opened to callers without an API key.
public enum PublicEndpoint: String, CaseIterable, Sendable {
    /// `GET /healthz` and `GET /readyz`.
    case health
    /// `GET /metrics`.
    case metrics
    /// `GET /openapi.yaml`.
    case openapi
}

/// Everything `fluxserve serve` can be told; defaults are what the command uses without flags.
public struct ServerConfig: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (the log line "listening" names it).
    public var port = 8080
    /// Holds `jobs.sqlite`, `files/` (the PNGs) and `inputs/` (edit jobs' uploads).
    public var dataDirectory: String
    /// Jobs waiting (not running) before submissions are answered 429.
    public var maxQueue = 64
    /// Images per batch: queued jobs with the same size, steps, guidance and cache threshold run together.
    public var maxBatch = 4
    /// Request bodies larger than this are answered 413, except those that carry images (below).
    public var maxBodyBytes = 1 << 20
    /// Bodies with uploaded images (multipart, or JSON with a base64 `image`): larger ones are answered 413.
    public var maxUploadBytes = 25_000_000
    /// What an uploaded image may declare (sides, pixels) before it is decoded; beyond, 400 naming the limit.
    public var imageLimits = ImageLimits(maxBytes: 25_000_000, maxPixels: 4096 * 4096, maxSide: 8192)
    public var limits = GenerationLimits()
    /// Bearer keys; empty means no authentication (a warning is logged).
    public var apiKeys: [String] = []
    public var publicEndpoints: Set<PublicEndpoint> = [.health, .openapi]
    /// Seconds a finished job and its PNGs are kept.
    public var resultTTL: Double = 86_400
    /// Seconds between sweeps for expired results.
    public var sweepInterval: Double = 60
    /// Base of result URLs (`https://images.example.com`); default: from the request's Host header.
    public var publicURL: String?
    /// Seconds a synchronous (OpenAI) request waits for its images before 504.
    public var syncTimeout: Double = 600
    /// Seconds the running batch may take after SIGTERM before it is stopped and re-queued.
    public var shutdownGrace: Double = 20
    /// Starts of one job (crashes included) before it is failed instead of re-queued.
    public var maxAttempts = 3
    /// Written into PNG metadata.
    public var version = "dev"
    /// Seconds between SSE keep-alive comments.
    public var keepAliveInterval: Double = 15
    /// `--lora-dir`: the folder whose `*.safetensors` LoRAs requests may name (`loras`, `GET /v1/loras`); nil = no
    /// LoRAs. The generator must then be built for LoRAs (`PipelineGenerator(loraMode:)`).
    public var loraDirectory: String?

    public init(dataDirectory: String) {
        self.dataDirectory = dataDirectory
    }
}

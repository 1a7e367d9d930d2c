import Foundation

public enum JobStatus: String, Codable, Sendable, CaseIterable {
    case queued, running, succeeded, failed, cancelled

    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// How a job was submitted: through the jobs API (`async`, survives restarts) or an OpenAI request whose caller waits
/// on the connection (`sync`; after a crash its caller is gone, so it is failed rather than re-run).
public enum JobKind: String, Codable, Sendable {
    case async, sync
}

/// One image of a finished job: its file (served at `/v1/files/{file}.png`) and the seed that made it.
public struct JobImage: Codable, Sendable, Equatable {
    public var file: String
    public var seed: UInt64
}

/// A job as stored.
public struct JobRecord: Sendable, Equatable {
    public var id: String
    public var kind: JobKind
    public var status: JobStatus
    public var parameters: JobParameters
    public var owner: String
    /// Hex SHA-256 of the API key that created the job (never the key); nil without authentication and for jobs
    /// stored before keys were recorded.
    public var ownerKeyDigest: String? = nil
    public var idempotencyKey: String?
    /// The request as the client sent it (canonical JSON), to tell a retry from a different request under the same
    /// idempotency key.
    public var requestFingerprint: String
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// How many times the job was started (a crash mid-run makes it 2 on the next start).
    public var attempts: Int
    public var images: [JobImage]
    /// Seconds per stage of the run that made the result: `encode`, `denoise`, `decode`.
    public var timings: [String: Double]
    public var errorCode: String?
    public var errorMessage: String?

    /// Ids are random (96 bits), so a job or file URL cannot be guessed.
    static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<12).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return "job_" + bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// File name (without `.png`) of image `index` of job `id`: fixed, so a re-run overwrites rather than adds.
    static func fileID(job id: String, index: Int) -> String { "\(id)_\(index)" }

    /// File ids look like `job_<24 hex>_<n>`; nothing else reaches the file system.
    static func isValidFileID(_ id: Substring) -> Bool {
        id.count <= 64 && !id.isEmpty && id.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || c == 0x5F
        }
    }
}

import FluxModel
import Foundation
import GRDB

/// Jobs, their parameters and results in SQLite (GRDB), PNGs in `files/` beside it, edit jobs' uploads in
/// `inputs/<job id>/`. Every change that a client was
/// told about (a 202, a status) is committed with `synchronous = FULL` before it is told: a `kill -9` loses nothing
/// that was answered.
public final class JobStore: Sendable {
    let database: DatabaseQueue
    public let databasePath: String
    public let filesDirectory: URL
    /// The data directory: `input_image`/`input_mask` are relative to it.
    let root: URL

    public init(directory: String) throws {
        root = URL(fileURLWithPath: directory, isDirectory: true)
        filesDirectory = root.appendingPathComponent("files", isDirectory: true)
        try FileManager.default.createDirectory(at: filesDirectory, withIntermediateDirectories: true)
        databasePath = root.appendingPathComponent("jobs.sqlite").path
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        database = try DatabaseQueue(path: databasePath, configuration: configuration)
        try Self.migrator.migrate(database)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE job (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- submission order: the queue's order
                    id TEXT NOT NULL UNIQUE,
                    kind TEXT NOT NULL,
                    status TEXT NOT NULL,
                    parameters TEXT NOT NULL,                -- JSON of JobParameters
                    owner TEXT NOT NULL,
                    idempotency_key TEXT,
                    request_fingerprint TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    started_at REAL,
                    finished_at REAL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    images TEXT NOT NULL DEFAULT '[]',       -- JSON of [JobImage]
                    timings TEXT NOT NULL DEFAULT '{}',
                    error_code TEXT,
                    error_message TEXT
                );
                CREATE UNIQUE INDEX job_idempotency ON job(owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
                CREATE INDEX job_status ON job(status, seq);
                CREATE INDEX job_finished ON job(finished_at) WHERE finished_at IS NOT NULL;
                """)
        }
        // Which key created a job, for listing a caller's jobs. Older rows keep NULL: no key lists them.
        migrator.registerMigration("v2-owner-key-digest") { db in
            try db.execute(sql: """
                ALTER TABLE job ADD COLUMN owner_key_sha256 TEXT;
                CREATE INDEX job_owner_key ON job(owner_key_sha256, seq);
                """)
        }
        // Edits and true CFG: the settings `JobParameters` keeps outside its JSON, and the uploaded files (paths
        // relative to the data directory) with their SHA-256. Older rows are text-to-image without true CFG.
        migrator.registerMigration("v3-edit-inputs") { db in
            try db.execute(sql: """
                ALTER TABLE job ADD COLUMN mode TEXT NOT NULL DEFAULT 'text-to-image';
                ALTER TABLE job ADD COLUMN negative_prompt TEXT;
                ALTER TABLE job ADD COLUMN true_cfg_scale REAL NOT NULL DEFAULT 1;
                ALTER TABLE job ADD COLUMN strength REAL;
                ALTER TABLE job ADD COLUMN mask_rule TEXT;
                ALTER TABLE job ADD COLUMN input_image TEXT;
                ALTER TABLE job ADD COLUMN input_image_sha256 TEXT;
                ALTER TABLE job ADD COLUMN input_mask TEXT;
                ALTER TABLE job ADD COLUMN input_mask_sha256 TEXT;
                ALTER TABLE job ADD COLUMN reference_width INTEGER;
                ALTER TABLE job ADD COLUMN reference_height INTEGER;
                """)
        }
        // LoRAs: JSON of [LoRAChoice] (name, scale, the file's SHA-256), in the order given. Older rows ran none.
        migrator.registerMigration("v4-loras") { db in
            try db.execute(sql: "ALTER TABLE job ADD COLUMN loras TEXT NOT NULL DEFAULT '[]';")
        }
        return migrator
    }

    // MARK: Reading

    public func job(_ id: String) async throws -> JobRecord? {
        try await database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id]).map(Self.record)
        }
    }

    public func job(owner: String, idempotencyKey: String) async throws -> JobRecord? {
        try await database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM job WHERE owner = ? AND idempotency_key = ?",
                             arguments: [owner, idempotencyKey]).map(Self.record)
        }
    }

    /// One page of jobs, newest first: those created with the key whose SHA-256 is `ownerKeyDigest` (every job when
    /// nil), older than the job `after` when given, at most `limit`. `hasMore` says whether older ones remain; nil
    /// when `after` names no such job.
    public func jobs(ownerKeyDigest: String?, after: String?, limit: Int) async throws
        -> (jobs: [JobRecord], hasMore: Bool)?
    {
        try await database.read { db in
            var conditions: [String] = [], arguments: [(any DatabaseValueConvertible)?] = []
            if let ownerKeyDigest {
                conditions.append("owner_key_sha256 = ?")
                arguments.append(ownerKeyDigest)
            }
            if let after {
                var lookup = "SELECT seq FROM job WHERE id = ?"
                var lookupArguments: [(any DatabaseValueConvertible)?] = [after]
                if let ownerKeyDigest {
                    lookup += " AND owner_key_sha256 = ?"
                    lookupArguments.append(ownerKeyDigest)
                }
                guard let seq = try Int64.fetchOne(db, sql: lookup, arguments: StatementArguments(lookupArguments))
                else { return nil }
                conditions.append("seq < ?")
                arguments.append(seq)
            }
            let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
            arguments.append(limit + 1)
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM job\(filter) ORDER BY seq DESC LIMIT ?",
                                        arguments: StatementArguments(arguments))
            let jobs = try rows.prefix(limit).map(Self.record)
            return (jobs, rows.count > limit)
        }
    }

    /// Jobs in `statuses`, oldest first.
    public func jobs(in statuses: [JobStatus]) async throws -> [JobRecord] {
        try await database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM job WHERE status IN (\(statuses.map { _ in "?" }.joined(separator: ",")))"
                                 + " ORDER BY seq", arguments: StatementArguments(statuses.map(\.rawValue)))
                .map(Self.record)
        }
    }

    // MARK: Changes

    public enum InsertOutcome: Sendable {
        case inserted(JobRecord)
        /// A job with the same owner and idempotency key exists.
        case existing(JobRecord)
    }

    public func insert(_ job: JobRecord) async throws -> InsertOutcome {
        try await database.write { db in
            if let key = job.idempotencyKey, let existing = try Row.fetchOne(
                db, sql: "SELECT * FROM job WHERE owner = ? AND idempotency_key = ?", arguments: [job.owner, key]) {
                return .existing(try Self.record(existing))
            }
            let p = job.parameters, edit = p.edit
            try db.execute(sql: """
                INSERT INTO job (id, kind, status, parameters, owner, owner_key_sha256, idempotency_key,
                                 request_fingerprint, created_at, attempts, mode, negative_prompt, true_cfg_scale,
                                 strength, mask_rule, input_image, input_image_sha256, input_mask, input_mask_sha256,
                                 reference_width, reference_height, loras)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [job.id, job.kind.rawValue, job.status.rawValue, try Self.json(p),
                                 job.owner, job.ownerKeyDigest, job.idempotencyKey, job.requestFingerprint,
                                 job.createdAt.timeIntervalSince1970, p.mode.rawValue, p.negativePrompt,
                                 Double(p.trueCFGScale), p.strength, edit.map { EditInput.name(of: $0.maskRule) },
                                 edit?.imageFile, edit?.imageSHA256, edit?.maskFile, edit?.maskSHA256,
                                 edit?.referenceWidth, edit?.referenceHeight, try Self.json(p.loras)])
            return .inserted(job)
        }
    }

    /// Moves the queued ones of `ids` to running and counts the attempt; returns those moved (a job cancelled while
    /// it waited is left out).
    public func markRunning(_ ids: [String], at date: Date) async throws -> [JobRecord] {
        try await database.write { db in
            var started: [JobRecord] = []
            for id in ids {
                try db.execute(sql: """
                    UPDATE job SET status = 'running', started_at = ?, attempts = attempts + 1
                    WHERE id = ? AND status = 'queued'
                    """, arguments: [date.timeIntervalSince1970, id])
                if db.changesCount > 0, let row = try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?",
                                                                  arguments: [id]) {
                    started.append(try Self.record(row))
                }
            }
            return started
        }
    }

    /// Records the result of a running job; nil if it is no longer running (cancelled meanwhile).
    public func complete(_ id: String, images: [JobImage], timings: [String: Double], at date: Date) async throws
        -> JobRecord?
    {
        let imagesJSON = try Self.json(images), timingsJSON = try Self.json(timings)
        return try await database.write { db in
            try db.execute(sql: """
                UPDATE job SET status = 'succeeded', finished_at = ?, images = ?, timings = ?
                WHERE id = ? AND status = 'running'
                """, arguments: [date.timeIntervalSince1970, imagesJSON, timingsJSON, id])
            guard db.changesCount > 0 else { return nil }
            return try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id]).map(Self.record)
        }
    }

    /// Fails a job that is in one of `from`; nil if it is not.
    public func fail(_ id: String, code: String, message: String, at date: Date,
                     from: [JobStatus] = [.queued, .running]) async throws -> JobRecord? {
        try await database.write { db in
            try db.execute(sql: """
                UPDATE job SET status = 'failed', finished_at = ?, error_code = ?, error_message = ?
                WHERE id = ? AND status IN (\(from.map { "'\($0.rawValue)'" }.joined(separator: ",")))
                """, arguments: [date.timeIntervalSince1970, code, message, id])
            guard db.changesCount > 0 else { return nil }
            return try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id]).map(Self.record)
        }
    }

    public enum CancelOutcome: Sendable {
        /// It was queued or running; `wasRunning` tells whether a worker has to stop.
        case cancelled(JobRecord, wasRunning: Bool)
        case alreadyFinished(JobRecord)
        case notFound
    }

    public func cancel(_ id: String, at date: Date) async throws -> CancelOutcome {
        try await database.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id]) else {
                return .notFound
            }
            let job = try Self.record(row)
            guard !job.status.isTerminal else { return .alreadyFinished(job) }
            try db.execute(sql: """
                UPDATE job SET status = 'cancelled', finished_at = ?, error_code = 'cancelled',
                               error_message = 'cancelled by request'
                WHERE id = ?
                """, arguments: [date.timeIntervalSince1970, id])
            guard let updated = try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id]) else {
                return .notFound
            }
            return .cancelled(try Self.record(updated), wasRunning: job.status == .running)
        }
    }

    /// Puts running jobs back in the queue (the running batch was stopped at shutdown).
    public func requeue(_ ids: [String]) async throws {
        try await database.write { db in
            for id in ids {
                try db.execute(sql: "UPDATE job SET status = 'queued', started_at = NULL WHERE id = ? AND status = 'running'",
                               arguments: [id])
            }
        }
    }

    public struct Recovery: Sendable {
        /// Jobs that were running when the last process stopped and will run again.
        public var requeued: [String]
        /// Jobs failed instead: synchronous ones (their caller is gone) and those started `maxAttempts` times.
        public var failed: [String]
        /// Everything queued now, oldest first.
        public var queued: [JobRecord]
    }

    /// At start-up, before the worker runs: what the previous process left running is re-queued (or failed, see
    /// `Recovery`), so every accepted job either has its result or runs again — once.
    public func recover(maxAttempts: Int, at date: Date) async throws -> Recovery {
        try await database.write { db in
            var requeued: [String] = [], failed: [String] = []
            let now = date.timeIntervalSince1970
            for row in try Row.fetchAll(db, sql: "SELECT * FROM job WHERE status IN ('queued', 'running') ORDER BY seq") {
                let job = try Self.record(row)
                if job.kind == .sync {
                    try db.execute(sql: """
                        UPDATE job SET status = 'failed', finished_at = ?, error_code = 'interrupted',
                                       error_message = 'the server stopped while the request waited' WHERE id = ?
                        """, arguments: [now, job.id])
                    failed.append(job.id)
                } else if job.status == .running && job.attempts >= maxAttempts {
                    try db.execute(sql: """
                        UPDATE job SET status = 'failed', finished_at = ?, error_code = 'too_many_attempts',
                                       error_message = ? WHERE id = ?
                        """, arguments: [now, "the server stopped during each of \(job.attempts) attempts", job.id])
                    failed.append(job.id)
                } else if job.status == .running {
                    try db.execute(sql: "UPDATE job SET status = 'queued', started_at = NULL WHERE id = ?",
                                   arguments: [job.id])
                    requeued.append(job.id)
                }
            }
            let queued = try Row.fetchAll(db, sql: "SELECT * FROM job WHERE status = 'queued' ORDER BY seq")
                .map(Self.record)
            return Recovery(requeued: requeued, failed: failed, queued: queued)
        }
    }

    /// Deletes finished jobs older than `date` and returns them (their files are the caller's to delete).
    public func expire(finishedBefore date: Date) async throws -> [JobRecord] {
        try await database.write { db in
            let cutoff = date.timeIntervalSince1970
            let old = try Row.fetchAll(db, sql: "SELECT * FROM job WHERE finished_at IS NOT NULL AND finished_at < ?",
                                       arguments: [cutoff]).map(Self.record)
            try db.execute(sql: "DELETE FROM job WHERE finished_at IS NOT NULL AND finished_at < ?", arguments: [cutoff])
            return old
        }
    }

    /// Checkpoints the write-ahead log into the database file and closes it.
    public func close() throws {
        try database.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
        try database.close()
    }

    // MARK: Files

    public func fileURL(_ fileID: String) -> URL { filesDirectory.appendingPathComponent(fileID + ".png") }

    /// Writes a PNG so that a reader sees the whole file or none (temporary name, then rename).
    func writeFile(_ fileID: String, bytes: [UInt8]) throws {
        let target = fileURL(fileID)
        let temporary = filesDirectory.appendingPathComponent(".\(fileID).\(UInt32.random(in: 0...UInt32.max)).tmp")
        try Data(bytes).write(to: temporary)
        if FileManager.default.fileExists(atPath: target.path) { try FileManager.default.removeItem(at: target) }
        try FileManager.default.moveItem(at: temporary, to: target)
    }

    /// The job's PNGs and its uploaded inputs.
    func removeFiles(of job: JobRecord) {
        for image in job.images { try? FileManager.default.removeItem(at: fileURL(image.file)) }
        removeInputs(of: job.id)
    }

    // MARK: Rows

    static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func record(_ row: Row) throws -> JobRecord {
        let decoder = JSONDecoder()
        func decode<T: Decodable>(_ type: T.Type, _ column: String) throws -> T {
            let text: String = row[column] ?? ""
            do { return try decoder.decode(T.self, from: Data(text.utf8)) } catch {
                throw StoreError.corruptRow(column: column, reason: "\(error)")
            }
        }
        guard let kind = JobKind(rawValue: row["kind"] ?? ""), let status = JobStatus(rawValue: row["status"] ?? "") else {
            throw StoreError.corruptRow(column: "kind/status", reason: "unknown value")
        }
        let started: Double? = row["started_at"], finished: Double? = row["finished_at"]
        var parameters = try decode(JobParameters.self, "parameters")
        parameters.negativePrompt = row["negative_prompt"]
        parameters.trueCFGScale = Float(row["true_cfg_scale"] as Double? ?? 1)
        parameters.strength = row["strength"]
        parameters.edit = try editInput(row)
        parameters.loras = try decode([LoRAChoice].self, "loras")
        return JobRecord(
            id: row["id"], kind: kind, status: status, parameters: parameters,
            owner: row["owner"], ownerKeyDigest: row["owner_key_sha256"], idempotencyKey: row["idempotency_key"],
            requestFingerprint: row["request_fingerprint"],
            createdAt: Date(timeIntervalSince1970: row["created_at"]),
            startedAt: started.map(Date.init(timeIntervalSince1970:)),
            finishedAt: finished.map(Date.init(timeIntervalSince1970:)),
            attempts: row["attempts"], images: try decode([JobImage].self, "images"),
            timings: try decode([String: Double].self, "timings"),
            errorCode: row["error_code"], errorMessage: row["error_message"])
    }
}

public enum StoreError: Error, CustomStringConvertible {
    case corruptRow(column: String, reason: String)
    case dataDirectoryInUse(String)
    case missingInput(String)

    public var description: String {
        switch self {
        case .corruptRow(let column, let reason): "job store: bad value in column \(column): \(reason)"
        case .dataDirectoryInUse(let path): "data directory \(path) is in use by another fluxserve process"
        case .missingInput(let path): "job store: the uploaded input \(path) is missing"
        }
    }
}

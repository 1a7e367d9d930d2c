#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// A safetensors file: an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data area.
// The JSON maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets count from the start of
// the data area) and may hold "__metadata__": {string: string}.
//
// What this reader accepts, against the reference (huggingface/safetensors, `safetensors/src/tensor.rs`):
// - the same: header at most 100 MB; JSON whitespace before and after the object; dtype strings as the reference
//   spells them; unknown fields inside a tensor entry are ignored; zero-sized tensors (begin == end).
// - stricter: duplicate keys are an error (we parse the JSON ourselves to see them; serde keeps the last one);
//   numbers must be plain non-negative integers; the JSON may nest at most 64 levels; a tensor name may not be empty.
// - looser: the reference wants spans to tile the data area exactly, in offset order. We only require every span to
//   lie inside the data area and no two to share a byte; gaps and trailing bytes are allowed and reported in
//   `unusedByteRanges`, so `inspect` can show them. Files we write have none.
// Nothing after the header is read until a tensor's bytes are used: the file is mapped read-only (MAP_PRIVATE) and
// pages come in on first touch. A file truncated by another process *after* it was opened can still fault on access
// (SIGBUS); no mmap reader can prevent that.

/// Where one tensor lives in a safetensors file.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Bytes within the data area (not the file): `data_offsets` of the header.
    public let byteRange: Range<Int>

    public init(name: String, dtype: DType, shape: [Int], byteRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
    }

    public var elementCount: Int { byteRange.count / dtype.byteSize }
}

/// One safetensors file, opened and fully validated; tensors are zero-copy views into a read-only mapping.
public final class SafetensorsFile: @unchecked Sendable {
    /// The largest header accepted, as in the reference implementation.
    public static let maxHeaderByteCount = 100_000_000

    public let path: String
    /// The header's `__metadata__` (empty when absent).
    public let metadata: [String: String]
    /// Length of the JSON header (the N of the first 8 bytes), padding included.
    public let headerByteCount: Int
    /// Size of the data area: the file size less 8 + `headerByteCount`.
    public let dataByteCount: Int
    /// Parts of the data area that no tensor covers (gaps between spans, bytes after the last), in order.
    public let unusedByteRanges: [Range<Int>]

    private let infosByName: [String: SafetensorsTensorInfo]
    private let sortedNames: [String]
    private let mapping: FileMapping

    /// Opens `path`, checks the whole header (lengths, UTF-8, JSON, dtypes, shapes, spans) and maps the file.
    /// Throws `SafetensorsError` for anything wrong; reads no tensor data.
    public init(path: String) throws {
        self.path = path
        let file = try ReadOnlyFile(path: path)
        defer { file.release() }
        var prefix = [UInt8](repeating: 0, count: min(file.size, 32))
        try file.read(into: &prefix, at: 0)
        // Past the first check that fails, a file of another known format is named as such.
        func otherwise(_ error: SafetensorsError) -> SafetensorsError {
            FileSignature.describe(prefix).map { .otherFormat(path: path, format: $0) } ?? error
        }
        guard file.size >= 8 else { throw otherwise(.tooSmall(path: path, size: file.size)) }

        let length = prefix[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard length <= UInt64(Self.maxHeaderByteCount) else {
            throw otherwise(.headerTooLarge(path: path, length: length, limit: Self.maxHeaderByteCount))
        }
        let headerCount = Int(length)  // ≤ 100 MB, fits
        guard headerCount <= file.size - 8 else {
            throw otherwise(.headerPastEnd(path: path, length: length, fileSize: file.size))
        }
        // A header always opens with its object (whitespace allowed, as the reference); anything else was never
        // a safetensors file.
        if let first = prefix.dropFirst(8).first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }),
           first != UInt8(ascii: "{"), let format = FileSignature.describe(prefix)
        {
            throw SafetensorsError.otherFormat(path: path, format: format)
        }
        var json = [UInt8](repeating: 0, count: headerCount)
        try file.read(into: &json, at: 8)

        let dataCount = file.size - 8 - headerCount
        let header = try SafetensorsHeader(json: json, path: path, dataByteCount: dataCount)
        mapping = try FileMapping(file: file)
        metadata = header.metadata
        headerByteCount = headerCount
        dataByteCount = dataCount
        unusedByteRanges = header.unusedByteRanges
        infosByName = Dictionary(header.tensors.map { ($0.name, $0) }) { first, _ in first }  // names are unique
        sortedNames = header.tensors.map(\.name)
    }

    /// Tensor names, sorted.
    public var names: [String] { sortedNames }

    /// Every tensor's entry, in name order.
    public var tensorInfos: [SafetensorsTensorInfo] { sortedNames.compactMap { infosByName[$0] } }

    /// Byte offset of the data area within the file.
    public var dataOffset: Int { 8 + headerByteCount }

    public func info(_ name: String) -> SafetensorsTensorInfo? { infosByName[name] }

    /// The tensor `name` as a view into the mapping (no copy); the view keeps the file mapped.
    public func tensor(_ name: String) throws -> HostTensor {
        guard let info = infosByName[name] else { throw SafetensorsError.tensorNotFound(path: path, tensor: name) }
        // Validated at init: dataOffset + byteRange lies within the mapping, and shape × dtype = byteRange.count.
        let start = mapping.base + dataOffset + info.byteRange.lowerBound
        return HostTensor(shape: info.shape, dtype: info.dtype,
                          bytes: UnsafeRawBufferPointer(start: start, count: info.byteRange.count), owner: mapping)
    }
}

// MARK: - Files

/// `strerror` as a Swift string.
func systemErrorText(_ code: Int32) -> String { String(cString: strerror(code)) }

/// The kind of thing at a path, from `stat` (following links).
enum PathKind: Equatable {
    case missing, file, folder
    case other(String)

    init(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { self = .missing; return }
        self = PathKind(mode: info.st_mode)
    }

    init(mode: mode_t) {
        switch mode & mode_t(S_IFMT) {
        case mode_t(S_IFREG): self = .file
        case mode_t(S_IFDIR): self = .folder
        case mode_t(S_IFIFO): self = .other("pipe")
        case mode_t(S_IFSOCK): self = .other("socket")
        case mode_t(S_IFCHR), mode_t(S_IFBLK): self = .other("device")
        default: self = .other("special file")
        }
    }
}

/// A regular file open for reading. Opened non-blocking so that a pipe at `path` cannot hang us before the type check.
struct ReadOnlyFile {
    let path: String
    let descriptor: Int32
    let size: Int

    init(path: String) throws(SafetensorsError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw .notFound(path: path) }
            throw .unreadable(path: path, reason: systemErrorText(code))
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw .unreadable(path: path, reason: systemErrorText(code))
        }
        let kind = PathKind(mode: info.st_mode)
        guard kind == .file else {
            close(fd)
            if case let .other(name) = kind { throw .notAFile(path: path, kind: name) }
            throw .notAFile(path: path, kind: "folder")
        }
        descriptor = fd
        size = Int(info.st_size)
    }

    /// Fills `buffer` from byte `offset`; a short file (one that shrank since `fstat`) is an error.
    func read(into buffer: inout [UInt8], at offset: Int) throws(SafetensorsError) {
        let failure: String? = buffer.withUnsafeMutableBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pread(descriptor, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    return systemErrorText(errno)
                }
                if n == 0 { return "file ended at byte \(offset + done), expected \(offset + raw.count)" }
                done += n
            }
            return nil
        }
        if let failure { throw .unreadable(path: path, reason: failure) }
    }

    /// Closes the descriptor; a mapping made from it stays valid.
    func release() { close(descriptor) }
}

/// A read-only private mapping of a whole file; unmapped when the last tensor view and the file object are gone.
final class FileMapping: @unchecked Sendable {
    let base: UnsafeRawPointer
    let byteCount: Int

    init(file: ReadOnlyFile) throws(SafetensorsError) {
        // `file.size` ≥ 8 here: a zero-length mapping is not possible, and the caller has checked.
        guard let address = mmap(nil, file.size, PROT_READ, MAP_PRIVATE, file.descriptor, 0),
              address != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw .unreadable(path: file.path, reason: "mmap failed: \(systemErrorText(errno))")
        }
        base = UnsafeRawPointer(address)
        byteCount = file.size
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), byteCount) }
}

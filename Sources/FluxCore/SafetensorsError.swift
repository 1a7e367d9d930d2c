/// Everything that can be wrong with a safetensors file, an index json or a checkpoint folder, and with writing one.
///
/// Each case names the file (`path`), the tensor where there is one, and the reason; `description` is one line fit
/// for `error: ...` output. Offsets and sizes are bytes; "data area" means the bytes after the 8-byte length and the
/// JSON header, which is what `data_offsets` count from.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    // Opening.
    /// No file or folder at `path`.
    case notFound(path: String)
    /// The file exists but could not be opened, read or mapped (permissions, I/O error): the system's words.
    case unreadable(path: String, reason: String)
    /// `path` is a folder, a device, a pipe or a socket where a safetensors file was expected.
    case notAFile(path: String, kind: String)
    /// Shorter than the 8-byte header length (an empty file included).
    case tooSmall(path: String, size: Int)
    /// Another format (`FileSignature`): a GGUF, a pickle, an image, a Git LFS pointer, ….
    case otherFormat(path: String, format: String)

    // The header.
    /// The header length field exceeds the limit (100 MB, as the reference implementation).
    case headerTooLarge(path: String, length: UInt64, limit: Int)
    /// The header length field points past the end of the file: a truncated file or a corrupt length.
    case headerPastEnd(path: String, length: UInt64, fileSize: Int)
    /// The header is not valid UTF-8; `offset` is the first bad byte, counted from the start of the JSON.
    case headerNotUTF8(path: String, offset: Int)
    /// The header is not the JSON this format allows (syntax, duplicate key, not an object); `offset` counts from
    /// the start of the JSON.
    case invalidJSON(path: String, offset: Int, reason: String)
    /// `__metadata__` is not an object of strings.
    case invalidMetadata(path: String, reason: String)

    // One tensor's entry.
    /// The entry is malformed: not an object, a field missing or of the wrong type, an empty or reserved name,
    /// offsets that are not non-negative integers or that run backwards.
    case invalidTensor(path: String, tensor: String, reason: String)
    /// A dtype string FluxServe does not know (it may be a valid safetensors dtype that FluxServe does not read).
    case unknownDType(path: String, tensor: String, dtype: String)
    /// The element count or byte size of `shape` does not fit in an `Int`.
    case shapeOverflow(path: String, tensor: String, shape: String)
    /// `data_offsets` reach outside the data area of `dataByteCount` bytes.
    case spanOutOfRange(path: String, tensor: String, offsets: String, dataByteCount: Int)
    /// shape × dtype size differs from the length of the span in `data_offsets`.
    case sizeMismatch(path: String, tensor: String, expected: Int, actual: Int)
    /// Two tensors' spans share bytes.
    case overlappingSpans(path: String, tensor: String, other: String)

    // Looking up.
    /// No tensor of that name in the file or checkpoint.
    case tensorNotFound(path: String, tensor: String)

    // Checkpoints of several files.
    /// The index json is malformed (no `weight_map`, a value that is not a file name, ...).
    case invalidIndex(path: String, reason: String)
    /// The index names a shard file that is not there; `tensor` is one tensor the index puts in it.
    case shardMissing(index: String, shard: String, tensor: String)
    /// The index puts `tensor` in `shard`, which does not hold it.
    case tensorMissingFromShard(index: String, shard: String, tensor: String)
    /// Two files of one folder both hold `tensor`.
    case duplicateTensor(tensor: String, path: String, otherPath: String)
    /// A folder with neither an index json nor any `*.safetensors` file.
    case noSafetensorsFiles(path: String)

    // Writing.
    /// Writing `path` failed; `tensor` is set when one tensor was the cause (a bad name).
    case writeFailed(path: String, tensor: String?, reason: String)

    /// The file (or folder, or index) the error is about.
    public var path: String {
        switch self {
        case let .notFound(path), let .unreadable(path, _), let .notAFile(path, _), let .tooSmall(path, _),
             let .otherFormat(path, _),
             let .headerTooLarge(path, _, _), let .headerPastEnd(path, _, _), let .headerNotUTF8(path, _),
             let .invalidJSON(path, _, _), let .invalidMetadata(path, _), let .invalidTensor(path, _, _),
             let .unknownDType(path, _, _), let .shapeOverflow(path, _, _), let .spanOutOfRange(path, _, _, _),
             let .sizeMismatch(path, _, _, _), let .overlappingSpans(path, _, _), let .tensorNotFound(path, _),
             let .invalidIndex(path, _), let .duplicateTensor(_, path, _), let .noSafetensorsFiles(path),
             let .writeFailed(path, _, _):
            path
        case let .shardMissing(index, _, _), let .tensorMissingFromShard(index, _, _):
            index
        }
    }

    /// The tensor the error is about, if one.
    public var tensor: String? {
        switch self {
        case let .invalidTensor(_, tensor, _), let .unknownDType(_, tensor, _), let .shapeOverflow(_, tensor, _),
             let .spanOutOfRange(_, tensor, _, _), let .sizeMismatch(_, tensor, _, _),
             let .overlappingSpans(_, tensor, _), let .tensorNotFound(_, tensor), let .shardMissing(_, _, tensor),
             let .tensorMissingFromShard(_, _, tensor), let .duplicateTensor(tensor, _, _):
            tensor
        case let .writeFailed(_, tensor, _):
            tensor
        default:
            nil
        }
    }

    public var description: String {
        switch self {
        case let .notFound(path):
            "\(path): no such file or folder"
        case let .unreadable(path, reason):
            "\(path): cannot read: \(reason)"
        case let .notAFile(path, kind):
            "\(path): is a \(kind), not a safetensors file"
        case let .tooSmall(path, size):
            "\(path): \(size) bytes is too small for a safetensors file (at least the 8-byte header length)"
        case let .otherFormat(path, format):
            "\(path): is \(format); accepted: .safetensors files (one file, a sharded set with its index json, or a "
                + "folder of them)"
        case let .headerTooLarge(path, length, limit):
            "\(path): header length \(length) exceeds the limit of \(limit) bytes"
        case let .headerPastEnd(path, length, fileSize):
            "\(path): header length \(length) runs past the end of the \(fileSize)-byte file (truncated?)"
        case let .headerNotUTF8(path, offset):
            "\(path): header is not valid UTF-8 (byte \(offset) of the JSON)"
        case let .invalidJSON(path, offset, reason):
            "\(path): header is not valid JSON at byte \(offset): \(reason)"
        case let .invalidMetadata(path, reason):
            "\(path): __metadata__: \(reason)"
        case let .invalidTensor(path, tensor, reason):
            "\(path): tensor '\(tensor)': \(reason)"
        case let .unknownDType(path, tensor, dtype):
            "\(path): tensor '\(tensor)': unknown or unsupported dtype '\(dtype)'"
        case let .shapeOverflow(path, tensor, shape):
            "\(path): tensor '\(tensor)': shape \(shape) overflows the element or byte count"
        case let .spanOutOfRange(path, tensor, offsets, dataByteCount):
            "\(path): tensor '\(tensor)': data_offsets \(offsets) fall outside the \(dataByteCount)-byte data area"
        case let .sizeMismatch(path, tensor, expected, actual):
            "\(path): tensor '\(tensor)': shape and dtype need \(expected) bytes but data_offsets span \(actual)"
        case let .overlappingSpans(path, tensor, other):
            "\(path): tensor '\(tensor)': its bytes overlap those of '\(other)'"
        case let .tensorNotFound(path, tensor):
            "\(path): no tensor '\(tensor)'"
        case let .invalidIndex(path, reason):
            "\(path): invalid index: \(reason)"
        case let .shardMissing(index, shard, tensor):
            "\(index): shard '\(shard)' (holding '\(tensor)', among others) is missing"
        case let .tensorMissingFromShard(index, shard, tensor):
            "\(index): weight_map puts '\(tensor)' in '\(shard)', which does not hold it"
        case let .duplicateTensor(tensor, path, otherPath):
            "tensor '\(tensor)' is in both \(otherPath) and \(path)"
        case let .noSafetensorsFiles(path):
            "\(path): folder holds no *.safetensors file and no *.safetensors.index.json"
        case let .writeFailed(path, tensor, reason):
            if let tensor { "\(path): cannot write tensor '\(tensor)': \(reason)" } else { "\(path): cannot write: \(reason)" }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A checkpoint made of one or more files: a single .safetensors file, an index json (*.safetensors.index.json with
/// "weight_map": {tensor: shard file}), or a directory (uses the index json if exactly one is present, else all
/// *.safetensors files in it, erroring on a tensor name present in two files).
///
/// With an index, the index decides which tensors exist: each is looked up in the shard it names, every shard is
/// opened and validated at init, and a missing shard or a tensor its shard lacks is an error naming both. Tensors a
/// shard holds beyond the index are not listed. Shard names must stay inside the index's folder (no absolute paths,
/// no `..`). Files whose names start with `.` are ignored in folders.
public final class SafetensorsCheckpoint: @unchecked Sendable {
    /// What `init` was given.
    public let path: String
    /// The index json used, if any.
    public let indexPath: String?
    /// The files, in shard-name order.
    public let files: [SafetensorsFile]
    /// Every file's `__metadata__`, earlier files winning on a clash, then the index's `metadata` (values written as
    /// their JSON text, e.g. `total_size`) where the files have no such key.
    public let metadata: [String: String]

    private let fileOfTensor: [String: Int]  // index into `files`
    private let sortedNames: [String]

    public init(path: String) throws {
        self.path = path
        var indexPath: String?
        var indexMetadata: [String: String] = [:]
        var files: [SafetensorsFile] = []
        var fileOfTensor: [String: Int] = [:]

        switch PathKind(path: path) {
        case .missing:
            throw SafetensorsError.notFound(path: path)
        case let .other(kind):
            throw SafetensorsError.notAFile(path: path, kind: kind)
        case .file where path.hasSuffix(".json"):
            indexPath = path
        case .file:
            let file = try SafetensorsFile(path: path)
            for name in file.names { fileOfTensor[name] = 0 }
            files = [file]
        case .folder:
            let entries = try folderEntries(path).filter { !$0.hasPrefix(".") }.sorted()
            let indexes = entries.filter { $0.hasSuffix(".safetensors.index.json") }
            if indexes.count == 1 {
                indexPath = joinPath(path, indexes[0])
            } else {
                let shards = entries.filter { $0.hasSuffix(".safetensors") }
                guard !shards.isEmpty else { throw SafetensorsError.noSafetensorsFiles(path: path) }
                for shard in shards {
                    let file = try SafetensorsFile(path: joinPath(path, shard))
                    for name in file.names {
                        if let earlier = fileOfTensor[name] {
                            throw SafetensorsError.duplicateTensor(tensor: name, path: file.path,
                                                                   otherPath: files[earlier].path)
                        }
                        fileOfTensor[name] = files.count
                    }
                    files.append(file)
                }
            }
        }

        if let indexPath {
            let index = try SafetensorsIndex(path: indexPath)
            indexMetadata = index.metadata
            let folder = parentFolder(indexPath)
            let shards = Set(index.weightMap.values).sorted()
            var fileOfShard: [String: Int] = [:]
            for shard in shards {
                let shardPath = joinPath(folder, shard)
                if PathKind(path: shardPath) == .missing {
                    let example = index.weightMap.filter { $0.value == shard }.keys.min() ?? ""
                    throw SafetensorsError.shardMissing(index: indexPath, shard: shard, tensor: example)
                }
                fileOfShard[shard] = files.count
                files.append(try SafetensorsFile(path: shardPath))
            }
            for (name, shard) in index.weightMap.sorted(by: { $0.key < $1.key }) {
                guard let i = fileOfShard[shard], files[i].info(name) != nil else {
                    throw SafetensorsError.tensorMissingFromShard(index: indexPath, shard: shard, tensor: name)
                }
                fileOfTensor[name] = i
            }
        }

        var merged: [String: String] = [:]
        for file in files {
            merged.merge(file.metadata) { earlier, _ in earlier }
        }
        merged.merge(indexMetadata) { fromFiles, _ in fromFiles }

        self.indexPath = indexPath
        self.files = files
        self.fileOfTensor = fileOfTensor
        self.metadata = merged
        sortedNames = fileOfTensor.keys.sorted()
    }

    /// Tensor names over all files, sorted.
    public var names: [String] { sortedNames }

    public func contains(_ name: String) -> Bool { fileOfTensor[name] != nil }

    public func info(_ name: String) -> SafetensorsTensorInfo? {
        fileOfTensor[name].flatMap { files[$0].info(name) }
    }

    /// The file that holds `name`.
    public func file(holding name: String) -> SafetensorsFile? {
        fileOfTensor[name].map { files[$0] }
    }

    /// The tensor `name` as a zero-copy view into its file's mapping.
    public func tensor(_ name: String) throws -> HostTensor {
        guard let i = fileOfTensor[name] else { throw SafetensorsError.tensorNotFound(path: path, tensor: name) }
        return try files[i].tensor(name)
    }
}

/// A `*.safetensors.index.json`: `{"metadata": {...}, "weight_map": {tensor: shard file name}}`.
struct SafetensorsIndex {
    var weightMap: [String: String] = [:]
    var metadata: [String: String] = [:]

    init(path: String) throws(SafetensorsError) {
        func invalid(_ reason: String) -> SafetensorsError { .invalidIndex(path: path, reason: reason) }
        let file = try ReadOnlyFile(path: path)
        defer { file.release() }
        guard file.size <= SafetensorsFile.maxHeaderByteCount else {
            throw invalid("\(file.size) bytes is more than the \(SafetensorsFile.maxHeaderByteCount) allowed")
        }
        var bytes = [UInt8](repeating: 0, count: file.size)
        try file.read(into: &bytes, at: 0)
        if let bad = firstInvalidUTF8Offset(bytes) { throw invalid("not valid UTF-8 at byte \(bad)") }

        let root: JSONValue
        do {
            root = try JSONScanner.parse(bytes)
        } catch {
            throw invalid("not valid JSON at byte \(error.offset): \(error.reason)")
        }
        guard case let .object(members) = root else { throw invalid("top level is not an object") }

        var sawWeightMap = false
        for (key, value) in members {
            switch key {
            case "weight_map":
                guard case let .object(entries) = value else { throw invalid("weight_map is not an object") }
                sawWeightMap = true
                for (tensor, shardValue) in entries {
                    guard !tensor.isEmpty else { throw invalid("weight_map has an empty tensor name") }
                    guard case let .string(shard) = shardValue else {
                        throw invalid("weight_map['\(tensor)'] is not a string")
                    }
                    let parts = shard.split(separator: "/", omittingEmptySubsequences: false)
                    guard !shard.isEmpty, !shard.hasPrefix("/"), !parts.contains("..") else {
                        throw invalid("weight_map['\(tensor)'] = '\(shard)' is not a file name inside the folder")
                    }
                    weightMap[tensor] = shard
                }
            case "metadata":
                guard case let .object(entries) = value else { continue }  // informational only
                for (name, item) in entries {
                    switch item {
                    case let .string(text), let .number(text): metadata[name] = text
                    case let .bool(flag): metadata[name] = flag ? "true" : "false"
                    default: break
                    }
                }
            default:
                break
            }
        }
        guard sawWeightMap else { throw invalid("no \"weight_map\"") }
    }
}

// MARK: - Paths

func joinPath(_ folder: String, _ name: String) -> String {
    folder.hasSuffix("/") ? folder + name : folder + "/" + name
}

/// The folder part of `path` ("." for a bare name).
func parentFolder(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

/// Names in a folder, without "." and "..".
func folderEntries(_ path: String) throws(SafetensorsError) -> [String] {
    guard let dir = opendir(path) else { throw .unreadable(path: path, reason: systemErrorText(errno)) }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: &entry.pointee.d_name) {
            String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

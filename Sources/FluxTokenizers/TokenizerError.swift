/// Why a tokenizer folder could not be loaded. Each case names the file (or folder) and the reason.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The tokenizer folder does not exist.
    case missingFolder(path: String)
    /// The path is not a folder, or the folder holds none of the files this tokenizer can load.
    case missingFiles(directory: String, expected: String)
    /// A file exists but could not be read.
    case unreadable(path: String, reason: String)
    /// A file was read but its content is not what the format requires.
    case malformed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .missingFolder(path):
            "\(path): no such folder"
        case let .missingFiles(directory, expected):
            "\(directory): no tokenizer files (expected \(expected))"
        case let .unreadable(path, reason):
            "\(path): cannot read: \(reason)"
        case let .malformed(path, reason):
            "\(path): \(reason)"
        }
    }
}

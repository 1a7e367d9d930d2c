import FluxCore
import Foundation

/// A tokenizer folder on disk: reads its files with errors that name them.
struct TokenizerFolder {
    let path: String

    init(_ path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TokenizerError.missingFolder(path: path)
        }
        guard isDirectory.boolValue else {
            throw TokenizerError.missingFiles(directory: path, expected: "a folder, not a file")
        }
        self.path = path
    }

    func file(_ name: String) -> String {
        (path as NSString).appendingPathComponent(name)
    }

    func has(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: file(name))
    }

    /// tokenizer_config.json if the folder has one.
    func config() throws -> JSONDocument? {
        has("tokenizer_config.json") ? try JSONDocument(path: file("tokenizer_config.json")) : nil
    }
}

func readFile(_ path: String) throws -> [UInt8] {
    do {
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    } catch {
        throw TokenizerError.unreadable(path: path, reason: error.localizedDescription)
    }
}

/// A JSON file and typed access to its values, with errors naming the file and the value.
struct JSONDocument {
    let path: String
    let root: JSONValue

    init(path: String) throws {
        self.path = path
        do {
            root = try JSONScanner.parse(Self.pythonText(try readFile(path)), options: .python)
        } catch let error as JSONSyntaxError {
            throw TokenizerError.malformed(path: path, reason: error.description)
        }
        guard case .object = root else { throw TokenizerError.malformed(path: path, reason: "not a JSON object") }
    }

    func fail(_ reason: String) -> TokenizerError {
        .malformed(path: path, reason: reason)
    }

    /// The bytes as Python's `json.load(open(path, encoding="utf-8-sig", errors="replace"))` sees them: a UTF-8
    /// byte order mark skipped, malformed UTF-8 replaced by U+FFFD.
    static func pythonText(_ bytes: [UInt8]) -> [UInt8] {
        let body = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(bytes.dropFirst(3)) : bytes
        return String(validating: body, as: UTF8.self) != nil ? body : Array(String(decoding: body, as: UTF8.self).utf8)
    }

    /// An object's members by key; a repeated key keeps its last value, as Python's `json` does.
    func object(_ value: JSONValue?, _ what: String) throws -> [String: JSONValue] {
        guard case let .object(pairs)? = value else { throw fail("\(what) is not a JSON object") }
        return Dictionary(pairs.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
    }

    func array(_ value: JSONValue?, _ what: String) throws -> [JSONValue] {
        guard case let .array(elements)? = value else { throw fail("\(what) is not a JSON array") }
        return elements
    }

    func string(_ value: JSONValue?, _ what: String) throws -> String {
        guard case let .string(text)? = value else { throw fail("\(what) is not a string") }
        return text
    }

    func int(_ value: JSONValue?, _ what: String) throws -> Int {
        guard case let .number(text)? = value, let int = Int(text) else { throw fail("\(what) is not an integer") }
        return int
    }

    func id(_ value: JSONValue?, _ what: String) throws -> Int32 {
        let int = try self.int(value, what)
        guard let id = Int32(exactly: int), id >= 0 else { throw fail("\(what) = \(int) is not a token id") }
        return id
    }

    func double(_ value: JSONValue?, _ what: String) throws -> Double {
        guard case let .number(text)? = value, let double = Double(text) else { throw fail("\(what) is not a number") }
        return double
    }

    /// A boolean flag, `fallback` when absent or null.
    func bool(_ value: JSONValue?, _ what: String, default fallback: Bool) throws -> Bool {
        switch value {
        case nil, .null?: return fallback
        case let .bool(flag)?: return flag
        default: throw fail("\(what) is not a boolean")
        }
    }

    /// The `added_tokens` list of a tokenizer.json: `[{"id", "content", "single_word", "lstrip", "rstrip",
    /// "normalized", "special"}]`.
    func addedTokens(fromTokenizerJSON value: JSONValue?) throws -> [AddedToken] {
        guard let value, !value.isNull else { return [] }
        return try array(value, "added_tokens").enumerated().map { index, item in
            let what = "added_tokens[\(index)]"
            let entry = try object(item, what)
            return try addedToken(entry, id: id(entry["id"], "\(what).id"), what: what)
        }
    }

    /// The `added_tokens_decoder` map of a tokenizer_config.json: `{"49406": {"content", ...}}`.
    func addedTokens(fromConfig value: JSONValue?) throws -> [AddedToken] {
        guard let value, !value.isNull else { return [] }
        return try object(value, "added_tokens_decoder").map { key, item in
            let what = "added_tokens_decoder[\(key)]"
            guard let id = Int32(key), id >= 0 else { throw fail("\(what): the key is not a token id") }
            return try addedToken(object(item, what), id: id, what: what)
        }.sorted { $0.id < $1.id }
    }

    private func addedToken(_ entry: [String: JSONValue], id: Int32, what: String) throws -> AddedToken {
        let special = try bool(entry["special"], "\(what).special", default: false)
        return AddedToken(
            id: id,
            content: try string(entry["content"], "\(what).content"),
            singleWord: try bool(entry["single_word"], "\(what).single_word", default: false),
            lstrip: try bool(entry["lstrip"], "\(what).lstrip", default: false),
            rstrip: try bool(entry["rstrip"], "\(what).rstrip", default: false),
            normalized: try bool(entry["normalized"], "\(what).normalized", default: !special),
            special: special)
    }
}

/// Merges two lists of added tokens; where both define an id, `preferred` wins (transformers applies
/// tokenizer_config.json's `added_tokens_decoder` over what the backend file says).
func mergeAddedTokens(_ base: [AddedToken], preferred: [AddedToken]) -> [AddedToken] {
    var byId: [Int32: AddedToken] = [:]
    for token in base { byId[token.id] = token }
    for token in preferred { byId[token.id] = token }
    return byId.values.sorted { $0.id < $1.id }
}

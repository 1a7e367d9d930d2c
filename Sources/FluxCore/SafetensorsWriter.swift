#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes `tensors` as one safetensors file at `path`, atomically: the bytes go to a temporary file beside `path`,
/// which is flushed and then renamed over it, so readers see the old file or the whole new one.
///
/// Layout, the same as the reference writer (huggingface/safetensors `prepare`), so that without metadata the file
/// is byte for byte what Python's `save_file` writes: data contiguous from offset 0, ordered by element width, widest
/// first (the reference's dtype order), then by name, bytewise; header entries in that order, `__metadata__` first
/// when non-empty (keys sorted); the JSON padded with spaces to a multiple of 8. Widest-first keeps every tensor
/// aligned to its element size, since the data area starts 8-aligned.
/// Throws `SafetensorsError.writeFailed` for an empty or reserved name and for any I/O failure.
public func writeSafetensors(_ tensors: [String: HostTensor], metadata: [String: String] = [:],
                             to path: String) throws {
    let names = safetensorsWriteOrder(tensors)
    for name in names where name.isEmpty || name == "__metadata__" {
        throw SafetensorsError.writeFailed(path: path, tensor: name,
                                           reason: name.isEmpty ? "tensor name is empty" : "the name is reserved")
    }
    let header = safetensorsHeader(tensors, names: names, metadata: metadata)
    var length = [UInt8](repeating: 0, count: 8)
    for i in 0..<8 { length[i] = UInt8(truncatingIfNeeded: UInt64(header.count) >> (8 * UInt64(i))) }

    let temporary = "\(path).tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
        throw SafetensorsError.writeFailed(path: path, tensor: nil, reason: systemErrorText(errno))
    }
    var failure = length.withUnsafeBytes { writeAll(fd, $0) }
    if failure == nil { failure = header.withUnsafeBytes { writeAll(fd, $0) } }
    for name in names where failure == nil {
        if let tensor = tensors[name] { failure = writeAll(fd, tensor.bytes) }
    }
    if failure == nil, fsync(fd) != 0 { failure = systemErrorText(errno) }
    if close(fd) != 0, failure == nil { failure = systemErrorText(errno) }
    if failure == nil, rename(temporary, path) != 0 { failure = systemErrorText(errno) }
    if let failure {
        unlink(temporary)
        throw SafetensorsError.writeFailed(path: path, tensor: nil, reason: failure)
    }
}

/// Tensor names in the order the reference writer lays out data: dtypes by falling rank in its `Dtype` enum
/// (I64, F64, F32, I32, BF16, F16, I16, F8_E4M3, F8_E5M2, I8, U8, BOOL for ours), then names bytewise.
func safetensorsWriteOrder(_ tensors: [String: HostTensor]) -> [String] {
    func rank(_ dtype: DType) -> Int {
        switch dtype {
        case .bool: 0
        case .u8: 4
        case .i8: 5
        case .f8e5m2: 6
        case .f8e4m3: 7
        case .i16: 11
        case .f16: 13
        case .bf16: 14
        case .i32: 15
        case .f32: 17
        case .f64: 19
        case .i64: 20
        }
    }
    return tensors.map { (name: $0.key, rank: rank($0.value.dtype)) }
        .sorted { $0.rank != $1.rank ? $0.rank > $1.rank : $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        .map(\.name)
}

/// The JSON header (padded with spaces to a multiple of 8), tensors in the order of `names`.
func safetensorsHeader(_ tensors: [String: HostTensor], names: [String], metadata: [String: String]) -> [UInt8] {
    var json: [UInt8] = [UInt8(ascii: "{")]
    var first = true
    func separator() {
        if !first { json.append(UInt8(ascii: ",")) }
        first = false
    }
    if !metadata.isEmpty {
        separator()
        appendJSONString("__metadata__", to: &json)
        json.append(contentsOf: Array(":{".utf8))
        for (i, key) in metadata.keys.sorted().enumerated() {
            if i > 0 { json.append(UInt8(ascii: ",")) }
            appendJSONString(key, to: &json)
            json.append(UInt8(ascii: ":"))
            appendJSONString(metadata[key] ?? "", to: &json)
        }
        json.append(UInt8(ascii: "}"))
    }
    var offset = 0
    for name in names {
        guard let tensor = tensors[name] else { continue }
        separator()
        appendJSONString(name, to: &json)
        let end = offset + tensor.bytes.count
        let shape = tensor.shape.map(String.init).joined(separator: ",")
        json.append(contentsOf: Array(
            ":{\"dtype\":\"\(tensor.dtype.safetensorsName)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}".utf8))
        offset = end
    }
    json.append(UInt8(ascii: "}"))
    while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
    return json
}

/// `text` as a JSON string literal: quotes, backslashes and control characters escaped, the rest as UTF-8.
func appendJSONString(_ text: String, to json: inout [UInt8]) {
    let hex = Array("0123456789abcdef".utf8)
    json.append(UInt8(ascii: "\""))
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "\""): json.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
        case UInt8(ascii: "\\"): json.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
        case 0x0A: json.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
        case 0x0D: json.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
        case 0x09: json.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
        case 0x00..<0x20:
            json.append(contentsOf: Array("\\u00".utf8))
            json.append(hex[Int(byte >> 4)])
            json.append(hex[Int(byte & 0xF)])
        default: json.append(byte)
        }
    }
    json.append(UInt8(ascii: "\""))
}

/// Writes all of `buffer`, retrying short writes; the system's words on failure.
private func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> String? {
    guard let base = buffer.baseAddress else { return nil }
    var done = 0
    while done < buffer.count {
        let n = write(fd, base + done, min(buffer.count - done, 1 << 30))
        if n < 0 {
            if errno == EINTR { continue }
            return systemErrorText(errno)
        }
        done += n
    }
    return nil
}

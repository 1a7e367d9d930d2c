import Foundation
import Testing
@testable import FluxCore

/// Seeded, so that a failing iteration can be replayed from its seed.
typealias SeededGenerator = SplitMix64

/// Opens `path` and, when it opens, checks every tensor: its span inside the data area, its bytes exactly the file's
/// bytes there, its values readable. Returns nil when it opened, else the error case's name; records an issue for
/// any error not a `SafetensorsError`.
func openAndReadEverything(_ path: String, fileBytes: [UInt8], note: String) -> String? {
    do {
        let file = try SafetensorsFile(path: path)
        #expect(file.dataOffset + file.dataByteCount == fileBytes.count, "\(note)")
        for name in file.names {
            guard let info = file.info(name) else { Issue.record("\(note): no info for listed '\(name)'"); continue }
            #expect(info.byteRange.lowerBound >= 0 && info.byteRange.upperBound <= file.dataByteCount, "\(note)")
            let tensor = try file.tensor(name)
            #expect(tensor.bytes.count == info.byteRange.count, "\(note)")
            let start = file.dataOffset + info.byteRange.lowerBound
            #expect(byteArray(tensor) == Array(fileBytes[start..<(start + info.byteRange.count)]), "\(note)")
            #expect(tensor.floats().count == (elementCount(info.shape) ?? -1), "\(note)")
        }
        return nil
    } catch let error as SafetensorsError {
        return String(describing: Mirror(reflecting: error).children.first?.label ?? "\(error)")
    } catch {
        Issue.record("\(note): not a SafetensorsError: \(error)")
        return "other"
    }
}

/// A valid small file with several dtypes, a zero-sized tensor and metadata: the seed of every mutation.
func fuzzSeedFile(in folder: TemporaryFolder) throws -> [UInt8] {
    let path = folder.path("seed.safetensors")
    try writeSafetensors([
        "a.weight": patternTensor([3, 2], .f32), "b": patternTensor([5], .bf16), "c": patternTensor([2, 2], .f16),
        "d": patternTensor([7], .f8e4m3), "ids": patternTensor([2], .i64), "empty": patternTensor([0, 3], .f32),
        "s": patternTensor([], .i32),
    ], metadata: ["format": "pt", "k": "v"], to: path)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
}

/// One random change to `bytes`, aimed mostly at the length field and the header, where the parser is.
func mutate(_ bytes: inout [UInt8], headerEnd: Int, using rng: inout SeededGenerator) {
    let headerSpan = max(1, min(bytes.count, headerEnd))
    func anywhere() -> Int { Int.random(in: 0..<max(1, bytes.count), using: &rng) }
    func inHeader() -> Int { Int.random(in: 0..<headerSpan, using: &rng) }
    guard !bytes.isEmpty else { bytes = [UInt8.random(in: 0...255, using: &rng)]; return }
    switch Int.random(in: 0..<11, using: &rng) {
    case 0:  // flip one bit in the length field or header (in the JSON, one that keeps it ASCII)
        let i = inHeader()
        bytes[i] ^= 1 << UInt8.random(in: 0..<(i < 8 ? 8 : 7), using: &rng)
    case 1:  // any byte to any value
        bytes[anywhere()] = UInt8.random(in: 0...255, using: &rng)
    case 2:  // truncate
        bytes.removeSubrange(Int.random(in: 0...bytes.count, using: &rng)...)
    case 3:  // insert a few random bytes
        let insert = (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes.insert(contentsOf: insert, at: Int.random(in: 0...headerSpan, using: &rng))
    case 4:  // change a digit of the header into another
        let digits = (min(8, headerSpan)..<headerSpan).filter { (0x30...0x39).contains(bytes[$0]) }
        if let i = digits.randomElement(using: &rng) { bytes[i] = UInt8.random(in: 0x30...0x39, using: &rng) }
    case 5:  // lengthen a number of the header by a digit (shapes and offsets past their fields)
        let digits = (min(8, headerSpan)..<headerSpan).filter { (0x30...0x39).contains(bytes[$0]) }
        if let i = digits.randomElement(using: &rng) { bytes.insert(UInt8.random(in: 0x30...0x39, using: &rng), at: i) }
    case 6:  // delete a stretch of the header
        let i = inHeader()
        bytes.removeSubrange(i..<min(bytes.count, i + Int.random(in: 1...12, using: &rng)))
    case 7:  // a new length field
        let header = UInt64(max(0, headerEnd - 8))
        let choices: [UInt64] = [0, 1, header &- 1, header &+ 1, header &+ 8, 1 << 63, .max, 100_000_000, 100_000_001,
                                 UInt64.random(in: 0...UInt64.max, using: &rng), UInt64.random(in: 0...4096, using: &rng)]
        let n = choices.randomElement(using: &rng) ?? 0
        for k in 0..<min(8, bytes.count) { bytes[k] = UInt8(truncatingIfNeeded: n >> (8 * UInt64(k))) }
    case 8:  // copy a stretch of the header elsewhere in it (duplicate keys, overlapping entries)
        let i = inHeader()
        let chunk = Array(bytes[i..<min(bytes.count, i + Int.random(in: 1...64, using: &rng))])
        bytes.insert(contentsOf: chunk, at: Int.random(in: 0...headerSpan, using: &rng))
    case 9:  // a JSON metacharacter somewhere in the header
        let specials = Array("{}[],:\"\\-.eE0 \u{7f}".utf8) + [0x00, 0xC3, 0xFF]
        bytes[inHeader()] = specials.randomElement(using: &rng) ?? 0
    default:  // extra bytes at the end
        bytes += (0..<Int.random(in: 1...16, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }
}

@Test func fuzzMutationsOfAValidFile() throws {
    let folder = try TemporaryFolder()
    let seed = try fuzzSeedFile(in: folder)
    let headerEnd = 8 + Int(seed[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    let path = folder.path("fuzz.safetensors")
    var outcomes: [String: Int] = [:]
    let iterations = 3000
    for iteration in 0..<iterations {
        var rng = SeededGenerator(seed: UInt64(iteration))
        var bytes = seed
        for _ in 0..<Int.random(in: 1...3, using: &rng) { mutate(&bytes, headerEnd: headerEnd, using: &rng) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        outcomes[openAndReadEverything(path, fileBytes: bytes, note: "iteration \(iteration)") ?? "opened", default: 0] += 1
    }
    print("safetensors fuzz, \(iterations) mutated files:",
          outcomes.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    // Both outcomes must occur, and many kinds of rejection, or the mutations are not exercising anything.
    let opened = outcomes["opened", default: 0]
    #expect(opened > 50 && opened < iterations / 2 && outcomes.count >= 10, "\(outcomes)")
}

@Test func fuzzRandomHeadersFromJSONPieces() throws {
    // Headers assembled from fragments of the format's own vocabulary, with a plausible length field and data.
    let folder = try TemporaryFolder()
    let path = folder.path("pieces.safetensors")
    let pieces = ["{", "}", "[", "]", ",", ":", "\"t\"", "\"u\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"",
                  "\"__metadata__\"", "\"F32\"", "\"U8\"", "\"BF16\"", "0", "1", "2", "4", "8", "16", "-1", "1.5",
                  "18446744073709551615", "null", "true", " ", "\"\\u00e9\"", "{\"dtype\":\"U8\",\"shape\":[4],"
                  + "\"data_offsets\":[0,4]}", "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}"]
    var opened = 0
    for iteration in 0..<1500 {
        var rng = SeededGenerator(seed: 0xF00D_0000 + UInt64(iteration))
        var header = "{\"t\":"
        for _ in 0..<Int.random(in: 1...12, using: &rng) { header += pieces.randomElement(using: &rng) ?? "" }
        if Bool.random(using: &rng) { header += "}" }
        let data = (0..<Int.random(in: 0...12, using: &rng)).map { UInt8(truncatingIfNeeded: $0) }
        let bytes = rawSafetensors(header, data: data)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        if openAndReadEverything(path, fileBytes: bytes, note: "pieces \(iteration): \(header)") == nil { opened += 1 }
    }
    #expect(opened > 0)
}

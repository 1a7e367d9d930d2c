import Foundation
import Testing
@testable import FluxCore

// MARK: - Helpers

/// A fresh folder under the system temporary directory, removed when the value goes away.
final class TemporaryFolder {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("fluxcore-st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes `bytes` to `name` and returns its path.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// A safetensors file built by hand: the length field (the header's size unless given), the header, the data.
func rawSafetensors(_ header: String, data: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
    let json = Array(header.utf8)
    let n = length ?? UInt64(json.count)
    return (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) } + json + data
}

/// Opens `path` and returns the `SafetensorsError` it throws; records an issue if it opens or throws anything else.
func openError(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) -> SafetensorsError? {
    do {
        let file = try SafetensorsFile(path: path)
        Issue.record("opened a malformed file with tensors \(file.names)", sourceLocation: sourceLocation)
    } catch let error as SafetensorsError {
        #expect(error.description.contains(path), "error does not name the file: \(error)",
                sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("not a SafetensorsError: \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// A copy of a tensor's bytes, taken while the tensor (and so its memory) is certainly alive.
func byteArray(_ tensor: HostTensor) -> [UInt8] { withExtendedLifetime(tensor) { Array(tensor.bytes) } }

/// A host tensor of `shape` and `dtype` whose bytes count up from `seed`.
func patternTensor(_ shape: [Int], _ dtype: DType, seed: UInt8 = 0) -> HostTensor {
    let count = (elementCount(shape) ?? 0) * dtype.byteSize
    let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ Int(seed)) }
    return bytes.withUnsafeBytes { HostTensor(copying: $0, shape: shape, dtype: dtype) }
}

// MARK: - Round trips

@Test func roundTripEveryDType() throws {
    let folder = try TemporaryFolder()
    var tensors: [String: HostTensor] = [:]
    for (i, dtype) in DType.allCases.enumerated() {
        tensors["t.\(dtype.rawValue)"] = patternTensor([2, 3, 5], dtype, seed: UInt8(i))
        tensors["scalar.\(dtype.rawValue)"] = patternTensor([], dtype, seed: UInt8(i))
        tensors["empty.\(dtype.rawValue)"] = patternTensor([0, 4], dtype)
    }
    let metadata = ["format": "pt", "quote\"and\\slash": "line\nbreak\u{1} café 🦊"]
    let path = folder.path("all.safetensors")
    try writeSafetensors(tensors, metadata: metadata, to: path)

    let file = try SafetensorsFile(path: path)
    #expect(file.names == tensors.keys.sorted())
    #expect(file.metadata == metadata)
    #expect(file.headerByteCount % 8 == 0)
    #expect(file.unusedByteRanges.isEmpty)
    for (name, original) in tensors {
        let read = try file.tensor(name)
        #expect(read.shape == original.shape, "\(name)")
        #expect(read.dtype == original.dtype, "\(name)")
        #expect(byteArray(read) == byteArray(original), "\(name)")
        #expect(read.floats().map(\.bitPattern) == original.floats().map(\.bitPattern), "\(name)")
    }
}

@Test func writerLayoutIsContiguousWidestFirstAndPadded() throws {
    let folder = try TemporaryFolder()
    let path = folder.path("layout.safetensors")
    let tensors = ["b": patternTensor([3], .bf16), "a": patternTensor([1], .f32), "c": patternTensor([5], .u8),
                   "z": patternTensor([1], .i64), "d": patternTensor([2], .f32)]
    try writeSafetensors(tensors, to: path)
    let file = try SafetensorsFile(path: path)
    #expect(file.names == ["a", "b", "c", "d", "z"])
    #expect(file.info("z")?.byteRange == 0..<8)
    #expect(file.info("a")?.byteRange == 8..<12)
    #expect(file.info("d")?.byteRange == 12..<20)
    #expect(file.info("b")?.byteRange == 20..<26)
    #expect(file.info("c")?.byteRange == 26..<31)
    #expect(file.dataByteCount == 31)
    #expect(file.dataOffset % 8 == 0)
    #expect(file.metadata.isEmpty)
    for info in file.tensorInfos { #expect(info.byteRange.lowerBound % info.dtype.byteSize == 0, "\(info.name) aligned") }
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    let header = String(decoding: bytes[8..<file.dataOffset], as: UTF8.self)
    #expect(header.hasPrefix("{\"z\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},\"a\":"))
    #expect(!header.contains("__metadata__"))
    // Atomic write: nothing but the file itself is left in the folder, and overwriting works.
    try writeSafetensors(["x": patternTensor([2], .i32)], to: path)
    #expect(try FileManager.default.contentsOfDirectory(atPath: folder.url.path) == ["layout.safetensors"])
    #expect(try SafetensorsFile(path: path).names == ["x"])
}

/// Python's safetensors 0.8.0 `save_file` (torch 2.11) of the tensors built below, without metadata.
@Test func writesTheSameBytesAsPython() throws {
    let python = """
        GAIAAAAAAAB7ImlkcyI6eyJkdHlwZSI6Ikk2NCIsInNoYXBlIjpbMl0sImRhdGFfb2Zmc2V0cyI6WzAsMTZdfSwiYi5mMzIiOnsiZHR5cGUiOiJG\
        MzIiLCJzaGFwZSI6WzIsMl0sImRhdGFfb2Zmc2V0cyI6WzE2LDMyXX0sIm0uZjMyIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlsxXSwiZGF0YV9v\
        ZmZzZXRzIjpbMzIsMzZdfSwiaC5pMzIiOnsiZHR5cGUiOiJJMzIiLCJzaGFwZSI6WzFdLCJkYXRhX29mZnNldHMiOlszNiw0MF19LCJ6LmJmMTYi\
        OnsiZHR5cGUiOiJCRjE2Iiwic2hhcGUiOlszXSwiZGF0YV9vZmZzZXRzIjpbNDAsNDZdfSwiYS5mMTYiOnsiZHR5cGUiOiJGMTYiLCJzaGFwZSI6\
        WzEsMl0sImRhdGFfb2Zmc2V0cyI6WzQ2LDUwXX0sInEuZjgiOnsiZHR5cGUiOiJGOF9FNE0zIiwic2hhcGUiOlszXSwiZGF0YV9vZmZzZXRzIjpb\
        NTAsNTNdfSwidSI6eyJkdHlwZSI6IlU4Iiwic2hhcGUiOlszXSwiZGF0YV9vZmZzZXRzIjpbNTMsNTZdfSwiayI6eyJkdHlwZSI6IkJPT0wiLCJz\
        aGFwZSI6WzJdLCJkYXRhX29mZnNldHMiOls1Niw1OF19fSAgICAgIAUAAAAAAAAABgAAAAAAAAAAAIA/AAAAQAAAgEAAAIC/AABAQP////+APwDA\
        AD8ANABIOEDIAQIDAQA=
        """
    func raw(_ bytes: [UInt8], _ shape: [Int], _ dtype: DType) -> HostTensor {
        bytes.withUnsafeBytes { HostTensor(copying: $0, shape: shape, dtype: dtype) }
    }
    func le<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] { values.flatMap { v in (0..<T.bitWidth / 8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } } }
    let tensors: [String: HostTensor] = [
        "z.bf16": raw(le([1.0, -2.0, 0.5].map { floatToBfloat16($0) }), [3], .bf16),
        "a.f16": raw(le([Float16(0.25), 8].map(\.bitPattern)), [1, 2], .f16),
        "m.f32": HostTensor([3], shape: [1]),
        "b.f32": HostTensor([1, 2, 4, -1], shape: [2, 2]),
        "ids": raw(le([Int64(5), 6]), [2], .i64),
        "q.f8": raw([0x38, 0x40, 0xC8], [3], .f8e4m3),  // 1, 2, -4 in e4m3
        "u": raw([1, 2, 3], [3], .u8),
        "k": raw([1, 0], [2], .bool),
        "h.i32": raw(le([Int32(-1)]), [1], .i32),
    ]
    let folder = try TemporaryFolder()
    let path = folder.path("ours.safetensors")
    try writeSafetensors(tensors, to: path)
    let ours = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    #expect(ours == [UInt8](try #require(Data(base64Encoded: python))))
}

@Test func floatValuesSurviveTheTrip() throws {
    let folder = try TemporaryFolder()
    let path = folder.path("values.safetensors")
    let values: [Float] = [0, 1, -2.5, 3.25, 1024, -0.125]
    try writeSafetensors(["w": HostTensor(values, shape: [2, 3])], to: path)
    let read = try SafetensorsFile(path: path).tensor("w")
    #expect(read.floats() == values)
    #expect(read.shape == [2, 3])
}

@Test func tensorViewsKeepTheMappingAlive() throws {
    let folder = try TemporaryFolder()
    let path = folder.path("alive.safetensors")
    try writeSafetensors(["w": HostTensor([1, 2, 3], shape: [3])], to: path)
    var file: SafetensorsFile? = try SafetensorsFile(path: path)
    let tensor = try #require(file).tensor("w")
    file = nil
    #expect(tensor.floats() == [1, 2, 3])
}

/// Written by Python's safetensors 0.8.0 (`safetensors.torch.save_file`, torch 2.11) with bf16, f16, f32, i64 and
/// float8_e4m3fn tensors, a scalar, an empty tensor and metadata; the reference orders data by dtype alignment.
@Test func readsAFileWrittenByPython() throws {
    let base64 = """
        4AEAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJub3RlIjoiY2Fmw6kgXCJxXCIiLCJmb3JtYXQiOiJwdCJ9LCJkLmk2NCI6eyJkdHlwZSI6Ikk2NCIs\
        InNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6WzAsMjRdfSwiYy5mMzIiOnsiZHR5cGUiOiJGMzIiLCJzaGFwZSI6WzIsMV0sImRhdGFfb2Zmc2V0\
        cyI6WzI0LDMyXX0sImYuc2NhbGFyIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOltdLCJkYXRhX29mZnNldHMiOlszMiwzNl19LCJnLmVtcHR5Ijp7\
        ImR0eXBlIjoiRjMyIiwic2hhcGUiOlswLDNdLCJkYXRhX29mZnNldHMiOlszNiwzNl19LCJhLmJmMTYiOnsiZHR5cGUiOiJCRjE2Iiwic2hhcGUi\
        OlsyLDNdLCJkYXRhX29mZnNldHMiOlszNiw0OF19LCJiLmYxNiI6eyJkdHlwZSI6IkYxNiIsInNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6WzQ4\
        LDU0XX0sImUuZjgiOnsiZHR5cGUiOiJGOF9FNE0zIiwic2hhcGUiOls0XSwiZGF0YV9vZmZzZXRzIjpbNTQsNThdfX0HAAAAAAAAAP3/////////\
        AAAAAAABAAAAAMA/AAAQQAAAAECAPyDASUAAAIBHALwAOAC90GM4sH4I
        """
    let bytes = try #require(Data(base64Encoded: base64))
    let folder = try TemporaryFolder()
    let path = try folder.write("python.safetensors", [UInt8](bytes))
    let file = try SafetensorsFile(path: path)
    #expect(file.names == ["a.bf16", "b.f16", "c.f32", "d.i64", "e.f8", "f.scalar", "g.empty"])
    #expect(file.metadata == ["format": "pt", "note": "café \"q\""])
    #expect(try file.tensor("a.bf16").floats() == [1.0, -2.5, 3.140625, 0.0, 65536.0, -0.0078125])
    #expect(try file.tensor("a.bf16").shape == [2, 3])
    #expect(try file.tensor("b.f16").floats() == [0.5, -1.25, 1000.0])
    #expect(try file.tensor("c.f32").floats() == [1.5, 2.25])
    #expect(try file.tensor("c.f32").shape == [2, 1])
    let ids = try file.tensor("d.i64")
    #expect(ids.dtype == .i64)
    #expect((0..<3).map { ids.bytes.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) } == [7, -3, 1 << 40])
    #expect(try file.tensor("e.f8").floats() == [1.0, -0.5, 448.0, 0.015625])
    #expect(try file.tensor("f.scalar").shape == [])
    #expect(try file.tensor("f.scalar").floats() == [2.0])
    #expect(try file.tensor("g.empty").shape == [0, 3])
    #expect(try file.tensor("g.empty").count == 0)
    #expect(file.unusedByteRanges.isEmpty)
}

// MARK: - Accepted variations

@Test func acceptsWhitespacePaddingAndEscapes() throws {
    let folder = try TemporaryFolder()
    let header = " \n\t{\"caf\\u00e9\\ud83e\\udd8a\" : {\"dtype\":\"U8\", \"shape\":[2], \"data_offsets\":[0,2], "
        + "\"extra\": {\"ignored\": [1, 2.5, null, true]}}}\r  "
    let path = try folder.write("ws.safetensors", rawSafetensors(header, data: [9, 8]))
    let file = try SafetensorsFile(path: path)
    #expect(file.names == ["café🦊"])
    #expect(byteArray(try file.tensor("café🦊")) == [9, 8])
}

@Test func acceptsGapsAndReportsThem() throws {
    let folder = try TemporaryFolder()
    let header = #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},"b":{"dtype":"U8","shape":[1],"data_offsets":[8,9]}}"#
    let path = try folder.write("gaps.safetensors", rawSafetensors(header, data: Array(0..<12)))
    let file = try SafetensorsFile(path: path)
    #expect(file.unusedByteRanges == [0..<4, 6..<8, 9..<12])
    #expect(byteArray(try file.tensor("a")) == [4, 5])
    #expect(byteArray(try file.tensor("b")) == [8])
}

@Test func emptyHeaderObjectIsAnEmptyFile() throws {
    let folder = try TemporaryFolder()
    let path = try folder.write("empty-object.safetensors", rawSafetensors("{}      "))
    let file = try SafetensorsFile(path: path)
    #expect(file.names.isEmpty)
    #expect(file.dataByteCount == 0)
}

// MARK: - Malformed files

/// A header for one U8 tensor `t` of `count` elements at `offsets`.
func oneTensor(dtype: String = "U8", shape: String = "[4]", offsets: String = "[0,4]") -> String {
    "{\"t\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":\(offsets)}}"
}

@Test func emptyAndTinyFiles() throws {
    let folder = try TemporaryFolder()
    #expect(openError(try folder.write("empty.safetensors", [])) == .tooSmall(path: folder.path("empty.safetensors"), size: 0))
    let five = try folder.write("five.safetensors", [1, 0, 0, 0, 0])
    #expect(openError(five) == .tooSmall(path: five, size: 5))
}

@Test func headerLengthTooLargeOrPastTheEnd() throws {
    let folder = try TemporaryFolder()
    let huge = try folder.write("huge.safetensors", rawSafetensors(oneTensor(), data: [1, 2, 3, 4], length: 1 << 63))
    #expect(openError(huge) == .headerTooLarge(path: huge, length: 1 << 63, limit: 100_000_000))
    let allOnes = try folder.write("ones.safetensors", rawSafetensors("{}", length: .max))
    #expect(openError(allOnes) == .headerTooLarge(path: allOnes, length: .max, limit: 100_000_000))
    let justOver = try folder.write("over.safetensors", rawSafetensors("{}", length: 100_000_001))
    #expect(openError(justOver) == .headerTooLarge(path: justOver, length: 100_000_001, limit: 100_000_000))
    let past = try folder.write("past.safetensors", rawSafetensors("{}", length: 1000))
    #expect(openError(past) == .headerPastEnd(path: past, length: 1000, fileSize: 10))
}

@Test func truncatedFiles() throws {
    let folder = try TemporaryFolder()
    let good = folder.path("good.safetensors")
    try writeSafetensors(["w": patternTensor([4, 4], .f32)], to: good)
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: good)))
    let dataStart = try SafetensorsFile(path: good).dataOffset

    let inData = try folder.write("cut-data.safetensors", Array(bytes[..<(bytes.count - 1)]))
    guard case let .spanOutOfRange(_, tensor, offsets, dataCount) = openError(inData) else {
        Issue.record("expected spanOutOfRange"); return
    }
    #expect(tensor == "w" && offsets == "[0, 64]" && dataCount == 63)

    let inHeader = try folder.write("cut-header.safetensors", Array(bytes[..<(dataStart - 3)]))
    guard case .headerPastEnd = openError(inHeader) else { Issue.record("expected headerPastEnd"); return }

    let inLength = try folder.write("cut-length.safetensors", Array(bytes[..<7]))
    #expect(openError(inLength) == .tooSmall(path: inLength, size: 7))
}

@Test func spansOutsideTheDataArea() throws {
    let folder = try TemporaryFolder()
    let past = try folder.write("past.safetensors", rawSafetensors(oneTensor(offsets: "[4,8]"), data: [1, 2, 3, 4]))
    #expect(openError(past) == .spanOutOfRange(path: past, tensor: "t", offsets: "[4, 8]", dataByteCount: 4))
    let enormous = try folder.write("enormous.safetensors",
                                    rawSafetensors(oneTensor(offsets: "[0,99999999999999999999999]"), data: [1, 2, 3, 4]))
    guard case .spanOutOfRange(_, "t", _, 4) = openError(enormous) else { Issue.record("expected spanOutOfRange"); return }
    // begin + count would wrap around: begin near Int.max, end small.
    let wrap = try folder.write("wrap.safetensors",
                                rawSafetensors(oneTensor(offsets: "[9223372036854775807,3]"), data: [1, 2, 3, 4]))
    guard case let .invalidTensor(_, "t", reason) = openError(wrap) else { Issue.record("expected invalidTensor"); return }
    #expect(reason.contains("backwards"))
}

@Test func overlappingSpans() throws {
    let folder = try TemporaryFolder()
    let header = #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#
    let path = try folder.write("overlap.safetensors", rawSafetensors(header, data: Array(0..<6)))
    #expect(openError(path) == .overlappingSpans(path: path, tensor: "b", other: "a"))
    let inside = #"{"big":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"small":{"dtype":"U8","shape":[1],"data_offsets":[3,4]}}"#
    let nested = try folder.write("nested.safetensors", rawSafetensors(inside, data: Array(0..<8)))
    #expect(openError(nested) == .overlappingSpans(path: nested, tensor: "small", other: "big"))
    // Zero-sized tensors share an offset with anything without overlapping.
    let zeros = #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"z":{"dtype":"F32","shape":[0],"data_offsets":[2,2]}}"#
    #expect(try SafetensorsFile(path: folder.write("zeros.safetensors", rawSafetensors(zeros, data: Array(0..<4)))).names
        == ["a", "z"])
}

@Test func unknownDTypes() throws {
    let folder = try TemporaryFolder()
    for dtype in ["F33", "bf16", "U16", "F8_E8M0", ""] {
        let path = try folder.write("dtype-\(dtype).safetensors", rawSafetensors(oneTensor(dtype: dtype), data: [0, 0, 0, 0]))
        #expect(openError(path) == .unknownDType(path: path, tensor: "t", dtype: dtype))
    }
    let notString = try folder.write("dtype-number.safetensors", rawSafetensors(oneTensor(dtype: "x").replacingOccurrences(
        of: "\"x\"", with: "4"), data: [0, 0, 0, 0]))
    guard case .invalidTensor(_, "t", _) = openError(notString) else { Issue.record("expected invalidTensor"); return }
}

@Test func shapeOverflowAndMismatch() throws {
    let folder = try TemporaryFolder()
    let cases = ["[2,18446744073709551614]", "[4294967296,4294967296,4]", "[9223372036854775807,2]",
                 "[99999999999999999999999999]"]
    for (i, shape) in cases.enumerated() {
        let path = try folder.write("overflow-\(i).safetensors",
                                    rawSafetensors(oneTensor(dtype: "F32", shape: shape, offsets: "[0,16]"), data: Array(repeating: 0, count: 16)))
        guard case .shapeOverflow(path, "t", _) = openError(path) else { Issue.record("expected shapeOverflow: \(shape)"); continue }
    }
    // The F32 element size tips a count that fits into a byte size that does not.
    let bytes = try folder.write("overflow-bytes.safetensors",
                                 rawSafetensors(oneTensor(dtype: "F32", shape: "[4611686018427387904]", offsets: "[0,16]")))
    guard case .shapeOverflow = openError(bytes) else { Issue.record("expected shapeOverflow"); return }

    let mismatch = try folder.write("mismatch.safetensors", rawSafetensors(oneTensor(dtype: "F32", shape: "[2,2]", offsets: "[0,4]"),
                                                                             data: [0, 0, 0, 0]))
    #expect(openError(mismatch) == .sizeMismatch(path: mismatch, tensor: "t", expected: 16, actual: 4))
}

@Test func badNumbersAndEntries() throws {
    let folder = try TemporaryFolder()
    let data: [UInt8] = [0, 0, 0, 0]
    let cases: [(String, String)] = [
        (oneTensor(shape: "[-4]"), "negative"),
        (oneTensor(shape: "[4.0]"), "not an integer"),
        (oneTensor(shape: "[4e0]"), "not an integer"),
        (oneTensor(offsets: "[-0,4]"), "negative"),
        (oneTensor(offsets: "[0]"), "exactly two"),
        (oneTensor(offsets: "[0,4,4]"), "exactly two"),
        (oneTensor(shape: "4"), "expected an array"),
        (oneTensor(shape: "[\"4\"]"), "expected an integer"),
        (#"{"t":{"shape":[4],"data_offsets":[0,4]}}"#, "missing \"dtype\""),
        (#"{"t":{"dtype":"U8","data_offsets":[0,4]}}"#, "missing \"shape\""),
        (#"{"t":{"dtype":"U8","shape":[4]}}"#, "missing \"data_offsets\""),
        (#"{"t":[1,2]}"#, "expected an object"),
        (#"{"":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#, "empty"),
        (#"{"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
         "twice"),
    ]
    for (i, (header, reason)) in cases.enumerated() {
        let path = try folder.write("entry-\(i).safetensors", rawSafetensors(header, data: data))
        guard case let .invalidTensor(_, _, message) = openError(path) else {
            Issue.record("expected invalidTensor for \(header)"); continue
        }
        #expect(message.contains(reason), "\(header): \(message)")
    }
}

@Test func badJSON() throws {
    let folder = try TemporaryFolder()
    var cases = [
        "", "   ", "{", "{\"t\":", "[1,2]", "\"text\"", "null", "{\"t\":{},}", "{} {}", "{'t':1}", "{\"a\" 1}", "{1:2}",
        "{\"t\":{\"dtype\":\"U8\",\"dtype\":\"U8\"}}", "{\"t\":NaN}", "{\"t\":{\"shape\":[01]}}",
        "{\"__metadata__\":{\"k\":\"\\x\"}}", "{\"t\":{\"dtype\":\"\\u12\"}}",
    ]
    // Bad values inside a field the reader otherwise ignores.
    for value in ["01", "NaN", "tru", "-", "1.", "1e", "+1", ".5", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\\ud800\"",
                  "\"tab\there\"", "\"open", "[1,]", "[1 2]", "{\"a\":1,}", String(repeating: "[", count: 10_000)] {
        cases.append("{\"t\":{\"x\":\(value)}}")
    }
    for (i, header) in cases.enumerated() {
        let path = try folder.write("json-\(i).safetensors", rawSafetensors(header))
        guard case let .invalidJSON(_, offset, _)? = openError(path) else {
            Issue.record("expected invalidJSON for \(header.prefix(40))"); continue
        }
        #expect(offset >= 0 && offset <= header.utf8.count)
    }
    let notUTF8 = try folder.write("latin1.safetensors", rawSafetensors("{\"caf\u{00e9}\":1}").map { $0 == 0xC3 ? 0xE9 : $0 })
    guard case .headerNotUTF8(_, 5)? = openError(notUTF8) else { Issue.record("expected headerNotUTF8"); return }
    var bytes = rawSafetensors("{\"a\":\"xx\"}")
    bytes[14] = 0xC0; bytes[15] = 0xAF  // overlong "/"
    guard case .headerNotUTF8(_, 6)? = openError(try folder.write("overlong.safetensors", bytes)) else {
        Issue.record("expected headerNotUTF8 for an overlong sequence"); return
    }
}

@Test func badMetadata() throws {
    let folder = try TemporaryFolder()
    for (i, metadata) in ["{\"a\":1}", "[\"a\"]", "\"a\"", "{\"a\":{\"b\":\"c\"}}"].enumerated() {
        let path = try folder.write("meta-\(i).safetensors", rawSafetensors("{\"__metadata__\":\(metadata)}"))
        guard case .invalidMetadata = openError(path) else { Issue.record("expected invalidMetadata: \(metadata)"); continue }
    }
    let null = try folder.write("meta-null.safetensors", rawSafetensors("{\"__metadata__\":null}"))
    #expect(try SafetensorsFile(path: null).metadata.isEmpty)
}

@Test func pathsThatAreNotFiles() throws {
    let folder = try TemporaryFolder()
    let missing = folder.path("missing.safetensors")
    #expect(openError(missing) == .notFound(path: missing))
    #expect(openError(missing + "/below") == .notFound(path: missing + "/below"))
    #expect(openError(folder.url.path) == .notAFile(path: folder.url.path, kind: "folder"))
    let fifo = folder.path("pipe.safetensors")
    #expect(mkfifo(fifo, 0o600) == 0)
    #expect(openError(fifo) == .notAFile(path: fifo, kind: "pipe"))  // and does not block waiting for a writer
    let longName = folder.path(String(repeating: "x", count: 300))
    guard case .unreadable? = openError(longName) else { Issue.record("expected unreadable"); return }
}

@Test func unreadableFile() throws {
    let folder = try TemporaryFolder()
    let path = folder.path("locked.safetensors")
    try writeSafetensors(["w": patternTensor([2], .f32)], to: path)
    #expect(chmod(path, 0) == 0)
    defer { chmod(path, 0o600) }
    if geteuid() == 0 {
        // root reads it anyway; the permission path is covered by the long-name case above.
        #expect(try SafetensorsFile(path: path).names == ["w"])
    } else {
        guard case .unreadable? = openError(path) else { Issue.record("expected unreadable"); return }
    }
}

@Test func missingTensorLookup() throws {
    let folder = try TemporaryFolder()
    let path = folder.path("one.safetensors")
    try writeSafetensors(["w": patternTensor([2], .f32)], to: path)
    let file = try SafetensorsFile(path: path)
    #expect(file.info("nope") == nil)
    #expect(throws: SafetensorsError.tensorNotFound(path: path, tensor: "nope")) { try file.tensor("nope") }
}

// MARK: - Writer errors

@Test func writerRejectsBadNamesAndBadPaths() throws {
    let folder = try TemporaryFolder()
    let path = folder.path("bad.safetensors")
    #expect(throws: SafetensorsError.writeFailed(path: path, tensor: "", reason: "tensor name is empty")) {
        try writeSafetensors(["": patternTensor([1], .f32)], to: path)
    }
    #expect(throws: SafetensorsError.self) { try writeSafetensors(["__metadata__": patternTensor([1], .f32)], to: path) }
    let noFolder = folder.path("no/such/folder.safetensors")
    #expect(throws: SafetensorsError.self) { try writeSafetensors(["w": patternTensor([1], .f32)], to: noFolder) }
    // Renaming over a folder fails, and the temporary file is removed.
    let sub = folder.path("sub")
    try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: false)
    #expect(throws: SafetensorsError.self) { try writeSafetensors(["w": patternTensor([1], .f32)], to: sub) }
    #expect(try FileManager.default.contentsOfDirectory(atPath: folder.url.path) == ["sub"])
}

// MARK: - Checkpoints

@Test func checkpointOfOneFile() throws {
    let folder = try TemporaryFolder()
    let path = folder.path("single.safetensors")
    try writeSafetensors(["b": patternTensor([2], .bf16), "a": patternTensor([3], .f32)], metadata: ["k": "v"], to: path)
    let checkpoint = try SafetensorsCheckpoint(path: path)
    #expect(checkpoint.names == ["a", "b"])
    #expect(checkpoint.files.count == 1)
    #expect(checkpoint.metadata == ["k": "v"])
    #expect(checkpoint.contains("a") && !checkpoint.contains("c"))
    #expect(try checkpoint.tensor("b").dtype == .bf16)
    #expect(throws: SafetensorsError.tensorNotFound(path: path, tensor: "c")) { try checkpoint.tensor("c") }
}

/// Two shards and an index json in `folder`, as diffusers and transformers write them.
func writeShardedCheckpoint(in folder: TemporaryFolder, weightMap extra: String = "") throws -> String {
    try writeSafetensors(["layer.0.w": patternTensor([2, 2], .bf16), "layer.0.b": patternTensor([2], .f32)],
                         metadata: ["format": "pt"], to: folder.path("model-00001-of-00002.safetensors"))
    try writeSafetensors(["layer.1.w": patternTensor([2, 2], .bf16, seed: 9), "ids": patternTensor([3], .i64)],
                         metadata: ["format": "pt", "shard": "2"], to: folder.path("model-00002-of-00002.safetensors"))
    let index = """
        {"metadata": {"total_size": 40, "note": "x", "nested": {"a": 1}},
         "weight_map": {"layer.0.w": "model-00001-of-00002.safetensors", "layer.0.b": "model-00001-of-00002.safetensors",
                        "layer.1.w": "model-00002-of-00002.safetensors", "ids": "model-00002-of-00002.safetensors"\(extra)}}
        """
    return try folder.write("model.safetensors.index.json", Array(index.utf8))
}

@Test func shardedCheckpointThroughItsIndex() throws {
    let folder = try TemporaryFolder()
    let index = try writeShardedCheckpoint(in: folder)
    for path in [index, folder.url.path] {
        let checkpoint = try SafetensorsCheckpoint(path: path)
        #expect(checkpoint.indexPath == index)
        #expect(checkpoint.names == ["ids", "layer.0.b", "layer.0.w", "layer.1.w"])
        #expect(checkpoint.files.map { URL(fileURLWithPath: $0.path).lastPathComponent }
            == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"])
        #expect(checkpoint.metadata == ["format": "pt", "shard": "2", "total_size": "40", "note": "x"])
        #expect(checkpoint.info("layer.1.w")?.shape == [2, 2])
        #expect(byteArray(try checkpoint.tensor("layer.1.w")) == byteArray(patternTensor([2, 2], .bf16, seed: 9)))
        #expect(try checkpoint.tensor("ids").dtype == .i64)
    }
}

@Test func indexWithAMissingShardOrTensor() throws {
    let folder = try TemporaryFolder()
    let index = try writeShardedCheckpoint(in: folder, weightMap: #", "layer.2.w": "model-00003-of-00002.safetensors""#)
    #expect(throws: SafetensorsError.shardMissing(index: index, shard: "model-00003-of-00002.safetensors", tensor: "layer.2.w")) {
        try SafetensorsCheckpoint(path: index)
    }
    let other = try TemporaryFolder()
    let index2 = try writeShardedCheckpoint(in: other, weightMap: #", "ghost": "model-00001-of-00002.safetensors""#)
    #expect(throws: SafetensorsError.tensorMissingFromShard(index: index2, shard: "model-00001-of-00002.safetensors",
                                                           tensor: "ghost")) {
        try SafetensorsCheckpoint(path: other.url.path)
    }
    do {
        _ = try SafetensorsCheckpoint(path: index2)
    } catch let error as SafetensorsError {
        #expect(error.description.contains("ghost") && error.description.contains("model-00001-of-00002.safetensors"))
    }
}

@Test func malformedIndexes() throws {
    let folder = try TemporaryFolder()
    try writeSafetensors(["w": patternTensor([1], .f32)], to: folder.path("a.safetensors"))
    let cases = ["{", "[]", "{\"metadata\":{}}", "{\"weight_map\":[]}", "{\"weight_map\":{\"w\":1}}",
                 "{\"weight_map\":{\"w\":\"../a.safetensors\"}}", "{\"weight_map\":{\"w\":\"/etc/passwd\"}}",
                 "{\"weight_map\":{\"w\":\"a.safetensors\",\"w\":\"a.safetensors\"}}"]
    for (i, text) in cases.enumerated() {
        let path = try folder.write("bad-\(i).safetensors.index.json", Array(text.utf8))
        #expect(throws: SafetensorsError.self) { try SafetensorsCheckpoint(path: path) }
        do { _ = try SafetensorsCheckpoint(path: path) } catch let error as SafetensorsError {
            guard case .invalidIndex(path, _) = error else { Issue.record("expected invalidIndex: \(text) → \(error)"); continue }
        }
    }
    // A shard that is not a safetensors file reports the shard's own path.
    try folder.write("junk.safetensors", [1, 2, 3])
    let junk = try folder.write("junk.safetensors.index.json", Array(#"{"weight_map":{"w":"junk.safetensors"}}"#.utf8))
    #expect(throws: SafetensorsError.tooSmall(path: folder.path("junk.safetensors"), size: 3)) {
        try SafetensorsCheckpoint(path: junk)
    }
}

@Test func folderWithoutAnIndex() throws {
    let folder = try TemporaryFolder()
    try writeSafetensors(["a": patternTensor([1], .f32)], metadata: ["who": "first"], to: folder.path("one.safetensors"))
    try writeSafetensors(["b": patternTensor([1], .f16)], metadata: ["who": "second"], to: folder.path("two.safetensors"))
    try folder.write("notes.txt", Array("hello".utf8))
    try folder.write(".hidden.safetensors", [0])
    let checkpoint = try SafetensorsCheckpoint(path: folder.url.path)
    #expect(checkpoint.indexPath == nil)
    #expect(checkpoint.names == ["a", "b"])
    #expect(checkpoint.metadata == ["who": "first"])
    #expect(try checkpoint.tensor("b").dtype == .f16)

    try writeSafetensors(["a": patternTensor([1], .f32)], to: folder.path("three.safetensors"))
    #expect(throws: SafetensorsError.duplicateTensor(tensor: "a", path: folder.path("three.safetensors"),
                                                     otherPath: folder.path("one.safetensors"))) {
        try SafetensorsCheckpoint(path: folder.url.path)
    }
}

@Test func checkpointPathsThatHoldNothing() throws {
    let folder = try TemporaryFolder()
    #expect(throws: SafetensorsError.noSafetensorsFiles(path: folder.url.path)) {
        try SafetensorsCheckpoint(path: folder.url.path)
    }
    let missing = folder.path("nothing")
    #expect(throws: SafetensorsError.notFound(path: missing)) { try SafetensorsCheckpoint(path: missing) }
}

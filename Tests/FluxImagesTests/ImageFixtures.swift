import Foundation
import Testing
@testable import FluxImages

/// `Tests/Fixtures/images/...`, found from this source file so tests need no resource bundle.
func imageFixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent("images").appendingPathComponent(name).path
}

func fixtureBytes(_ name: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: imageFixture(name))))
}

/// One entry of cases.json (tools/reference/make_image_fixtures.py): a file and the RGBA8 pixels Pillow 13.0
/// decoded from it, with the largest per-channel difference the test allows.
struct ImageCase: Decodable, CustomTestStringConvertible, Sendable {
    var file: String
    var expected: String
    var format: String
    var width: Int
    var height: Int
    var hasAlpha: Bool
    var tolerance: Int
    var note: String

    var testDescription: String { file }

    static let all: [ImageCase] = {
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: imageFixture("cases.json")))
            return try JSONDecoder().decode([ImageCase].self, from: data)
        } catch {
            fatalError("cannot load Tests/Fixtures/images/cases.json: \(error)")
        }
    }()
}

/// Largest absolute difference between two equally long byte arrays (Int.max when the lengths differ).
func maxDifference(_ a: [UInt8], _ b: [UInt8]) -> Int {
    guard a.count == b.count else { return Int.max }
    return zip(a, b).reduce(0) { max($0, abs(Int($1.0) - Int($1.1))) }
}

/// SplitMix64: a small seeded generator, so a failing mutation can be replayed from its seed and index.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A fresh temporary folder for files a test writes.
func temporaryFolder() throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fluxserve-img-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return folder
}

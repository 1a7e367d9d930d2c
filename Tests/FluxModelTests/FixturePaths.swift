import Foundation

/// `Tests/Fixtures/...`, found from this source file so tests need no resource bundle.
func fixturePath(_ components: String...) -> String {
    var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    for c in components { url.appendPathComponent(c) }
    return url.path
}

/// Largest |a − b| over the largest |b|: the relative error every parity test states its threshold in.
func maxRelativeError(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var diff: Float = 0, scale: Float = 0
    for i in a.indices {
        diff = max(diff, abs(a[i] - b[i]))
        scale = max(scale, abs(b[i]))
    }
    return diff / max(scale, .leastNormalMagnitude)
}

/// The shipped demo model, `models/demo/` of this checkout (the command line finds it through its model locator;
/// the library has no notion of "demo").
let demoModelPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("models/demo").path

import FluxCore
import FluxCUDA
import Foundation

/// `bench --profile`: where one run of a stage spends its device time, op by op, and how much of its wall time is
/// the host issuing work (a stage whose issue time nears its wall time is launch-bound).
struct StageProfile: Codable {
    var stage: String
    var size: String
    /// Wall time of one unprofiled run, start to the result on the host.
    var wallMs: Double
    /// Of it, the time until the host had issued every op (the device still running).
    var issueMs: Double
    /// Device time of the profiled run, summed over ops.
    var deviceMs: Double
    var ops: [ProfileEntry]

    /// Measures `body` once unprofiled (wall and issue time), then once with per-op events.
    static func measure(_ stage: String, _ size: String, on backend: any Backend, _ body: () throws -> Tensor) throws
        -> StageProfile?
    {
        guard let cuda = backend as? CUDABackend else { return nil }
        try cuda.synchronize()
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try body()
        let issued = DispatchTime.now().uptimeNanoseconds
        _ = try backend.absSum(result)
        let done = DispatchTime.now().uptimeNanoseconds
        try cuda.startProfiling()
        let ops: [ProfileEntry]
        do {
            _ = try body()
            ops = try cuda.stopProfiling()
        } catch {
            _ = try? cuda.stopProfiling()
            throw error
        }
        return StageProfile(stage: stage, size: size, wallMs: Double(done - start) / 1e6,
                            issueMs: Double(issued - start) / 1e6,
                            deviceMs: ops.reduce(0) { $0 + $1.milliseconds }, ops: ops)
    }

    /// A markdown table of the ops taking the most time (the rest summed in one line).
    func table(top: Int = 25) -> String {
        var lines = [String(format: "profile %@ %@: wall %.2f ms (host issue %.2f ms), device time %.2f ms over %d ops",
                            stage, size, wallMs, issueMs, deviceMs, ops.reduce(0) { $0 + $1.calls }),
                     "| op | calls | ms | % | TFLOP/s | GB/s |", "|---|---|---|---|---|---|"]
        func row(_ e: ProfileEntry) -> String {
            let seconds = e.milliseconds / 1e3
            let tflops = e.flops > 0 && seconds > 0 ? String(format: "%.0f", e.flops / seconds / 1e12) : ""
            let gbs = e.bytes > 0 && seconds > 0 ? String(format: "%.0f", e.bytes / seconds / 1e9) : ""
            return String(format: "| %@ | %d | %.3f | %.1f | %@ | %@ |", e.name, e.calls, e.milliseconds,
                          deviceMs > 0 ? 100 * e.milliseconds / deviceMs : 0, tflops, gbs)
        }
        lines += ops.prefix(top).map(row)
        let rest = ops.dropFirst(top)
        if !rest.isEmpty {
            lines.append(row(ProfileEntry(name: "\(rest.count) other ops", calls: rest.reduce(0) { $0 + $1.calls },
                                          milliseconds: rest.reduce(0) { $0 + $1.milliseconds },
                                          flops: rest.reduce(0) { $0 + $1.flops }, bytes: rest.reduce(0) { $0 + $1.bytes })))
        }
        return lines.joined(separator: "\n")
    }
}

import FluxModel
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Shows denoising progress on stderr: a redrawn bar on a terminal, one plain line per step otherwise.
struct ProgressReporter {
    let interactive = isatty(STDERR_FILENO) == 1
    let label: String

    func report(_ p: StepProgress) {
        let rate = p.elapsed > 0 ? Double(p.step) / p.elapsed : 0
        let eta = rate > 0 ? Double(p.total - p.step) / rate : 0
        let stats = String(format: "%d/%d  %.2f it/s  ETA %.1fs", p.step, p.total, rate, eta)
            + (p.skipped ? "  (cached)" : "")
        if interactive {
            let width = 30, filled = p.total > 0 ? width * p.step / p.total : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data("\r\(label) \(bar) \(stats)\u{1B}[K".utf8))
            if p.step == p.total { FileHandle.standardError.write(Data("\n".utf8)) }
        } else {
            printError("\(label) step \(stats)")
        }
    }
}

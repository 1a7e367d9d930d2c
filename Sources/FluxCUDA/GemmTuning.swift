import FluxCore
import Foundation

/// How products pick their cuBLASLt algorithm, once per backend (`CUDABackend.Options.gemmTuning`). The command line
/// gives it as comma-separated words (`--gemm-tune`; empty means timed):
/// - `1`, `on`: time the heuristic's top candidates at a shape's first product and keep the fastest (the default);
/// - `0`, `off`: no timing, the heuristic's first algorithm (as before tuning existed);
/// - `candidates=N`: heuristic results asked for per shape (default 8, 1…32);
/// - `repeats=N`: timed runs per candidate (default 3, 1…20), after one untimed run;
/// - `all`: time every shape, however small (by default those under 1 GFLOP take the first untimed);
/// - `pick=N`: no timing, candidate N (or the last there is) everywhere a choice is made — with `all`, for checking
///   each candidate's results in `fluxserve selftest --device cuda`;
/// - `log`: one line per tuned shape on standard error.
public struct GemmTuneSettings: Equatable, Sendable {
    public var enabled = true
    public var candidates = 8
    public var repeats = 3
    public var log = false
    /// Below this many FLOPs a product takes the heuristic's first algorithm untimed: it is launch-bound, and timing
    /// would cost more than it could save.
    public var minimumFlops = 1e9
    /// Another candidate replaces the heuristic's first only when faster by more than this fraction, so timing noise
    /// between equivalent algorithms does not move the choice from run to run.
    public var margin = 0.01
    /// Candidate to run untimed (`pick=N`), nil to time.
    public var pick: Int?

    public init() {}

    /// The settings the words of `text` ask for; an unknown word throws a `CUDAOptionError` naming `option` (the
    /// flag or environment variable the text came from).
    public init(parsing text: String, option: String) throws {
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            let word = raw.trimmingCharacters(in: .whitespaces).lowercased()
            func number(_ prefix: String, _ range: ClosedRange<Int>) -> Int? {
                guard word.hasPrefix(prefix), let n = Int(word.dropFirst(prefix.count)), range.contains(n) else {
                    return nil
                }
                return n
            }
            switch word {
            case "1", "on", "true", "yes", "auto", "": enabled = true
            case "0", "off", "false", "no", "first": enabled = false
            case "log": log = true
            case "all": minimumFlops = 0
            default:
                if let n = number("candidates=", 1...CuBLASLt.maxCandidates) {
                    candidates = n
                } else if let n = number("repeats=", 1...20) {
                    repeats = n
                } else if let n = number("pick=", 0...(CuBLASLt.maxCandidates - 1)) {
                    pick = n
                } else {
                    throw CUDAOptionError(option: option, value: word,
                                          expected: "1, on, 0, off, all, log, candidates=N with 1 ≤ N ≤ "
                                              + "\(CuBLASLt.maxCandidates), repeats=N with 1 ≤ N ≤ 20, pick=N with "
                                              + "0 ≤ N < \(CuBLASLt.maxCandidates)")
                }
            }
        }
    }

    /// The words that give these settings back (`on`, `off,log`, `on,candidates=16,all`), for the `config:` line.
    public var summary: String {
        var words = [enabled ? "on" : "off"]
        if candidates != 8 { words.append("candidates=\(candidates)") }
        if repeats != 3 { words.append("repeats=\(repeats)") }
        if minimumFlops == 0 { words.append("all") }
        if let pick { words.append("pick=\(pick)") }
        if log { words.append("log") }
        return words.joined(separator: ",")
    }

    /// Heuristic results to ask for a product of `flops` FLOPs: 1 (no choice to make) when untimed, enough to reach
    /// candidate `pick` when picking.
    func candidates(flops: Double) -> Int {
        guard flops >= minimumFlops else { return 1 }
        if let pick { return pick + 1 }
        return enabled ? candidates : 1
    }
}

/// The arithmetic of choosing among timed candidates.
enum GemmTuning {
    /// The median of `samples` (the mean of the middle two for an even count), nil for none.
    static func median(_ samples: [Double]) -> Double? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted(), mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }

    /// The candidate to keep given each one's time (nil: it failed or was not timed): the fastest, except that the
    /// first (the heuristic's pick) stays unless the fastest beats it by more than `margin` (a fraction). 0 when
    /// nothing was timed.
    static func choose(_ times: [Double?], margin: Double) -> Int {
        let timed = times.enumerated().compactMap { i, t in t.map { (index: i, ms: $0) } }
        guard let best = timed.min(by: { $0.ms < $1.ms }) else { return 0 }
        if let first = times.first ?? nil, first <= best.ms * (1 + max(margin, 0)) { return 0 }
        return best.index
    }

    /// Bytes of a scratch D (and C) for `s`: the last batch's last column ends there.
    static func outputBytes(_ s: CuBLASLt.Shape) -> Int {
        let elements = max(s.batch - 1, 0) * s.strideD + s.ldd * max(s.n - 1, 0) + s.m
        return max(elements, 1) * (s.outputF32 ? 4 : 2)
    }
}

/// How the algorithm of one product shape was chosen, for reports (`CUDABackend.matmulTuning`).
public struct GemmTuningEntry: Sendable, Codable, Equatable {
    /// `m x n x k` as the profile names products (`gemm 12288x4608x3072`), then batch and epilogue.
    public var shape: String
    public var flops: Double
    /// Per candidate in the heuristic's order: the median time of its timed runs in ms, nil when it failed.
    public var milliseconds: [Double?]
    /// Per candidate, its configuration (`CuBLASLt.describe`: algorithm id, tile, stages, split-K, reduction, ...).
    public var algorithms: [String]
    public var chosen: Int
    /// Host time the tuning took (timed runs, event waits, scratch allocation).
    public var tuningMs: Double
    /// Why timing was cut short, if it was.
    public var note: String?

    public init(shape: String, flops: Double, milliseconds: [Double?], algorithms: [String] = [], chosen: Int,
                tuningMs: Double, note: String? = nil) {
        (self.shape, self.flops, self.milliseconds, self.algorithms, self.chosen, self.tuningMs, self.note) =
            (shape, flops, milliseconds, algorithms, chosen, tuningMs, note)
    }

    /// The heuristic's first candidate's time over the chosen one's (1 when the first was kept or untimed).
    public var speedup: Double {
        guard let first = milliseconds.first ?? nil, milliseconds.indices.contains(chosen),
              let kept = milliseconds[chosen], kept > 0 else { return 1 }
        return first / kept
    }

    /// One line: shape, each candidate's time (the chosen one starred) and the gain over the heuristic's first.
    public var line: String {
        let times = milliseconds.enumerated().map { i, t in
            (i == chosen ? "*" : "") + (t.map { String(format: "%.3f", $0) } ?? "failed")
        }
        let kept = milliseconds.indices.contains(chosen) ? milliseconds[chosen] : nil
        let rate = kept.map { String(format: " %.0f TFLOP/s", flops / ($0 * 1e-3) / 1e12) } ?? ""
        var configuration = ""
        if algorithms.indices.contains(chosen), !algorithms[chosen].isEmpty {
            configuration = " [\(algorithms[chosen])" + (chosen != 0 ? " over \(algorithms[0])]" : "]")
        }
        return "gemm \(shape): [\(times.joined(separator: " "))] ms, candidate \(chosen)\(rate), "
            + String(format: "%.3fx the heuristic's first, tuned in %.1f ms", speedup, tuningMs) + configuration
            + (note.map { " (\($0))" } ?? "")
    }

    /// One line over all entries: shapes tuned, how many moved off the heuristic's first, total tuning time.
    public static func summary(_ entries: [GemmTuningEntry]) -> String {
        let moved = entries.filter { $0.chosen != 0 }.count
        let total = entries.reduce(0) { $0 + $1.tuningMs }
        return String(format: "cuBLASLt tuning: %d shapes timed in %.1f ms, %d moved off the heuristic's first",
                      entries.count, total, moved)
            + (moved > 0 ? " (" + entries.filter { $0.chosen != 0 }.map {
                "\($0.shape.split(separator: " ").first ?? "") " + String(format: "%.2fx", $0.speedup)
            }.joined(separator: ", ") + ")" : "")
    }
}

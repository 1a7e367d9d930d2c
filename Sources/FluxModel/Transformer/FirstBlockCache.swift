import FluxCore

/// First Block Cache (ParaAttention; diffusers `hooks/first_block_cache.py`, the reference here): each step runs the
/// first double block; if its image residual changed little since the last fully computed step — mean |r − r_prev| /
/// mean |r_prev| ≤ threshold — the other blocks are skipped and the residual they added last time is added instead.
///
/// One instance holds the state of one generation (diffusers keeps it per cache context and starts each pipeline call
/// fresh): `r_prev` is updated only on computed steps, as in the reference.
public final class FirstBlockCache: @unchecked Sendable {
    /// 0 turns the cache off.
    public let threshold: Float
    /// The head block's image residual at the last computed step.
    var headResidual: Tensor?
    /// What the blocks after the head added at the last computed step: image and text streams.
    var tailResidual: (img: Tensor, txt: Tensor)?
    /// Steps (in call order, from 0) whose remaining blocks were skipped.
    public private(set) var skippedSteps: [Int] = []
    /// Calls so far.
    public private(set) var calls = 0
    /// The relative change measured at each call (nil on the first).
    public private(set) var changes: [Float?] = []

    public init(threshold: Float) {
        self.threshold = threshold
    }

    /// Decides whether the remaining blocks must run for this call, given the head block's image residual.
    func shouldCompute(residual: Tensor, on b: any Backend) throws -> Bool {
        defer { calls += 1 }
        guard let previous = headResidual, tailResidual != nil else {
            changes.append(nil)
            return true
        }
        // mean|r − r_prev| / mean|r_prev|: the element counts cancel.
        let change = try b.absSum(try b.addScaled(residual, previous, scale: -1)) / b.absSum(previous)
        changes.append(change)
        if change > threshold { return true }
        skippedSteps.append(calls)
        return false
    }
}

/// What migration cost a serving run: step time with and without weight copies in flight, how long forwards waited
/// for copies, and how long the copies took. Measurements for the report, never asserted.
///
/// A step is *migrating* when it started a layer's copies, when a copy from an earlier step was still in flight as it
/// began, or when one of its forwards waited for a copy; every other step is *steady*. Step time is the engine step
/// plus the migrator's step boundary; the first step and verification steps are left out of both means. In a
/// multi-process run each process classifies its own steps, and every time and step count is the maximum over
/// processes (waits, jobs and pinned bytes are summed).
public struct MigrationReport: Sendable, Codable, Equatable {
    /// Steps counted as steady.
    public var steadySteps: Int
    /// Steps counted as migrating.
    public var migratingSteps: Int
    /// Mean wall seconds of a steady step; nil when there was none.
    public var steadyStepSeconds: Double?
    /// Mean wall seconds of a migrating step; nil when there was none.
    public var migratingStepSeconds: Double?
    /// migratingStepSeconds / steadyStepSeconds; nil unless both exist.
    public var migratingToSteadyRatio: Double?
    /// The longest time one step waited for unfinished copies (summed over its layers, max over ranks), seconds.
    public var maxStepCopyWaitSeconds: Double
    /// Forwards (layer, rank) that found their own layer's copies unfinished and waited.
    public var copyWaits: Int
    /// Copy jobs (one per migrating layer and rank with changed slots).
    public var copyJobs: Int
    /// Mean wall seconds of one layer's copy job on one rank (first slot write issued → writes landed).
    public var meanLayerCopySeconds: Double
    /// The longest layer copy job, seconds.
    public var maxLayerCopySeconds: Double
    /// Bytes written into slot buffers per applied plan (bytesCopied / rebalances; 0 without rebalances).
    public var bytesPerRebalance: Double
    /// Bytes of the host expert store page-locked for asynchronous copies (0: copies from pageable memory).
    public var pinnedHostBytes: Int

    /// The report with `bytesPerRebalance` set.
    public func with(bytesPerRebalance b: Double) -> MigrationReport {
        var r = self
        r.bytesPerRebalance = b
        return r
    }

    /// Every process's report combined (collective: all processes call it): maxima of times and step counts,
    /// sums of waits, jobs and pinned bytes.
    func combined<B: MoEBackend>(over backend: B) throws -> MigrationReport {
        let m = try CrossRank.max(backend, [
            steadyStepSeconds ?? -1, migratingStepSeconds ?? -1, Double(steadySteps), Double(migratingSteps),
            maxStepCopyWaitSeconds, meanLayerCopySeconds, maxLayerCopySeconds,
        ])
        let s = try CrossRank.sum(backend, [Double(copyWaits), Double(copyJobs), Double(pinnedHostBytes)])
        var r = self
        r.steadyStepSeconds = m[0] >= 0 ? m[0] : nil
        r.migratingStepSeconds = m[1] >= 0 ? m[1] : nil
        r.steadySteps = Int(m[2])
        r.migratingSteps = Int(m[3])
        r.maxStepCopyWaitSeconds = m[4]
        r.meanLayerCopySeconds = m[5]
        r.maxLayerCopySeconds = m[6]
        r.copyWaits = Int(s[0])
        r.copyJobs = Int(s[1])
        r.pinnedHostBytes = Int(s[2])
        r.migratingToSteadyRatio = StepTimes.ratio(r.migratingStepSeconds, r.steadyStepSeconds)
        return r
    }
}

/// Step-time sums of one run, split into steady and migrating steps (see `MigrationReport`).
struct StepTimes {
    var steady = 0.0, steadyCount = 0
    var migrating = 0.0, migratingCount = 0
    /// Longest per-step copy wait, seconds.
    var maxStepWait = 0.0
    /// Forwards that waited for a copy.
    var waits = 0

    mutating func add(_ seconds: Double, migrating isMigrating: Bool) {
        if isMigrating {
            migrating += seconds
            migratingCount += 1
        } else {
            steady += seconds
            steadyCount += 1
        }
    }

    static func ratio(_ a: Double?, _ b: Double?) -> Double? {
        guard let a, let b, b > 0 else { return nil }
        return a / b
    }

    /// The report of this process (`bytesPerRebalance` is set by the caller).
    func summary(copyJobs: Int, copySeconds: Double, maxCopySeconds: Double, pinnedHostBytes: Int) -> MigrationReport {
        let s = steadyCount > 0 ? steady / Double(steadyCount) : nil
        let m = migratingCount > 0 ? migrating / Double(migratingCount) : nil
        return MigrationReport(
            steadySteps: steadyCount, migratingSteps: migratingCount, steadyStepSeconds: s, migratingStepSeconds: m,
            migratingToSteadyRatio: Self.ratio(m, s), maxStepCopyWaitSeconds: maxStepWait, copyWaits: waits,
            copyJobs: copyJobs, meanLayerCopySeconds: copyJobs > 0 ? copySeconds / Double(copyJobs) : 0,
            maxLayerCopySeconds: maxCopySeconds, bytesPerRebalance: 0, pinnedHostBytes: pinnedHostBytes)
    }
}

import WideEPCore

/// The summary of one serving run (what `wide-ep run` prints).
public struct RunReport: Sendable, Codable {
    /// Balancer mode.
    public var balancer: BalancerMode
    /// Backend name.
    public var device: String
    /// EP size.
    public var ranks: Int
    /// Processes the ranks ran in: 1 when they were threads of one process, `ranks` with one process per rank.
    public var processes: Int
    /// Total slots per layer.
    public var numSlots: Int
    /// Steps run.
    public var steps: Int
    /// Tokens processed (all layers see each token).
    public var tokens: Int
    /// Wall seconds of the step loop (including the harness's synthetic hidden states and any verification).
    public var seconds: Double
    /// Serving throughput: tokens of the timed steps / `servingSeconds` (tokens / `seconds` when no step was timed,
    /// i.e. a one-step run or one verified at every step).
    public var tokensPerSecond: Double
    /// tokens / seconds: what the whole loop achieved, harness included.
    public var wallTokensPerSecond: Double
    /// Seconds the timed steps spent serving: engine step, migration boundary and the balancer's work between steps,
    /// for every step but the first (kernel compilation, first-touch allocation) and those captured for
    /// verification. The slowest process's total in a multi-process run.
    public var servingSeconds: Double
    /// Realized per-(layer, step) imbalance: (max − mean) / mean of the tokens each rank computed.
    public var imbalanceMean: Double
    /// p99 of the same samples.
    public var imbalanceP99: Double
    /// Mean balancedness (mean / max).
    public var balancedness: Double
    /// Plans applied that changed at least one slot.
    public var rebalances: Int
    /// Slot rewrites.
    public var slotsMoved: Int
    /// Bytes written into slot buffers (float32).
    public var bytesCopied: Int
    /// Seconds the migration copy jobs ran (on the migration thread, overlapped with serving).
    public var migrationSeconds: Double
    /// Seconds forwards waited for an unfinished copy of their own layer.
    public var migrationStallSeconds: Double
    /// Layer checks against the dense reference.
    public var verifications: Int
    /// Checks whose relative error exceeded the tolerance.
    public var verificationMismatches: Int
    /// Largest relative error seen in verification.
    public var maxRelativeError: Double
    /// Forwards that saw a slot not holding its placement's expert (must be 0).
    public var staleSlotObservations: Int
    /// Phase times summed over steps and layers (slowest rank per phase), seconds.
    public var phases: PhaseTimes
    /// Dispatch rows per routed token and layer: rows all ranks received / (tokens × layers), between 1 and top-K
    /// (a token goes once to each distinct rank among its experts' chosen replicas). Lower means less all-to-all
    /// traffic for the same tokens.
    public var dispatchRowsPerToken: Double
    /// Step time steady vs while migrating, copy waits and copy times.
    public var migration: MigrationReport
}

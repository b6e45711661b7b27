import Foundation
import WideEPCore

/// Settings of a serving run.
public struct RunOptions: Sendable {
    /// Steps to run.
    public var steps: Int
    /// Tokens per step over all ranks (rank r gets an even share, the remainder to the first ranks).
    public var tokensPerStep: Int
    /// Balancer settings.
    public var balancer: BalancerOptions
    /// How batches split over replicas.
    public var split: SplitPolicy
    /// Compare every layer with the dense reference every N steps (0 = never).
    public var verifyEvery: Int
    /// Relative-error tolerance of a verification.
    public var verifyTolerance: Double
    /// Seed of the hidden states.
    public var seed: UInt64

    public init(
        steps: Int, tokensPerStep: Int, balancer: BalancerOptions, split: SplitPolicy = .balanced,
        verifyEvery: Int = 0, verifyTolerance: Double = 1e-4, seed: UInt64 = 0
    ) {
        self.steps = steps
        self.tokensPerStep = tokensPerStep
        self.balancer = balancer
        self.split = split
        self.verifyEvery = verifyEvery
        self.verifyTolerance = verifyTolerance
        self.seed = seed
    }
}

/// One progress report, sent every few seconds of a run.
public struct RunProgress: Sendable {
    /// Steps done.
    public var step: Int
    /// Steps in the run.
    public var steps: Int
    /// Tokens per second so far.
    public var tokensPerSecond: Double
    /// Mean realized imbalance so far.
    public var imbalanceMean: Double
    /// Plans applied so far.
    public var rebalances: Int
}

/// The serving loop: workload → engine steps → statistics → background planning → migration.
public enum ServingRun {
    /// Runs `options.steps` steps of `workload` on `backend` and returns the summary and the realized per-step
    /// counts [steps][L][E].
    ///
    /// - Parameters:
    ///   - initial: the starting placements [L].
    ///   - staticPlacementGiven: with `static`, `initial` came from a placement file and is kept as is.
    ///   - progress: called on the calling thread about every `progressInterval` seconds.
    ///   - beforeStep: called with the step index before each step (fault injection in tests).
    ///   - afterStep: called with the step index and the active placements [L] after each step's boundary (the
    ///     placements the next step uses).
    ///   - slotCopyHook: test hook run on the migration lane after each slot write (`WeightMigrator.afterSlotCopy`).
    ///
    /// Migration is layer-wise (`WeightMigrator`): a migrating layer's copies start right after its forward, overlap
    /// the following layers, and its new placement is active from the next step; only a forward whose own layer's
    /// copies are unfinished waits. Step times are the engine step plus the migrator's step boundary (not the
    /// harness's token generation or verification); steps that capture for verification and the first step (kernel
    /// compilation, first-touch allocation) are left out of the steady/migrating means.
    ///
    /// When the backend drives only some ranks (one process per rank), every process must call this with the same
    /// arguments: each computes its own ranks' tokens, all make identical balancing decisions (they depend only on
    /// the all-gathered counts and on step numbers), verification errors are maxed over processes, and wall time,
    /// phase times and stalls are the slowest process's (phases: each process's totals, then the max per phase).
    public static func run<B: MoEBackend>(
        backend: B, store: [MoELayerWeights], initial: [Placement], workload: RoutingWorkload, options: RunOptions,
        staticPlacementGiven: Bool = false, progressInterval: Double = 2, progress: (RunProgress) -> Void = { _ in },
        beforeStep: (Int) throws -> Void = { _ in }, afterStep: (Int, [Placement]) -> Void = { _, _ in },
        slotCopyHook: ((_ layer: Int, _ slot: Int) -> Void)? = nil
    ) throws -> (report: RunReport, counts: [[[Double]]]) {
        guard options.steps >= 1 else { throw RunError.invalidOption(name: "steps", value: "\(options.steps)", expected: ">= 1") }
        guard options.tokensPerStep >= 1 else {
            throw RunError.invalidOption(name: "tokens-per-step", value: "\(options.tokensPerStep)", expected: ">= 1")
        }
        let config = store[0].config, h = config.hiddenSize, nl = store.count
        // A backend with lower-precision arithmetic (bf16 GEMMs) is judged at its own tolerance.
        let tolerance = max(options.verifyTolerance, backend.referenceTolerance)
        let engine = try Engine(backend: backend, store: store, placements: initial, splitPolicy: options.split)
        let migrator = WeightMigrator(engine: engine, layerUpdatesPerStep: options.balancer.layerUpdatesPerStep)
        migrator.afterSlotCopy = slotCopyHook
        let balancer = OnlineBalancer(
            options: options.balancer, numLayers: nl, numExperts: config.numExperts,
            staticPlacementGiven: staticPlacementGiven)
        var workload = workload
        var summary = ImbalanceSummary()
        var counts: [[[Double]]] = []
        var rebalances = 0, verifications = 0, mismatches = 0, stale = 0
        var maxErr = 0.0, stall = 0.0
        var phases = PhaseTimes()
        let ranks = backend.localRanks, r = backend.numRanks
        // Some ranks live in other processes: per-process results are combined with collectives.
        let distributed = ranks.count < r
        var stepTimes = StepTimes()
        let start = monotonicSeconds()
        var lastProgress = start
        var tokensDone = 0
        var rowsReceived = 0
        // Serving time: the engine step, the migration boundary and the balancer's work between steps, of every step
        // but the first (kernel compilation, first-touch allocation) and those captured for verification; not the
        // harness's synthetic hidden states or the dense-reference checks.
        var servingSeconds = 0.0
        var servedTokens = 0
        for step in 0..<options.steps {
            try beforeStep(step)
            let offsets = workload.logitOffsets(workload.nextCounts())
            // Rank r's rows of step s come from a stream seeded by (seed, s, r), so rank r sees the same tokens
            // whether the ranks are threads of one process or separate processes, and a process generates only its
            // own ranks' rows.
            let hidden: [[Float]] = ranks.map { rank in
                let n = (options.tokensPerStep / r + (rank < options.tokensPerStep % r ? 1 : 0)) * h
                var rng = SeededGenerator(seed: Self.hiddenSeed(options.seed, step: step, rank: rank))
                return (0..<n).map { _ in rng.symmetric(1.7320508) }
            }
            let verify = options.verifyEvery > 0 && step % options.verifyEvery == 0
            let inFlight = migrator.copiesInFlight
            let t0 = monotonicSeconds()
            let started = migrator.beginStep()
            let result = try engine.step(hidden: hidden, logitOffsets: offsets, hooks: migrator, capture: verify)
            try migrator.endStep()
            let stepSeconds = monotonicSeconds() - t0
            afterStep(step, engine.placements)
            if step > 0 && !verify {
                stepTimes.add(stepSeconds, migrating: inFlight || !started.isEmpty || result.copyWaitCount > 0)
            }
            stepTimes.maxStepWait = max(stepTimes.maxStepWait, result.copyWait)
            stepTimes.waits += result.copyWaitCount
            stall += result.copyWait
            phases = phases + result.times
            tokensDone += options.tokensPerStep
            rowsReceived += result.receivedRows
            var stepCounts: [[Double]] = []
            var meanRatio = 0.0
            for info in result.layers {
                summary.add(rankLoads: info.rankLoads)
                meanRatio += Imbalance.ratio(info.rankLoads) / Double(nl)
                stepCounts.append(info.expertCounts.map(Double.init))
                stale += info.staleSlots
            }
            counts.append(stepCounts)
            if verify, let cap = result.captured {
                var errs: [Double] = []
                for l in 0..<nl {
                    let input = cap[l].flatMap(\.input), output = cap[l].flatMap(\.output)
                    let ref = DenseMoEReference.forward(
                        weights: store[l], hidden: input, tokens: input.count / h, logitOffset: offsets[l])
                    errs.append(MoEMath.relativeError(output, ref))
                }
                // Each process checks its own ranks' tokens; the worst error per layer decides on every rank.
                if distributed { errs = try CrossRank.max(backend, errs) }
                for err in errs {
                    verifications += 1
                    maxErr = max(maxErr, err)
                    if !(err <= tolerance) { mismatches += 1 }
                }
            }
            let tb = monotonicSeconds()
            balancer.observe(step: step, counts: stepCounts, imbalance: meanRatio, current: migrator.targets)
            if let plan = try balancer.adoptPlan(step: step) {
                if plan != migrator.targets {
                    rebalances += 1
                    try migrator.setTargets(plan)
                }
            }
            if step > 0 && !verify {
                servingSeconds += stepSeconds + (monotonicSeconds() - tb)
                servedTokens += options.tokensPerStep
            }
            let now = monotonicSeconds()
            if now - lastProgress >= progressInterval {
                lastProgress = now
                progress(RunProgress(step: step + 1, steps: options.steps,
                                     tokensPerSecond: Double(tokensDone) / (now - start),
                                     imbalanceMean: summary.mean, rebalances: rebalances))
            }
        }
        var seconds = monotonicSeconds() - start
        balancer.waitForIdle()
        // The last steps' copies land before the report (and before the engine can go away).
        try migrator.waitForCopies()
        var copySeconds = migrator.copySeconds
        var migration = stepTimes.summary(
            copyJobs: migrator.copyJobs, copySeconds: copySeconds, maxCopySeconds: migrator.maxCopySeconds,
            pinnedHostBytes: engine.pinnedHostBytes)
        if distributed {
            migration = try migration.combined(over: backend)
            // Totals over processes: the slowest rank sets wall time and phase times; stale slots add up.
            let worst = try CrossRank.max(backend, [seconds, stall, copySeconds, phases.route,
                                                    phases.dispatch, phases.ffn, phases.combine, servingSeconds])
            seconds = worst[0]
            servingSeconds = worst[7]
            stall = worst[1]
            copySeconds = worst[2]
            phases = PhaseTimes()
            phases.route = worst[3]
            phases.dispatch = worst[4]
            phases.ffn = worst[5]
            phases.combine = worst[6]
            let sums = try CrossRank.sum(backend, [Double(stale), Double(rowsReceived)])
            stale = Int(sums[0])
            rowsReceived = Int(sums[1])
        }
        let report = RunReport(
            balancer: options.balancer.mode, device: backend.deviceName, ranks: r, processes: r / ranks.count, numSlots: initial[0].numSlots,
            steps: options.steps, tokens: tokensDone, seconds: seconds,
            tokensPerSecond: servingSeconds > 0 ? Double(servedTokens) / servingSeconds : Double(tokensDone) / seconds,
            wallTokensPerSecond: Double(tokensDone) / seconds, servingSeconds: servingSeconds,
            imbalanceMean: summary.mean, imbalanceP99: summary.p99, balancedness: summary.balancedness,
            rebalances: rebalances, slotsMoved: migrator.slotsMoved, bytesCopied: migrator.bytesCopied,
            migrationSeconds: copySeconds, migrationStallSeconds: stall, verifications: verifications,
            verificationMismatches: mismatches, maxRelativeError: maxErr, staleSlotObservations: stale,
            phases: phases,
            dispatchRowsPerToken: tokensDone > 0 ? Double(rowsReceived) / Double(tokensDone * nl) : 0,
            migration: migration.with(
                bytesPerRebalance: rebalances > 0 ? Double(migrator.bytesCopied) / Double(rebalances) : 0))
        return (report, counts)
    }

    /// Seed of rank `rank`'s hidden states at step `step` (SplitMix64-style mixing of the three).
    static func hiddenSeed(_ seed: UInt64, step: Int, rank: Int) -> UInt64 {
        var z = seed &+ 0x1234 &+ UInt64(step) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(rank) &* 0xD6E8_FEB8_6659_FD93
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

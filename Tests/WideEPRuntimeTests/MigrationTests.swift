import Dispatch
import Foundation
import Testing
import WideEPCPU
import WideEPCore
import WideEPRuntime
import WideEPTestSupport

/// Layer-wise migration: copies start after a layer's forward, the new placement is active from the next step, and
/// outputs stay equal to the dense reference through it all.
@Suite struct MigrationTests {
    static let config = MoEConfig(
        name: "tiny", numExperts: 8, topK: 3, numGroups: 4, topKGroup: 2, numShared: 1, hiddenSize: 16,
        moeIntermediateSize: 8, numMoELayers: 3, routedScalingFactor: 2.5, scoring: .sigmoid, hasCorrectionBias: true)

    static func makeEngine(ranks: Int, slotsPerRank: Int, seed: UInt64) throws -> Engine<CPUBackend> {
        let backend = try CPUBackend(options: BackendOptions(numRanks: ranks, workerThreads: 2))
        let store = (0..<config.numMoELayers).map { MoELayerWeights.random(config: config, seed: seed + UInt64($0)) }
        var g = SplitMix64(seed: seed)
        let initial = try (0..<config.numMoELayers).map { _ in
            try EPHarness.randomPlacement(numExperts: 8, numRanks: ranks, slotsPerRank: slotsPerRank, using: &g)
        }
        return try Engine(backend: backend, store: store, placements: initial, splitPolicy: .balanced)
    }

    /// Checks every captured layer of a step against the dense reference; returns the worst relative error.
    static func worstError(_ engine: Engine<CPUBackend>, _ result: EngineStepResult, offsets: [[Float]]?) -> Double {
        var worst = 0.0
        for (l, cap) in result.captured!.enumerated() {
            let input = cap.flatMap(\.input), output = cap.flatMap(\.output)
            let ref = DenseMoEReference.forward(
                weights: engine.store[l], hidden: input, tokens: input.count / config.hiddenSize,
                logitOffset: offsets?[l])
            worst = max(worst, MoEMath.relativeError(output, ref))
        }
        return worst
    }

    static func hidden(ranks: Int, tokens: Int, _ g: inout SplitMix64) -> [[Float]] {
        (0..<ranks).map { _ in (0..<(tokens * config.hiddenSize)).map { _ in Float.random(in: -1.7...1.7, using: &g) } }
    }

    /// Slots whose buffer does not hold the store's weights of the expert the active placement puts there.
    static func slotsDisagreeingWithStore(_ engine: Engine<CPUBackend>) throws -> Int {
        var bad = 0
        for (l, p) in engine.placements.enumerated() {
            let w = engine.store[l]
            for (i, rank) in engine.backend.localRanks.enumerated() {
                let layer = engine.layers[l][i], k = layer.kernels
                var w13 = [Float](repeating: 0, count: p.slotsPerRank * w.w13PerExpert)
                try w13.withUnsafeMutableBytes { try k.download(layer.slots.w13, offset: 0, into: $0) }
                for (s, e) in p.slots(ofRank: rank).enumerated() {
                    let got = w13[(s * w.w13PerExpert)..<((s + 1) * w.w13PerExpert)]
                    if !got.elementsEqual(w.w13[w.w13Range(expert: Int(e))]) { bad += 1 }
                }
            }
        }
        return bad
    }

    /// ≥ 100 rebalances under the layer-wise schedule, with every copy held until the next step has begun (so it
    /// runs across the step boundary, after its placement became active, racing that layer's next forward) and
    /// slowed per slot: every output equals the dense reference, no forward sees a stale slot, the slot buffers end
    /// holding the final placement's weights.
    @Test(arguments: [(2, 5, 1), (3, 4, 2), (4, 3, 1), (4, 3, 2)])
    func outputsStayEqualToReferenceAcrossManyRebalances(ranks: Int, slotsPerRank spr: Int, updates: Int) throws {
        let nl = Self.config.numMoELayers
        let engine = try Self.makeEngine(ranks: ranks, slotsPerRank: spr, seed: 5 &+ UInt64(ranks * 10 + updates))
        let migrator = WeightMigrator(engine: engine, layerUpdatesPerStep: updates)
        let copied = Counter(), clock = StepClock()
        migrator.afterSlotCopy = { _, _ in
            copied.increment()
            usleep(100)
        }
        migrator.beforeCopyJob = { _, _, step in clock.wait(past: step) }
        var g = SplitMix64(seed: 99 &+ UInt64(ranks))
        var targets = engine.placements
        var rebalances = 0, worst = 0.0, stale = 0
        for step in 0..<110 {
            // A new plan for `updates` layers every step, rotating over the layers.
            for j in 0..<updates {
                targets[(step * updates + j) % nl] = try EPHarness.randomPlacement(
                    numExperts: 8, numRanks: ranks, slotsPerRank: spr, using: &g)
            }
            try migrator.setTargets(targets)
            let before = engine.placements
            clock.advance(to: step)
            let started = migrator.beginStep()
            #expect(!started.isEmpty && started.count <= updates, "step \(step)")
            // The step still runs every migrating layer with its old placement.
            for l in started { #expect(engine.placements[l] == before[l]) }
            let offsets = (0..<nl).map { _ in (0..<8).map { _ in Float.random(in: -1...1, using: &g) } }
            let result = try engine.step(
                hidden: Self.hidden(ranks: ranks, tokens: 5, &g), logitOffsets: offsets, hooks: migrator,
                capture: true)
            try migrator.endStep()
            for l in started {
                #expect(engine.placements[l] == targets[l])
                if engine.placements[l] != before[l] { rebalances += 1 }
            }
            worst = max(worst, Self.worstError(engine, result, offsets: offsets))
            stale += result.layers.reduce(0) { $0 + $1.staleSlots }
        }
        clock.advance(to: 110)
        try migrator.waitForCopies()
        #expect(rebalances >= 100)
        #expect(copied.value == migrator.slotsMoved)
        #expect(migrator.slotsMoved > 100)
        #expect(migrator.copyJobs > 0)
        #expect(stale == 0)
        #expect(worst <= 1e-5)
        #expect(try Self.slotsDisagreeingWithStore(engine) == 0)
    }

    @Test func onlyTheLayerWhoseCopyIsUnfinishedWaits() throws {
        let ranks = 2, spr = 5
        let engine = try Self.makeEngine(ranks: ranks, slotsPerRank: spr, seed: 13)
        let migrator = WeightMigrator(engine: engine, layerUpdatesPerStep: 2)
        var g = SplitMix64(seed: 7)
        func retarget(_ layer: Int) throws {
            var t = migrator.targets
            while t[layer] == engine.placements[layer] {
                t[layer] = try EPHarness.randomPlacement(numExperts: 8, numRanks: ranks, slotsPerRank: spr, using: &g)
            }
            try migrator.setTargets(t)
        }
        func step() throws -> EngineStepResult {
            migrator.beginStep()
            let r = try engine.step(hidden: Self.hidden(ranks: ranks, tokens: 6, &g), logitOffsets: nil,
                                    hooks: migrator, capture: true)
            try migrator.endStep()
            #expect(Self.worstError(engine, r, offsets: nil) <= 1e-5)
            #expect(r.layers.allSatisfy { $0.staleSlots == 0 })
            return r
        }
        // Layer 1's copy cannot finish until a forward of layer 1 is blocked on it: the next step must wait there.
        let gate = Latch()
        migrator.afterSlotCopy = { layer, _ in if layer == 1 { gate.wait() } }
        migrator.willWaitForCopy = { layer, _ in if layer == 1 { gate.open() } }
        try retarget(1)
        let first = try step()
        #expect(first.copyWaitCount == 0)
        let second = try step()
        #expect(second.layerCopyWaits[1] > 0)
        #expect(second.layerCopyWaits[0] == 0 && second.layerCopyWaits[2] == 0)
        #expect(second.copyWaitCount >= 1 && second.copyWaitCount <= ranks)
        // A copy that landed before the layer's next forward costs that forward nothing.
        migrator.afterSlotCopy = nil
        try retarget(2)
        let third = try step()
        try migrator.waitForCopies()
        let fourth = try step()
        #expect(third.copyWaitCount == 0 && fourth.copyWaitCount == 0)
        #expect(fourth.layerCopyWaits.allSatisfy { $0 == 0 })
        #expect(migrator.pendingLayers.isEmpty)
        #expect(try Self.slotsDisagreeingWithStore(engine) == 0)
    }

    @Test func publishingBeforeTheCopiesIsDetectedAndWrong() throws {
        // The negative control: a placement made active without copying its slots is seen as stale by the forward,
        // and its output differs from the reference.
        let ranks = 2, spr = 5
        let engine = try Self.makeEngine(ranks: ranks, slotsPerRank: spr, seed: 3)
        var g = SplitMix64(seed: 4)
        var target = engine.placements[0]
        while target == engine.placements[0] {
            target = try EPHarness.randomPlacement(numExperts: 8, numRanks: ranks, slotsPerRank: spr, using: &g)
        }
        engine.commit(layer: 0, placement: target)
        let result = try engine.step(hidden: Self.hidden(ranks: ranks, tokens: 16, &g), logitOffsets: nil, capture: true)
        #expect(result.layers[0].staleSlots > 0)
        #expect(result.layers[1].staleSlots == 0)
        #expect(Self.worstError(engine, result, offsets: nil) > 1e-3)
    }
}

final class Counter: @unchecked Sendable {
    private var n = 0
    private let l = NSLock()
    func increment() { l.lock(); n += 1; l.unlock() }
    var value: Int { l.lock(); defer { l.unlock() }; return n }
}

/// The test's step number, for copy jobs to wait on.
final class StepClock: @unchecked Sendable {
    private let c = NSCondition()
    private var now = -1
    func advance(to step: Int) { c.lock(); now = step; c.broadcast(); c.unlock() }
    /// Blocks until the clock is past `step`.
    func wait(past step: Int) { c.lock(); while now <= step { c.wait() }; c.unlock() }
}

/// A one-shot gate: `wait` blocks until `open` was called (then never again).
final class Latch: @unchecked Sendable {
    private let c = NSCondition()
    private var isOpen = false
    func open() { c.lock(); isOpen = true; c.broadcast(); c.unlock() }
    func wait() { c.lock(); while !isOpen { c.wait() }; c.unlock() }
}

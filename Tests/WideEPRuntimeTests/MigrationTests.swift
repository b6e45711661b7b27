import Dispatch
import Foundation
import Testing
import WideEPCPU
import WideEPCore
import WideEPRuntime
import WideEPTestSupport

@Suite struct MigrationTests {
    static let config = MoEConfig(
        name: "tiny", numExperts: 8, topK: 3, numGroups: 4, topKGroup: 2, numShared: 1, hiddenSize: 16,
        moeIntermediateSize: 8, numMoELayers: 2, routedScalingFactor: 2.5, scoring: .sigmoid, hasCorrectionBias: true)

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

    @Test func outputsStayEqualToReferenceAcrossManyRebalances() throws {
        let ranks = 4, spr = 3
        let engine = try Self.makeEngine(ranks: ranks, slotsPerRank: spr, seed: 5)
        let migrator = WeightMigrator(engine: engine, layerUpdatesPerStep: 1)
        var g = SplitMix64(seed: 99)
        var rebalances = 0, moved = 0, worst = 0.0, stale = 0
        for step in 0..<110 {
            // A fresh random target every step: each step migrates one layer while the other serves.
            let targets = try (0..<2).map { _ in
                try EPHarness.randomPlacement(numExperts: 8, numRanks: ranks, slotsPerRank: spr, using: &g)
            }
            try migrator.setTargets(targets)
            rebalances += 1
            let staged = migrator.stage()
            #expect(staged.count == 1, "step \(step)")
            let offsets = (0..<2).map { _ in (0..<8).map { _ in Float.random(in: -1...1, using: &g) } }
            let result = try engine.step(
                hidden: Self.hidden(ranks: ranks, tokens: 5, &g), logitOffsets: offsets, staged: staged, capture: true)
            try migrator.finish()
            for (l, s) in staged { #expect(engine.placements[l] == s.placement) }
            worst = max(worst, Self.worstError(engine, result, offsets: offsets))
            stale += result.layers.reduce(0) { $0 + $1.staleSlots }
            moved = migrator.slotsMoved
        }
        #expect(rebalances >= 100)
        #expect(moved > 100)
        #expect(stale == 0)
        #expect(worst <= 1e-5)
    }

    @Test func migrationNeverExposesAHalfUpdatedLayer() throws {
        let ranks = 3, spr = 4
        let engine = try Self.makeEngine(ranks: ranks, slotsPerRank: spr, seed: 8)
        let migrator = WeightMigrator(engine: engine, layerUpdatesPerStep: 2)
        // Slow copies: the rank threads reach the layer while its copy job is still writing slots.
        let copied = Counter()
        migrator.afterSlotCopy = { _, _ in
            copied.increment()
            usleep(2000)
        }
        var g = SplitMix64(seed: 1)
        var worst = 0.0, stale = 0
        for _ in 0..<12 {
            let targets = try (0..<2).map { _ in
                try EPHarness.randomPlacement(numExperts: 8, numRanks: ranks, slotsPerRank: spr, using: &g)
            }
            try migrator.setTargets(targets)
            let staged = migrator.stage()
            let result = try engine.step(
                hidden: Self.hidden(ranks: ranks, tokens: 6, &g), logitOffsets: nil, staged: staged, capture: true)
            try migrator.finish()
            worst = max(worst, Self.worstError(engine, result, offsets: nil))
            stale += result.layers.reduce(0) { $0 + $1.staleSlots }
        }
        #expect(copied.value == migrator.slotsMoved)
        #expect(copied.value > 0)
        #expect(stale == 0)
        #expect(worst <= 1e-5)
    }

    @Test func publishingBeforeTheCopiesIsDetectedAndWrong() throws {
        // The negative control for the test above: a placement published without copying its slots is seen as
        // stale by the forward, and its output differs from the reference.
        let ranks = 2, spr = 5
        let engine = try Self.makeEngine(ranks: ranks, slotsPerRank: spr, seed: 3)
        var g = SplitMix64(seed: 4)
        var target = engine.placements[0]
        while target == engine.placements[0] {
            target = try EPHarness.randomPlacement(numExperts: 8, numRanks: ranks, slotsPerRank: spr, using: &g)
        }
        let done = DispatchGroup()
        let result = try engine.step(
            hidden: Self.hidden(ranks: ranks, tokens: 16, &g), logitOffsets: nil,
            staged: [0: StagedLayer(placement: target, ready: done)], capture: true)
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

import Testing
import WideEPCore
@testable import WideEPCUDA

/// Host side of the GPU balanced split: the packed placement tables and the kernel-shaped twin against Core.
struct SplitTablesTests {
    static func randomPlacement(_ rng: inout SplitMix64, experts e: Int, ranks: Int, slotsPerRank p: Int) -> Placement {
        while true {
            var table = (0..<e).map { Int32($0) }
            while table.count < ranks * p { table.append(Int32(rng.next() % UInt64(e))) }
            table.shuffle(using: &rng)
            if let pl = try? Placement(slotExpert: table, numExperts: e, numRanks: ranks, allowSameRankReplicas: true) {
                return pl
            }
        }
    }

    @Test func tablesListEachMultiRankExpertsFirstReplicaPerRank() throws {
        var rng = SplitMix64(seed: 11)
        for _ in 0..<20 {
            let pl = Self.randomPlacement(&rng, experts: 24, ranks: 4, slotsPerRank: 9)
            let t = try SplitTables(placement: pl)
            #expect(t.runStart.count == t.multiCount + 1 && t.runStart.first == 0)
            var widest = 1
            for e in 0..<pl.numExperts {
                let ranks = Set(pl.replicas(of: e).map { Int($0) / pl.slotsPerRank }).sorted()
                widest = max(widest, ranks.count)
                #expect(Int(t.expertHome[e]) == Int(pl.replicas(of: e).first!) / pl.slotsPerRank)
                let m = Int(t.multiIndex[e])
                if ranks.count < 2 { #expect(m == -1); continue }
                #expect(t.multiExpert[m] == Int32(e))
                let run = Int(t.runStart[m])..<Int(t.runStart[m + 1])
                #expect(t.runRank[run].map(Int.init) == ranks)
                #expect(t.runOwner[run].allSatisfy { Int($0) == m })
                for i in run {
                    let rep = Int(t.runReplica[i])
                    #expect(rep >= Int(pl.replicaStart[e]) && rep < Int(pl.replicaStart[e + 1]))
                    // The first replica of the expert on that rank.
                    let firstOnRank = pl.replicas(of: e).first { Int($0) / pl.slotsPerRank == Int(t.runRank[i]) }
                    #expect(pl.replicaSlots[rep] == firstOnRank)
                }
            }
            #expect(t.multiExpert == t.multiExpert.sorted())
            #expect(t.maxRanks == widest)
            #expect(t.groupWidth >= max(2, widest) && t.groupWidth < 2 * max(2, widest))
            // The rank lists invert the runs: rank r lists, ascending, exactly the multi experts with an entry on r.
            #expect(t.rankStart.count == pl.numRanks + 1 && t.rankStart.last == Int32(t.runRank.count))
            for r in 0..<pl.numRanks {
                let listed = t.rankMulti[Int(t.rankStart[r])..<Int(t.rankStart[r + 1])].map(Int.init)
                let expected = t.runRank.indices.filter { t.runRank[$0] == Int32(r) }.map { Int(t.runOwner[$0]) }
                #expect(listed == expected.sorted())
            }
        }
    }

    @Test func warpTablesPackSourcesHomesRunsAndConflicts() throws {
        var rng = SplitMix64(seed: 31)
        for (e, r, p) in [(24, 4, 9), (40, 5, 10), (64, 8, 12)] {
            for _ in 0..<8 {
                let pl = Self.randomPlacement(&rng, experts: e, ranks: r, slotsPerRank: p)
                let t = try SplitTables(placement: pl)
                let w = try #require(SplitWarpTables(tables: t, placement: pl))
                #expect(w.expertsPerLane == max(1, (t.multiCount + 31) / 32) && w.ranksPerExpert == t.groupWidth)
                let tab = w.packed
                // Replica sources: -2 on run entries, the expert on a single-rank expert's first replica, else -1.
                let runEntries = Set(t.runReplica.map(Int.init))
                for i in 0..<pl.numSlots {
                    let x = pl.slotExpert[Int(pl.replicaSlots[i])]
                    let single = t.multiIndex[Int(x)] < 0
                    let expected: Int32 = runEntries.contains(i) ? -2
                        : (single && Int(pl.replicaStart[Int(x)]) == i ? x : -1)
                    #expect(tab[i] == expected)
                }
                // Homes: the rank holding every replica of a single-rank expert, -1 for a multi-rank one.
                let home = SplitWarpTables.homeOffset(pl)
                for x in 0..<e {
                    let ranks = Set(pl.replicas(of: x).map { Int($0) / pl.slotsPerRank })
                    #expect(Int(tab[home + x]) == (ranks.count == 1 ? ranks.first! : -1))
                }
                // Runs and conflicts: expert, rank count, color, (replica, rank) per entry; experts sharing any rank.
                let info = SplitWarpTables.infoOffset(pl), run = w.runOffset(pl)
                #expect(w.colors.count == t.multiCount)
                for m in 0..<t.multiCount {
                    let a = Int(t.runStart[m]), b = Int(t.runStart[m + 1])
                    #expect(tab[info + m] == t.multiExpert[m] | Int32(b - a) << 16 | w.colors[m] << 24)
                    for i in a..<b {
                        #expect(tab[run + (i - a) * w.multiCapacity + m] == t.runReplica[i] | t.runRank[i] << 16)
                    }
                    let mine = Set(t.runRank[a..<b])
                    let sharing = (0..<t.multiCount).filter { o in
                        o != m && !mine.isDisjoint(with: t.runRank[Int(t.runStart[o])..<Int(t.runStart[o + 1])])
                    }
                    #expect(w.conflicts(of: m, placement: pl) == Set(sharing))
                    // A proper coloring: no expert sharing a rank with m has its color.
                    #expect(sharing.allSatisfy { w.colors[$0] != w.colors[m] })
                    #expect(w.colors[m] >= 0 && Int(w.colors[m]) <= sharing.count)
                }
            }
        }
        // More multi experts than the one-warp kernel takes: no warp tables (the level-parallel kernel runs).
        let wide = try Placement(slotExpert: (0..<260).map { Int32($0 % 130) }, numExperts: 130, numRanks: 260)
        #expect(SplitWarpTables(tables: try SplitTables(placement: wide), placement: wide) == nil)
        #expect(SplitWarpTables(tables: try SplitTables(placement: wide), placement: wide, limit: .max) != nil)
    }

    /// Fresh random DeepSeek-shaped layers at EP 8 (two multi experts per lane), 32 and 72, same-rank replicas and
    /// sparse batches: the twin with Core's stop gives Core's quotas; with the default certified stop its max rank
    /// load is within the default 1 + 2^-7 of Core's (so within 1%), and every expert's quotas sum to its count.
    @Test func warpTwinMatchesCoreOnFreshRandomLayers() throws {
        var rng = SplitMix64(seed: 0x5eed_2)
        for (r, p, same) in [(8, 40, false), (32, 9, false), (72, 4, false), (32, 9, true), (8, 40, true)] {
            for trial in 0..<3 {
                let pl = try SplitCases.hotPlacement(experts: 256, ranks: r, slotsPerRank: p, sameRank: same, rng: &rng)
                let t = try SplitTables(placement: pl)
                #expect(SplitWarpTables(tables: t, placement: pl) != nil)
                var counts = SplitCases.skewedCounts(experts: 256, tokens: trial == 1 ? 300 : 4096, rng: &rng)
                if trial == 2 { for e in 0..<256 where rng.next() % 10 != 0 { counts[e] = 0 } }
                let got = SplitReference.quotas(counts: counts, tables: t, placement: pl)
                let exact = SplitReference.quotas(counts: counts, tables: t, placement: pl, stop: .core)
                let ref = ReplicaSplit.quotas(expertCounts: counts.map(Int.init), placement: pl, policy: .balanced)
                #expect(SplitCases.conservationErrors(replicaQuotas: got, counts: counts, placement: pl) == 0)
                let corePeak = ReplicaSplit.rankLoads(quotas: ref, placement: pl).max()!
                let peak = Double(SplitCases.peak(replicaQuotas: got, placement: pl))
                #expect(peak <= corePeak * SplitStop.default.ratioLimit)
                #expect(SplitTables.slotQuotas(replicaQuotas: exact, placement: pl).map(Int.init) == ref)
            }
        }
    }

    @Test func kernelShapedTwinMatchesCoreBalancedSplit() throws {
        var rng = SplitMix64(seed: 5)
        for (e, r, p) in [(64, 8, 9), (16, 4, 6), (40, 5, 10)] {
            for trial in 0..<15 {
                let pl = Self.randomPlacement(&rng, experts: e, ranks: r, slotsPerRank: p)
                let t = try SplitTables(placement: pl)
                var counts = [Int32](repeating: 0, count: e)
                for i in 0..<e where rng.next() % 6 != 0 {
                    let u = rng.unitFloat() * rng.unitFloat()
                    counts[i] = Int32(Float(rng.next() % 1000) * u)
                }
                // Every fifth case leaves the batch empty apart from one expert.
                if trial % 5 == 4 { counts = [Int32](repeating: 0, count: e) }
                counts[Int(rng.next() % UInt64(e))] += 500
                let got = SplitReference.quotas(counts: counts, tables: t, placement: pl, stop: .core)
                let ref = ReplicaSplit.quotas(expertCounts: counts.map(Int.init), placement: pl, policy: .balanced)
                #expect(SplitTables.slotQuotas(replicaQuotas: got, placement: pl).map(Int.init) == ref)
                #expect(SplitCases.conservationErrors(replicaQuotas: got, counts: counts, placement: pl) == 0)
            }
        }
    }

    @Test func twinMatchesCoreOnDeepSeekShapesAtEP8EP32EP72() throws {
        var rng = SplitMix64(seed: 23)
        for (r, p) in [(8, 40), (32, 9), (72, 4)] {
            for trial in 0..<4 {
                let pl = try SplitCases.hotPlacement(experts: 256, ranks: r, slotsPerRank: p, sameRank: false, rng: &rng)
                let t = try SplitTables(placement: pl)
                let counts = SplitCases.skewedCounts(experts: 256, tokens: trial % 2 == 0 ? 4096 : 200, rng: &rng)
                let got = SplitReference.solve(counts: counts, tables: t, placement: pl, stop: .core)
                let ref = ReplicaSplit.quotas(expertCounts: counts.map(Int.init), placement: pl, policy: .balanced)
                #expect(SplitTables.slotQuotas(replicaQuotas: got.quotas, placement: pl).map(Int.init) == ref)
                #expect(got.levels <= got.steps && got.passes >= 1 && !got.fellBack)
                let fast = SplitReference.solve(counts: counts, tables: t, placement: pl)
                let corePeak = ReplicaSplit.rankLoads(quotas: ref, placement: pl).max()!
                let peak = Double(SplitCases.peak(replicaQuotas: fast.quotas, placement: pl))
                #expect(peak <= corePeak * SplitStop.default.ratioLimit)
                #expect(SplitCases.conservationErrors(replicaQuotas: fast.quotas, counts: counts, placement: pl) == 0)
            }
        }
    }

    /// Real DeepSeek-R1 loads: each layer planned on the decode profile, its counts sampled from the prefill profile
    /// (a drifted batch the split has to fix), at 64 and 4096 tokens × 8.
    @Test func twinMatchesCoreOnRealDeepSeekLoads() throws {
        let plan = try SplitLoadFile.read(SplitLoadFile.directory + "/sglang_dsv3_decode_in2000out100.json")
        let batch = try SplitLoadFile.read(SplitLoadFile.directory + "/sglang_dsv3_prefill_in4096.json")
        #expect(plan.count == 58 && batch.count == 58 && plan[0].count == 256)
        var rng = SplitMix64(seed: 3)
        let topo = try Topology(numRanks: 32, numNodes: 4)
        for layer in stride(from: 0, to: 58, by: 7) {
            let pl = try Planner.planLayer(loads: plan[layer], request: PlannerRequest(numSlots: 288, topology: topo))
            let t = try SplitTables(placement: pl)
            for tokens in [64, 4096] {
                let counts = SplitCases.sampleCounts(profile: batch[layer], pairs: tokens * 8, rng: &rng)
                #expect(counts.reduce(0, +) == Int32(tokens * 8))
                let got = SplitReference.quotas(counts: counts, tables: t, placement: pl)
                let exact = SplitReference.quotas(counts: counts, tables: t, placement: pl, stop: .core)
                let ref = ReplicaSplit.quotas(expertCounts: counts.map(Int.init), placement: pl, policy: .balanced)
                #expect(SplitCases.conservationErrors(replicaQuotas: got, counts: counts, placement: pl) == 0)
                let corePeak = ReplicaSplit.rankLoads(quotas: ref, placement: pl).max()!
                let peak = Double(SplitCases.peak(replicaQuotas: got, placement: pl))
                #expect(peak <= corePeak * SplitStop.default.ratioLimit, "layer \(layer): \(peak) vs Core \(corePeak)")
                #expect(SplitTables.slotQuotas(replicaQuotas: exact, placement: pl).map(Int.init) == ref)
            }
        }
    }

    @Test func scheduleLevelsFollowRankChains() throws {
        // Expert 0 on ranks {0, 1} and expert 1 on {2, 3}: disjoint, one level.
        let disjoint = try Placement(slotExpert: [0, 2, 0, 3, 1, 4, 1, 5], numExperts: 6, numRanks: 4)
        let counts: [Int32] = [50, 40, 9, 8, 7, 6]
        let d = try SplitReference.solve(
            counts: counts, tables: SplitTables(placement: disjoint), placement: disjoint, stop: .core)
        #expect(d.levels == 1 && d.steps == 2)
        // Adding expert 2 on {1, 2}: visited after 0 (50) and 1 (40), it follows both, one level up.
        let chained = try Placement(
            slotExpert: [0, 3, 4, 0, 2, 5, 1, 2, 6, 1, 7, 8], numExperts: 9, numRanks: 4)
        let c2: [Int32] = [50, 40, 30, 9, 0, 8, 7, 6, 5]
        let c = try SplitReference.solve(
            counts: c2, tables: SplitTables(placement: chained), placement: chained, stop: .core)
        #expect(c.levels == 2 && c.steps == 3)
        let ref = ReplicaSplit.quotas(expertCounts: c2.map(Int.init), placement: chained, policy: .balanced)
        #expect(SplitTables.slotQuotas(replicaQuotas: c.quotas, placement: chained).map(Int.init) == ref)
    }

    @Test func slotQuotasScattersReplicaOrderToSlots() throws {
        let pl = try Placement(slotExpert: [1, 0, 1, 0], numExperts: 2, numRanks: 2)
        // replicaSlots = [1, 3, 0, 2] (expert 0 then expert 1).
        #expect(SplitTables.slotQuotas(replicaQuotas: [10, 20, 30, 40], placement: pl) == [30, 10, 40, 20])
    }

    @Test func kernelsAreExportedUnmangledWithoutHeaders() {
        #expect(SplitSource.source.contains("extern \"C\" __global__ void __launch_bounds__(NT) balanced_split("))
        #expect(SplitSource.source.contains("#define NT 256"))
        #expect(SplitSerialSource.source.contains("extern \"C\" __global__ void __launch_bounds__(256) balanced_split_serial("))
        #expect(!SplitSource.source.contains("#include") && !SplitSerialSource.source.contains("#include"))
        #expect(SplitWarpSource.source.contains("extern \"C\" __global__ void __launch_bounds__(NT) balanced_split_warp("))
        #expect(!SplitWarpSource.source.contains("#include"))
    }

    @Test func sharedMemoryFitsTheDeepSeekShapesAndRejectsHugeOnes() throws {
        var rng = SplitMix64(seed: 8)
        for (r, p) in [(8, 40), (32, 9), (72, 4)] {
            let pl = try SplitCases.hotPlacement(experts: 256, ranks: r, slotsPerRank: p, sameRank: false, rng: &rng)
            #expect(CUDAKernels.splitSharedBytes(pl) <= CUDAKernels.maxSplitSharedBytes)
            let t = try SplitTables(placement: pl)
            #expect(t.multiCount <= CUDAKernels.splitMultiBound(pl) && t.runRank.count <= CUDAKernels.splitEntryBound(pl))
        }
        // 512 experts twice each over 1024 ranks of one slot: 512 multi experts, 1024 run entries.
        let big = try Placement(slotExpert: (0..<1024).map { Int32($0 % 512) }, numExperts: 512, numRanks: 1024)
        #expect(CUDAKernels.splitSharedBytes(big) > CUDAKernels.maxSplitSharedBytes)
    }

    @Test func expertOnTooManyRanksIsRejected() throws {
        let ranks = SplitTables.maxRanksPerExpert + 1
        let table = (0..<ranks).flatMap { r in [Int32(0), Int32(1 + r)] }
        let pl = try Placement(slotExpert: table, numExperts: ranks + 1, numRanks: ranks)
        #expect(throws: (any Error).self) { try SplitTables(placement: pl) }
    }
}

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
            for e in 0..<pl.numExperts {
                let ranks = Set(pl.replicas(of: e).map { Int($0) / pl.slotsPerRank }).sorted()
                let m = Int(t.multiIndex[e])
                if ranks.count < 2 { #expect(m == -1); continue }
                #expect(t.multiExpert[m] == Int32(e))
                let run = Int(t.runStart[m])..<Int(t.runStart[m + 1])
                #expect(t.runRank[run].map(Int.init) == ranks)
                for i in run {
                    let rep = Int(t.runReplica[i])
                    #expect(rep >= Int(pl.replicaStart[e]) && rep < Int(pl.replicaStart[e + 1]))
                    // The first replica of the expert on that rank.
                    let firstOnRank = pl.replicas(of: e).first { Int($0) / pl.slotsPerRank == Int(t.runRank[i]) }
                    #expect(pl.replicaSlots[rep] == firstOnRank)
                }
            }
            #expect(t.multiExpert == t.multiExpert.sorted())
        }
    }

    @Test func kernelShapedTwinMatchesCoreBalancedSplit() throws {
        var rng = SplitMix64(seed: 5)
        for (e, r, p) in [(64, 8, 9), (16, 4, 6), (40, 5, 10)] {
            for _ in 0..<15 {
                let pl = Self.randomPlacement(&rng, experts: e, ranks: r, slotsPerRank: p)
                let t = try SplitTables(placement: pl)
                var counts = [Int32](repeating: 0, count: e)
                for i in 0..<e where rng.next() % 6 != 0 {
                    let u = rng.unitFloat() * rng.unitFloat()
                    counts[i] = Int32(Float(rng.next() % 1000) * u)
                }
                counts[Int(rng.next() % UInt64(e))] += 500
                let got = SplitReference.quotas(counts: counts, tables: t, placement: pl)
                let ref = ReplicaSplit.quotas(expertCounts: counts.map(Int.init), placement: pl, policy: .balanced)
                #expect(SplitTables.slotQuotas(replicaQuotas: got, placement: pl).map(Int.init) == ref)
            }
        }
    }

    @Test func slotQuotasScattersReplicaOrderToSlots() throws {
        let pl = try Placement(slotExpert: [1, 0, 1, 0], numExperts: 2, numRanks: 2)
        // replicaSlots = [1, 3, 0, 2] (expert 0 then expert 1).
        #expect(SplitTables.slotQuotas(replicaQuotas: [10, 20, 30, 40], placement: pl) == [30, 10, 40, 20])
    }

    @Test func kernelIsExportedUnmangledWithoutHeaders() {
        #expect(SplitSource.source.contains("extern \"C\" __global__ void __launch_bounds__(256) balanced_split("))
        #expect(!SplitSource.source.contains("#include"))
    }

    @Test func expertOnTooManyRanksIsRejected() throws {
        let ranks = SplitTables.maxRanksPerExpert + 1
        let table = (0..<ranks).flatMap { r in [Int32(0), Int32(1 + r)] }
        let pl = try Placement(slotExpert: table, numExperts: ranks + 1, numRanks: ranks)
        #expect(throws: (any Error).self) { try SplitTables(placement: pl) }
    }
}
